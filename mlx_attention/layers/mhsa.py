"""kecam's global multi-head self-attention blocks: every token attends to every token (or to a
strided / reduced key grid), with the positional term of its model family.

Every module is channels-last and computes what the kecam block computes in inference;
``module.train()`` switches its dropouts on.
"""

from __future__ import annotations

from collections.abc import Sequence

import mlx.core as mx
import mlx.nn as nn
import numpy as np

from .attention import (
    Dropout,
    attend,
    check_block,
    check_dense,
    head_key_dim,
    merge_heads,
    output_dims,
    qkv_output_layers,
    split_heads,
    split_pos_emb,
    value_dims,
)
from .base import KerasLayer, KerasLayouts, KerasModule
from .common import Activation, BatchNormActivation, Conv2dNoBias, DepthwiseConv2dNoBias, LayerNorm
from .positional import (
    MultiHeadPositionalEmbedding,
    MultiHeadRelativePositionalEmbedding,
    RelativePositionalEmbedding,
)
from .utils import check_int, check_int_list, check_size, check_sizes


def _bias_of(pos_emb: nn.Module, dtype: mx.Dtype) -> mx.array:
    """The additive bias of a kecam positional layer that adds its table to the scores.

    Adding it to zeros gives the bias alone, which the fused kernel takes as its mask.
    """
    return pos_emb(mx.zeros((1, 1, 1, 1), dtype=dtype))


def _check_grid(height: int, width: int, what: str) -> None:
    check_sizes(what, height=height, width=width)


class MultiHeadSelfAttention(KerasModule):
    """kecam's ``multi_head_self_attention`` (uniformer; also MobileViT and DaViT windows).

    One Dense ``qkv`` gives ``[q | k | v]`` (head-major each, ``v`` of ``out_dims // num_heads``
    channels per head); ``softmax(q k^T / sqrt(key_dim)) v``; an optional Dense ``output``.

    Args:
        dims: input channels.
        num_heads: heads.
        key_dim: per-head query/key width; ``0`` means ``dims // num_heads``.
        out_dims: kecam's ``out_shape``: output channels when ``out_weight`` (``None``: ``dims``);
            the value width is ``out_dims // num_heads`` per head, so heads must divide it.
        out_weight: whether the Dense ``output`` projection exists; without it the block returns
            ``dims`` channels (``num_heads * (dims // num_heads)``).
        qkv_bias, out_bias: biases of the two projections.
        attn_dropout: dropout on the attention probabilities (training mode only).
        output_dropout: dropout on the output (training mode only).
        pos_emb: applied to the scaled scores ``[B, heads, N, N]`` before the softmax (kecam
            1.4.3): an MLX module (its weights load with the block's) or a callable.
        name: kecam's ``name=``; Keras layers ``name + "qkv"`` and ``name + "output"``.

    Shape:
        ``[B, ..., dims] -> [B, ..., out_dims]`` (every axis between batch and channels is a
        token axis: ``[B, N, C]`` or ``[B, H, W, C]``)
    """

    def __init__(
        self, dims: int, num_heads: int = 4, *, key_dim: int = 0, out_dims: int | None = None,
        out_weight: bool = True, qkv_bias: bool = False, out_bias: bool = False,
        attn_dropout: float = 0.0, output_dropout: float = 0.0, pos_emb=None,
        name: str | None = None,
    ):  # fmt: skip
        super().__init__(name)
        what = "MultiHeadSelfAttention"
        dims = check_block(what, dims, out_weight=out_weight, qkv_bias=qkv_bias, out_bias=out_bias)
        self.key_dim = head_key_dim(dims, num_heads, key_dim)
        self.num_heads = num_heads
        self.out_dims = value_dims(dims, out_dims, out_weight, num_heads)
        qk_dims = num_heads * self.key_dim
        check_dense(what, dims, 2 * qk_dims + self.out_dims, "num_heads, key_dim, out_shape")
        check_dense(what, self.out_dims, self.out_dims, "out_shape")
        self.qkv = nn.Linear(dims, 2 * qk_dims + self.out_dims, bias=qkv_bias)
        self.out_weight = out_weight
        if out_weight:
            self.output = nn.Linear(self.out_dims, self.out_dims, bias=out_bias)
        self.attn_drop = Dropout(attn_dropout, what="attn_dropout")
        self.out_drop = Dropout(output_dropout, what="output_dropout")
        self.pos_emb, self._scores_fn = split_pos_emb(pos_emb)

    def keras_layers(self):
        return qkv_output_layers(self, with_output=self.out_weight)

    def __call__(self, x: mx.array) -> mx.array:
        batch, *grid, _ = x.shape
        qk_dims = self.num_heads * self.key_dim
        qkv = self.qkv(x.reshape(batch, -1, x.shape[-1]))
        query, key, value = mx.split(qkv, [qk_dims, 2 * qk_dims], axis=-1)
        scores_fn = self.pos_emb if self.pos_emb is not None else self._scores_fn
        out = attend(
            split_heads(query, self.num_heads), split_heads(key, self.num_heads),
            split_heads(value, self.num_heads), scale=self.key_dim**-0.5, scores_fn=scores_fn,
            dropout=self.attn_drop,
        )  # fmt: skip
        out = merge_heads(out).reshape(batch, *grid, -1)
        if self.out_weight:
            out = self.output(out)
        return self.out_drop(out)


