"""Patch extraction (unfold), halo blocks, NAT/DiNAT neighbourhoods and fold (as a gather)."""

from __future__ import annotations

import mlx.core as mx

from .geometry import AxisMap, check_image, check_positive, to_pair


def unfold_axis_maps(size, kernel_size, stride=1, dilation=1, padding=0) -> tuple[AxisMap, AxisMap]:
    """The two :class:`AxisMap` of a strided, dilated, zero-padded unfold (validated)."""
    kernel, strides = to_pair(kernel_size, "kernel_size"), to_pair(stride, "stride")
    dilations, pads = to_pair(dilation, "dilation"), to_pair(padding, "padding")
    for what, pair in (("kernel_size", kernel), ("stride", strides), ("dilation", dilations)):
        check_positive(what, pair)
    check_positive("padding", pads, 0)
    maps = []
    for n, k, s, d, p in zip(size, kernel, strides, dilations, pads):
        grid = (n + 2 * p - d * (k - 1) - 1) // s + 1
        if grid < 1:
            raise ValueError(
                f"input {tuple(size)} with padding {pads} is smaller than the dilated kernel "
                f"{kernel} (dilation {dilations})"
            )
        maps.append(AxisMap(size=n, grid=grid, kernel=k, stride=s, dilation=d, pad=p))
    return maps[0], maps[1]


def neighborhood_axis_maps(size, kernel_size, dilation=1) -> tuple[AxisMap, AxisMap]:
    """The two clamped :class:`AxisMap` of a NAT/DiNAT neighbourhood (validated)."""
    kernel, dilations = to_pair(kernel_size, "kernel_size"), to_pair(dilation, "dilation")
    check_positive("kernel_size", kernel)
    check_positive("dilation", dilations)
    if kernel[0] % 2 == 0 or kernel[1] % 2 == 0:
        raise ValueError(f"kernel_size {kernel} must be odd (kecam fails on even NAT kernels)")
    for n, k, d in zip(size, kernel, dilations):
        if n < k * d:
            raise ValueError(
                f"input {tuple(size)} is smaller than kernel {kernel} x dilation {dilations}; "
                "zero-pad bottom/right to kernel*dilation first, as kecam's NAT does"
            )
    return tuple(
        AxisMap(size=n, grid=n, kernel=k, dilation=d, clamp=True)
        for n, k, d in zip(size, kernel, dilations)
    )


def _gather(x: mx.array, rows: AxisMap, cols: AxisMap, backend: str | None) -> mx.array | None:
    """The kernel path of an unfold, or ``None`` when the resolved backend is ``ops``."""
    from ..kernels import dispatch

    if dispatch.resolve_backend(backend) == "ops":
        return None
    return dispatch.unfold(x, rows, cols, backend)


def extract_patches(
    x: mx.array,
    kernel_size,
    *,
    stride=1,
    dilation=1,
    padding=0,
    backend: str | None = None,
) -> mx.array:
    """Unfold: every ``kh x kw`` (dilated) patch of a zero-padded map.

    ``out[b, i, j, a, c', ch] = x_pad[b, i*sh + a*dh, j*sw + c'*dw, ch]``, kecam's
    ``CompatibleExtractPatches(compressed=False)`` order (``padding=k // 2`` is its "same").

    Args:
        x: ``[B, H, W, C]``.
        kernel_size: int or ``(kh, kw)``.
        stride: int or pair. Default: ``1``.
        dilation: int or pair. Default: ``1``.
        padding: symmetric zero padding, int or ``(ph, pw)``. Default: ``0``.
        backend: ``None`` (environment), ``"ops"``, ``"metal"``, ``"cuda"`` or ``"emulated"``.

    Shape:
        ``[B, H, W, C] -> [B, oh, ow, kh, kw, C]``, ``oh = (H + 2ph - dh*(kh-1) - 1) // sh + 1``.
    """
    check_image(x, 4, "extract_patches")
    rows, cols = unfold_axis_maps(x.shape[1:3], kernel_size, stride, dilation, padding)
    gathered = _gather(x, rows, cols, backend)
    if gathered is not None:
        return gathered
    x = mx.pad(x, [(0, 0), (rows.pad, rows.pad), (cols.pad, cols.pad), (0, 0)])
    taps = []
    for a in range(rows.kernel):
        row0, row_end = a * rows.dilation, a * rows.dilation + (rows.grid - 1) * rows.stride + 1
        for b in range(cols.kernel):
            col0, col_end = b * cols.dilation, b * cols.dilation + (cols.grid - 1) * cols.stride + 1
            taps.append(x[:, row0 : row_end : rows.stride, col0 : col_end : cols.stride])
    out = mx.stack(taps, axis=3)
    return out.reshape(*out.shape[:3], rows.kernel, cols.kernel, out.shape[-1])


def halo_blocks(
    x: mx.array, block_size: int, halo_size: int, *, backend: str | None = None
) -> mx.array:
    """HaloNet key/value blocks: non-overlapping ``b x b`` blocks grown by ``halo`` on each side.

    Block ``(i, j)`` covers rows ``i*b - halo .. i*b + b + halo - 1`` (zeros outside the map), as
    kecam's ``halo_attention`` extracts them.

    Args:
        x: ``[B, H, W, C]`` with ``H`` and ``W`` multiples of ``block_size``.
        block_size: ``b``.
        halo_size: ``halo >= 0``.
        backend: as in :func:`extract_patches`.

    Shape:
        ``[B, H, W, C] -> [B, H / b, W / b, b + 2 halo, b + 2 halo, C]``.
    """
    check_image(x, 4, "halo_blocks")
    if block_size < 1 or halo_size < 0:
        raise ValueError(f"block_size {block_size} must be >= 1 and halo_size {halo_size} >= 0")
    if x.shape[1] % block_size or x.shape[2] % block_size:
        raise ValueError(
            f"halo_blocks: map {tuple(x.shape[1:3])} is not a multiple of block_size {block_size}"
        )
    window = block_size + 2 * halo_size
    return extract_patches(x, window, stride=block_size, padding=halo_size, backend=backend)


