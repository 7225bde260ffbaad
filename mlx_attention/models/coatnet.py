"""CoAtNet (kecam ``coatnet/coatnet.py``): one family builder, nine models.

``CoAtNet(...)`` is kecam's family builder (its arguments and defaults), for reduced
configurations; the named models are rows of ``MODELS`` and are registered with
``mlx_attention.models``. A stem (3x3 stride-2 conv + BN-GELU, then a 3x3 conv), stages of
pre-activation MBConv blocks (``block_types`` starting with "c") or transformer blocks (LN,
relative-position MHSA, then an LN-conv FFN), and kecam's ``output_block``. The attention's
positional tables follow the feature size at build time, so a file of another input size
loads with ``resize=True`` (kecam's ``mismatch_class``).
"""

from __future__ import annotations

from collections.abc import Sequence

import mlx.core as mx

from .. import attention_layers
from ..layers import DropBlock, KerasModule
from ._base import ImageClassifier, channels_last
from ._glue import ClassifierHead, conv_output_size, drop_connect_rates, per_item
from ._registry import Family, ModelSpec, register_family
from .aotnet import Pool2d

# kecam 1.4.3 coatnet/coatnet.py PRETRAINED_DICT: {model.name: {tag: {resolution: md5}}}.
PRETRAINED_DICT = {
    "coatnet0": {
        "imagenet": {
            160: "bc4375d2f03b99ac4252770331f0d22f",
            224: "5d1e563f959f7efb6d395bde7373ed26",
        }
    }
}


