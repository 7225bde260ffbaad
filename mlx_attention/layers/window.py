"""Windowed attention: DaViT window attention and Swin v2's cosine attention with a pairwise
positional MLP, on shifted windows.

Window partition, reverse, padding and the cyclic shift run through :mod:`mlx_attention.ops`
(and so through the kernels where a back-end has them).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import mlx.core as mx
import mlx.nn as nn

from .. import ops
from .attention import Dropout, attend, l2_normalize, qkv_output_layers
from .base import KerasLayer, KerasModule
from .common import BiasLayer
from .positional import MlpPairwisePositionalEmbedding
from .utils import (
    check_bool,
    check_float,
    check_int,
    check_pair,
    check_shape,
    check_size,
    check_sizes,
)


def _clamped_window(window_size, input_size: tuple[int, int]) -> tuple[int, int]:
    """kecam clamps the window to the map: ``min(window, size)`` per axis."""
    window = check_pair(window_size, "window_size", minimum=1)
    return min(window[0], input_size[0]), min(window[1], input_size[1])


class ExpLogitScale(KerasModule):
    """kecam's ``ExpLogitScale`` (swin v2): ``x * exp(min(scale, max_value))``.

    kecam 1.4.3 stores the variable as ``gamma``, 1.3.1 as ``weight`` (with ``init_value`` and
    ``max_value`` given before the log); both files load, the variable is read by position.

    Args:
        shape: the weight shape, broadcast against the input (kecam keeps the batch axis as 1
            for a non-last axis: ``(1, heads, 1, 1)`` for swin v2's scores).
        init_value: the initial (log) scale. Default: ``log(10)``.
        max_value: the (log) clamp. Default: ``log(100)``.
        name: the Keras layer name.

    Shape:
        ``[B, ...] -> [B, ...]``
    """

    def __init__(
        self, shape: Sequence[int], *, init_value: float = math.log(10.0),
        max_value: float = math.log(100.0), name: str | None = None,
    ):  # fmt: skip
        super().__init__(name)
        what = "ExpLogitScale"
        shape = check_shape(shape, what)
        init_value = check_float(init_value, "init_value", what=what)
        max_value = check_float(max_value, "max_value", what=what)
        if min(init_value, max_value) > math.log(3.4e38):
            raise ValueError(
                f"{what}: init_value={init_value} and max_value={max_value}: the scale "
                f"exp({min(init_value, max_value)}) overflows float32 (kecam returns inf)"
            )
        self.scale = mx.full(shape, init_value, dtype=mx.float32)
        self.max_value = max_value

    def keras_layers(self):
        return (KerasLayer(self.sub(""), "Weights", self, ("scale",)),)

    def factor(self) -> mx.array:
        """The multiplier ``exp(min(scale, max_value))``, shaped like the weight."""
        return mx.exp(mx.minimum(self.scale, self.max_value))

    def __call__(self, x: mx.array) -> mx.array:
        return x * self.factor().astype(x.dtype)


class WindowMhsaPairWise(KerasModule):
    """Swin v2 window attention (kecam ``window_mhsa_with_pair_wise_positional_embedding``).

    Cosine similarity of L2-normalised queries and keys (TF epsilon 1e-6 on the squared norm),
    times a learned per-head ``exp(min(scale, log 100))``, plus ``16 * sigmoid`` of an MLP over
    log-spaced relative coordinates (``MlpPairwisePositionalEmbedding``; kecam 1.3.1's
    ``meta_dense_1``/``_2`` files load too), plus an optional mask; no ``1/sqrt(kd)``. Queries
    and values have a bias, keys none. The output Dense maps to ``heads * key_dim`` (not ``C``),
    as in kecam. kecam 1.4.3 ignores ``meta_hidden_dim`` (always 512), and so do we.

    Args:
        dims: input channels ``C``.
        window: the window ``(h, w)``, both at least 2 (kecam's coordinates are NaN for 1).
        num_heads: heads. Default: ``4``.
        key_dim: per-head width; ``0`` means ``C // num_heads``. Default: ``0``.
        mask: an additive ``[nW, N, N]`` array (windows batch-major, as kecam's
            ``WindowAttentionMask``), or a callable on the ``[B', heads, N, N]`` scores.
        pos_scale: the window the coordinates are normalised by (``-1``: this one).
        out_bias, qv_bias: biases. Default: ``True``.
        attn_dropout, out_dropout: dropouts (training). Default: ``0``.
        name: kecam's ``name=`` (layers ``qkv``, ``query_bias``, ``value_bias``, ``scale``,
            ``pos_emb``, ``output``).

    Shape:
        ``[B', h, w, C] -> [B', h, w, heads * key_dim]``
    """

    def __init__(
        self, dims: int, window: tuple[int, int], *, num_heads: int = 4, key_dim: int = 0,
        mask: mx.array | Callable | None = None, pos_scale=-1, out_bias: bool = True,
        qv_bias: bool = True, attn_dropout: float = 0, out_dropout: float = 0,
        name: str | None = None,
    ):  # fmt: skip
        super().__init__(name)
        what = "WindowMhsaPairWise"
        dims, num_heads = check_sizes(what, dims=dims, num_heads=num_heads)
        key_dim = check_int(key_dim, "key_dim", what=what)
        check_bool(out_bias, "out_bias", what=what)
        check_bool(qv_bias, "qv_bias", what=what)
        key_dim = key_dim if key_dim > 0 else dims // num_heads
        if key_dim < 1:
            raise ValueError(f"num_heads={num_heads} leaves no key channels of the {dims} inputs")
        height, width = check_pair(window, "window", minimum=1, what=what)
        check_size(
            max(dims, num_heads * key_dim) * 3 * num_heads * key_dim,
            f"{what}: num_heads={num_heads}, key_dim={key_dim}",
        )
        if min(height, width) < 2:
            raise ValueError(
                f"window={(height, width)} (the window_size, clamped to the input_shape): kecam "
                "normalises the relative coordinates by window - 1 = 0 and returns NaN"
            )
        embed = num_heads * key_dim
        self.num_heads, self.key_dim, self.window = num_heads, key_dim, (height, width)
        self.qkv = nn.Linear(dims, 3 * embed, bias=False)
        self.qv_bias = qv_bias
        if qv_bias:
            self.query_bias = BiasLayer((embed,), name=self.sub("query_bias"))
            self.value_bias = BiasLayer((embed,), name=self.sub("value_bias"))
        self.scale = ExpLogitScale((1, num_heads, 1, 1), name=self.sub("scale"))
        self.pos_emb = MlpPairwisePositionalEmbedding(
            num_heads, height, width, pos_scale=pos_scale, name=self.sub("pos_emb")
        )
        self._mask = mask
        self.attn_drop = Dropout(attn_dropout, what="attn_dropout")
        self.output = nn.Linear(embed, embed, bias=out_bias)
        self.out_drop = Dropout(out_dropout, what="out_dropout")

    def keras_layers(self):
        return qkv_output_layers(self)

    def __call__(self, x: mx.array) -> mx.array:
        count, height, width, _ = x.shape
        heads, key_dim = self.num_heads, self.key_dim
        q, k, v = mx.split(self.qkv(x.reshape(count, height * width, -1)), 3, axis=-1)
        if self.qv_bias:
            q, v = self.query_bias(q), self.value_bias(v)
        q, k, v = (t.reshape(count, -1, heads, key_dim).transpose(0, 2, 1, 3) for t in (q, k, v))
        q, k = l2_normalize(q), l2_normalize(k)
        # the per-head logit scale multiplies the scores: fold it into the queries
        q = q * self.scale.factor()[0].astype(q.dtype)
        bias, scores_fn = self.pos_emb.bias(), None  # [heads, N, N]
        if callable(self._mask):
            scores_fn = self._mask
        elif self._mask is not None:
            # Windows are batch-major ([B * nW, heads]): fold them into the head axis, so the
            # [nW, heads, N, N] bias + mask broadcasts over the batch with no copy per image.
            windows, tokens = self._mask.shape[0], height * width
            bias = (bias[None] + self._mask[:, None]).reshape(windows * heads, tokens, tokens)
            q, k, v = (t.reshape(-1, windows * heads, tokens, t.shape[-1]) for t in (q, k, v))
        out = attend(q, k, v, scale=1.0, bias=bias, scores_fn=scores_fn, dropout=self.attn_drop)
        out = out.reshape(count, heads, height * width, key_dim).transpose(0, 2, 1, 3)
        return self.out_drop(self.output(out.reshape(count, height, width, heads * key_dim)))


class ShiftedWindowAttention(KerasModule):
    """Swin v2 shifted-window attention (kecam ``shifted_window_attention``).

    The window is clamped to the map; the map is zero-padded bottom/right to a multiple of it
    (padded tokens are not masked), rolled by ``-int(window * shift_size)`` when shifting,
    partitioned (:func:`ops.window_partition`), attended per window (:class:`WindowMhsaPairWise`,
    with kecam's ``-100`` region mask when shifting), merged, rolled back and cropped
    (:func:`ops.window_reverse`). No shift when one window covers the whole map.

    Args:
        dims: channels ``C``; a multiple of ``num_heads``.
        window_size: int or ``(wh, ww)``.
        input_size: ``(H, W)``.
        num_heads: heads. Default: ``4``.
        shift_size: the shift as a fraction of the window, in ``[0, 1)`` (swin v2 uses 0 and
            0.5). Default: ``0``.
        pos_scale: as :class:`WindowMhsaPairWise`.
        name: kecam's ``name=``.
        attention_block: builds the per-window attention,
            ``attention_block(dims, window, num_heads=, mask=, name=)`` (the timm layout of
            kecam's ``_ns`` models); ``None``: :class:`WindowMhsaPairWise` with ``pos_scale``.

    Shape:
        ``[B, H, W, C] -> [B, H, W, C]``
    """

    def __init__(
        self, dims: int, window_size, *, input_size: tuple[int, int], num_heads: int = 4,
        shift_size: float = 0, pos_scale=-1, name: str | None = None,
        attention_block: Callable | None = None,
    ):  # fmt: skip
        super().__init__(name)
        what = "ShiftedWindowAttention"
        dims, num_heads = check_sizes(what, dims=dims, num_heads=num_heads)
        shift_size = check_float(shift_size, "shift_size", what=what)
        if dims % num_heads:
            raise ValueError(
                f"num_heads={num_heads!r} must divide the {dims} channels (kecam's window "
                "reverse fails on the heads * key_dim output)"
            )
        window = _clamped_window(window_size, input_size)
        if min(window) < 2:
            raise ValueError(
                f"window_size={window_size!r} on a {input_size[0]}x{input_size[1]} map gives a "
                f"{window[0]}x{window[1]} window: kecam's swin v2 coordinates are NaN for 1"
            )
        if tuple(window) == tuple(input_size):
            shift_size = 0
        if not shift_size < 1:
            raise ValueError(f"shift_size={shift_size} is a fraction of the window: need < 1")
        self.window = window
        self.shift = (
            (int(window[0] * shift_size), int(window[1] * shift_size)) if shift_size > 0 else None
        )
        mask = None
        if self.shift is not None:
            grid = ops.window_grid(input_size, window)
            padded = (grid[0] * window[0], grid[1] * window[1])
            mask = ops.shifted_window_mask(padded, window, self.shift)
        if attention_block is None:
            self.attn = WindowMhsaPairWise(
                dims, window, num_heads=num_heads, mask=mask, pos_scale=pos_scale, name=name
            )
        else:
            self.attn = attention_block(dims, window, num_heads=num_heads, mask=mask, name=name)

    def __call__(self, x: mx.array) -> mx.array:
        shift = self.shift or 0
        windows = ops.window_partition(x, self.window, shift=shift)
        out = self.attn(windows)
        return ops.window_reverse(out, x.shape[1:3], self.window, shift=shift)


class WindowAttention(KerasModule):
    """DaViT window attention (kecam ``window_attention``): any attention module run per window.

    The window is clamped to the map, the map zero-padded bottom/right to a multiple of it (no
    mask: padded tokens take part as keys and values), partitioned into windows
    (:func:`ops.window_partition`) or, with ``is_grid``, into MaxViT-style grids (window
    ``(i, j)`` holds pixels ``(u * nh + i, v * nw + j)``: :func:`ops.extract_patches` with
    dilation ``(nh, nw)``, merged back by :func:`ops.fold`), attended, merged and cropped.

    Args:
        attention: the per-window module, ``[B * nW, wh, ww, C] -> [B * nW, wh, ww, C']``.
        window_size: int or ``(wh, ww)``.
        input_size: ``(H, W)``.
        is_grid: grid (dilated) windows. Default: ``False``.
        name: kecam's ``name=`` (the attention module declares the Keras layers).

    Shape:
        ``[B, H, W, C] -> [B, H, W, C']``
    """

    def __init__(
        self, attention: nn.Module, window_size, *, input_size: tuple[int, int],
        is_grid: bool = False, name: str | None = None,
    ):  # fmt: skip
        super().__init__(name)
        self.window = _clamped_window(window_size, input_size)
        self.grid = ops.window_grid(input_size, self.window)
        self.is_grid = check_bool(is_grid, "is_grid", what="WindowAttention")
        self.attention = attention

    def __call__(self, x: mx.array) -> mx.array:
        batch, height, width, _ = x.shape
        (wh, ww), (nh, nw) = self.window, self.grid
        if not self.is_grid:
            out = self.attention(ops.window_partition(x, self.window))
            return ops.window_reverse(out, (height, width), self.window)
        x = mx.pad(x, [(0, 0), (0, nh * wh - height), (0, nw * ww - width), (0, 0)])
        windows = ops.extract_patches(x, self.window, dilation=self.grid)  # [B, nh, nw, wh, ww, C]
        out = self.attention(windows.reshape(batch * nh * nw, wh, ww, -1))
        out = out.reshape(batch, nh, nw, wh, ww, -1)
        return ops.fold(out, (nh * wh, nw * ww), dilation=self.grid)[:, :height, :width]


__all__ = ["ExpLogitScale", "ShiftedWindowAttention", "WindowAttention", "WindowMhsaPairWise"]