class BotNetAttention(KerasModule):
    """kecam's ``mhsa_with_relative_position_embedding`` (botnet).

    A 1x1 conv ``qkv`` (no bias) gives ``[q | k | v]`` head-major (``v`` of ``out_dims //
    num_heads`` channels per head); the scores ``q k^T / sqrt(key_dim)`` get the relative (or
    absolute) positional logits of the **unscaled** query, ``RelativePositionalEmbedding``;
    softmax; an optional Dense ``output``.

    Args:
        dims: input channels.
        num_heads: heads.
        height, width: the input grid (the positional tables depend on it).
        key_dim: per-head query/key width; ``0`` means ``dims // num_heads``.
        relative: relative position tables (``False``: absolute ones).
        out_dims: kecam's ``out_shape`` (``None``: ``dims``); heads must divide it.
        out_weight: whether the Dense ``output`` exists (BotNet models: ``False``).
        out_bias: bias of the output projection.
        attn_dropout: dropout on the attention probabilities (training mode only).
        name: kecam's ``name=``; Keras layers ``name + "qkv_conv"``, ``name + "pos_emb"``,
            ``name + "output"``.

    Shape:
        ``[B, height, width, dims] -> [B, height, width, out_dims]``
    """

    def __init__(
        self, dims: int, num_heads: int = 4, *, height: int, width: int, key_dim: int = 0,
        relative: bool = True, out_dims: int | None = None, out_weight: bool = True,
        out_bias: bool = False, attn_dropout: float = 0.0, name: str | None = None,
    ):  # fmt: skip
        super().__init__(name)
        what = "BotNetAttention"
        _check_grid(height, width, what)
        dims = check_block(what, dims, relative=relative, out_weight=out_weight, out_bias=out_bias)
        self.key_dim = head_key_dim(dims, num_heads, key_dim)
        self.num_heads, self.grid = num_heads, (height, width)
        self.out_dims = value_dims(dims, out_dims, out_weight, num_heads)
        qk_dims = num_heads * self.key_dim
        check_dense(what, dims, 2 * qk_dims + self.out_dims, "num_heads, key_dim, out_shape")
        check_dense(what, self.out_dims, self.out_dims, "out_shape")
        self.qkv = Conv2dNoBias(dims, 2 * qk_dims + self.out_dims, name=self.sub("qkv_"))
        self.pos_emb = RelativePositionalEmbedding(
            self.key_dim, height, width, use_absolute_pos=not relative, name=self.sub("pos_emb")
        )
        self.out_weight = out_weight
        if out_weight:
            self.output = nn.Linear(self.out_dims, self.out_dims, bias=out_bias)
        self.attn_drop = Dropout(attn_dropout, what="attn_dropout")

    def keras_layers(self):
        return (KerasLayer(self.sub("output"), "Dense", self.output),) if self.out_weight else ()

    def __call__(self, x: mx.array) -> mx.array:
        batch, height, width, _ = x.shape
        qk_dims = self.num_heads * self.key_dim
        qkv = self.qkv(x).reshape(batch, height * width, -1)
        query, key, value = (
            split_heads(t, self.num_heads) for t in mx.split(qkv, [qk_dims, 2 * qk_dims], -1)
        )
        tokens = height * width
        pos = self.pos_emb(query.reshape(batch, self.num_heads, height, width, self.key_dim))
        bias = pos.reshape(batch, self.num_heads, tokens, tokens)
        out = attend(query, key, value, scale=self.key_dim**-0.5, bias=bias, dropout=self.attn_drop)
        out = merge_heads(out).reshape(batch, height, width, -1)
        return self.output(out) if self.out_weight else out