class _Shortcut(KerasModule):
    """kecam's conv shortcut of a first block: ``MaxPool2D(s, s, "same")`` when strided
    (``name + "shortcut_pool"``, TF SAME: the odd cell at the bottom/right), then a 1x1 conv
    without bias (``name + "shortcut_conv"``); identity without ``conv_short_cut``."""

    def __init__(
        self, input_shape: tuple[int, int, int], filters: int, strides: int, *,
        conv_short_cut: bool, name: str,
    ):  # fmt: skip
        super().__init__(name)
        self.pool = self.conv = None
        if not conv_short_cut:
            return
        height, width, channels = input_shape
        if strides > 1:
            self.pool = Pool2d("max", strides, strides, "same", name=self.sub("shortcut_pool"))
            height, width = -(-height // strides), -(-width // strides)
        self.conv = attention_layers.conv2d_no_bias(
            (height, width, channels), filters, 1, name=self.sub("shortcut_")
        )

    def __call__(self, x: mx.array) -> mx.array:
        if self.pool is not None:
            x = self.pool(x)
        return x if self.conv is None else self.conv(x)


class MBConvBlock(KerasModule):
    """kecam's ``coatnet.res_MBConv``: ``preact_`` BN (no activation), then ``expand_`` 1x1
    conv + BN-act, ``MB_`` depthwise 3x3 + ``MB_dw_`` BN-act, an optional ``se_`` module
    (ratio ``se_ratio / expansion``), the ``MB_pw_`` 1x1 conv, and the Add (``output``) with
    the shortcut, which reads the block's input.

    Args:
        input_shape: ``(H, W, C)`` of the block's input.
        output_channel: channels out.
        conv_short_cut: a pooled 1x1-conv shortcut (first blocks) rather than the identity.
        strides: the block's stride, on the depthwise conv (``use_dw_strides``) or on the
            expand conv.
        expansion, se_ratio, drop_rate, bn_act_first, activation: kecam's arguments
            (``bn_act_first``: convs with bias and the activation before each BN).
        name: kecam's block prefix (``"stack_1_block_1_"``).

    Shape:
        ``[B, H, W, C] -> [B, ceil(H / s), ceil(W / s), output_channel]``
    """

    def __init__(
        self, input_shape: tuple[int, int, int], output_channel: int, *,
        conv_short_cut: bool = True, strides: int = 1, expansion: float = 4,
        se_ratio: float = 0, drop_rate: float = 0, use_dw_strides: bool = True,
        bn_act_first: bool = False, activation: str = "gelu", name: str,
    ):  # fmt: skip
        super().__init__(name)
        height, width, channels = input_shape
        self.preact = attention_layers.batchnorm_with_activation(
            input_shape, activation=None, name=self.sub("preact_")
        )
        self.shortcut = _Shortcut(
            input_shape, output_channel, strides, conv_short_cut=conv_short_cut, name=name
        )
        conv_strides, dw_strides = (1, strides) if use_dw_strides else (strides, 1)
        hidden = int(channels * expansion)
        self.expand = attention_layers.conv2d_no_bias(
            input_shape, hidden, 1, strides=conv_strides, padding="same",
            use_bias=bn_act_first, name=self.sub("expand_"),
        )  # fmt: skip
        height, width = conv_output_size(self.expand, height, width)
        self.expand_bn = attention_layers.batchnorm_with_activation(
            (height, width, hidden), activation=activation, act_first=bn_act_first,
            name=self.sub("expand_"),
        )  # fmt: skip
        self.dw = attention_layers.depthwise_conv2d_no_bias(
            (height, width, hidden), 3, strides=dw_strides, padding="same",
            use_bias=bn_act_first, name=self.sub("MB_"),
        )  # fmt: skip
        height, width = conv_output_size(self.dw, height, width)
        shape = (height, width, hidden)
        self.dw_bn = attention_layers.batchnorm_with_activation(
            shape, activation=activation, act_first=bn_act_first, name=self.sub("MB_dw_")
        )
        self.se = None
        if se_ratio:
            self.se = attention_layers.se_module(
                shape, se_ratio=se_ratio / expansion, activation=activation, name=self.sub("se_")
            )
        self.project = attention_layers.conv2d_no_bias(
            shape, output_channel, 1, padding="same", name=self.sub("MB_pw_")
        )
        self.drop = DropBlock(drop_rate)
        self.output_shape = (height, width, output_channel)

    @property
    def output_name(self) -> str:
        return self.sub("output")

    def __call__(self, x: mx.array) -> mx.array:
        deep = self.dw_bn(self.dw(self.expand_bn(self.expand(self.preact(x)))))
        if self.se is not None:
            deep = self.se(deep)
        return self.shortcut(x) + self.drop(self.project(deep))


class MHSABlock(KerasModule):
    """kecam's ``coatnet.res_mhsa``: ``preact_`` LN, ``MaxPool2D(2, s, "same")`` (``pool``)
    when strided, ``mhsa_with_multi_head_relative_position_embedding`` (``mhsa_``; heads =
    input channels // ``head_dimension``, key_dim ``head_dimension``), and the Add
    (``output``) with the shortcut, which reads the block's input.

    Args:
        input_shape: ``(H, W, C)`` of the block's input.
        output_channel: channels out.
        conv_short_cut: a pooled 1x1-conv shortcut (first blocks) rather than the identity.
        strides: the block's stride.
        head_dimension: per-head width.
        drop_rate: stochastic depth (training only).
        name: kecam's block prefix (``"stack_3_block_1_"``).

    Shape:
        ``[B, H, W, C] -> [B, ceil(H / s), ceil(W / s), output_channel]``
    """

    def __init__(
        self, input_shape: tuple[int, int, int], output_channel: int, *,
        conv_short_cut: bool = True, strides: int = 1, head_dimension: int = 32,
        drop_rate: float = 0, name: str,
    ):  # fmt: skip
        super().__init__(name)
        height, width, channels = input_shape
        num_heads = channels // head_dimension
        if num_heads < 1:
            raise ValueError(
                f"{self.sub('mhsa_')}: head_dimension={head_dimension} is larger than the "
                f"{channels} input channels (num_heads = channels // head_dimension = 0)"
            )
        self.preact = attention_layers.layer_norm(input_shape, name=self.sub("preact_"))
        self.shortcut = _Shortcut(
            input_shape, output_channel, strides, conv_short_cut=conv_short_cut, name=name
        )
        self.pool = None
        if strides != 1:
            self.pool = Pool2d("max", 2, strides, "same", name=self.sub("pool"))
            height, width = -(-height // strides), -(-width // strides)
        self.attn = attention_layers.mhsa_with_multi_head_relative_position_embedding(
            (height, width, channels), num_heads=num_heads, key_dim=head_dimension,
            out_shape=output_channel, name=self.sub("mhsa_"),
        )  # fmt: skip
        self.drop = DropBlock(drop_rate)
        self.output_shape = (height, width, output_channel)

    @property
    def output_name(self) -> str:
        return self.sub("output")

    def __call__(self, x: mx.array) -> mx.array:
        deep = self.preact(x)
        if self.pool is not None:
            deep = self.pool(deep)
        return self.shortcut(x) + self.drop(self.attn(deep))


class FFNBlock(KerasModule):
    """kecam's ``coatnet.res_ffn``: ``preact_`` LN, ``1_`` 1x1 conv (``expansion`` x the
    channels), the activation, ``2_`` 1x1 conv, and the Add (``output``) with the input.

    Args:
        input_shape: ``(H, W, C)``.
        expansion, drop_rate, activation: kecam's arguments.
        name: kecam's prefix (``"stack_3_block_1_ffn_"``).

    Shape:
        ``[B, H, W, C] -> [B, H, W, C]``
    """

    def __init__(
        self, input_shape: tuple[int, int, int], *, expansion: float = 4, drop_rate: float = 0,
        activation: str = "gelu", name: str,
    ):  # fmt: skip
        super().__init__(name)
        height, width, channels = input_shape
        hidden = int(channels * expansion)
        self.preact = attention_layers.layer_norm(input_shape, name=self.sub("preact_"))
        self.conv1 = attention_layers.conv2d_no_bias(input_shape, hidden, 1, name=self.sub("1_"))
        self.act = attention_layers.activation_by_name(
            (height, width, hidden), activation, name=name
        )
        self.conv2 = attention_layers.conv2d_no_bias(
            (height, width, hidden), channels, 1, name=self.sub("2_")
        )
        self.drop = DropBlock(drop_rate)

    @property
    def output_name(self) -> str:
        return self.sub("output")

    def __call__(self, x: mx.array) -> mx.array:
        return x + self.drop(self.conv2(self.act(self.conv1(self.preact(x)))))


class CoAtNetModel(ImageClassifier):
    """kecam's ``CoAtNet`` model: the stem (``stem_1_`` 3x3 stride-2 conv + BN-act, ``stem_2_``
    3x3 conv without norm), stages of ``MBConvBlock`` or ``MHSABlock`` + ``FFNBlock``
    (``stack_{i}_block_{j}_``, the first block of a stage strided with a conv shortcut), and
    kecam's ``output_block``. Arguments are those of :func:`CoAtNet`.

    Shape:
        ``[B, H, W, 3] -> [B, num_classes]``; ``forward_features``: the last block's output,
        ``[B, H', W', out_channels[-1]]`` (``ceil`` of the size at each stride).
    """

    def __init__(
        self, *, num_blocks: Sequence[int], out_channels: Sequence[int], stem_width: int,
        block_types: Sequence[str], strides, expansion: float, se_ratio, head_dimension: int,
        use_dw_strides: bool, bn_act_first: bool, input_shape: Sequence[int], num_classes: int,
        activation: str, drop_connect_rate: float, classifier_activation: str | None,
        dropout: float,
    ):  # fmt: skip
        input_shape = channels_last(input_shape)
        super().__init__(input_shape)
        stages = min(len(num_blocks), len(out_channels), len(block_types))  # kecam's zip
        height, width, channels = input_shape
        conv = attention_layers.conv2d_no_bias(
            input_shape, stem_width, 3, strides=2, padding="same", use_bias=bn_act_first,
            name="stem_1_",
        )  # fmt: skip
        self.add(conv, conv.sub("conv"))
        (height, width), channels = conv_output_size(conv, height, width), stem_width
        norm = attention_layers.batchnorm_with_activation(
            (height, width, channels), activation=activation, act_first=bn_act_first,
            name="stem_1_",
        )  # fmt: skip
        last = "bn" if bn_act_first or activation is None else activation
        self.add(norm, norm.sub(last))
        conv = attention_layers.conv2d_no_bias(
            (height, width, channels), stem_width, 3, padding="same", use_bias=bn_act_first,
            name="stem_2_",
        )  # fmt: skip
        self.add(conv, conv.sub("conv"))

        shape = (height, width, channels)
        rates = drop_connect_rates(num_blocks, drop_connect_rate)
        for stack_id in range(stages):
            is_conv_block = block_types[stack_id][0].lower() == "c"
            stack_se_ratio = per_item(se_ratio, stack_id)
            stack_strides = per_item(strides, stack_id)
            for block_id in range(num_blocks[stack_id]):
                name = f"stack_{stack_id + 1}_block_{block_id + 1}_"
                common = {
                    "conv_short_cut": block_id == 0,
                    "strides": stack_strides if block_id == 0 else 1,
                    "drop_rate": rates[stack_id][block_id],
                }
                if is_conv_block:
                    conv = MBConvBlock(
                        shape, out_channels[stack_id], **common, expansion=expansion,
                        se_ratio=per_item(stack_se_ratio, block_id),
                        use_dw_strides=use_dw_strides, bn_act_first=bn_act_first,
                        activation=activation, name=name,
                    )  # fmt: skip
                    blocks = [conv]
                else:
                    attn = MHSABlock(
                        shape, out_channels[stack_id], **common, head_dimension=head_dimension,
                        name=name,
                    )  # fmt: skip
                    ffn = FFNBlock(
                        attn.output_shape, expansion=expansion, drop_rate=common["drop_rate"],
                        activation=activation, name=name + "ffn_",
                    )  # fmt: skip
                    blocks = [attn, ffn]
                for block in blocks:
                    self.add(block, block.output_name)
                shape = blocks[0].output_shape
        head = ClassifierHead(
            shape[-1], num_classes, drop_rate=dropout, classifier_activation=classifier_activation
        )
        self._finish(head)


def _build(
    num_blocks, out_channels, stem_width=64,
    block_types=["conv", "conv", "transform", "transform"], strides=[2, 2, 2, 2],  # noqa: B006
    expansion=4, se_ratio=0.25, head_dimension=32, use_dw_strides=True, bn_act_first=False,
    input_shape=(224, 224, 3), num_classes=1000, activation="gelu", drop_connect_rate=0,
    classifier_activation="softmax", dropout=0,
) -> CoAtNetModel:  # fmt: skip
    return CoAtNetModel(
        num_blocks=num_blocks, out_channels=out_channels, stem_width=stem_width,
        block_types=block_types, strides=strides, expansion=expansion, se_ratio=se_ratio,
        head_dimension=head_dimension, use_dw_strides=use_dw_strides,
        bn_act_first=bn_act_first, input_shape=input_shape, num_classes=num_classes,
        activation=activation, drop_connect_rate=drop_connect_rate,
        classifier_activation=classifier_activation, dropout=dropout,
    )  # fmt: skip


FAMILY = Family(
    module="coatnet",
    builder_name="CoAtNet",
    build=_build,
    pretrained_dict=PRETRAINED_DICT,
    pretrained_classes={},
    sub_release="coatnet",
    rescale_mode="torch",
    # kecam's CoAtNet(...) arguments past the architecture ones, in kecam's order
    builder_tail=(("pretrained", None), ("model_name", "coatnet"), ("kwargs", None)),
)


def _spec(name: str, blocks, channels, stem_width: int, drop_connect_rate: float, **fixed):
    """A kecam constructor without a ``pretrained`` argument (all but CoAtNet0)."""
    return ModelSpec(
        name, name.lower(), kecam_pretrained=None, pretrained_arg=False,
        fixed={"num_blocks": blocks, "out_channels": channels, "stem_width": stem_width, **fixed},
        arg_defaults={"drop_connect_rate": drop_connect_rate},
    )  # fmt: skip


_C0 = [96, 192, 384, 768]
_DEEP, _DEEPER = [2, 6, 14, 2], [2, 12, 28, 2]
_FIVE = {
    "block_types": ["conv", "conv", "conv", "transfrom", "transform"],  # kecam's spelling
    "strides": [2, 2, 2, 1, 2], "head_dimension": 128,
}  # fmt: skip
# kecam's constructors: `fixed` are the constructor's locals (kwargs may not repeat them).
MODELS = (
    _spec("CoAtNetT", [3, 4, 6, 3], [64, 128, 256, 512], 64, 0),
    ModelSpec(
        "CoAtNet0",
        "coatnet0",
        fixed={"num_blocks": [2, 3, 5, 2], "out_channels": _C0, "stem_width": 64},
    ),  # fmt: skip
    _spec("CoAtNet1", _DEEP, _C0, 64, 0.3),
    _spec("CoAtNet2", _DEEP, [128, 256, 512, 1024], 128, 0.5),
    _spec("CoAtNet3", _DEEP, [192, 384, 768, 1536], 192, 0.7),
    _spec("CoAtNet4", _DEEPER, [192, 384, 768, 1536], 192, 0.2),
    _spec("CoAtNet5", _DEEPER, [256, 512, 1280, 2048], 192, 0.2, head_dimension=64),
    _spec("CoAtNet6", [2, 4, 8, 42, 2], [192, 384, 768, 1536, 2048], 192, 0.2, **_FIVE),
    _spec("CoAtNet7", [2, 4, 8, 42, 2], [256, 512, 1024, 2048, 3072], 192, 0.2, **_FIVE),
)

# The constructor's explicit arguments (kecam's order and defaults; CoAtNet0's `pretrained`
# follows them).
CONSTRUCTOR_ARGS = (
    ("input_shape", (224, 224, 3)),
    ("num_classes", 1000),
    ("drop_connect_rate", 0),
    ("classifier_activation", "softmax"),
)

CoAtNet, constructors = register_family(FAMILY, MODELS, CONSTRUCTOR_ARGS)
globals().update(constructors)

__all__ = [
    "MODELS", "PRETRAINED_DICT", "CoAtNet", "CoAtNetModel", "FFNBlock", "MBConvBlock",
    "MHSABlock", *constructors,
]  # fmt: skip
