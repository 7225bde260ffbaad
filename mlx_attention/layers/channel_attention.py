"""kecam's channel ("transposed") attention blocks: the attention matrix is ``key_dim x key_dim``
per head, summed over the tokens, so its cost is linear in the number of tokens.

Both attend with channels as the sequence and tokens as the contracted axis, which is long
(3136 tokens at DaViT's first stage): the scores sum over the tokens in two levels (see
``_channel_attend``).
"""

from __future__ import annotations

import math

import mlx.core as mx
import mlx.nn as nn

from .attention import (
    Dropout,
    attend_scores,
    check_block,
    check_dense,
    head_key_dim,
    l2_normalize,
    output_dims,
    qkv_output_layers,
)
from .base import KerasModule
from .common import ChannelAffine
from .utils import check_size


def _check_channel_scores(what: str, num_heads: int, key_dim: int) -> None:
    """The attention matrix is ``key_dim x key_dim`` per head: refuse it past 2^31 elements."""
    check_size(num_heads * key_dim**2, f"{what}: num_heads={num_heads}, key_dim={key_dim}")


def _channel_heads(x: mx.array, num_heads: int) -> mx.array:
    """``[B, N, heads * d] -> [B, heads, d, N]``: each head's channels as the sequence."""
    batch, tokens, channels = x.shape
    return x.reshape(batch, tokens, num_heads, channels // num_heads).transpose(0, 2, 3, 1)


def _channel_attend(
    query: mx.array, key: mx.array, value: mx.array, *, scale: float, dropout: Dropout
) -> mx.array:
    """``softmax(query @ key^T * scale) @ value`` for ``[B, heads, d, N]`` operands, the product
    summed over the ``N`` tokens in two levels: blocks of ``ceil(sqrt(N))`` tokens, then the
    blocks: each float32 sum has about ``sqrt(N)`` terms instead of ``N``, whatever order the
    BLAS sums in (MLX's bundled reference BLAS sums naively: DaViT_T's logits at 224 were
    2.2e-4 off kecam's in one sum, 6.3e-5 with OpenBLAS)."""
    tokens = query.shape[-1]
    block = math.isqrt(tokens - 1) + 1 if tokens > 1 else 1
    blocks = -(-tokens // block)
    pad = [(0, 0)] * (query.ndim - 1) + [(0, blocks * block - tokens)]

    def split(x: mx.array) -> mx.array:  # [..., d, N] -> [..., blocks, d, block]
        return mx.pad(x, pad).reshape(*x.shape[:-1], blocks, block).swapaxes(-3, -2)

    scores = (split(query) @ split(key).swapaxes(-1, -2)).sum(axis=-3)
    return attend_scores(scores * scale, value, dropout)


def _channel_merge(x: mx.array) -> mx.array:
    """``[B, heads, d, N] -> [B, N, heads * d]`` (channel ``h * d + i``)."""
    batch, heads, dims, tokens = x.shape
    return x.transpose(0, 3, 1, 2).reshape(batch, tokens, heads * dims)


class ChannelSelfAttention(KerasModule):
    """kecam's ``multi_head_self_attention_channel`` (DaViT channel attention).

    One Dense ``qkv`` gives three head-major chunks ``c0 | c1 | c2`` (kecam's value, query,
    key); per head ``A = softmax(c1^T c2 / sqrt(key_dim))`` is ``key_dim x key_dim`` and the
    output is ``A`` applied to ``c0`` along the channels; an optional Dense ``output``.

    Args:
        dims: input channels.
        num_heads: heads.
        key_dim: per-head width; ``0`` means ``dims // num_heads`` (heads need not divide
            ``dims``: the output projection maps ``num_heads * key_dim`` back).
        out_dims: kecam's ``out_shape``: output channels when ``out_weight`` (``None``: ``dims``).
        out_weight: whether the Dense ``output`` exists; without it the block returns
            ``num_heads * key_dim`` channels.
        qkv_bias, out_bias: biases of the two projections.
        attn_dropout: dropout on the attention probabilities (training mode only).
        output_dropout: dropout on the output (training mode only).
        name: kecam's ``name=``; Keras layers ``name + "qkv"`` and ``name + "output"``.

    Shape:
        ``[B, ..., dims] -> [B, ..., out_dims]`` (``[B, N, C]`` or ``[B, H, W, C]``)
    """

    def __init__(
        self, dims: int, num_heads: int = 4, *, key_dim: int = 0, out_dims: int | None = None,
        out_weight: bool = True, qkv_bias: bool = False, out_bias: bool = False,
        attn_dropout: float = 0.0, output_dropout: float = 0.0, name: str | None = None,
    ):  # fmt: skip
        super().__init__(name)
        what = "ChannelSelfAttention"
        dims = check_block(what, dims, out_weight=out_weight, qkv_bias=qkv_bias, out_bias=out_bias)
        self.key_dim = head_key_dim(dims, num_heads, key_dim)
        self.num_heads = num_heads
        embed = num_heads * self.key_dim
        out = output_dims(dims, out_dims, out_weight)
        check_dense(what, dims, 3 * embed, "num_heads, key_dim")
        check_dense(what, embed, out, "num_heads, key_dim, out_shape")
        _check_channel_scores(what, num_heads, self.key_dim)
        self.out_weight = out_weight
        self.qkv = nn.Linear(dims, 3 * embed, bias=qkv_bias)
        if out_weight:
            self.output = nn.Linear(embed, out, bias=out_bias)
        self.attn_drop = Dropout(attn_dropout, what="attn_dropout")
        self.out_drop = Dropout(output_dropout, what="output_dropout")

    def keras_layers(self):
        return qkv_output_layers(self, with_output=self.out_weight)

    def __call__(self, x: mx.array) -> mx.array:
        batch, *grid, _ = x.shape
        qkv = self.qkv(x.reshape(batch, -1, x.shape[-1]))
        value, query, key = (_channel_heads(t, self.num_heads) for t in mx.split(qkv, 3, -1))
        out = _channel_attend(query, key, value, scale=self.key_dim**-0.5, dropout=self.attn_drop)
        out = _channel_merge(out).reshape(batch, *grid, -1)
        if self.out_weight:
            out = self.output(out)
        return self.out_drop(out)


class CrossCovarianceAttention(KerasModule):
    """kecam's ``cross_covariance_attention`` (EdgeNeXt XCA).

    One Dense ``qkv`` (always with a bias: kecam ignores ``qkv_bias``) gives head-major
    ``q | k | v``; ``q`` and ``k`` are L2-normalised along the tokens; per head
    ``A = softmax(temperature_h * q^T k)`` is ``key_dim x key_dim`` and is applied to ``v``
    along the channels; a Dense ``output`` keeps ``num_heads * key_dim`` channels. With heads
    that do not divide ``dims`` the output has ``num_heads * key_dim`` channels, not ``dims``
    (C=30, 4 heads: 28), as in kecam.

    Args:
        dims: input channels.
        num_heads: heads.
        key_dim: per-head width; ``0`` means ``dims // num_heads``.
        out_bias: bias of the output projection.
        attn_dropout: dropout on the attention probabilities (training mode only).
        out_dropout: dropout on the output (training mode only).
        name: kecam's ``name=``; Keras layers ``name + "qkv"``,
            ``name + "temperature/no_weight_decay"`` (a ``ChannelAffine`` of shape
            ``[heads, 1, 1]``) and ``name + "output"``.

    Shape:
        ``[B, ..., dims] -> [B, ..., num_heads * key_dim]`` (``[B, N, C]`` or ``[B, H, W, C]``)
    """

    def __init__(
        self, dims: int, num_heads: int = 4, *, key_dim: int = 0, out_bias: bool = True,
        attn_dropout: float = 0.0, out_dropout: float = 0.0, name: str | None = None,
    ):  # fmt: skip
        super().__init__(name)
        what = "CrossCovarianceAttention"
        dims = check_block(what, dims, out_bias=out_bias)
        self.key_dim = head_key_dim(dims, num_heads, key_dim)
        self.num_heads = num_heads
        embed = num_heads * self.key_dim
        check_dense(what, max(dims, embed), 3 * embed, "num_heads, key_dim")
        _check_channel_scores(what, num_heads, self.key_dim)
        self.qkv = nn.Linear(dims, 3 * embed, bias=True)
        self.temperature = ChannelAffine(
            (num_heads, 1, 1), use_bias=False, name=self.sub("temperature/no_weight_decay")
        )
        self.output = nn.Linear(embed, embed, bias=out_bias)
        self.attn_drop = Dropout(attn_dropout, what="attn_dropout")
        self.out_drop = Dropout(out_dropout, what="out_dropout")

    def keras_layers(self):
        return qkv_output_layers(self)

    def __call__(self, x: mx.array) -> mx.array:
        batch, *grid, _ = x.shape
        qkv = self.qkv(x.reshape(batch, -1, x.shape[-1]))
        query, key, value = (_channel_heads(t, self.num_heads) for t in mx.split(qkv, 3, -1))
        # The per-head temperature scales the normalised query: (t q) k^T = t (q k^T).
        query = self.temperature(l2_normalize(query, axis=-1)).astype(query.dtype)
        key = l2_normalize(key, axis=-1)
        out = _channel_attend(query, key, value, scale=1.0, dropout=self.attn_drop)
        return self.out_drop(self.output(_channel_merge(out).reshape(batch, *grid, -1)))


__all__ = ["ChannelSelfAttention", "CrossCovarianceAttention"]