class CoAtNetAttention(KerasModule):
    """kecam's ``mhsa_with_multi_head_relative_position_embedding`` (coatnet; GCViT with a
    global query).

    A 1x1 conv ``qkv`` gives ``[q | k | v]`` head-major (``key_dim`` channels each per head);
    the scaled scores get a per-head relative-position bias
    (``MultiHeadRelativePositionalEmbedding``, with kecam's non-square index quirk); softmax;
    an optional Dense ``output``. With ``global_query`` a 1x1 conv ``kv`` gives ``[k | v]``
    and the query is the given one.

    Args:
        dims: input channels.
        num_heads: heads.
        height, width: the input grid.
        key_dim: per-head width; ``0`` means ``dims // num_heads``.
        global_query: ``[B or 1, heads, height * width, key_dim]``: a fixed query, or ``True``
            to pass one per call (``block(x, global_query=q)``); kecam's layout then needs
            ``out_dims == num_heads * key_dim``.
        out_dims: kecam's ``out_shape`` (``None``: ``dims``).
        out_weight: whether the Dense ``output`` exists; without it the block returns
            ``num_heads * key_dim`` channels.
        qkv_bias, out_bias: biases of the projections.
        attn_dropout: dropout on the attention probabilities (training mode only).
        name: kecam's ``name=``; Keras layers ``name + "qkv_conv"`` (or ``name + "kv_conv"``),
            ``name + "pos_emb"``, ``name + "output"``.

    Shape:
        ``[B, height, width, dims] -> [B, height, width, out_dims]``
    """

    def __init__(
        self, dims: int, num_heads: int = 4, *, height: int, width: int, key_dim: int = 0,
        global_query: mx.array | bool | None = None, out_dims: int | None = None,
        out_weight: bool = True, qkv_bias: bool = False, out_bias: bool = False,
        attn_dropout: float = 0.0, name: str | None = None,
    ):  # fmt: skip
        super().__init__(name)
        what = "CoAtNetAttention"
        _check_grid(height, width, what)
        dims = check_block(what, dims, out_weight=out_weight, qkv_bias=qkv_bias, out_bias=out_bias)
        self.key_dim = head_key_dim(dims, num_heads, key_dim)
        self.num_heads = num_heads
        qk_dims = num_heads * self.key_dim
        out = output_dims(dims, out_dims, out_weight)
        check_dense(what, dims, 3 * qk_dims, "num_heads, key_dim")
        check_dense(what, qk_dims, out, "num_heads, key_dim, out_shape")
        self.use_global_query = global_query is not None and global_query is not False
        if self.use_global_query:
            if out != qk_dims:
                raise ValueError(
                    f"global_query needs out_shape={out} to equal num_heads * key_dim = "
                    f"{qk_dims}: kecam splits its kv projection into [{qk_dims}, {out}]"
                )
            self._global_query = None
            if isinstance(global_query, mx.array):
                self._global_query = self._check_query(global_query, height * width)
            self.kv = Conv2dNoBias(dims, 2 * qk_dims, use_bias=qkv_bias, name=self.sub("kv_"))
        else:
            self.qkv = Conv2dNoBias(dims, 3 * qk_dims, use_bias=qkv_bias, name=self.sub("qkv_"))
        self.pos_emb = MultiHeadRelativePositionalEmbedding(
            num_heads, height, width, with_cls_token=False, name=self.sub("pos_emb")
        )
        self.out_weight = out_weight
        if out_weight:
            self.output = nn.Linear(qk_dims, out, bias=out_bias)
        self.attn_drop = Dropout(attn_dropout, what="attn_dropout")

    def _check_query(self, query: mx.array, tokens: int) -> mx.array:
        expected = (self.num_heads, tokens, self.key_dim)
        if query.ndim != 4 or tuple(query.shape[1:]) != expected:
            raise ValueError(
                f"global_query of shape {tuple(query.shape)} must be [B, {expected[0]}, "
                f"{expected[1]}, {expected[2]}] ([batch, num_heads, height * width, key_dim])"
            )
        return query

    def keras_layers(self):
        return (KerasLayer(self.sub("output"), "Dense", self.output),) if self.out_weight else ()

    def __call__(self, x: mx.array, global_query: mx.array | None = None) -> mx.array:
        batch, height, width, _ = x.shape
        tokens, qk_dims = height * width, self.num_heads * self.key_dim
        if self.use_global_query:
            query = global_query if global_query is not None else self._global_query
            if query is None:
                raise ValueError("this block was built with global_query=True: pass global_query=")
            query = self._check_query(query, tokens)
            query = mx.broadcast_to(query, (batch, *query.shape[1:]))
            key, value = mx.split(self.kv(x).reshape(batch, tokens, -1), 2, axis=-1)
        else:
            qkv = self.qkv(x).reshape(batch, tokens, -1)
            query, key, value = mx.split(qkv, [qk_dims, 2 * qk_dims], axis=-1)
            query = split_heads(query, self.num_heads)
        key, value = split_heads(key, self.num_heads), split_heads(value, self.num_heads)
        out = attend(
            query, key, value, scale=self.key_dim**-0.5, bias=_bias_of(self.pos_emb, x.dtype),
            dropout=self.attn_drop,
        )  # fmt: skip
        out = merge_heads(out).reshape(batch, height, width, -1)
        return self.output(out) if self.out_weight else out


