"""Neighbourhood attention core (NAT/DiNAT) that never holds K*K copies of the keys and values."""

from __future__ import annotations

import functools

import mlx.core as mx
import numpy as np

from .geometry import check_image
from .patches import neighborhood_axis_maps


@functools.lru_cache(maxsize=64)
def _tap_plan(size: tuple[int, int], kernel: tuple[int, int], dilation: tuple[int, int]):
    """Per tap ``t = a*kw + b``: the flat pixel every query reads, and its relative-bias index.

    Returns ``(rows, cols, sources, bias_index)``: ``sources[t]`` is an int32 ``[H*W]`` array of
    ``row * W + col``; ``bias_index`` is ``[kh*kw, H*W]`` into the flattened ``[2kh-1, 2kw-1]``
    table, with the relative offset ``(source - query) / dilation + kernel - 1`` per axis.
    """
    rows, cols = neighborhood_axis_maps(size, kernel, dilation)
    row_src, col_src = rows.source(), cols.source()  # [H, kh], [W, kw]
    flat = row_src.T[:, None, :, None] * cols.size + col_src.T[None, :, None, :]
    flat = flat.reshape(rows.kernel * cols.kernel, -1).astype(np.int32)
    rel_rows = (row_src - np.arange(rows.size)[:, None]) // rows.dilation + rows.kernel - 1
    rel_cols = (col_src - np.arange(cols.size)[:, None]) // cols.dilation + cols.kernel - 1
    index = rel_rows.T[:, None, :, None] * (2 * cols.kernel - 1) + rel_cols.T[None, :, None, :]
    index = index.reshape(flat.shape).astype(np.int32)
    return rows, cols, [mx.array(t) for t in flat], mx.array(index)


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
    backend: str | None = None,
) -> mx.array:
    """softmax(q . k * scale + bias) v over each query's clamped NAT/DiNAT neighbourhood.

    With a kernel backend this runs the fused kernel (:mod:`mlx_attention.kernels.fused`: one
    thread per query pixel and head, online softmax in float32; backward through this path).
    The portable path (``backend`` resolving to ``"ops"``):
    Loops over the ``kh * kw`` taps twice, reading each tap of ``keys`` (then ``values``) with
    one gather of whole pixels along the flattened ``H*W`` axis: once for the scores
    (``[kh*kw, B, H*W, heads]``, small), once to accumulate the weighted values, so the peak
    holds one gathered tap at a time instead of all ``kh * kw``. Chosen by measurement against
    query tiles with BLAS products and chunked gathers (bench/local_attention.py, the report).
    Scores and softmax run in float32; the result is cast to the dtype of ``values``. Windows
    follow :func:`neighborhood_patches` (kecam's rule).

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
        backend: ``None`` (environment), ``"ops"``, ``"metal"``, ``"cuda"`` or ``"emulated"``.

    Shape:
        queries, keys ``[B, H, W, heads, kd]``, values ``[B, H, W, heads, vd]`` ->
        ``[B, H, W, heads, vd]``.
    """
    rows, cols = check_neighborhood_inputs(queries, keys, values, kernel_size, dilation, bias)
    scale = queries.shape[4] ** -0.5 if scale is None else scale
    from ..kernels import dispatch, fused

    if dispatch.resolve_backend(backend) != "ops":

        def reference(q, k, v, table):
            return _portable(q, k, v, rows, cols, 1.0, None if bias is None else table)

        return fused.local_attention(
            queries * scale, keys, values, rows, cols, (1, 1), bias,
            None if bias is None else "table", dispatch.resolve_backend(backend), reference,
        )  # fmt: skip
    return _portable(queries, keys, values, rows, cols, scale, bias)


def _portable(queries, keys, values, rows, cols, scale, bias):
    batch, height, width, heads, key_dim = queries.shape
    pixels = height * width
    kernel, dilation = (rows.kernel, cols.kernel), (rows.dilation, cols.dilation)
    _, _, sources, bias_index = _tap_plan((height, width), kernel, dilation)
    q32 = queries.reshape(1, batch, pixels, heads, key_dim).astype(mx.float32) * scale
    flat_keys = keys.reshape(batch, pixels, heads, key_dim)
    scores = mx.concatenate(
        [(q32 * mx.take(flat_keys, src, axis=1).astype(mx.float32)).sum(-1) for src in sources]
    )  # tap-major [taps, B, H*W, heads]: every tap's slice below is contiguous
    if bias is not None:
        table = mx.take(bias.astype(mx.float32).reshape(heads, -1), bias_index, axis=1)
        scores = scores + table.transpose(1, 2, 0)[:, None]  # [taps, 1, H*W, heads]
    weights = mx.softmax(scores, axis=0)[..., None]
    flat_values = values.reshape(batch, pixels, heads, values.shape[4])
    out = None
    for t, src in enumerate(sources):
        term = weights[t] * mx.take(flat_values, src, axis=1).astype(mx.float32)
        out = term if out is None else out + term
    return out.astype(values.dtype).reshape(values.shape)
