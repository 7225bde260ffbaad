"""``nn.Module`` classes, native MLX API, one file per family."""

from .base import KerasLayer, KerasLayouts, KerasModule
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

__all__ = [
    "Activation",
    "AntiAliasDownsample",
    "BatchNormActivation",
    "BiasLayer",
    "ChannelAffine",
    "ClassToken",
    "Conv2dNoBias",
    "DepthwiseConv2dNoBias",
    "DropBlock",
    "GroupNorm",
    "KerasLayer",
    "KerasLayouts",
    "KerasModule",
    "LayerNorm",
    "MlpBlock",
    "SqueezeExcite",
]
