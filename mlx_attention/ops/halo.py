"""Halo attention core (HaloNet): every query block attends to its key block plus a zero halo."""

from __future__ import annotations

from collections.abc import Callable

import mlx.core as mx
import numpy as np

from .geometry import check_image
from .patches import halo_blocks, unfold_axis_maps


def halo_attention(
    queries: mx.array,
    keys: mx.array,
    values: mx.array,
    block_size: int,
    halo_size: int,
    *,
    scale: float | None = None,
    pos_rows: mx.array | None = None,
    pos_cols: mx.array | None = None,
    dropout: Callable[[mx.array], mx.array] | None = None,
    backend: str | None = None,
) -> mx.array:
    """softmax(q . k * scale + pos) v of each query block over its ``kv x kv`` key window.

    Key window ``(i, j)`` covers rows ``i*block - halo .. i*block + block + halo - 1`` (and the
    same columns), zeros outside the image (:func:`halo_blocks`, ``kv = block + 2*halo``); query
    ``(y, x)`` belongs to block ``(y // qb, x // qb)``, ``qb = Hq / (H / block)`` (``qb = block``
    without strides). ``pos`` is kecam's relative ``RelativePositionalEmbedding`` on the
    unscaled query: ``q . pos_rows[:, kv-1 + ty - u] + q . pos_cols[:, kv-1 + tx - v]`` for the
    query's place ``(u, v)`` in its block and key slot ``(ty, tx)``. With a kernel backend the
    attention runs fused (:mod:`mlx_attention.kernels.fused`, per-query logits, backward through
    the portable path); the portable path gathers the key windows (``(kv/block)^2`` times the
    keys, as kecam) and runs ``mx.fast.scaled_dot_product_attention`` per block in float32;
    with a ``dropout`` (which the fused kernel does not have) it runs the portable path with the
    softmax written out.

    Args:
        queries: ``[B, Hq, Wq, heads, kd]``.
        keys: ``[B, H, W, heads, kd]``; ``H``, ``W`` multiples of ``block_size``.
        values: ``[B, H, W, heads, vd]``.
        block_size: key block size ``b``.
        halo_size: halo ``h`` around each block.
        scale: logit scale. Default: ``kd ** -0.5``.
        pos_rows, pos_cols: ``[kd, 2kv-1]`` (kecam's ``r_height``, ``r_width``); both or none.
        dropout: applied to the attention weights, e.g. a training ``nn.Dropout``.
            Default: none.
        backend: ``None`` (environment), ``"ops"``, ``"metal"``, ``"cuda"`` or ``"emulated"``.

    Shape:
        ``-> [B, Hq, Wq, heads, vd]`` in the dtype of ``values``.
    """
    for name, arr in (("queries", queries), ("keys", keys), ("values", values)):
        check_image(arr, 5, f"halo_attention {name}")
    batch, height, width, heads, key_dim = keys.shape
    if values.shape[:4] != keys.shape[:4] or queries.shape[::3] != keys.shape[::3]:
        raise ValueError(
            f"halo_attention: queries {queries.shape}, keys {keys.shape}, values {values.shape} "
            "must agree on B, heads and kd (keys and values on [B, H, W, heads])"
        )
    if height % block_size or width % block_size or halo_size < 0:
        raise ValueError(f"{height}x{width} must be multiples of block_size {block_size} (kecam)")
    kv = block_size + 2 * halo_size
    rows, cols = unfold_axis_maps((height, width), kv, block_size, 1, halo_size)
    query_block = queries.shape[1] // rows.grid
    if queries.shape[1:3] != (rows.grid * query_block, cols.grid * query_block):
        raise ValueError(
            f"queries {queries.shape[1:3]} do not tile the {rows.grid}x{cols.grid} blocks"
        )
    if (pos_rows is None) != (pos_cols is None):
        raise ValueError("pos_rows and pos_cols go together")
    logits = None
    if pos_rows is not None:
        if pos_rows.shape != (key_dim, 2 * kv - 1) or pos_cols.shape != pos_rows.shape:
            raise ValueError(f"pos tables must be [kd, 2kv-1] = {(key_dim, 2 * kv - 1)}")
        logits = _position_logits(queries, pos_rows, pos_cols, kv, query_block)
    scale = key_dim**-0.5 if scale is None else scale
    from ..kernels import dispatch, fused

    def portable(q, k, v, table):
        return _portable(q, k, v, block_size, halo_size, query_block, table, dropout)

    if dropout is None and dispatch.resolve_backend(backend) != "ops":
        return fused.local_attention(
            queries * scale, keys, values, rows, cols, (query_block, query_block), logits,
            None if logits is None else "per_query", dispatch.resolve_backend(backend),
            lambda q, k, v, t: portable(q, k, v, None if logits is None else t),
        )  # fmt: skip
    return portable(queries * scale, keys, values, logits)


