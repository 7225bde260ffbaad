"""Keras's own ``layers.MultiHeadAttention``, which kecam calls directly (VOLO's MHSA and class
attention blocks)."""

from __future__ import annotations

import math

import mlx.core as mx
import mlx.nn as nn

from .attention import Dropout, check_dense
from .base import KerasLayer, KerasModule
from .utils import check_bool, check_int


class KerasMultiHeadAttention(KerasModule):
    """tf-keras ``layers.MultiHeadAttention(num_heads, key_dim, value_dim, output_shape,
    use_bias)`` (``attention_axes=None``, no mask): ``softmax((q / sqrt(key_dim)) k^T) v`` per
    head, then the output projection.

    Every axis between the batch and the channels is attended over jointly (Keras's default
    ``attention_axes``): a ``[B, H, W, C]`` query attends over all ``H * W`` positions. The
    query is scaled before the dot product, as Keras does. The key is the value unless given.

    Keras stores the four projections in one layer group: ``query``, ``key``, ``value``
    kernels ``[C, heads, key_dim]`` (``value_dim`` for the value), ``attention_output``
    ``[heads, value_dim, output_shape]``, each followed by its bias with ``use_bias``; they
    load through the ``MultiHeadAttention`` rule of ``mlx_attention.convert``.

    Args:
        query_dims: channels of the query.
        num_heads: heads.
        key_dim: per-head width of the query and key.
        value_dim: per-head width of the value. Default: ``key_dim``.
        output_shape: channels of the output. Default: ``query_dims``.
        use_bias: biases on the four projections.
        value_dims: channels of the value (and key). Default: ``query_dims``.
        dropout: on the attention weights (training).
        name: the Keras layer name.

    Shape:
        ``([B, ..., query_dims], [B, ..., value_dims]) -> [B, ..., output_shape]`` (the query's
        positions)
    """

    def __init__(
        self, query_dims: int, num_heads: int, key_dim: int, *, value_dim: int | None = None,
        output_shape: int | None = None, use_bias: bool = True, value_dims: int | None = None,
        dropout: float = 0, name: str | None = None,
    ):  # fmt: skip
        super().__init__(name)
        what = "KerasMultiHeadAttention"
        query_dims = check_int(query_dims, "query_dims", minimum=1, what=what)
        value_dims = query_dims if value_dims is None else value_dims
        value_dims = check_int(value_dims, "value_dims", minimum=1, what=what)
        self.num_heads = check_int(num_heads, "num_heads", minimum=1, what=what)
        self.key_dim = check_int(key_dim, "key_dim", minimum=1, what=what)
        value_dim = self.key_dim if value_dim is None else value_dim
        self.value_dim = check_int(value_dim, "value_dim", minimum=1, what=what)
        out_dims = query_dims if output_shape is None else output_shape
        out_dims = check_int(out_dims, "output_shape", minimum=1, what=what)
        self.use_bias = check_bool(use_bias, "use_bias", what=what)
        inner, value_inner = self.num_heads * self.key_dim, self.num_heads * self.value_dim
        for dims, width, sized_by in (
            (max(query_dims, value_dims), inner, "num_heads, key_dim"),
            (max(value_dims, out_dims), value_inner, "num_heads, value_dim"),
        ):
            check_dense(what, dims, width, sized_by)
        self.query = nn.Linear(query_dims, inner, bias=self.use_bias)
        self.key = nn.Linear(value_dims, inner, bias=self.use_bias)
        self.value = nn.Linear(value_dims, value_inner, bias=self.use_bias)
        self.attention_output = nn.Linear(value_inner, out_dims, bias=self.use_bias)
        self.attn_drop = Dropout(dropout, what="dropout")

    def keras_layers(self):
        return (KerasLayer(self.sub(""), "MultiHeadAttention", self),)

    def _heads(self, x: mx.array, width: int) -> mx.array:
        # [B, ..., heads * width] -> [B, heads, positions, width]
        return x.reshape(x.shape[0], -1, self.num_heads, width).transpose(0, 2, 1, 3)

    def __call__(self, query: mx.array, value: mx.array, key: mx.array | None = None) -> mx.array:
        key = value if key is None else key
        q = self._heads(self.query(query), self.key_dim) * (1.0 / math.sqrt(self.key_dim))
        k = self._heads(self.key(key), self.key_dim)
        v = self._heads(self.value(value), self.value_dim)
        scores = mx.softmax(q @ k.transpose(0, 1, 3, 2), axis=-1, precise=True)
        mixed = self.attn_drop(scores) @ v  # [B, heads, query positions, value_dim]
        mixed = mixed.transpose(0, 2, 1, 3).reshape(*query.shape[:-1], -1)
        return self.attention_output(mixed)