def neighborhood_patches(
    x: mx.array, kernel_size, *, dilation=1, backend: str | None = None
) -> mx.array:
    """NAT/DiNAT neighbourhoods: each pixel's ``k x k`` window, its start clamped inside the map.

    Equal to kecam's VALID ``CompatibleExtractPatches(k, 1, rates=d)`` followed by its replicate
    padding (``tf.repeat`` for NAT, ``tf.tile`` of ``d`` rows for DiNAT): window rows of query
    ``y`` are ``start(y) + a*d`` (:meth:`AxisMap.nat_start`).

    Args:
        x: ``[B, H, W, C]`` with ``H >= kh*dh`` and ``W >= kw*dw`` (kecam pads to that first).
        kernel_size: odd int or pair.
        dilation: int or pair. Default: ``1``.
        backend: as in :func:`extract_patches`.

    Shape:
        ``[B, H, W, C] -> [B, H, W, kh, kw, C]``.
    """
    check_image(x, 4, "neighborhood_patches")
    rows, cols = neighborhood_axis_maps(x.shape[1:3], kernel_size, dilation)
    gathered = _gather(x, rows, cols, backend)
    if gathered is not None:
        return gathered
    batch, height, width, channels = x.shape
    row_idx, col_idx = rows.source(), cols.source()
    out = mx.take(x, mx.array(row_idx.reshape(-1)), axis=1)  # [B, H*kh, W, C]
    out = mx.take(out, mx.array(col_idx.reshape(-1)), axis=2)  # [B, H*kh, W*kw, C]
    out = out.reshape(batch, height, rows.kernel, width, cols.kernel, channels)
    return out.transpose(0, 1, 3, 2, 4, 5)


def fold_axis_maps(size, patches_shape, stride=1, dilation=1, padding=0) -> tuple[AxisMap, AxisMap]:
    """The two :class:`AxisMap` of a fold of ``patches_shape`` onto an ``H x W`` map (validated)."""
    _, grid_h, grid_w, kh, kw, _ = patches_shape
    strides, dilations = to_pair(stride, "stride"), to_pair(dilation, "dilation")
    pads, size = to_pair(padding, "padding"), to_pair(size, "output_size")
    check_positive("stride", strides)
    check_positive("dilation", dilations)
    check_positive("padding", pads, 0)
    check_positive("output_size", size)
    maps = []
    for n, g, k, s, d, p in zip(size, (grid_h, grid_w), (kh, kw), strides, dilations, pads):
        canvas = (g - 1) * s + d * (k - 1) + 1
        if n > canvas - p:
            raise ValueError(
                f"fold: output {tuple(size)} exceeds the area {g} windows of kernel {k} "
                f"(stride {s}, dilation {d}, padding {p}) cover: at most {canvas - p}"
            )
        maps.append(AxisMap(size=n, grid=g, kernel=k, stride=s, dilation=d, pad=p))
    return maps[0], maps[1]


def accumulator_dtype(dtype: mx.Dtype) -> mx.Dtype:
    """Fold sums in float32 for floating inputs and int32 for integers, then casts back."""
    return mx.float32 if mx.issubdtype(dtype, mx.floating) else mx.int32


def fold(
    patches: mx.array,
    output_size,
    *,
    stride=1,
    dilation=1,
    padding=0,
    backend: str | None = None,
) -> mx.array:
    """Fold (col2im): the adjoint of :func:`extract_patches`, summing overlaps, as a gather.

    ``out[b, y, x, ch] = sum patches[b, i, j, a, c', ch]`` over ``i*sh + a*dh - ph = y`` and
    ``j*sw + c'*dw - pw = x``; taps are summed in ``(a, c')`` order in float32 (int32 for
    integers). kecam's ``fold_by_conv2d_transpose`` is this with ``padding = k // 2``.

    Args:
        patches: ``[B, oh, ow, kh, kw, C]``.
        output_size: ``(H, W)``, at most ``(oh-1)*s + d*(k-1) + 1 - p`` per axis.
        stride: int or pair. Default: ``1``.
        dilation: int or pair. Default: ``1``.
        padding: int or pair, the unfold's zero padding. Default: ``0``.
        backend: as in :func:`extract_patches`.

    Shape:
        ``[B, oh, ow, kh, kw, C] -> [B, H, W, C]``.
    """
    check_image(patches, 6, "fold")
    rows, cols = fold_axis_maps(output_size, patches.shape, stride, dilation, padding)
    from ..kernels import dispatch

    if dispatch.resolve_backend(backend) != "ops":
        return dispatch.fold(patches, rows, cols, backend)
    acc_dtype = accumulator_dtype(patches.dtype)
    row_pre, col_pre = rows.preimage(), cols.preimage()
    out = mx.zeros((patches.shape[0], rows.size, cols.size, patches.shape[-1]), acc_dtype)
    for a in range(rows.kernel):
        row_src = mx.array(row_pre[:, a])
        for b in range(cols.kernel):
            col_src = mx.array(col_pre[:, b])
            tap = mx.take(patches[:, :, :, a, b].astype(acc_dtype), mx.maximum(row_src, 0), axis=1)
            tap = mx.take(tap, mx.maximum(col_src, 0), axis=2)
            valid = (row_src[:, None] >= 0) & (col_src[None, :] >= 0)
            out = out + mx.where(valid[None, :, :, None], tap, mx.zeros((), acc_dtype))
    return out.astype(patches.dtype)