def _interleaved_kv_permutation(num_heads: int, key_dim: int) -> np.ndarray:
    """kecam 1.3.1 CMT ``key_value`` columns in the 1.4.3 order: 1.3.1 reshaped its output
    ``[.., key_dim, heads, 2]``; 1.4.3 has ``[K | V]``, each head-major."""
    kv, head, dim = np.meshgrid(
        np.arange(2), np.arange(num_heads), np.arange(key_dim), indexing="ij"
    )
    return ((dim * num_heads + head) * 2 + kv).reshape(-1)


class LightMHSA(KerasModule):
    """kecam's ``light_mhsa_with_multi_head_relative_position_embedding`` (cmt).

    The query is a projection of every token; keys and values come from the input reduced by
    an ``sr_ratio x sr_ratio`` strided depthwise conv and a LayerNorm (BatchNorm with
    ``use_bn``), when ``sr_ratio > 1``. The scaled scores get a per-head relative-position bias
    over the **query** grid of which kecam keeps the last ``M`` key columns (not the reduced
    key geometry; the weights were trained so), or ``pos_emb`` when given; softmax; an
    optional Dense ``output``. Loads kecam 1.4.3 files (1x1 convs ``query_conv``,
    ``key_value_conv`` with ``[K | V]`` halves) and 1.3.1 files (Dense ``query``,
    ``key_value`` with K and V interleaved per channel).

    Args:
        dims: input channels.
        num_heads: heads.
        height, width: the input grid.
        key_dim: per-head width; ``0`` means ``dims // num_heads``.
        sr_ratio: the key/value reduction (kernel and stride of the depthwise conv); the key
            grid is ``floor(height / sr) x floor(width / sr)``.
        qkv_bias: biases of the query, key/value and depthwise projections.
        pos_emb: an MLX module or callable applied to the scaled scores ``[B, heads, N, M]``
            (CMT "torch" models pass a stage-shared ``BiasPositionalEmbedding``); ``None``
            builds the block's own relative-position bias ``name + "pos_emb"``.
        use_bn: BatchNorm (``kv_sr_bn``) instead of LayerNorm (``kv_sr_ln``) after the reduction.
        out_dims: kecam's ``out_shape`` (``None``: ``dims``).
        out_weight: whether the Dense ``output`` exists; without it the block returns
            ``num_heads * key_dim`` channels.
        out_bias: bias of the output projection.
        dropout: dropout on the attention probabilities (training mode only).
        name: kecam's ``name=``.

    Shape:
        ``[B, height, width, dims] -> [B, height, width, out_dims]``
    """

    def __init__(
        self, dims: int, num_heads: int = 4, *, height: int, width: int, key_dim: int = 0,
        sr_ratio: int = 1, qkv_bias: bool = False, pos_emb=None, use_bn: bool = False,
        out_dims: int | None = None, out_weight: bool = True, out_bias: bool = False,
        dropout: float = 0.0, name: str | None = None,
    ):  # fmt: skip
        super().__init__(name)
        what = "LightMHSA"
        _check_grid(height, width, what)
        dims = check_block(
            what, dims, qkv_bias=qkv_bias, use_bn=use_bn, out_weight=out_weight, out_bias=out_bias
        )
        self.key_dim = head_key_dim(dims, num_heads, key_dim)
        self.num_heads = num_heads
        qk_dims = num_heads * self.key_dim
        out = output_dims(dims, out_dims, out_weight)
        check_dense(what, dims, 2 * qk_dims, "num_heads, key_dim")
        check_dense(what, qk_dims, out, "num_heads, key_dim, out_shape")
        sr_ratio = check_int(sr_ratio, "sr_ratio", minimum=1, what=what)
        if sr_ratio > min(height, width):
            raise ValueError(
                f"sr_ratio={sr_ratio} exceeds the {height}x{width} input: kecam's {sr_ratio}x"
                f"{sr_ratio} stride-{sr_ratio} depthwise conv has a negative output size"
            )
        self.sr_ratio = sr_ratio
        self.query = nn.Linear(dims, qk_dims, bias=qkv_bias)
        if sr_ratio > 1:
            self.kv_sr = DepthwiseConv2dNoBias(
                dims, sr_ratio, strides=sr_ratio, use_bias=qkv_bias, name=self.sub("kv_sr_")
            )
            norm = BatchNormActivation if use_bn else LayerNorm
            self.kv_sr_norm = norm(dims, name=self.sub("kv_sr_"))
        self.key_value = nn.Linear(dims, 2 * qk_dims, bias=qkv_bias)
        key_blocks = (height // sr_ratio) * (width // sr_ratio)
        if pos_emb is None:
            pos_emb = MultiHeadRelativePositionalEmbedding(
                num_heads, height, width, with_cls_token=False, key_blocks=key_blocks,
                name=self.sub("pos_emb"),
            )  # fmt: skip
            self._own_pos_emb = True
        else:
            self._own_pos_emb = False
        self.pos_emb, self._scores_fn = split_pos_emb(pos_emb)
        self.out_weight = out_weight
        if out_weight:
            self.output = nn.Linear(qk_dims, out, bias=out_bias)
        self.attn_drop = Dropout(dropout, what="dropout")
        self._kv_perm = _interleaved_kv_permutation(num_heads, self.key_dim)

    def _from_131(self, arrays: list[np.ndarray]) -> list[np.ndarray]:
        return [a[..., self._kv_perm] for a in arrays]

    def keras_layers(self):
        layers = [
            KerasLayouts(
                (
                    (
                        KerasLayer(self.sub("query_conv"), "Conv2D", self.query),
                        KerasLayer(self.sub("key_value_conv"), "Conv2D", self.key_value),
                    ),
                    (
                        KerasLayer(self.sub("query"), "Dense", self.query),
                        KerasLayer(
                            self.sub("key_value"),
                            "Dense",
                            self.key_value,
                            transform=self._from_131,
                        ),  # fmt: skip
                    ),
                ),
                labels=("kecam 1.4.3", "kecam 1.3.1"),
            )
        ]
        if self.out_weight:
            layers.append(KerasLayer(self.sub("output"), "Dense", self.output))
        return layers

    def __call__(self, x: mx.array) -> mx.array:
        batch, height, width, _ = x.shape
        query = split_heads(self.query(x).reshape(batch, height * width, -1), self.num_heads)
        kv = self.kv_sr_norm(self.kv_sr(x)) if self.sr_ratio > 1 else x
        kv = self.key_value(kv.reshape(batch, -1, kv.shape[-1]))
        key, value = (split_heads(t, self.num_heads) for t in mx.split(kv, 2, axis=-1))
        if self._own_pos_emb:
            bias, scores_fn = _bias_of(self.pos_emb, x.dtype), None
        else:
            bias, scores_fn = None, self.pos_emb if self.pos_emb is not None else self._scores_fn
        out = attend(
            query, key, value, scale=self.key_dim**-0.5, bias=bias, scores_fn=scores_fn,
            dropout=self.attn_drop,
        )  # fmt: skip
        out = merge_heads(out).reshape(batch, height, width, -1)
        return self.output(out) if self.out_weight else out


def _check_attn_ratio(attn_ratio, what: str) -> int:
    # kecam sizes the value reshape with it: a float raises a TypeError there, 0 corrupts the
    # batch axis
    return check_int(attn_ratio, "attn_ratio", minimum=1, what=what)


class _LeViTOutput(KerasModule):
    """LeViT's tail: activation, Dense ``out``, zero-gamma BatchNorm ``out_bn`` (``use_bn``)."""

    def __init__(self, dims, out_dims, *, activation, use_bn, out_bias, name):
        super().__init__(name)
        self.act = Activation(activation or None, dims=dims, name=name)
        self.out = nn.Linear(dims, out_dims, bias=out_bias)
        self.use_bn = use_bn
        if use_bn:
            self.out_bn = BatchNormActivation(out_dims, zero_gamma=True, name=self.sub("out_"))

    def keras_layers(self):
        return (KerasLayer(self.sub("out"), "Dense", self.out),)

    def __call__(self, x: mx.array) -> mx.array:
        x = self.out(self.act(x))
        return self.out_bn(x) if self.use_bn else x


class LeViTAttention(KerasModule):
    """kecam's ``mhsa_with_multi_head_position`` (levit; EfficientFormer without BN).

    One Dense ``qkv`` (+ BatchNorm ``qkv_bn`` with ``use_bn``) laid out per head as
    ``[q (key_dim) | k (key_dim) | v (attn_ratio * key_dim)]``; the scaled scores get the
    ``MultiHeadPositionalEmbedding`` bias (absolute offsets); softmax; optional activation;
    Dense ``out`` (+ BatchNorm ``out_bn``).

    Args:
        dims: input channels.
        num_heads: heads.
        height, width: the token grid (for a ``[B, N, C]`` input, kecam's ``attn_height`` and
            ``N // attn_height``).
        key_dim: per-head width; ``<= 0`` means ``dims // num_heads``.
        out_dims: kecam's ``output_dim`` (``<= 0``: ``dims``).
        attn_ratio: the value width is ``attn_ratio * key_dim`` per head (a positive int).
        use_bn, qkv_bias, out_bias, activation: as kecam's.
        name: kecam's ``name=``; Keras layers ``qkv``, ``qkv_bn``, ``attn_pos``, ``out``,
            ``out_bn`` after it.

    Shape:
        ``[B, height, width, dims]`` or ``[B, height * width, dims]`` to the same with
        ``out_dims`` channels
    """

    def __init__(
        self, dims: int, num_heads: int, *, height: int, width: int, key_dim: int = -1,
        out_dims: int = -1, attn_ratio: int = 1, use_bn: bool = False, qkv_bias: bool = False,
        out_bias: bool = False, activation: str | None = None, name: str | None = None,
    ):  # fmt: skip
        super().__init__(name)
        what = "LeViTAttention"
        _check_grid(height, width, what)
        attn_ratio = _check_attn_ratio(attn_ratio, what)
        dims = check_block(what, dims, use_bn=use_bn, qkv_bias=qkv_bias, out_bias=out_bias)
        out_dims = check_int(out_dims, "output_dim", what=what)
        self.key_dim = head_key_dim(dims, num_heads, key_dim)
        self.num_heads, self.attn_ratio = num_heads, attn_ratio
        qkv_dims = (attn_ratio + 2) * num_heads * self.key_dim
        check_dense(what, dims, qkv_dims, "num_heads, key_dim, attn_ratio")
        check_dense(
            what, qkv_dims, max(out_dims, dims), "num_heads, key_dim, attn_ratio, output_dim"
        )
        self.qkv = nn.Linear(dims, qkv_dims, bias=qkv_bias)
        self.use_bn = use_bn
        if use_bn:
            self.qkv_bn = BatchNormActivation(qkv_dims, name=self.sub("qkv_"))
        tokens = height * width
        self.attn_pos = MultiHeadPositionalEmbedding(
            num_heads, tokens, tokens, query_height=height, name=self.sub("attn_pos")
        )
        value_dims = num_heads * attn_ratio * self.key_dim
        self.tail = _LeViTOutput(
            value_dims, out_dims if out_dims > 0 else dims, activation=activation,
            use_bn=use_bn, out_bias=out_bias, name=name,
        )  # fmt: skip

    def keras_layers(self):
        return (KerasLayer(self.sub("qkv"), "Dense", self.qkv),)

    def __call__(self, x: mx.array) -> mx.array:
        batch, *grid, _ = x.shape
        qkv = self.qkv(x.reshape(batch, -1, x.shape[-1]))
        if self.use_bn:
            qkv = self.qkv_bn(qkv)
        kd = self.key_dim
        qkv = qkv.reshape(batch, qkv.shape[1], self.num_heads, -1).transpose(0, 2, 1, 3)
        query, key, value = mx.split(qkv, [kd, 2 * kd], axis=-1)
        out = attend(query, key, value, scale=kd**-0.5, bias=_bias_of(self.attn_pos, x.dtype))
        return self.tail(merge_heads(out).reshape(batch, *grid, -1))


class LeViTStridedAttention(KerasModule):
    """kecam's ``mhsa_with_multi_head_position_and_strides`` (levit down-sampling attention).

    The query is a Dense ``q`` (+ BatchNorm ``q_bn``) of ``x[:, ::strides, ::strides]``; keys
    and values a Dense ``kv`` (+ ``kv_bn``) of every token, laid out per head as
    ``[k (key_dim) | v (attn_ratio * key_dim)]``; the scaled scores get the strided
    ``MultiHeadPositionalEmbedding`` bias; softmax; optional activation; Dense ``out``
    (+ ``out_bn``).

    Args:
        dims: input channels.
        num_heads: heads.
        height, width: the input grid.
        key_dim: per-head width; ``<= 0`` means ``dims // num_heads``.
        out_dims: kecam's ``output_dim`` (``<= 0``: ``dims``).
        attn_ratio: the value width is ``attn_ratio * key_dim`` per head (a positive int).
        strides: the query stride; the output grid is ``ceil(height / s) x ceil(width / s)``.
        use_bn, qkv_bias, out_bias, activation: as kecam's.
        name: kecam's ``name=``.

    Shape:
        ``[B, height, width, dims] -> [B, ceil(height / s), ceil(width / s), out_dims]``
    """

    def __init__(
        self, dims: int, num_heads: int, *, height: int, width: int, key_dim: int = -1,
        out_dims: int = -1, attn_ratio: int = 1, strides: int = 1, use_bn: bool = True,
        qkv_bias: bool = False, out_bias: bool = False, activation: str | None = None,
        name: str | None = None,
    ):  # fmt: skip
        super().__init__(name)
        what = "LeViTStridedAttention"
        _check_grid(height, width, what)
        attn_ratio = _check_attn_ratio(attn_ratio, what)
        strides = check_int(strides, "strides", minimum=1, what=what)
        dims = check_block(what, dims, use_bn=use_bn, qkv_bias=qkv_bias, out_bias=out_bias)
        out_dims = check_int(out_dims, "output_dim", what=what)
        self.key_dim = head_key_dim(dims, num_heads, key_dim)
        self.num_heads, self.strides = num_heads, strides
        embed = num_heads * self.key_dim
        check_dense(what, dims, (attn_ratio + 2) * embed, "num_heads, key_dim, attn_ratio")
        check_dense(
            what,
            attn_ratio * embed,
            max(out_dims, dims),
            "num_heads, key_dim, attn_ratio, output_dim",
        )
        self.q = nn.Linear(dims, embed, bias=qkv_bias)
        self.kv = nn.Linear(dims, (attn_ratio + 1) * embed, bias=qkv_bias)
        self.use_bn = use_bn
        if use_bn:
            self.q_bn = BatchNormActivation(embed, name=self.sub("q_"))
            self.kv_bn = BatchNormActivation((attn_ratio + 1) * embed, name=self.sub("kv_"))
        query_height, query_width = -(-height // strides), -(-width // strides)
        try:
            self.attn_pos = MultiHeadPositionalEmbedding(
                num_heads, query_height * query_width, height * width, query_height=query_height,
                name=self.sub("attn_pos"),
            )  # fmt: skip
        except ValueError as error:
            raise ValueError(
                f"strides={strides} on a {height}x{width} input: kecam's positional index "
                f"does not fit ({error})"
            ) from None
        self.tail = _LeViTOutput(
            attn_ratio * embed, out_dims if out_dims > 0 else dims, activation=activation,
            use_bn=use_bn, out_bias=out_bias, name=name,
        )  # fmt: skip

    def keras_layers(self):
        return (
            KerasLayer(self.sub("q"), "Dense", self.q),
            KerasLayer(self.sub("kv"), "Dense", self.kv),
        )

    def __call__(self, x: mx.array) -> mx.array:
        batch = x.shape[0]
        s = self.strides
        xq = x[:, ::s, ::s] if s > 1 else x
        query = self.q(xq.reshape(batch, -1, x.shape[-1]))
        kv = self.kv(x.reshape(batch, -1, x.shape[-1]))
        if self.use_bn:
            query, kv = self.q_bn(query), self.kv_bn(kv)
        query = split_heads(query, self.num_heads)
        kv = kv.reshape(batch, kv.shape[1], self.num_heads, -1).transpose(0, 2, 1, 3)
        key, value = mx.split(kv, [self.key_dim], axis=-1)
        out = attend(
            query, key, value, scale=self.key_dim**-0.5, bias=_bias_of(self.attn_pos, x.dtype)
        )
        return self.tail(merge_heads(out).reshape(batch, xq.shape[1], xq.shape[2], -1))


class _CascadedHead(KerasModule):
    """One head of ``CascadedGroupAttention``: 1x1 conv ``qkv`` + BN, a depthwise conv + BN on
    the query, single-head attention with the ``MultiHeadPositionalEmbedding`` bias."""

    def __init__(self, dims, key_dim, value_dim, kernel_size, height, width, *, name):
        super().__init__(name)
        self.key_dim = key_dim
        qkv_dims = 2 * key_dim + value_dim
        self.qkv = Conv2dNoBias(dims, qkv_dims, name=self.sub("qkv_"))
        self.qkv_bn = BatchNormActivation(qkv_dims, name=self.sub("qkv_"))
        self.query = DepthwiseConv2dNoBias(
            key_dim, kernel_size, padding="same", name=self.sub("query_")
        )
        self.query_bn = BatchNormActivation(key_dim, name=self.sub("query_"))
        tokens = height * width
        self.attn_pos = MultiHeadPositionalEmbedding(
            None, tokens, tokens, query_height=height, name=self.sub("attn_pos")
        )

    def __call__(self, x: mx.array) -> mx.array:
        batch, height, width, _ = x.shape
        kd = self.key_dim
        query, key, value = mx.split(self.qkv_bn(self.qkv(x)), [kd, 2 * kd], axis=-1)
        query = self.query_bn(self.query(query))
        query, key, value = (t.reshape(batch, 1, height * width, -1) for t in (query, key, value))
        bias = self.attn_pos(mx.zeros((1, 1, 1), dtype=x.dtype))  # the bias alone, [1, N, N]
        out = attend(query, key, value, scale=kd**-0.5, bias=bias)
        return out.reshape(batch, height, width, -1)


class CascadedGroupAttention(KerasModule):
    """kecam's ``cascaded_mhsa_with_multi_head_position`` (EfficientViT-M, kecam 1.4.3).

    The channels are split into ``num_heads`` contiguous groups; head ``i`` attends over its
    group plus the previous head's output (the cascade), each with its own projections and
    positional bias; the heads' outputs are concatenated, activated, projected by a 1x1 conv
    ``outconv`` and a zero-gamma BatchNorm ``out_bn``. With a ``kernel_sizes`` list shorter
    than ``num_heads`` only that many heads run (kecam zips them), and ``outconv`` maps their
    channels back to ``dims``.

    Args:
        dims: input channels; ``num_heads`` must divide it.
        num_heads: heads.
        height, width: the input grid.
        key_dim: per-head query/key width; ``<= 0`` means ``dims // num_heads``.
        kernel_sizes: the query depthwise kernel, an odd int or one per head.
        activation: a kecam activation name before ``outconv``.
        name: kecam's ``name=``; head ``i`` (from 1) is ``name + f"{i}_"``.

    Shape:
        ``[B, height, width, dims] -> [B, height, width, dims]``
    """

    def __init__(
        self, dims: int, num_heads: int = 4, *, height: int, width: int, key_dim: int = -1,
        kernel_sizes: int | Sequence[int] = 5, activation: str | None = "relu",
        name: str | None = None,
    ):  # fmt: skip
        super().__init__(name)
        what = "CascadedGroupAttention"
        _check_grid(height, width, what)
        dims = check_block(what, dims)
        key_dim = head_key_dim(dims, num_heads, key_dim)
        check_dense(what, dims, 2 * key_dim + dims, "num_heads, key_dim")
        if dims % num_heads:
            raise ValueError(
                f"num_heads={num_heads} must divide the {dims} input channels: kecam splits "
                "them into equal groups"
            )
        if isinstance(kernel_sizes, (list, tuple)):
            sizes = check_int_list(kernel_sizes, "kernel_sizes", what=what)
        else:
            sizes = [check_int(kernel_sizes, "kernel_sizes", what=what)] * num_heads
        sizes = sizes[:num_heads]
        if not sizes or any(not isinstance(k, int) or k < 1 or k % 2 == 0 for k in sizes):
            raise ValueError(
                f"kernel_sizes={kernel_sizes!r} must be odd positive ints (an even kernel grows "
                "kecam's 'same'-padded query grid and its reshape fails)"
            )
        check_size(max(sizes) ** 2 * key_dim, f"{what}: kernel_sizes={kernel_sizes!r}")
        group = dims // num_heads
        self.heads = [
            _CascadedHead(group, key_dim, group, k, height, width, name=self.sub(f"{i + 1}_"))
            for i, k in enumerate(sizes)
        ]
        self.dims, self.group = dims, group
        self.act = Activation(activation, dims=group * len(sizes), name=name)
        self.out = Conv2dNoBias(group * len(sizes), dims, name=self.sub("out"))
        self.out_bn = BatchNormActivation(dims, zero_gamma=True, name=self.sub("out_"))

    def __call__(self, x: mx.array) -> mx.array:
        if x.shape[-1] != self.dims:
            # the heads slice the channels: more of them would be dropped without a word
            raise ValueError(f"CascadedGroupAttention takes {self.dims} channels: {x.shape}")
        outputs = []
        for i, head in enumerate(self.heads):
            z = x[..., i * self.group : (i + 1) * self.group]
            outputs.append(head(z if i == 0 else z + outputs[-1]))
        return self.out_bn(self.out(self.act(mx.concatenate(outputs, axis=-1))))


__all__ = [
    "BotNetAttention",
    "CascadedGroupAttention",
    "CoAtNetAttention",
    "LeViTAttention",
    "LeViTStridedAttention",
    "LightMHSA",
    "MultiHeadSelfAttention",
]