def _position_logits(queries, pos_rows, pos_cols, kv, query_block):
    """Per query: ``kv`` row logits then ``kv`` column logits, ``[B, Hq, Wq, heads, 2kv]``."""
    q32 = queries.astype(mx.float32)

    def axis_logits(table, length, axis):
        # slot t of a query at place u in its block reads column kv-1 + t - u of q @ table
        place = np.arange(length) % query_block
        index = (kv - 1 + np.arange(kv)[None, :] - place[:, None]).astype(np.int32)
        shape = [1, 1, 1, 1, kv]
        shape[axis] = length
        logits = q32 @ table.astype(mx.float32)  # [B, Hq, Wq, heads, 2kv-1]
        return mx.take_along_axis(logits, mx.array(index).reshape(shape), axis=-1)

    rows = axis_logits(pos_rows, queries.shape[1], 1)
    cols = axis_logits(pos_cols, queries.shape[2], 2)
    return mx.concatenate([rows, cols], axis=-1)


def _portable(queries, keys, values, block_size, halo_size, query_block, logits, dropout=None):
    batch, height, width, heads, key_dim = keys.shape
    value_dim, kv, qb = values.shape[4], block_size + 2 * halo_size, query_block
    grid_h, grid_w = height // block_size, width // block_size

    def key_windows(x):  # [B, H, W, heads, d] -> [B*nb, heads, kv*kv, d]
        blocks = halo_blocks(x.reshape(batch, height, width, -1), block_size, halo_size,
                             backend="ops")  # fmt: skip
        blocks = blocks.reshape(batch * grid_h * grid_w, kv * kv, heads, x.shape[4])
        return blocks.transpose(0, 2, 1, 3)

    def query_blocks(x):  # [B, Hq, Wq, heads, d] -> [B*nb, heads, qb*qb, d]
        x = x.reshape(batch, grid_h, qb, grid_w, qb, heads, x.shape[4])
        return x.transpose(0, 1, 3, 5, 2, 4, 6).reshape(-1, heads, qb * qb, x.shape[6])

    mask = None
    if logits is not None:
        blocks = query_blocks(logits)  # [B*nb, heads, qb*qb, 2kv]
        mask = (blocks[..., :kv, None] + blocks[..., None, kv:]).reshape(*blocks.shape[:3], -1)
    q, k, v = (t.astype(mx.float32) for t in (query_blocks(queries), key_windows(keys),
                                              key_windows(values)))  # fmt: skip
    if dropout is None:
        out = mx.fast.scaled_dot_product_attention(q, k, v, scale=1.0, mask=mask)
    else:
        scores = q @ k.swapaxes(-1, -2)
        weights = mx.softmax(scores if mask is None else scores + mask, axis=-1)
        out = dropout(weights) @ v
    out = out.astype(values.dtype)
    out = out.reshape(batch, grid_h, grid_w, heads, qb, qb, value_dim)
    return out.transpose(0, 1, 4, 2, 5, 3, 6).reshape(batch, grid_h * qb, grid_w * qb, heads, -1)
