"""Neighbourhood attention core (NAT/DiNAT) that never holds K*K copies of the keys and values."""

from __future__ import annotations

import functools
from collections.abc import Callable

import mlx.core as mx
import numpy as np

from .geometry import AxisMap, check_image
from .patches import neighborhood_axis_maps

# Query tile of the portable path, by measurement at NAT stage 1 on a 2-core CPU with OpenBLAS
# (bench/local_attention.py): 4x4 queries read a 10x10 key region for k=7, so the dense products
# are twice the taps' work but run in BLAS, and MLX's CPU exp (~20 ns an element) sees at most
# twice the taps' count; larger tiles exp more, smaller ones gather more and make more calls.
TILE = (4, 4)


@functools.lru_cache(maxsize=64)
def _axis_tiles(amap: AxisMap, tile: int):
    """One axis of the tiled plan: ``(tiles, regions, offsets)``.

    Queries are grouped ``tile`` at a time within one residue class modulo the dilation (so a
    DiNAT tile's windows overlap as much as a NAT tile's); a short last tile repeats its last
    query. ``regions[i]`` lists the key positions the queries of tile ``i`` read (their union,
    padded to a common length ``L`` by repeating its last entry); ``offsets[i, t, u]`` is the
    relative-bias row of region slot ``u`` for query ``t``, or ``2k - 1`` (masked) when the slot
    is outside that query's window or is padding.

    Shape:
        ``tiles [n_tiles, tile]``, ``regions [n_tiles, L]``, ``offsets [n_tiles, tile, L]``.
    """
    source, k, d = amap.source(), amap.kernel, amap.dilation
    groups = [np.arange(r, amap.size, d) for r in range(min(d, amap.size))]
    chunks = [g[i : i + tile] for g in groups for i in range(0, len(g), tile)]
    tiles = np.stack([np.pad(c, (0, tile - len(c)), mode="edge") for c in chunks])
    unions = [np.unique(source[t]) for t in tiles]
    span = max(len(u) for u in unions)
    regions = np.stack([np.pad(u, (0, span - len(u)), mode="edge") for u in unions])
    real = np.arange(span) < np.array([len(u) for u in unions])[:, None]  # [n_tiles, L]
    windows = source[tiles]  # [n_tiles, tile, k]
    hit = (regions[:, None, :, None] == windows[:, :, None, :]) & real[:, None, :, None]
    relative = (windows - tiles[..., None]) // d + k - 1  # [n_tiles, tile, k]
    offsets = np.where(hit.any(-1), (hit * relative[:, :, None, :]).sum(-1), 2 * k - 1)
    return tiles, regions, offsets


@functools.lru_cache(maxsize=64)
def _tile_plan(rows: AxisMap, cols: AxisMap, tile: tuple[int, int]):
    """The tiled path's constants: ``sizes``, the flat gather indices (queries per tile, key
    region per tile, the way back from tiles to pixels, the per-axis bias offsets), which region
    slots are inside their query's window (see :func:`_axis_tiles`), and each pixel's window
    start (see :func:`_window_sums`)."""
    tile_rows, region_rows, offset_rows = _axis_tiles(rows, tile[0])
    tile_cols, region_cols, offset_cols = _axis_tiles(cols, tile[1])
    width = cols.size
    queries = (tile_rows[:, None, :, None] * width + tile_cols[None, :, None, :]).reshape(-1)
    region = (region_rows[:, None, :, None] * width + region_cols[None, :, None, :]).reshape(-1)
    back = np.zeros(rows.size * width, np.int64)  # each pixel's first place among the tiles
    back[queries[::-1]] = np.arange(queries.size)[::-1]
    sizes = (*tile_rows.shape, *tile_cols.shape, region_rows.shape[1], region_cols.shape[1])
    flat = [
        mx.array(a.reshape(-1).astype(np.int32))
        for a in (queries, region, back, offset_rows, offset_cols)
    ]
    # in the scores' layout [n_rows, n_cols, tile_h, tile_w, span_h, span_w]
    inside = mx.array(
        (offset_rows < 2 * rows.kernel - 1)[:, None, :, None, :, None]
        & (offset_cols < 2 * cols.kernel - 1)[None, :, None, :, None, :]
    )
    starts = (
        rows.nat_start()[:, None] * (width - (cols.kernel - 1) * cols.dilation) + cols.nat_start()
    )
    return sizes, flat, inside, mx.array(starts.reshape(-1).astype(np.int32))


