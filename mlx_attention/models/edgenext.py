"""EdgeNeXt (kecam ``edgenext/edgenext.py``): one family builder, four models.

``EdgeNeXt(...)`` is kecam's family builder (its arguments and defaults), for reduced
configurations; the named models are rows of ``MODELS`` and are registered with
``mlx_attention.models``. Every convolution that changes the size is VALID (the 4x4 stride-4
stem, the 2x2 stride-2 downsamples), so odd sizes are floored: 97x131 gives 24x32, 12x16, 6x8
and 3x4 maps, as in kecam.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import partial

import mlx.core as mx

from .. import attention_layers
from ..layers import DropBlock, KerasModule
from ._base import ImageClassifier, channels_last
from ._glue import ClassifierHead, conv_output_size, drop_connect_rates
from ._registry import Family, ModelSpec, register_family

# kecam 1.4.3 edgenext/edgenext.py PRETRAINED_DICT: {model.name: {tag: {resolution: md5}}}.
PRETRAINED_DICT = {
    "edgenext_base": {
        "imagenet": {256: "9492ab3b407aabe84cead0bded7f7dd7"},
        "usi": {256: "9d93a7524eda4701b2364540a2a44c8a"},
        "imagenet21k-ft1k": {256: "d82a6f8cfd1e85cb16b0d6ced189eb1e"},
    },
    "edgenext_small": {
        "imagenet": {256: "0234641a703283de1cb0d935bb0325e4"},
        "usi": {256: "c237761b5bd5c32041d6b758186a0716"},
    },
    "edgenext_x_small": {"imagenet": {256: "472df7659422c7feffbec8012a0f6fa4"}},
    "edgenext_xx_small": {"imagenet": {256: "4190ba28c7caa2fe73215448f8abebd6"}},
}
LAYER_NORM_EPSILON = 1e-6  # kecam's, for every LayerNormalization of the family


class InvertedBottleneck(KerasModule):
    """kecam's ``norm_inverted_bottleneck``: LN -> ``mlp_block`` (``mlp_ratio`` times wider)
    -> ``ChannelAffine("gamma")`` -> drop path. The branch only: its callers add the residual.

    Args:
        input_shape: ``(H, W, C)``.
        mlp_ratio, activation: the MLP's.
        layer_scale: the initial ``gamma``; ``< 0`` means none. kecam tests ``>= 0``, so a
            ``gamma`` initialised to 0 exists (unlike ``LayerScaleResidual``'s ``> 0``).
        drop_rate: stochastic depth (training only).
        name: kecam's prefix (``"stack1_block1_conv_"``: ``..._ln``, ``..._Dense_0``, ...).

    Shape:
        ``[B, H, W, C] -> [B, H, W, C]``
    """

    def __init__(
        self, input_shape: tuple[int, int, int], *, mlp_ratio: float = 4,
        layer_scale: float = 1e-6, drop_rate: float = 0, activation: str = "gelu", name: str,
    ):  # fmt: skip
        super().__init__(name)
        dims = input_shape[-1]
        self.norm = attention_layers.layer_norm(input_shape, epsilon=LAYER_NORM_EPSILON, name=name)
        self.mlp = attention_layers.mlp_block(
            input_shape, int(dims * mlp_ratio), activation=activation, name=name
        )
        self.gamma = _layer_scale(input_shape, layer_scale, self.sub("gamma"))
        self.drop = DropBlock(drop_rate, name=name)

    def __call__(self, x: mx.array) -> mx.array:
        x = self.mlp(self.norm(x))
        return self.drop(x if self.gamma is None else self.gamma(x))


def _layer_scale(input_shape: tuple[int, int, int], layer_scale: float, name: str):
    """kecam's ``ChannelAffine(use_bias=False, weight_init_value=layer_scale)`` where
    ``layer_scale >= 0``, else ``None``."""
    if layer_scale < 0:
        return None
    return attention_layers.ChannelAffine(
        use_bias=False, weight_init_value=layer_scale, input_shape=input_shape, name=name
    )


class ConvEncoder(KerasModule):
    """kecam's ``conv_encoder``: ``x + inverted_bottleneck(depthwise_conv(x))``, the
    depthwise ``kernel_size`` conv SAME with a bias, the ``Add`` named ``name + "output"``.

    Args:
        input_shape: ``(H, W, C)``.
        mlp_ratio, kernel_size, layer_scale, drop_rate, activation: kecam's arguments.
        name: kecam's prefix (``"stack1_block1_conv_"``).

    Shape:
        ``[B, H, W, C] -> [B, H, W, C]``
    """

    def __init__(
        self, input_shape: tuple[int, int, int], *, mlp_ratio: float = 4, kernel_size: int = 7,
        layer_scale: float = 1e-6, drop_rate: float = 0, activation: str = "gelu", name: str,
    ):  # fmt: skip
        super().__init__(name)
        self.conv = attention_layers.depthwise_conv2d_no_bias(
            input_shape, kernel_size, use_bias=True, padding="same", name=name
        )
        self.bottleneck = InvertedBottleneck(
            input_shape, mlp_ratio=mlp_ratio, layer_scale=layer_scale, drop_rate=drop_rate,
            activation=activation, name=name,
        )  # fmt: skip

    @property
    def output_name(self) -> str:
        return self.sub("output")

    def __call__(self, x: mx.array) -> mx.array:
        return x + self.bottleneck(self.conv(x))


class SplitDepthwiseTransposeAttention(KerasModule):
    """kecam's ``split_depthwise_transpose_attention`` (STDA).

    The channels split into ``split - 1`` pieces of ``ceil(C / split)`` and a remainder (which
    may be empty); the pieces run through cascaded depthwise 3x3 convs (``spx_{i}_``, each on
    its piece plus the previous conv's output), the remainder passes; optionally
    ``PositionalEncodingFourier("pos")``; then ``x + xca_gamma(cross_covariance_attention(
    LN(x)))`` (``Add`` ``"xca"``) and the block's output ``inputs + inverted_bottleneck(...)``
    (``"ir_"`` layers, ``Add`` ``"output"``): the bottleneck's residual is the block's input.

    Args:
        input_shape: ``(H, W, C)``.
        split: pieces, ``>= 2``, with ``(split - 1) * ceil(C / split) <= C`` (kecam's
            ``tf.split`` fails otherwise, its default of 1 included).
        num_heads: heads of the attention; they must divide ``C`` (kecam's ``Add`` of the
            ``num_heads * (C // num_heads)`` attention channels to ``C`` fails otherwise).
        mlp_ratio, use_pos_emb, layer_scale, drop_rate, activation: kecam's arguments.
        name: kecam's prefix (``"stack2_block2_stda_"``).

    Shape:
        ``[B, H, W, C] -> [B, H, W, C]``
    """

    def __init__(
        self, input_shape: tuple[int, int, int], *, split: int = 2, num_heads: int = 4,
        mlp_ratio: float = 4, use_pos_emb: bool = False, layer_scale: float = 1e-6,
        drop_rate: float = 0, activation: str = "gelu", name: str,
    ):  # fmt: skip
        super().__init__(name)
        height, width, dims = input_shape
        self.piece = math.ceil(dims / split) if split > 0 else 0
        if split < 2 or (split - 1) * self.piece > dims:
            raise ValueError(
                f"split={split} for {dims} channels: kecam cuts split - 1 pieces of "
                f"ceil({dims} / {split}) = {self.piece} channels, which needs split >= 2 and "
                f"(split - 1) * {self.piece} <= {dims}"
            )
        if num_heads < 1 or dims % num_heads:
            raise ValueError(
                f"num_heads={num_heads} must divide the {dims} channels: kecam's attention "
                f"returns num_heads * (channels // num_heads) channels and cannot add them back"
            )
        piece_shape = (height, width, self.piece)
        self.convs = [
            attention_layers.depthwise_conv2d_no_bias(
                piece_shape, 3, padding="same", use_bias=True, name=self.sub(f"spx_{i + 1}_")
            )
            for i in range(split - 1)
        ]
        self.pos = None
        if use_pos_emb:
            self.pos = attention_layers.PositionalEncodingFourier(
                input_shape=input_shape, name=self.sub("pos")
            )
        self.xca_norm = attention_layers.layer_norm(
            input_shape, epsilon=LAYER_NORM_EPSILON, name=self.sub("xca_")
        )
        self.xca = attention_layers.cross_covariance_attention(
            input_shape, num_heads, name=self.sub("xca_")
        )
        self.xca_gamma = _layer_scale(input_shape, layer_scale, self.sub("xca_gamma"))
        self.xca_drop = DropBlock(drop_rate, name=self.sub("xca_"))
        self.bottleneck = InvertedBottleneck(
            input_shape, mlp_ratio=mlp_ratio, layer_scale=layer_scale, drop_rate=drop_rate,
            activation=activation, name=self.sub("ir_"),
        )  # fmt: skip

    @property
    def output_name(self) -> str:
        return self.sub("output")

    def __call__(self, x: mx.array) -> mx.array:
        split_at = len(self.convs) * self.piece
        pieces, outputs, cascade = mx.split(x[..., :split_at], len(self.convs), axis=-1), [], None
        for conv, piece in zip(self.convs, pieces):
            cascade = conv(piece if cascade is None else cascade + piece)
            outputs.append(cascade)
        if split_at < x.shape[-1]:
            outputs.append(x[..., split_at:])
        attn = mx.concatenate(outputs, axis=-1)
        if self.pos is not None:
            attn = self.pos(attn)
        deep = self.xca(self.xca_norm(attn))
        attn = attn + self.xca_drop(deep if self.xca_gamma is None else self.xca_gamma(deep))
        return x + self.bottleneck(attn)


class EdgeNeXtModel(ImageClassifier):
    """kecam's ``EdgeNeXt`` model: a ``stem_patch_size`` VALID conv stem and LN, stages of
    ``ConvEncoder`` blocks ending in ``num_stda_layers`` STDA blocks (LN + a 2x2 stride-2 VALID
    conv between stages), and kecam's head: ``avg_pool``, ``layer_norm("pre_output_")``,
    ``predictions``. Arguments are those of :func:`EdgeNeXt`; as kecam's ``zip``, the stages
    are as many as the shortest of ``num_blocks``, ``out_channels`` and ``num_stda_layers``.

    Shape:
        ``[B, H, W, 3] -> [B, num_classes]``; ``forward_features`` (kecam's ``num_classes=0``,
        without ``pre_output_ln``): ``[B, H/32, W/32, C]`` (sizes floored at each stride).
    """

    def __init__(
        self, *, num_blocks: Sequence[int], out_channels: Sequence[int], num_heads,
        num_stda_layers: Sequence[int], stda_split: Sequence[int],
        stda_use_pos_emb: Sequence[bool], conv_kernel_size: Sequence[int], stem_width: int,
        mlp_ratio: float, stem_patch_size: int, layer_scale: float, input_shape: Sequence[int],
        num_classes: int, activation: str, drop_connect_rate: float,
        classifier_activation: str | None, dropout: float,
    ):  # fmt: skip
        input_shape = channels_last(input_shape)
        super().__init__(input_shape)
        height, width, channels = input_shape
        stem_width = stem_width if stem_width > 0 else out_channels[0]
        conv = attention_layers.conv2d_no_bias(
            input_shape, stem_width, stem_patch_size, strides=stem_patch_size, use_bias=True,
            padding="valid", name="stem_",
        )  # fmt: skip
        self.add(conv, conv.sub("conv"))
        (height, width), channels = conv_output_size(conv, height, width), stem_width
        self._add_norm((height, width, channels), "stem_")

        stages = list(zip(num_blocks, out_channels, num_stda_layers))
        rates = drop_connect_rates(num_blocks, drop_connect_rate)
        for stack_id, (blocks, out_channel, stda_layers) in enumerate(stages):
            stack_name = f"stack{stack_id + 1}_"
            if stack_id > 0:
                name = stack_name + "downsample_"
                self._add_norm((height, width, channels), name)
                conv = attention_layers.conv2d_no_bias(
                    (height, width, channels), out_channel, 2, strides=2, use_bias=True,
                    padding="valid", name=name,
                )  # fmt: skip
                self.add(conv, conv.sub("conv"))
                (height, width), channels = conv_output_size(conv, height, width), out_channel
            shape = (height, width, channels)
            for block_id in range(blocks):
                block_name = f"{stack_name}block{block_id + 1}_"
                common = {
                    "mlp_ratio": mlp_ratio, "layer_scale": layer_scale, "activation": activation,
                    "drop_rate": rates[stack_id][block_id],
                }  # fmt: skip
                if block_id > blocks - stda_layers - 1:
                    heads = num_heads
                    if isinstance(num_heads, (list, tuple)):
                        heads = _at(num_heads, stack_id, "num_heads")
                    block = SplitDepthwiseTransposeAttention(
                        shape, split=_at(stda_split, stack_id, "stda_split"), num_heads=heads,
                        use_pos_emb=_at(stda_use_pos_emb, stack_id, "stda_use_pos_emb"),
                        name=block_name + "stda_", **common,
                    )  # fmt: skip
                else:
                    kernel_size = _at(conv_kernel_size, stack_id, "conv_kernel_size")
                    block = ConvEncoder(
                        shape, kernel_size=kernel_size, name=block_name + "conv_", **common
                    )
                self.add(block, block.output_name)
        pooled_norm = partial(_pooled_norm, name="pre_output_")
        self._finish(
            ClassifierHead(
                channels,
                num_classes,
                drop_rate=dropout,
                classifier_activation=classifier_activation,
                pooled_norm=pooled_norm,
            )  # fmt: skip
        )

    def _add_norm(self, shape: tuple[int, int, int], name: str) -> None:
        norm = attention_layers.layer_norm(shape, epsilon=LAYER_NORM_EPSILON, name=name)
        self.add(norm, norm.sub("ln"))


def _pooled_norm(dims: int, *, name: str):
    return attention_layers.layer_norm((dims,), epsilon=LAYER_NORM_EPSILON, name=name)


def _at(values: Sequence, index: int, what: str):
    """kecam's ``values[stack_id]``, with our error where kecam's is an IndexError."""
    if index >= len(values):
        raise ValueError(f"{what}={list(values)} has no entry for stage {index + 1}")
    return values[index]


def _build(
    num_blocks=[2, 2, 6, 2], out_channels=[24, 48, 88, 168], num_heads=4,  # noqa: B006
    num_stda_layers=[0, 1, 1, 1], stda_split=[2, 2, 3, 4],  # noqa: B006
    stda_use_pos_emb=[False, True, False, False], conv_kernel_size=[3, 5, 7, 9],  # noqa: B006
    stem_width=-1, mlp_ratio=4, stem_patch_size=4, layer_scale=1e-6, input_shape=(224, 224, 3),
    num_classes=1000, activation="gelu", drop_connect_rate=0, classifier_activation="softmax",
    dropout=0,
) -> EdgeNeXtModel:  # fmt: skip
    return EdgeNeXtModel(
        num_blocks=num_blocks, out_channels=out_channels, num_heads=num_heads,
        num_stda_layers=num_stda_layers, stda_split=stda_split,
        stda_use_pos_emb=stda_use_pos_emb, conv_kernel_size=conv_kernel_size,
        stem_width=stem_width, mlp_ratio=mlp_ratio, stem_patch_size=stem_patch_size,
        layer_scale=layer_scale, input_shape=input_shape, num_classes=num_classes,
        activation=activation, drop_connect_rate=drop_connect_rate,
        classifier_activation=classifier_activation, dropout=dropout,
    )  # fmt: skip


FAMILY = Family(
    module="edgenext",
    builder_name="EdgeNeXt",
    build=_build,
    pretrained_dict=PRETRAINED_DICT,
    pretrained_classes={},
    sub_release="edgenext",
    rescale_mode="torch",
    # kecam's EdgeNeXt(...) arguments past the architecture ones, in kecam's order
    builder_tail=(("pretrained", None), ("model_name", "edgenext"), ("kwargs", None)),
)

_DEEP = {"num_blocks": [3, 3, 9, 3]}
_SIZE = (256, 256, 3)
# kecam's constructors: `fixed` are the constructor's locals (kwargs may not repeat them).
MODELS = (
    ModelSpec("EdgeNeXt_XX_Small", "edgenext_xx_small", input_shape=_SIZE),
    ModelSpec(
        "EdgeNeXt_X_Small",
        "edgenext_x_small",
        fixed={**_DEEP, "out_channels": [32, 64, 100, 192]},
        input_shape=_SIZE,
    ),
    ModelSpec(
        "EdgeNeXt_Small",
        "edgenext_small",
        fixed={**_DEEP, "out_channels": [48, 96, 160, 304], "num_heads": 8},
        input_shape=_SIZE,
    ),
    ModelSpec(
        "EdgeNeXt_Base",
        "edgenext_base",
        fixed={**_DEEP, "out_channels": [80, 160, 288, 584], "num_heads": 8},
        input_shape=_SIZE,
    ),
)

# The constructor's explicit arguments (kecam's order and defaults; `pretrained` follows them).
CONSTRUCTOR_ARGS = (
    ("input_shape", _SIZE),
    ("num_classes", 1000),
    ("classifier_activation", "softmax"),
)

EdgeNeXt, constructors = register_family(FAMILY, MODELS, CONSTRUCTOR_ARGS)
globals().update(constructors)

__all__ = [
    "MODELS", "PRETRAINED_DICT", "ConvEncoder", "EdgeNeXt", "EdgeNeXtModel",
    "InvertedBottleneck", "SplitDepthwiseTransposeAttention", *constructors,
]  # fmt: skip
