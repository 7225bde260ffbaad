"""``nn.Module`` classes, native MLX API, one file per family."""

from .base import KerasLayer, KerasLayouts, KerasModule
from .channel_attention import ChannelSelfAttention, CrossCovarianceAttention
from .common import (
    Activation,
    AntiAliasDownsample,
    BatchNormActivation,
    BiasLayer,
    ChannelAffine,
    ClassToken,
    Conv2dNoBias,
    DepthwiseConv2dNoBias,
    DropBlock,
    GroupNorm,
    LayerNorm,
    MlpBlock,
    SqueezeExcite,
)
from .local import (
    CotAttention,
    OutlookAttention,
    OutlookAttentionSimple,
    RSoftmax,
    SplitAttentionConv2d,
)
from .mhsa import MultiHeadSelfAttention

__all__ = [
    "Activation",
    "AntiAliasDownsample",
    "BatchNormActivation",
    "BiasLayer",
    "ChannelAffine",
    "ChannelSelfAttention",
    "ClassToken",
    "CotAttention",
    "Conv2dNoBias",
    "CrossCovarianceAttention",
    "DepthwiseConv2dNoBias",
    "DropBlock",
    "GroupNorm",
    "KerasLayer",
    "KerasLayouts",
    "KerasModule",
    "LayerNorm",
    "MlpBlock",
    "MultiHeadSelfAttention",
    "OutlookAttention",
    "OutlookAttentionSimple",
    "RSoftmax",
    "SplitAttentionConv2d",
    "SqueezeExcite",
]