def check_neighborhood_inputs(queries, keys, values, kernel_size, dilation, bias):
    """Validate the core's arguments; returns ``(rows, cols)``, the two clamped axis maps."""
    for name, arr in (("queries", queries), ("keys", keys), ("values", values)):
        check_image(arr, 5, f"neighborhood_attention {name}")
    if keys.shape != queries.shape or values.shape[:4] != queries.shape[:4]:
        raise ValueError(
            f"neighborhood_attention: queries {queries.shape}, keys {keys.shape} and values "
            f"{values.shape} must agree on [B, H, W, heads] (and kd for keys)"
        )
    rows, cols = neighborhood_axis_maps(queries.shape[1:3], kernel_size, dilation)
    heads = queries.shape[3]
    if bias is not None and bias.shape != (heads, 2 * rows.kernel - 1, 2 * cols.kernel - 1):
        raise ValueError(
            f"bias shape {bias.shape} must be (heads, 2kh-1, 2kw-1) = "
            f"{(heads, 2 * rows.kernel - 1, 2 * cols.kernel - 1)}"
        )
    return rows, cols


def neighborhood_attention(
    queries: mx.array,
    keys: mx.array,
    values: mx.array,
    kernel_size,
    *,
    dilation=1,
    scale: float | None = None,
    bias: mx.array | None = None,
    dropout: Callable[[mx.array], mx.array] | None = None,
    backend: str | None = None,
) -> mx.array:
    """softmax(q . k * scale + bias) v over each query's clamped NAT/DiNAT neighbourhood.

    With a kernel backend this runs the fused kernel (:mod:`mlx_attention.kernels.fused`: one
    thread per query pixel and head, online softmax in float32; backward through the portable
    path). The portable path (``backend`` resolving to ``"ops"``, or a ``dropout``, which the
    fused kernel does not have) works on tiles of ``TILE`` queries: it gathers each tile's key
    region (the union of its queries' windows, about ``(t + k - 1)^2 / t^2`` times the keys,
    never ``k*k``), scores it with one batched product, masks the slots outside each query's
    window (``-inf``), and takes the weighted sum of the region's values with a second product;
    NaN and Inf reach the outputs they reach in kecam (see ``_portable``). Scores and softmax run
    in float32; the result is cast to the dtype of ``values``. Windows follow
    :func:`neighborhood_patches` (kecam's rule).

    Args:
        queries: ``[B, H, W, heads, kd]``.
        keys: ``[B, H, W, heads, kd]``.
        values: ``[B, H, W, heads, vd]``.
        kernel_size: odd int or ``(kh, kw)``.
        dilation: int or pair. Default: ``1``.
        scale: logit scale. Default: ``kd ** -0.5``.
        bias: relative-position table ``[heads, 2kh-1, 2kw-1]`` indexed by
            ``(row offset / dh + kh - 1, column offset / dw + kw - 1)`` (kecam's
            ``MultiHeadRelativePositionalKernelBias`` reshaped). Default: none.
        dropout: applied to the attention weights ``[B, heads, tiles, t, L]`` (zeros outside
            the windows stay zero), e.g. a training ``nn.Dropout``. Default: none.
        backend: ``None`` (environment), ``"ops"``, ``"metal"``, ``"cuda"`` or ``"emulated"``.

    Shape:
        queries, keys ``[B, H, W, heads, kd]``, values ``[B, H, W, heads, vd]`` ->
        ``[B, H, W, heads, vd]``.
    """
    rows, cols = check_neighborhood_inputs(queries, keys, values, kernel_size, dilation, bias)
    scale = queries.shape[4] ** -0.5 if scale is None else scale
    from ..kernels import dispatch, fused

    if dropout is None and dispatch.resolve_backend(backend) != "ops":

        def reference(q, k, v, table):
            return _portable(q, k, v, rows, cols, 1.0, None if bias is None else table)

        return fused.local_attention(
            queries * scale, keys, values, rows, cols, (1, 1), bias,
            None if bias is None else "table", dispatch.resolve_backend(backend), reference,
        )  # fmt: skip
    return _portable(queries, keys, values, rows, cols, scale, bias, dropout)


