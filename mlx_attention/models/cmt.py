"""CMT (kecam ``cmt/cmt.py``): two family builders, five models.

``CMT(...)`` and ``CMT_torch(...)`` are kecam's family builders (their arguments and defaults),
for reduced configurations; the named models are rows of ``MODELS`` and ``TORCH_MODELS``.
``CMT_torch`` is ``CMT`` with the settings of the models converted from PyTorch (biases on the
query, key/value and output projections, BatchNorm after the key/value reduction, a swish
``features_`` head after its BatchNorm, and one ``BiasPositionalEmbedding`` per stage that all
the stage's blocks add to their scores). Its table, and the per-block relative-position tables
of ``CMT``, depend on the input size: ``resize=True`` loads a file saved at another size, as
kecam's ``mismatch_class`` does. kecam 1.3.1 files (Dense ``query`` and ``key_value`` with K and
V interleaved) load too.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence

import mlx.core as mx

from .. import attention_layers
from ..layers import BiasPositionalEmbedding, KerasModule
from ._base import ImageClassifier, channels_last
from ._glue import ClassifierHead, ConvNormStack, conv_output_size, drop_connect_rates
from ._registry import LOAD_ARGS, Family, ModelSpec, register_family

# kecam 1.4.3 cmt/cmt.py PRETRAINED_DICT: {model.name: {tag: {resolution: md5}}}.
PRETRAINED_DICT = {
    "cmt_tiny": {
        "imagenet": {
            160: "e2f84138c3b994a5722c4b742ad5c62e",
            224: "8c1778fe8f9db8e12c58f744a585d747",
        }
    },
    "cmt_tiny_torch": {"imagenet": {160: "7105c2dcbdc08f2074b1ecabfdeaa166"}},
    "cmt_xs_torch": {"imagenet": {192: "62bab26382b36c4a811bcfc8ba1bc699"}},
    "cmt_small_torch": {"imagenet": {224: "2afbdf0f3b18d589ffe87cf8f1817c0c"}},
    "cmt_base_torch": {"imagenet": {256: "2663258907b68c20c7ad0a51f8aed7c4"}},
}


class CMTStem(ConvNormStack):
    """kecam's ``cmt_stem``: three 3x3 convs with bias (the first stride 2, torch padding),
    each followed by ``batchnorm_with_activation(act_first=True)``: the activation **before**
    the BatchNorm.

    Args:
        input_shape: ``(H, W, C)`` of the image.
        stem_width: channels of the three convs.
        activation: a kecam activation name.
        name: kecam's prefix (``"stem_"``: layers ``stem_1_conv``, ``stem_1_bn``, ...).

    Shape:
        ``[B, H, W, C] -> [B, ceil(H / 2), ceil(W / 2), stem_width]``
    """

    def __init__(
        self, input_shape: tuple[int, int, int], stem_width: int, *, activation: str,
        name: str = "stem_",
    ):  # fmt: skip
        super().__init__(name)
        height, width, channels = input_shape
        self.convs, self.norms = [], []
        for index, strides in enumerate((2, 1, 1)):
            prefix = self.sub(f"{index + 1}_")
            conv = attention_layers.conv2d_no_bias(
                (height, width, channels), stem_width, 3, strides=strides, padding="same",
                use_bias=True, name=prefix,
            )  # fmt: skip
            (height, width), channels = conv_output_size(conv, height, width), stem_width
            self.convs.append(conv)
            self.norms.append(
                attention_layers.batchnorm_with_activation(
                    (height, width, channels), activation=activation, act_first=True, name=prefix
                )
            )
        self.output_shape = (height, width, channels)


class InvertedResidualFeedForward(KerasModule):
    """kecam's ``inverted_residual_feed_forward`` (IRFFN): a 1x1 conv to
    ``int(dims * expansion)`` channels + act-first BatchNorm, ``x + depthwise3x3(x)`` +
    act-first BatchNorm, a 1x1 conv back to ``dims`` + BatchNorm. Every conv has a bias.

    Args:
        input_shape: ``(H, W, dims)``.
        expansion: the hidden width over ``dims`` (a float: kecam truncates the product).
        activation: a kecam activation name.
        name: kecam's prefix (``"stack1_block1_ffn_"``).

    Shape:
        ``[B, H, W, dims] -> [B, H, W, dims]``
    """

    def __init__(
        self, input_shape: tuple[int, int, int], expansion: float = 4, *,
        activation: str = "gelu", name: str,
    ):  # fmt: skip
        super().__init__(name)
        *grid, dims = input_shape
        hidden = int(dims * expansion)
        if hidden < 1:
            raise ValueError(
                f"ffn_expansion={expansion}: int({dims} * {expansion}) = {hidden} hidden channels"
            )
        wide = (*grid, hidden)
        self.expand = attention_layers.conv2d_no_bias(
            input_shape, hidden, 1, use_bias=True, name=self.sub("1_")
        )
        self.expand_norm = attention_layers.batchnorm_with_activation(
            wide, activation=activation, act_first=True, name=self.sub("1_")
        )
        self.dw = attention_layers.depthwise_conv2d_no_bias(
            wide, 3, padding="same", use_bias=True, name=name
        )
        self.dw_norm = attention_layers.batchnorm_with_activation(
            wide, activation=activation, act_first=True, name=self.sub("2_")
        )
        self.project = attention_layers.conv2d_no_bias(
            wide, dims, 1, use_bias=True, name=self.sub("3_")
        )
        self.project_norm = attention_layers.batchnorm_with_activation(
            input_shape, name=self.sub("3_")
        )

    def __call__(self, x: mx.array) -> mx.array:
        x = self.expand_norm(self.expand(x))
        x = self.dw_norm(x + self.dw(x))
        return self.project_norm(self.project(x))


class CMTBlock(KerasModule):
    """kecam's ``cmt_block``: ``x0 = x + dw3x3(x)`` (the local perception unit),
    ``x1 = x0 + LMHSA(LN(x0))``, ``x2 = x1 + IRFFN(LN(x1))``; the Keras outputs are
    ``lpu_out``, ``attn_out`` and ``ffn_output``.

    Args:
        input_shape: ``(H, W, C)`` of the block's map.
        num_heads, sr_ratio, expansion, qkv_bias, attn_use_bn, attn_out_bias, activation,
            drop_rate: kecam's ``cmt_block`` arguments.
        pos_emb: the stage's shared ``BiasPositionalEmbedding`` (``CMT_torch``), or ``None``
            for the attention's own relative-position table.
        name: kecam's block prefix, e.g. ``"stack1_block1_"``.

    Shape:
        ``[B, H, W, C] -> [B, H, W, C]``
    """

    def __init__(
        self, input_shape: tuple[int, int, int], *, num_heads: int = 4, sr_ratio: int = 1,
        expansion: float = 4, qkv_bias: bool = False,
        pos_emb: BiasPositionalEmbedding | None = None, attn_use_bn: bool = False,
        attn_out_bias: bool = False, activation: str = "gelu", drop_rate: float = 0, name: str,
    ):  # fmt: skip
        super().__init__(name)
        self.lpu = attention_layers.depthwise_conv2d_no_bias(
            input_shape, 3, padding="same", use_bias=True, name=name
        )
        self.attn_ln = attention_layers.layer_norm(input_shape, name=self.sub("attn_"))
        self.attn = attention_layers.light_mhsa_with_multi_head_relative_position_embedding(
            input_shape, num_heads=num_heads, sr_ratio=sr_ratio, qkv_bias=qkv_bias,
            pos_emb=pos_emb, use_bn=attn_use_bn, out_bias=attn_out_bias,
            name=self.sub("light_mhsa_"),
        )  # fmt: skip
        self.attn_drop = attention_layers.drop_block(input_shape, drop_rate, name=name)
        self.ffn_ln = attention_layers.layer_norm(input_shape, name=self.sub("ffn_"))
        self.ffn = InvertedResidualFeedForward(
            input_shape, expansion, activation=activation, name=self.sub("ffn_")
        )
        self.ffn_drop = attention_layers.drop_block(input_shape, drop_rate, name=name)

    @property
    def output_name(self) -> str:
        return self.sub("ffn_output")

    def __call__(self, x: mx.array) -> mx.array:
        x = x + self.lpu(x)
        x = x + self.attn_drop(self.attn(self.attn_ln(x)))
        return x + self.ffn_drop(self.ffn(self.ffn_ln(x)))


class _Features(KerasModule):
    """kecam's ``features_`` 1x1 conv (with bias) + ``batchnorm_with_activation``, which CMT
    writes before its pooling (so inside ``forward_features``, as kecam's ``num_classes=0``)."""

    def __init__(self, input_shape, filters: int, *, activation: str | None, act_first: bool):
        super().__init__(None)
        self.conv = attention_layers.conv2d_no_bias(
            input_shape, filters, 1, use_bias=True, name="features_"
        )
        self.norm = attention_layers.batchnorm_with_activation(
            (*input_shape[:2], filters), activation=activation, act_first=act_first,
            name="features_",
        )  # fmt: skip
        last = "bn" if act_first or not activation else activation
        self.output_name = self.norm.sub(last)

    def __call__(self, x: mx.array) -> mx.array:
        return self.norm(self.conv(x))


class CMTModel(ImageClassifier):
    """kecam's ``CMT`` model: ``CMTStem``, four stages (a 2x2 stride-2 conv with bias and LN,
    then ``CMTBlock``s; with ``use_block_pos_emb`` one ``BiasPositionalEmbedding``
    ``stack{i}_pos_emb`` shared by the stage's blocks), the ``features_`` conv + BatchNorm, and
    kecam's pooling + ``predictions``. Arguments are those of :func:`CMT`. As kecam's, the
    stages are ``zip(num_blocks, out_channels, num_heads, sr_ratios)``: the shortest list
    sets their number (the default four heads and ratios build four stages of longer
    ``num_blocks``), while the drop-path schedule counts every entry of ``num_blocks``.

    Shape:
        ``[B, H, W, 3] -> [B, num_classes]``; ``forward_features``: ``[B, h, w, F]`` with
        ``h = floor(ceil(H / 2) / 16)`` (``w`` alike; each stage halves, rounding down) and
        ``F = output_num_features`` (the last stage's channels for ``0``).
    """

    def __init__(
        self, *, num_blocks: Sequence[int], out_channels: Sequence[int], stem_width: int,
        num_heads: Sequence[int], sr_ratios: Sequence[int], ffn_expansion: float,
        qkv_bias: bool, attn_out_bias: bool, attn_use_bn: bool, use_block_pos_emb: bool,
        feature_activation: str | None, feature_act_first: bool, input_shape: Sequence[int],
        num_classes: int, activation: str, drop_connect_rate: float,
        classifier_activation: str | None, output_num_features: int, dropout: float,
    ):  # fmt: skip
        input_shape = channels_last(input_shape)
        super().__init__(input_shape)
        stem = CMTStem(input_shape, stem_width, activation=activation)
        self.add(stem, stem.output_name)
        (height, width, channels) = stem.output_shape

        rates = drop_connect_rates(num_blocks, drop_connect_rate)
        for stack_id, (blocks, out_channel, heads, sr_ratio) in enumerate(
            zip(num_blocks, out_channels, num_heads, sr_ratios)
        ):
            stage_name = f"stack{stack_id + 1}_"
            if min(height, width) < 2:
                raise ValueError(
                    f"input_shape={list(input_shape)}: stage {stack_id + 1} gets a "
                    f"{height}x{width} map, which kecam's 2x2 stride-2 downsample cannot take"
                )
            conv = attention_layers.conv2d_no_bias(
                (height, width, channels), out_channel, 2, strides=2, use_bias=True,
                name=stage_name + "down_sample",
            )  # fmt: skip
            self.add(conv, conv.sub("conv"))
            (height, width), channels = conv_output_size(conv, height, width), out_channel
            self.add_layer_norm((height, width, channels), stage_name)
            if sr_ratio > min(height, width):
                raise ValueError(
                    f"input_shape={list(input_shape)}: sr_ratios[{stack_id}]={sr_ratio} exceeds "
                    f"stage {stack_id + 1}'s {height}x{width} map (kecam's key/value reduction "
                    "has no output there)"
                )
            pos_emb = None
            if use_block_pos_emb:
                keys = (height // sr_ratio) * (width // sr_ratio)
                pos_emb = attention_layers.BiasPositionalEmbedding(
                    attn_height=height, input_shape=(heads, height * width, keys),
                    name=stage_name + "pos_emb",
                )  # fmt: skip
            for block_id in range(blocks):
                block = CMTBlock(
                    (height, width, channels), num_heads=heads, sr_ratio=sr_ratio,
                    expansion=ffn_expansion, qkv_bias=qkv_bias, pos_emb=pos_emb,
                    attn_use_bn=attn_use_bn, attn_out_bias=attn_out_bias, activation=activation,
                    drop_rate=rates[stack_id][block_id],
                    name=f"{stage_name}block{block_id + 1}_",
                )  # fmt: skip
                self.add(block, block.output_name)
        if output_num_features > 0:
            features = _Features(
                (height, width, channels), output_num_features,
                activation=activation if feature_activation is None else feature_activation,
                act_first=feature_act_first,
            )  # fmt: skip
            self.add(features, features.output_name)
            channels = output_num_features
        self._finish(
            ClassifierHead(
                channels,
                num_classes,
                drop_rate=dropout,
                classifier_activation=classifier_activation,
            )  # fmt: skip
        )


def _build(
    num_blocks, out_channels, stem_width=16, num_heads=[1, 2, 4, 8], sr_ratios=[8, 4, 2, 1],  # noqa: B006
    ffn_expansion=4, qkv_bias=False, attn_out_bias=False, attn_use_bn=False,
    use_block_pos_emb=False, feature_activation=None, feature_act_first=True,
    input_shape=(224, 224, 3), num_classes=1000, activation="gelu", drop_connect_rate=0,
    classifier_activation="softmax", output_num_features=1280, dropout=0,
) -> CMTModel:  # fmt: skip
    return CMTModel(
        num_blocks=num_blocks, out_channels=out_channels, stem_width=stem_width,
        num_heads=num_heads, sr_ratios=sr_ratios, ffn_expansion=ffn_expansion,
        qkv_bias=qkv_bias, attn_out_bias=attn_out_bias, attn_use_bn=attn_use_bn,
        use_block_pos_emb=use_block_pos_emb, feature_activation=feature_activation,
        feature_act_first=feature_act_first, input_shape=input_shape, num_classes=num_classes,
        activation=activation, drop_connect_rate=drop_connect_rate,
        classifier_activation=classifier_activation, output_num_features=output_num_features,
        dropout=dropout,
    )  # fmt: skip


# kecam's CMT_torch(...): CMT(...) with these defaults (its own arguments, in kecam's order).
TORCH_DEFAULTS = {
    "qkv_bias": True, "attn_out_bias": True, "attn_use_bn": True, "use_block_pos_emb": True,
    "feature_activation": "swish", "feature_act_first": False,
}  # fmt: skip


def _build_torch(**kwargs) -> CMTModel:
    bound = _build_torch.__signature__.bind(**kwargs)
    bound.apply_defaults()
    return _build(**bound.arguments)


_signature = inspect.signature(_build)
_build_torch.__signature__ = _signature.replace(
    parameters=[
        p.replace(default=TORCH_DEFAULTS.get(n, p.default))
        for n, p in _signature.parameters.items()
    ]
)


def _family(builder_name: str, build) -> Family:
    return Family(
        module="cmt",
        builder_name=builder_name,
        build=build,
        pretrained_dict=PRETRAINED_DICT,
        pretrained_classes={},
        sub_release="cmt",
        rescale_mode="torch",
        # kecam's CMT(...) arguments past the architecture ones, in kecam's order
        builder_tail=(("pretrained", None), ("model_name", "cmt"), ("kwargs", None)),
    )


_TINY = {
    "num_blocks": [2, 2, 10, 2], "out_channels": [46, 92, 184, 368], "stem_width": 16,
    "ffn_expansion": 3.6,
}  # fmt: skip
_160 = (160, 160, 3)
# kecam's constructors: `fixed` are the constructor's locals (kwargs may not repeat them).
MODELS = (ModelSpec("CMTTiny", "cmt_tiny", fixed=_TINY, input_shape=_160),)
TORCH_MODELS = (
    ModelSpec("CMTTiny_torch", "cmt_tiny_torch", fixed=_TINY, input_shape=_160),
    ModelSpec("CMTXS_torch", "cmt_xs_torch", input_shape=(192, 192, 3), fixed={
        "num_blocks": [3, 3, 12, 3], "out_channels": [52, 104, 208, 416], "stem_width": 16,
        "ffn_expansion": 3.77,
    }),
    ModelSpec("CMTSmall_torch", "cmt_small_torch", fixed={
        "num_blocks": [3, 3, 16, 3], "out_channels": [64, 128, 256, 512], "stem_width": 32,
        "ffn_expansion": 4,
    }),
    ModelSpec("CMTBase_torch", "cmt_base_torch", input_shape=(256, 256, 3), fixed={
        "num_blocks": [4, 4, 20, 4], "out_channels": [76, 152, 304, 608], "stem_width": 38,
        "ffn_expansion": 4,
    }),
)  # fmt: skip

# The constructors' explicit arguments (kecam's order and defaults; `pretrained` follows them).
CONSTRUCTOR_ARGS = (
    ("input_shape", (224, 224, 3)),
    ("num_classes", 1000),
    ("activation", "gelu"),
    ("classifier_activation", "softmax"),
)

CMT, constructors = register_family(_family("CMT", _build), MODELS, CONSTRUCTOR_ARGS)
_cmt_torch, torch_constructors = register_family(
    _family("CMT_torch", _build_torch), TORCH_MODELS, CONSTRUCTOR_ARGS
)
globals().update(constructors)
globals().update(torch_constructors)

_P = inspect.Parameter
_TORCH_SIGNATURE = inspect.Signature(
    [_P(k, _P.POSITIONAL_OR_KEYWORD, default=v) for k, v in TORCH_DEFAULTS.items()]
    + [_P(k, _P.KEYWORD_ONLY, default=v) for k, v in LOAD_ARGS]
    + [_P("kwargs", _P.VAR_KEYWORD)]
)


def CMT_torch(*args, **kwargs) -> CMTModel:  # noqa: N802 - kecam's name
    """kecam's family builder ``cmt.CMT_torch``, for reduced configurations: ``CMT`` with
    ``TORCH_DEFAULTS`` (kecam's signature: those six, then ``CMT``'s other arguments as
    keywords). The registry's ``"cmt.CMT_torch"`` is the same builder."""
    bound = _TORCH_SIGNATURE.bind(*args, **kwargs)
    bound.apply_defaults()
    rest = bound.arguments.pop("kwargs")
    rest.pop("kwargs", None)  # kecam's CMT_torch drops it too
    return _cmt_torch(**bound.arguments, **rest)


CMT_torch.__signature__ = _TORCH_SIGNATURE
CONSTRUCTORS = (*constructors, *torch_constructors)

__all__ = [
    "CONSTRUCTORS", "MODELS", "PRETRAINED_DICT", "TORCH_DEFAULTS", "TORCH_MODELS", "CMT",
    "CMTBlock", "CMTModel", "CMTStem", "CMT_torch", "InvertedResidualFeedForward",
    *constructors, *torch_constructors,
]  # fmt: skip
