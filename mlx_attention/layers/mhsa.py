"""kecam's global multi-head self-attention blocks: every token attends to every token (or to a
strided / reduced key grid), with the positional term of its model family.

Every module is channels-last and computes what the kecam block computes in inference;
``module.train()`` switches its dropouts on.
"""

from __future__ import annotations

import mlx.core as mx
import mlx.nn as nn

from .attention import (
    Dropout,
    attend,
    head_key_dim,
    merge_heads,
    output_dims,
    split_heads,
    split_pos_emb,
)
from .base import KerasLayer, KerasModule


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
        self.key_dim = head_key_dim(dims, num_heads, key_dim)
        self.num_heads = num_heads
        self.out_dims = output_dims(dims, out_dims, out_weight)
        if self.out_dims % num_heads:
            raise ValueError(
                f"out_shape={self.out_dims} (the value width) must be divisible by "
                f"num_heads={num_heads}: kecam reshapes the value into heads of "
                f"{self.out_dims} // {num_heads} channels"
            )
        qk_dims = num_heads * self.key_dim
        self.qkv = nn.Linear(dims, 2 * qk_dims + self.out_dims, bias=qkv_bias)
        self.out_weight = out_weight
        if out_weight:
            self.output = nn.Linear(self.out_dims, self.out_dims, bias=out_bias)
        self.attn_drop = Dropout(attn_dropout, what="attn_dropout")
        self.out_drop = Dropout(output_dropout, what="output_dropout")
        self.pos_emb, self._scores_fn = split_pos_emb(pos_emb)

    def keras_layers(self):
        layers = [KerasLayer(self.sub("qkv"), "Dense", self.qkv)]
        if self.out_weight:
            layers.append(KerasLayer(self.sub("output"), "Dense", self.output))
        return layers

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


__all__ = ["MultiHeadSelfAttention"]
