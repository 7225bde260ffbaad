"""Window partition / reverse (Swin, DaViT) with padding to a multiple and a cyclic shift."""

from __future__ import annotations

import math

import mlx.core as mx
import numpy as np

from .geometry import AxisMap, check_image, check_positive, to_pair

SHIFTED_WINDOW_MASK_VALUE = -100.0


def window_grid(size: tuple[int, int], window_size) -> tuple[int, int]:
    """Windows per axis after padding ``size`` (H, W) up to a multiple of ``window_size``."""
    wh, ww = to_pair(window_size, "window_size")
    check_positive("window_size", (wh, ww))
    return math.ceil(size[0] / wh), math.ceil(size[1] / ww)


def window_axis_maps(size: tuple[int, int], window_size, shift=0) -> tuple[AxisMap, AxisMap]:
    """The two :class:`AxisMap` of a padded, shifted partition of an ``H x W`` map (validated)."""
    window, shifts = to_pair(window_size, "window_size"), to_pair(shift, "shift")
    check_positive("window_size", window)
    grid = window_grid(size, window)
    maps = []
    for axis, (n, w, s, g) in enumerate(zip(size, window, shifts, grid)):
        if not 0 <= s < w:
            raise ValueError(f"shift {shifts}: need 0 <= shift < window {window} (axis {axis})")
        maps.append(AxisMap(size=n, grid=g, kernel=w, stride=w, shift=s, period=g * w))
    return maps[0], maps[1]


def window_partition(x: mx.array, window_size, *, shift=0, backend: str | None = None) -> mx.array:
    """Split a map into windows, zero-padding bottom/right and rolling by ``-shift`` first.

    Window ``n = (b*nh + i)*nw + j`` holds ``roll(pad(x), -shift)[b, i*wh + u, j*ww + v]``, kecam's
    ``window_partition`` order (and Swin v2's ``shifted_window_attention`` steps 3-5).

    Args:
        x: ``[B, H, W, C]``.
        window_size: int or ``(wh, ww)``.
        shift: int or ``(sh, sw)`` pixels, ``0 <= shift < window``. Default: ``0``.
        backend: ``None`` (environment), ``"ops"``, ``"metal"``, ``"cuda"`` or ``"emulated"``.

    Shape:
        ``[B, H, W, C] -> [B * nh * nw, wh, ww, C]``, ``nh = ceil(H / wh)``, ``nw = ceil(W / ww)``.
    """
    check_image(x, 4, "window_partition")
    batch, height, width, channels = x.shape
    rows, cols = window_axis_maps((height, width), window_size, shift)
    out_shape = (batch * rows.grid * cols.grid, rows.kernel, cols.kernel, channels)
    from ..kernels import dispatch

    if dispatch.resolve_backend(backend) != "ops":
        return dispatch.unfold(x, rows, cols, backend).reshape(out_shape)
    x = mx.pad(x, [(0, 0), (0, rows.period - height), (0, cols.period - width), (0, 0)])
    if rows.shift or cols.shift:
        x = mx.roll(x, (-rows.shift, -cols.shift), axis=(1, 2))
    x = x.reshape(batch, rows.grid, rows.kernel, cols.grid, cols.kernel, channels)
    return x.transpose(0, 1, 3, 2, 4, 5).reshape(out_shape)


def window_reverse(
    windows: mx.array, size, window_size, *, shift=0, backend: str | None = None
) -> mx.array:
    """Inverse of :func:`window_partition`: merge windows, roll by ``+shift``, crop to ``size``.

    Args:
        windows: ``[B * nh * nw, wh, ww, C]``.
        size: the unpadded ``(H, W)``.
        window_size: int or ``(wh, ww)``; must equal the windows' spatial shape.
        shift: int or ``(sh, sw)``, as given to :func:`window_partition`. Default: ``0``.
        backend: as in :func:`window_partition`.

    Shape:
        ``[B * nh * nw, wh, ww, C] -> [B, H, W, C]``.
    """
    check_image(windows, 4, "window_reverse")
    height, width = to_pair(size, "size")
    check_positive("size", (height, width))
    rows, cols = window_axis_maps((height, width), window_size, shift)
    count, wh, ww, channels = windows.shape
    per_image = rows.grid * cols.grid
    if (wh, ww) != (rows.kernel, cols.kernel) or count % per_image:
        raise ValueError(
            f"window_reverse: windows of shape {windows.shape} do not tile a {height}x{width} map "
            f"with window ({rows.kernel}, {cols.kernel}) ({rows.grid}x{cols.grid} per image)"
        )
    batch = count // per_image
    windows = windows.reshape(batch, rows.grid, cols.grid, wh, ww, channels)
    from ..kernels import dispatch

    if dispatch.resolve_backend(backend) != "ops":
        return dispatch.fold(windows, rows, cols, backend)
    x = windows.transpose(0, 1, 3, 2, 4, 5).reshape(batch, rows.period, cols.period, channels)
    if rows.shift or cols.shift:
        x = mx.roll(x, (rows.shift, cols.shift), axis=(1, 2))
    return x[:, :height, :width]


def shifted_window_mask(padded_size, window_size, shift) -> mx.array:
    """Swin's shifted-window attention mask (kecam ``WindowAttentionMask``), float32.

    The padded map is cut into 3 x 3 regions at ``[0, H - wh, H - sh, H]`` (same for columns);
    tokens of one window attend to each other only within one region (``0``), else ``-100``.

    Args:
        padded_size: ``(Hp, Wp)``, multiples of the window.
        window_size: int or ``(wh, ww)``.
        shift: int or ``(sh, sw)``.

    Shape:
        ``-> [nh * nw, wh * ww, wh * ww]``, indexed ``[window, query, key]``.
    """
    height, width = to_pair(padded_size, "padded_size")
    (wh, ww), (sh, sw) = to_pair(window_size, "window_size"), to_pair(shift, "shift")
    check_positive("window_size", (wh, ww))
    if height % wh or width % ww:
        raise ValueError(f"padded_size {(height, width)} must be a multiple of window {(wh, ww)}")
    row_region = np.searchsorted([height - wh, height - sh], np.arange(height), side="right")
    col_region = np.searchsorted([width - ww, width - sw], np.arange(width), side="right")
    region = row_region[:, None] * 3 + col_region[None, :]
    region = region.reshape(height // wh, wh, width // ww, ww).transpose(0, 2, 1, 3)
    region = region.reshape(-1, wh * ww)
    differs = region[:, None, :] != region[:, :, None]
    return mx.array(np.where(differs, SHIFTED_WINDOW_MASK_VALUE, 0.0).astype(np.float32))
