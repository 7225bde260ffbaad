"""Neighbourhood attention core (NAT/DiNAT) that never holds K*K copies of the keys and values."""

from __future__ import annotations

import mlx.core as mx
import numpy as np

from .geometry import check_image
from .patches import neighborhood_axis_maps


def neighborhood_attention(
    queries: mx.array,
    keys: mx.array,
    values: mx.array,
    kernel_size,
    *,
    dilation=1,
    scale: float | None = None,
    bias: mx.array | None = None,
) -> mx.array:
    """softmax(q . k * scale + bias) v over each query's clamped NAT/DiNAT neighbourhood.

    Loops over the ``kh * kw`` taps twice: once for the scores (``[B, H, W, heads, kh*kw]``, small),
    once to accumulate the weighted values, so the peak holds one gathered tap of ``keys`` or
    ``values`` at a time instead of all ``kh * kw``. Scores and softmax run in float32; the result
    is cast to the dtype of ``values``. Windows follow :func:`neighborhood_patches` (kecam's rule).

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

    Shape:
        queries, keys ``[B, H, W, heads, kd]``, values ``[B, H, W, heads, vd]`` ->
        ``[B, H, W, heads, vd]``.
    """
    for name, arr in (("queries", queries), ("keys", keys), ("values", values)):
        check_image(arr, 5, f"neighborhood_attention {name}")
    if keys.shape != queries.shape or values.shape[:4] != queries.shape[:4]:
        raise ValueError(
            f"neighborhood_attention: queries {queries.shape}, keys {keys.shape} and values "
            f"{values.shape} must agree on [B, H, W, heads] (and kd for keys)"
        )
    heads, key_dim = queries.shape[3], queries.shape[4]
    rows, cols = neighborhood_axis_maps(queries.shape[1:3], kernel_size, dilation)
    if bias is not None and bias.shape != (heads, 2 * rows.kernel - 1, 2 * cols.kernel - 1):
        raise ValueError(
            f"bias shape {bias.shape} must be (heads, 2kh-1, 2kw-1) = "
            f"{(heads, 2 * rows.kernel - 1, 2 * cols.kernel - 1)}"
        )
    scale = key_dim**-0.5 if scale is None else scale
    row_src, col_src = rows.source(), cols.source()  # [H, kh], [W, kw]
    row_taps = [mx.array(row_src[:, a]) for a in range(rows.kernel)]
    col_taps = [mx.array(col_src[:, b]) for b in range(cols.kernel)]
    taps = [(a, b) for a in range(rows.kernel) for b in range(cols.kernel)]

    def gather(x: mx.array, a: int, b: int) -> mx.array:
        return mx.take(mx.take(x, row_taps[a], axis=1), col_taps[b], axis=2)

    q32 = queries.astype(mx.float32) * scale
    scores = [
        (q32 * gather(keys, a, b).astype(mx.float32)).sum(axis=-1) for a, b in taps
    ]  # each [B, H, W, heads]
    scores = mx.stack(scores, axis=-1)
    if bias is not None:
        # relative index of tap a for query y: (source - y) / d + k - 1, in [0, 2k - 2]
        rel_rows = mx.array((row_src - np.arange(rows.size)[:, None]) // rows.dilation)
        rel_cols = mx.array((col_src - np.arange(cols.size)[:, None]) // cols.dilation)
        table = bias.astype(mx.float32)[:, rel_rows + rows.kernel - 1]  # [heads, H, kh, 2kw-1]
        table = table[:, :, :, rel_cols + cols.kernel - 1]  # [heads, H, kh, W, kw]
        scores = scores + table.transpose(1, 3, 0, 2, 4).reshape(scores.shape[1:])
    weights = mx.softmax(scores, axis=-1)
    out = None
    for t, (a, b) in enumerate(taps):
        term = weights[..., t : t + 1] * gather(values, a, b).astype(mx.float32)
        out = term if out is None else out + term
    return out.astype(values.dtype)
