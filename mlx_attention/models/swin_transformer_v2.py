"""Swin Transformer v2 (kecam ``swin_transformer_v2/swin_transformer_v2.py``): one family builder,
eleven models.

``SwinTransformerV2(...)`` is kecam's family builder (its arguments and defaults), for reduced
configurations; the named models are rows of ``MODELS`` (kecam's constructor arguments as data)
and are registered with ``mlx_attention.models``. Models are built for their input size: each
stage clamps the window to its map and drops the shift where one window covers it, as kecam
does at build time.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import mlx.core as mx
import mlx.nn as nn
import numpy as np

from .. import attention_layers
from ..layers import DropBlock, KerasLayer, KerasModule, ShiftedWindowAttention
from ..layers.attention import Dropout, attend, l2_normalize, qkv_output_layers
from ._base import ImageClassifier, channels_last
from ._glue import ClassifierHead, conv_output_size, drop_connect_rates, per_item
from ._registry import Family, ModelSpec, register_family

# kecam 1.4.3 swin_transformer_v2.py PRETRAINED_DICT: {model.name: {tag: {resolution: md5}}}.
PRETRAINED_DICT = {
    "swin_transformer_v2_base_window12": {"imagenet21k": {192: "0747958b4a891370b8caf538b0c6cf1f"}},
    "swin_transformer_v2_base_window16": {
        "imagenet": {256: "ac5c965069f4452da28169955e8b0444"},
        "imagenet22k": {256: "059b9cc52d036b329345a46c82ee9077"},
    },
    "swin_transformer_v2_base_window24": {"imagenet22k": {384: "809935e83475c252a96dc6107dccd84f"}},
    "swin_transformer_v2_base_window8": {"imagenet": {256: "28ecbbcc6bfb539896bb9ef025df444c"}},
    "swin_transformer_v2_large_window12": {
        "imagenet21k": {192: "7f3c92eea3295d61e9d5881a7a935da1"}
    },
    "swin_transformer_v2_large_window16": {
        "imagenet22k": {256: "8a124dcd6104596bd8fc362f14b87088"}
    },
    "swin_transformer_v2_large_window24": {
        "imagenet22k": {384: "c8782f2a1874ca2979c350a8c2c72c39"}
    },
    "swin_transformer_v2_small_window16": {"imagenet": {256: "89be9ca9b104fb802331120700497bb0"}},
    "swin_transformer_v2_small_window8": {"imagenet": {256: "2736f7ed872130ee59f86e4982d91de0"}},
    "swin_transformer_v2_tiny_window16": {"imagenet": {256: "95d9754a574ff667aad929f1e49f4d1f"}},
    "swin_transformer_v2_tiny_window8": {"imagenet": {256: "97ece5f8d8012d6d40797df063a5f02b"}},
}
# The 21k/22k files' heads (kecam's swin_transformer_v2/__init__.py doc table).
PRETRAINED_CLASSES = {
    ("swin_transformer_v2_base_window12", "imagenet21k"): 21841,
    ("swin_transformer_v2_large_window12", "imagenet21k"): 21841,
}


class SwinBlock(KerasModule):
    """kecam's ``swin_transformer_block``, post-norm: shifted-window attention -> LN -> residual,
    then MLP (exact GELU) -> LN -> residual. Both LNs start at ``gamma = 0`` (kecam's
    ``zero_gamma``), so a freshly built block is the identity.

    Args:
        dims: channels.
        input_size: ``(H, W)`` of the block's map.
        window_size: int or pair, clamped to the map.
        num_heads: heads.
        shift_size: the shift as a fraction of the window (kecam: 0 on even blocks, 0.5 on odd
            ones); ignored where one window covers the map.
        pos_scale: the window the positional coordinates are normalised by (``-1``: this one).
        mlp_ratio: MLP hidden width over ``dims``.
        drop_rate: stochastic depth of both branches (training only).
        layer_scale: the timm layout's ``1_gamma``/``2_gamma`` after each LN, for values
            ``>= 0`` (kecam's test); ``None`` for none (the main layout has no such option).
        attention_block: the per-window attention (``None``: kecam's main layout; see
            ``layers.ShiftedWindowAttention``).
        name: kecam's block prefix, e.g. ``"stack1_block1_"``.

    Shape:
        ``[B, H, W, C] -> [B, H, W, C]``
    """

    def __init__(
        self, dims: int, input_size: tuple[int, int], *, window_size, num_heads: int,
        shift_size: float = 0, pos_scale=-1, mlp_ratio: float = 4, drop_rate: float = 0,
        layer_scale: float | None = None, attention_block: Callable | None = None, name: str,
    ):  # fmt: skip
        super().__init__(name)
        shape = (*input_size, dims)
        self.attn = ShiftedWindowAttention(
            dims, window_size, input_size=input_size, num_heads=num_heads,
            shift_size=shift_size, pos_scale=pos_scale, name=self.sub("attn_"),
            attention_block=attention_block,
        )  # fmt: skip
        self.attn_ln = attention_layers.layer_norm(shape, zero_gamma=True, name=self.sub("attn_"))
        self.mlp = attention_layers.mlp_block(
            shape, int(dims * mlp_ratio), use_conv=False, activation="gelu", name=self.sub("mlp_")
        )
        self.mlp_ln = attention_layers.layer_norm(shape, zero_gamma=True, name=self.sub("mlp_"))
        self.gammas = None
        if layer_scale is not None and layer_scale >= 0:
            self.gammas = [
                attention_layers.ChannelAffine(
                    use_bias=False,
                    weight_init_value=layer_scale,
                    input_shape=shape,
                    name=self.sub(f"{i}_gamma"),
                )  # fmt: skip
                for i in (1, 2)
            ]
        self.attn_drop = DropBlock(drop_rate, name=self.sub("attn_"))
        self.mlp_drop = DropBlock(drop_rate, name=self.sub("mlp_"))

    @property
    def output_name(self) -> str:
        return self.sub("output")

    def _branch(self, index: int, x: mx.array) -> mx.array:
        return x if self.gammas is None else self.gammas[index](x)

    def __call__(self, x: mx.array) -> mx.array:
        x = x + self.attn_drop(self._branch(0, self.attn_ln(self.attn(x))))
        return x + self.mlp_drop(self._branch(1, self.mlp_ln(self.mlp(x))))


class DivideScale(KerasModule):
    """kecam's ``swin_transformer_v2_timm.DivideScale``: ``x / max(weight, min_value)``, the
    ``_ns`` models' per-head temperature of the cosine scores (variable ``weight``, init 1).

    Args:
        shape: the weight shape (``(1, heads, 1, 1)`` on the scores).
        min_value: the clamp of the divisor. Default: ``0.01``.
        name: the Keras layer name.

    Shape:
        ``[B, ...] -> [B, ...]``
    """

    def __init__(self, shape: Sequence[int], *, min_value: float = 0.01, name: str | None = None):
        super().__init__(name)
        self.scale = mx.ones(tuple(shape), dtype=mx.float32)
        self.min_value = min_value

    def keras_layers(self):
        return (KerasLayer(self.sub(""), "Weights", self, ("scale",)),)

    def __call__(self, x: mx.array) -> mx.array:
        return x / mx.maximum(self.scale, self.min_value).astype(x.dtype)


def timm_log_coords(height: int, width: int) -> np.ndarray:
    """kecam's timm-layout ``PairWiseRelativePositionalEmbedding`` table ``[N, N, 2]``:
    ``sign(d) * log(1 + |d|)`` of the pairwise coordinate differences. kecam builds the
    coordinates with ``np.meshgrid(range(height), range(width))`` in ``xy`` mode, so token
    ``k = i * height + j`` sits at ``(i, j)`` with ``i < width``: the usual row-major grid for a
    square window, transposed for a non-square one (kept, as kecam computes it)."""
    xx, yy = np.meshgrid(range(height), range(width))
    coords = np.stack([yy, xx], axis=-1).astype("float32").reshape(-1, 2)
    relative = coords[:, None, :] - coords[None, :, :]
    return (np.sign(relative) * np.log(1.0 + np.abs(relative))).astype("float32")


class TimmWindowMhsa(KerasModule):
    """The ``_ns`` models' window attention (kecam
    ``swin_transformer_v2_timm.window_mhsa_with_pair_wise_positional_embedding``).

    Cosine similarity of L2-normalised queries and keys (TF epsilon 1e-6), divided by a
    per-head ``max(scale, 0.01)`` (``DivideScale``), plus an MLP (``meta_Dense_0`` 2 -> 384,
    ReLU, ``meta_Dense_1`` -> heads; no sigmoid) over the log relative coordinates
    (:func:`timm_log_coords`), plus an optional mask. ``qkv`` has one bias over q, k and v.

    Args:
        dims: input channels ``C``.
        window: the window ``(h, w)``.
        num_heads: heads. Default: ``4``.
        key_dim: per-head width; ``0`` means ``C // num_heads``. Default: ``0``.
        meta_hidden_dim: the positional MLP's width. Default: ``384``.
        mask: an additive ``[nW, N, N]`` array, as ``layers.WindowMhsaPairWise`` takes.
        out_bias: the output Dense's bias. Default: ``True``.
        attn_dropout, out_dropout: dropouts (training). Default: ``0``.
        name: kecam's ``name=`` (layers ``qkv``, ``scale``, ``meta_Dense_0``/``_1``,
            ``output``).

    Shape:
        ``[B', h, w, C] -> [B', h, w, heads * key_dim]``
    """

    def __init__(
        self, dims: int, window: tuple[int, int], *, num_heads: int = 4, key_dim: int = 0,
        meta_hidden_dim: int = 384, mask: mx.array | None = None, out_bias: bool = True,
        attn_dropout: float = 0, out_dropout: float = 0, name: str | None = None,
    ):  # fmt: skip
        super().__init__(name)
        key_dim = key_dim if key_dim > 0 else dims // num_heads
        embed = num_heads * key_dim
        height, width = window
        self.num_heads, self.key_dim = num_heads, key_dim
        self.qkv = nn.Linear(dims, 3 * embed, bias=True)
        self.scale = DivideScale((1, num_heads, 1, 1), name=self.sub("scale"))
        tokens = height * width
        self._coords = mx.array(timm_log_coords(height, width))
        self.meta = attention_layers.mlp_block(
            (tokens, 2), meta_hidden_dim, output_channel=num_heads, drop_rate=0.1,
            activation="relu", name=self.sub("meta_"),
        )  # fmt: skip
        self._mask = mask
        self.attn_drop = Dropout(attn_dropout, what="attn_dropout")
        self.output = nn.Linear(embed, embed, bias=out_bias)
        self.out_drop = Dropout(out_dropout, what="out_dropout")

    def keras_layers(self):
        return qkv_output_layers(self)

    def __call__(self, x: mx.array) -> mx.array:
        count, height, width, _ = x.shape
        heads, key_dim, tokens = self.num_heads, self.key_dim, height * width
        q, k, v = mx.split(self.qkv(x.reshape(count, tokens, -1)), 3, axis=-1)
        q, k, v = (t.reshape(count, -1, heads, key_dim).transpose(0, 2, 1, 3) for t in (q, k, v))
        q, k = l2_normalize(q), l2_normalize(k)
        # the per-head divisor scales the scores: fold it into the queries
        q = self.scale(q)
        bias = self.meta(self._coords.astype(x.dtype)).transpose(2, 0, 1)  # [heads, N, N]
        if self._mask is not None:
            # windows are batch-major ([B * nW, heads]): fold them into the head axis
            windows = self._mask.shape[0]
            bias = (bias[None] + self._mask[:, None]).reshape(windows * heads, tokens, tokens)
            q, k, v = (t.reshape(-1, windows * heads, tokens, t.shape[-1]) for t in (q, k, v))
        out = attend(q, k, v, scale=1.0, bias=bias, dropout=self.attn_drop)
        out = out.reshape(count, heads, tokens, key_dim).transpose(0, 2, 1, 3)
        return self.out_drop(self.output(out.reshape(count, height, width, heads * key_dim)))


class PatchMerging(KerasModule):
    """kecam's ``patch_merging``: odd sizes zero-padded bottom/right, each 2x2 patch
    concatenated as ``x[2i, 2j], x[2i+1, 2j], x[2i, 2j+1], x[2i+1, 2j+1]`` (kecam's reshape and
    transpose), then ``Dense(2C, use_bias=False)`` and LN; the timm layout (``_ns`` models,
    ``norm_first=True``) applies the LN before the Dense.

    Args:
        dims: input channels ``C``.
        input_size: ``(H, W)`` of the input map.
        norm_first: LN over the ``4C`` channels before the Dense (timm) instead of after it.
        name: kecam's ``name=`` (layers ``dense`` and ``ln``).

    Shape:
        ``[B, H, W, C] -> [B, ceil(H/2), ceil(W/2), 2C]``
    """

    def __init__(
        self, dims: int, input_size: tuple[int, int], *, norm_first: bool = False, name: str
    ):
        super().__init__(name)
        self.norm_first = norm_first
        self.output_size = ((input_size[0] + 1) // 2, (input_size[1] + 1) // 2)
        self.dense = nn.Linear(4 * dims, 2 * dims, bias=False)
        self.norm = attention_layers.layer_norm(
            (*self.output_size, 4 * dims if norm_first else 2 * dims), name=name
        )

    def keras_layers(self):
        return (KerasLayer(self.sub("dense"), "Dense", self.dense),)

    @property
    def output_name(self) -> str:
        return self.sub("dense") if self.norm_first else self.norm.sub("ln")

    def __call__(self, x: mx.array) -> mx.array:
        batch, height, width, channels = x.shape
        pad_h, pad_w = height % 2, width % 2
        if pad_h or pad_w:
            x = mx.pad(x, [(0, 0), (0, pad_h), (0, pad_w), (0, 0)])
            height, width = height + pad_h, width + pad_w
        # [B, i, dh, j, dw, C] -> [B, i, j, dw, dh, C]: kecam's 4C order
        x = x.reshape(batch, height // 2, 2, width // 2, 2, channels).transpose(0, 1, 3, 4, 2, 5)
        x = x.reshape(batch, height // 2, width // 2, 4 * channels)
        if self.norm_first:
            return self.dense(self.norm(x))
        return self.norm(self.dense(x))


class SwinTransformerV2Model(ImageClassifier):
    """kecam's ``SwinTransformerV2`` model: a ``stem_patch_size`` patch conv + LN, four stages of
    ``SwinBlock`` (patch merging between them), optional extra LNs, ``pre_output_ln`` and
    kecam's ``output_block``. Arguments are those of :func:`SwinTransformerV2`; ``timm_layout``
    selects kecam's ``swin_transformer_v2_timm`` (the ``_ns`` models): ``TimmWindowMhsa``,
    ``layer_scale`` gammas, and patch merging with the LN before the Dense (no trailing ``_``
    in its names); ``pos_scale`` is not used there.

    Shape:
        ``[B, H, W, 3] -> [B, num_classes]``; ``forward_features``: ``[B, h, w, 8 * embed_dim]``
        (``h = ceil(H / stem_patch_size / 8)`` up to the stem's floor)
    """

    def __init__(
        self, *, num_blocks: Sequence[int], num_heads: Sequence[int], embed_dim: int,
        window_size, pos_scale, stem_patch_size: int, use_stack_norm: bool,
        extra_norm_period: int, input_shape: Sequence[int], num_classes: int,
        drop_connect_rate: float, classifier_activation: str | None, dropout: float,
        timm_layout: bool = False, layer_scale: float = -1,
    ):  # fmt: skip
        input_shape = channels_last(input_shape)
        super().__init__(input_shape)
        if len(num_blocks) != len(num_heads):
            raise ValueError(
                f"num_blocks={list(num_blocks)} and num_heads={list(num_heads)} must have one "
                "entry per stage"
            )
        if isinstance(pos_scale, (list, tuple)) and len(pos_scale) < len(num_blocks):
            raise ValueError(
                f"pos_scale={list(pos_scale)} needs one entry per stage ({len(num_blocks)})"
            )
        height, width, channels = input_shape
        stem = attention_layers.conv2d_no_bias(
            (height, width, channels), embed_dim, stem_patch_size, strides=stem_patch_size,
            use_bias=True, name="stem_",
        )  # fmt: skip
        self.add(stem, stem.sub("conv"))
        (height, width), channels = conv_output_size(stem, height, width), embed_dim
        self.add_layer_norm((height, width, channels), "stem_")

        rates = drop_connect_rates(num_blocks, drop_connect_rate)
        for stack_id, (blocks, heads) in enumerate(zip(num_blocks, num_heads)):
            stack_name = f"stack{stack_id + 1}_"
            if stack_id > 0:
                suffix = "downsample" if timm_layout else "downsample_"
                merge = PatchMerging(
                    channels, (height, width), norm_first=timm_layout, name=stack_name + suffix
                )
                self.add(merge, merge.output_name)
                (height, width), channels = merge.output_size, 2 * channels
            stage_pos_scale = per_item(pos_scale, stack_id)
            for block_id in range(blocks):
                block_name = f"{stack_name}block{block_id + 1}_"
                layer = SwinBlock(
                    channels, (height, width), window_size=window_size, num_heads=heads,
                    shift_size=0 if block_id % 2 == 0 else 0.5, pos_scale=stage_pos_scale,
                    drop_rate=rates[stack_id][block_id],
                    layer_scale=layer_scale if timm_layout else None,
                    attention_block=TimmWindowMhsa if timm_layout else None, name=block_name,
                )  # fmt: skip
                self.add(layer, layer.output_name)
                last = block_id == blocks - 1
                if (
                    extra_norm_period > 0
                    and (block_id + 1) % extra_norm_period == 0
                    and not (use_stack_norm and last)
                ):
                    self.add_layer_norm((height, width, channels), block_name + "output_")
            if use_stack_norm and stack_id != len(num_blocks) - 1:
                self.add_layer_norm((height, width, channels), stack_name + "output_")
        self.add_layer_norm((height, width, channels), "pre_output_")
        self._finish(
            ClassifierHead(
                channels,
                num_classes,
                drop_rate=dropout,
                classifier_activation=classifier_activation,
            )  # fmt: skip
        )


def _build(
    num_blocks=[2, 2, 6, 2], num_heads=[3, 6, 12, 24], embed_dim=96, window_size=7,  # noqa: B006
    pos_scale=-1, stem_patch_size=4, use_stack_norm=False, extra_norm_period=0,
    input_shape=(224, 224, 3), num_classes=1000, drop_connect_rate=0,
    classifier_activation="softmax", dropout=0,
) -> SwinTransformerV2Model:  # fmt: skip
    return SwinTransformerV2Model(
        num_blocks=num_blocks, num_heads=num_heads, embed_dim=embed_dim,
        window_size=window_size, pos_scale=pos_scale, stem_patch_size=stem_patch_size,
        use_stack_norm=use_stack_norm, extra_norm_period=extra_norm_period,
        input_shape=input_shape, num_classes=num_classes, drop_connect_rate=drop_connect_rate,
        classifier_activation=classifier_activation, dropout=dropout,
    )  # fmt: skip


FAMILY = Family(
    module="swin_transformer_v2",
    builder_name="SwinTransformerV2",
    build=_build,
    pretrained_dict=PRETRAINED_DICT,
    pretrained_classes=PRETRAINED_CLASSES,
    sub_release="swin_transformer_v2",
    rescale_mode="torch",
    # kecam's SwinTransformerV2(...) arguments past the architecture ones, in kecam's order
    builder_tail=(("pretrained", None), ("model_name", "swin_transformer_v2"), ("kwargs", None)),
)

_SMALL = {"num_blocks": [2, 2, 18, 2]}
_BASE = {"num_blocks": [2, 2, 18, 2], "num_heads": [4, 8, 16, 32], "embed_dim": 128}
_LARGE = {"num_blocks": [2, 2, 18, 2], "num_heads": [6, 12, 24, 48], "embed_dim": 192}
# kecam's 22k Base/Large files are fine-tuned from window 12: their constructors pop pos_scale
# with the default [12, 12, 12, 6] when pretrained == "imagenet22k" (-1 otherwise, so a 22k .h5
# given by path needs pos_scale=[12, 12, 12, 6], as in kecam).
_SPECS = (
    ("Tiny", {}, 8, 256), ("Tiny", {}, 16, 256),
    ("Small", _SMALL, 8, 256), ("Small", _SMALL, 16, 256),
    ("Base", _BASE, 8, 256), ("Base", _BASE, 12, 192), ("Base", _BASE, 16, 256),
    ("Base", _BASE, 24, 384),
    ("Large", _LARGE, 12, 192), ("Large", _LARGE, 16, 256), ("Large", _LARGE, 24, 384),
)  # fmt: skip
_KECAM_TAG = {12: "imagenet21k", 24: "imagenet22k"}
_POS_SCALE_POPPED = {("Base", 16), ("Base", 24), ("Large", 16), ("Large", 24)}

# kecam's constructors: `fixed` are the constructor's locals (kwargs may not repeat them),
# `popped` its `kwargs.pop(name, default)` overrides.
MODELS = tuple(
    ModelSpec(
        f"SwinTransformerV2{size}_window{window}",
        f"swin_transformer_v2_{size.lower()}_window{window}",
        fixed=dict(arch),
        popped={
            "window_size": window,
            **({"pos_scale": -1} if (size, window) in _POS_SCALE_POPPED else {}),
        },
        tag_popped=(
            {"imagenet22k": {"pos_scale": [12, 12, 12, 6]}}
            if (size, window) in _POS_SCALE_POPPED
            else {}
        ),
        input_shape=(resolution, resolution, 3),
        kecam_pretrained=(
            "imagenet22k"
            if size == "Large" and window == 16
            else _KECAM_TAG.get(window, "imagenet")
        ),
    )
    for size, arch, window, resolution in _SPECS
)

# The constructor's explicit arguments (kecam's order and defaults; `pretrained` follows them).
CONSTRUCTOR_ARGS = (
    ("input_shape", (256, 256, 3)),
    ("num_classes", 1000),
    ("classifier_activation", "softmax"),
)

SwinTransformerV2, constructors = register_family(FAMILY, MODELS, CONSTRUCTOR_ARGS)
globals().update(constructors)


# --- the timm layout (kecam swin_transformer_v2/swin_transformer_v2_timm.py, the _ns models) ----

# kecam 1.4.3 swin_transformer_v2_timm.py PRETRAINED_DICT
TIMM_PRETRAINED_DICT = {
    "swin_transformer_v2_tiny_ns": {"imagenet": {224: "c3272af88ba0cf09c818ac558ca9970e"}},
    "swin_transformer_v2_small_ns": {"imagenet": {224: "89d5a63d528bbb88a4a287871e868414"}},
}


def _build_timm(
    num_blocks=[2, 2, 6, 2], num_heads=[3, 6, 12, 24], embed_dim=96, window_size=7,  # noqa: B006
    stem_patch_size=4, use_stack_norm=False, extra_norm_period=0, layer_scale=-1,
    input_shape=(224, 224, 3), num_classes=1000, drop_connect_rate=0,
    classifier_activation="softmax", dropout=0,
) -> SwinTransformerV2Model:  # fmt: skip
    return SwinTransformerV2Model(
        num_blocks=num_blocks, num_heads=num_heads, embed_dim=embed_dim,
        window_size=window_size, pos_scale=-1, stem_patch_size=stem_patch_size,
        use_stack_norm=use_stack_norm, extra_norm_period=extra_norm_period,
        input_shape=input_shape, num_classes=num_classes, drop_connect_rate=drop_connect_rate,
        classifier_activation=classifier_activation, dropout=dropout, timm_layout=True,
        layer_scale=layer_scale,
    )  # fmt: skip


# The kecam package exports the _ns constructors (module "swin_transformer_v2"); their builder
# is the timm file's own SwinTransformerV2, registered under its full kecam path.
TIMM_FAMILY = Family(
    module="swin_transformer_v2",
    builder_name="swin_transformer_v2_timm.SwinTransformerV2",
    build=_build_timm,
    pretrained_dict=TIMM_PRETRAINED_DICT,
    pretrained_classes={},
    sub_release="swin_transformer_v2",
    rescale_mode="torch",
    builder_tail=(("pretrained", None), ("model_name", "swin_transformer_v2"), ("kwargs", None)),
)
TIMM_MODELS = (
    ModelSpec(
        "SwinTransformerV2Tiny_ns", "swin_transformer_v2_tiny_ns",
        fixed={"use_stack_norm": True},
    ),
    ModelSpec(
        "SwinTransformerV2Small_ns", "swin_transformer_v2_small_ns",
        fixed={"num_blocks": [2, 2, 18, 2], "use_stack_norm": True},
    ),
)  # fmt: skip
TIMM_CONSTRUCTOR_ARGS = (("input_shape", (224, 224, 3)), *CONSTRUCTOR_ARGS[1:])

SwinTransformerV2Timm, timm_constructors = register_family(
    TIMM_FAMILY, TIMM_MODELS, TIMM_CONSTRUCTOR_ARGS
)
globals().update(timm_constructors)

CONSTRUCTORS = (*constructors, *timm_constructors)

__all__ = [
    "CONSTRUCTORS",
    "DivideScale", "MODELS", "PRETRAINED_DICT", "PatchMerging", "SwinBlock",
    "SwinTransformerV2", "SwinTransformerV2Model", "SwinTransformerV2Timm", "TIMM_MODELS",
    "TimmWindowMhsa", "timm_log_coords", *constructors, *timm_constructors,
]  # fmt: skip