def _sliding_sums(x: mx.array, amap: AxisMap, axis: int) -> mx.array:
    """Along ``axis``, the sum of the ``k`` taps ``d`` apart of every window start, built from
    sums of 1, 2, 4, ... taps (``log2 k`` additions instead of ``k``)."""

    def taps(a: mx.array, start: int, length: int) -> mx.array:
        index = [slice(None)] * a.ndim
        index[axis] = slice(start, start + length)
        return a[tuple(index)]

    k, d = amap.kernel, amap.dilation
    length = amap.size - (k - 1) * d  # number of window starts
    total, used, power, partial = None, 0, 1, x  # partial[i]: the sum of `power` taps from i
    while True:
        if k & power:
            piece = taps(partial, used * d, length)
            total = piece if total is None else total + piece
            used += power
        if 2 * power > k:
            return total
        count = partial.shape[axis] - power * d
        partial = taps(partial, 0, count) + taps(partial, power * d, count)
        power *= 2


def _window_sums(x: mx.array, rows: AxisMap, cols: AxisMap, starts: mx.array) -> mx.array:
    """``[B, H, W, ...]``: the sum over each pixel's NAT window, ``starts`` the flat index of its
    window's first tap among the window starts.

    Sums of ``0``, ``±inf`` and NaN are what kecam's weighted sum gives a window's non-finite
    values (NaN for a NaN or both infinities), in any order.
    """
    sums = _sliding_sums(_sliding_sums(x, rows, axis=1), cols, axis=2)
    sums = sums.reshape(x.shape[0], -1, *x.shape[3:])
    return mx.take(sums, starts, axis=1).reshape(x.shape)


def _portable(queries, keys, values, rows, cols, scale, bias, dropout=None):
    """The tiled path. A tile's key region holds keys and values outside some of its queries'
    windows; they must not reach those queries, even as NaN or Inf (``NaN * 0`` is NaN): their
    scores are replaced by ``-inf`` with ``where``, and non-finite values enter the weighted sum
    as zero, then the sum over each query's window of the non-finite ones (0, ±inf or NaN per
    channel) is added, as kecam's sum has them. One difference is left: a non-finite value whose
    weight is exactly 0 (a ``-inf`` score, or an underflow) gives kecam ``0 * inf = NaN`` and
    this path that infinity."""
    batch, height, width, heads, _ = queries.shape
    sizes, flat, inside, window_starts = _tile_plan(rows, cols, TILE)
    query_index, region_index, back, offset_rows, offset_cols = flat
    n_rows, tile_h, n_cols, tile_w, span_h, span_w = sizes
    tiles = n_rows * n_cols

    def gather(x, index, count):  # [B, H, W, heads, d] -> [B, heads, tiles, count, d], float32
        x = mx.take(x.reshape(batch, height * width, heads, -1), index, axis=1)
        return x.reshape(batch, tiles, count, heads, -1).transpose(0, 3, 1, 2, 4).astype(mx.float32)

    q = gather(queries, query_index, tile_h * tile_w) * scale
    scores = q @ gather(keys, region_index, span_h * span_w).swapaxes(-1, -2)
    scores = scores.reshape(batch, heads, n_rows, n_cols, tile_h, tile_w, span_h, span_w)
    if bias is not None:
        # offset 2k-1 (a slot outside the query's window) reads the appended row or column,
        # masked below
        table = mx.pad(bias.astype(mx.float32), [(0, 0), (0, 1), (0, 1)])
        logits = mx.take(mx.take(table, offset_rows, axis=1), offset_cols, axis=2)
        logits = logits.reshape(heads, n_rows, tile_h, span_h, n_cols, tile_w, span_w)
        scores = scores + logits.transpose(0, 1, 4, 2, 5, 3, 6)
    scores = mx.where(inside, scores, -mx.inf)
    weights = mx.softmax(scores.reshape(batch, heads, tiles, tile_h * tile_w, -1), axis=-1)
    if dropout is not None:
        weights = dropout(weights)
    finite = mx.where(mx.abs(values) < mx.inf, values, 0)  # (faster than isfinite on the CPU)
    out = weights @ gather(finite, region_index, span_h * span_w)
    out = out.transpose(0, 2, 3, 1, 4).reshape(batch, tiles * tile_h * tile_w, heads, -1)
    out = mx.take(out, back, axis=1).reshape(values.shape)
    non_finite = values - finite  # 0 where finite: adds nothing to a finite result
    return (out + _window_sums(non_finite, rows, cols, window_starts)).astype(values.dtype)
