"""Image resizes written to match TensorFlow's ``tf.image.resize``, channels-last.

- :func:`resize_bilinear`: ``method="bilinear", antialias=False`` (TF's ``ResizeBilinear`` with
  half-pixel centres), the resize of kecam's ``PreprocessInput`` and of some kecam networks
  (CoaT), as a gather + lerp of MLX arrays, so it runs inside a model and has a gradient.
- :func:`resize_bicubic_antialias`: ``method="bicubic", antialias=True`` (TF's
  ``ScaleAndTranslate`` with the Keys cubic kernel), the resize of kecam's ImageNet evaluation;
  a sum over each output's span of taps in TF's order, meant for images before the model.

Both build their per-axis tables in float32 with TF's own expressions, so the sampling positions
(and the floor/ceil decisions on them) are TF's, and apply them in TF's order of operations (on
this Linux CPU, both give TF's float32 results bit for bit).
"""

from __future__ import annotations

import functools
import math

import mlx.core as mx
import numpy as np

from .geometry import check_positive, to_pair

# TF's sampling_kernels.h: the Keys cubic kernel (a = -0.5) reaches 2 pixels on each side.
KEYS_CUBIC_RADIUS = 2.0


def _as_batch(x: mx.array, what: str) -> tuple[mx.array, bool]:
    """``x`` as ``[B, H, W, C]`` in a floating dtype (integers and bool become float32, as TF)."""
    if x.ndim not in (3, 4):
        raise ValueError(f"{what}: expected [H, W, C] or [B, H, W, C], got shape {x.shape}")
    if not mx.issubdtype(x.dtype, mx.floating):
        x = x.astype(mx.float32)
    return (x[None], True) if x.ndim == 3 else (x, False)


def _bilinear_axis(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """TF's ``compute_interpolation_weights`` with the half-pixel scaler, in float32.

    Output ``i`` samples ``t = (i + 0.5) * in/out - 0.5``: it reads ``lower = max(floor(t), 0)``
    and ``upper = min(ceil(t), in - 1)`` and weighs ``upper`` by ``t - floor(t)``.
    """
    scale = np.float32(in_size) / np.float32(out_size)
    t = (np.arange(out_size, dtype=np.float32) + np.float32(0.5)) * scale - np.float32(0.5)
    floor = np.floor(t)
    lower = np.maximum(floor, 0).astype(np.int32)
    upper = np.minimum(np.ceil(t), in_size - 1).astype(np.int32)
    return lower, upper, (t - floor).astype(np.float32)


def resize_bilinear(x: mx.array, size) -> mx.array:
    """``tf.image.resize(x, size, method="bilinear", antialias=False)``.

    Half-pixel centres, no antialiasing (a downscale by more than 2 skips pixels, as TF does), the
    aspect ratio not kept. Like TF it interpolates along the width first, then along the height:
    ``top = tl + (tr - tl) * dx``, ``bottom = bl + (br - bl) * dx``, ``top + (bottom - top) * dy``.
    A size equal to the input's returns the input (TF's weights are then exactly 0).

    Args:
        x: ``[B, H, W, C]`` or ``[H, W, C]``; integer inputs are resized in float32.
        size: output ``(height, width)`` or an int for both.

    Shape:
        ``[B, H, W, C] -> [B, height, width, C]`` (``[H, W, C] -> [height, width, C]``).
    """
    out_h, out_w = to_pair(size, "size")
    check_positive("size", (out_h, out_w))
    x, unbatched = _as_batch(x, "resize_bilinear")
    in_h, in_w = x.shape[1:3]
    if (in_h, in_w) != (out_h, out_w):
        left, right, dx = _bilinear_axis(in_w, out_w)
        left_px, right_px = mx.take(x, mx.array(left), axis=2), mx.take(x, mx.array(right), axis=2)
        x = left_px + (right_px - left_px) * mx.array(dx, dtype=x.dtype)[:, None]
        top, bottom, dy = _bilinear_axis(in_h, out_h)
        top_px, bottom_px = mx.take(x, mx.array(top), axis=1), mx.take(x, mx.array(bottom), axis=1)
        x = top_px + (bottom_px - top_px) * mx.array(dy, dtype=x.dtype)[:, None, None]
    return x[0] if unbatched else x


def keys_cubic(x: np.ndarray) -> np.ndarray:
    """TF's ``KeysCubicKernelFunc`` (a = -0.5) in float32."""
    x = np.abs(np.asarray(x, np.float32))
    near = ((np.float32(1.5) * x - np.float32(2.5)) * x) * x + np.float32(1.0)
    far = ((np.float32(-0.5) * x + np.float32(2.5)) * x - np.float32(4.0)) * x + np.float32(2.0)
    return np.where(x >= 2, np.float32(0), np.where(x >= 1, far, near)).astype(np.float32)


@functools.lru_cache(maxsize=64)  # evaluation sees the same few sizes over and over
def scale_and_translate_spans(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray]:
    """One axis of TF's antialiased ``ScaleAndTranslate``: ``(starts [out], weights [out, span])``.

    TF's ``ComputeSpansCore`` with ``scale = out/in``, no translation and the Keys cubic kernel:
    output ``i`` samples ``s = (i + 0.5) / scale``; when downscaling the kernel is widened by
    ``1 / scale``; taps ``j`` in ``[ceil(s - r - 0.5), floor(s + r - 0.5)]``, clamped to the image,
    weigh ``k(|j + 0.5 - s| / width)``, and each row is normalised to sum 1 (a row whose weights
    sum to about 0 stays 0, as in TF). Output ``i`` reads inputs ``starts[i] + k``; the weights
    past a span's end are 0.
    """
    scale = np.float32(out_size) / np.float32(in_size)
    inv_scale = np.float32(1.0 / float(scale))
    kernel_scale = max(inv_scale, np.float32(1.0))
    one_over_kernel_scale = np.float32(1.0) / kernel_scale
    radius = np.float32(KEYS_CUBIC_RADIUS) * kernel_scale
    span = min(2 * math.ceil(radius) + 1, in_size)
    starts = np.zeros(out_size, np.int32)
    weights = np.zeros((out_size, span), np.float32)
    for i in range(out_size):
        sample = (np.float32(i) + np.float32(0.5)) * inv_scale
        start = min(max(math.ceil(sample - radius - np.float32(0.5)), 0), in_size - 1)
        end = min(max(math.floor(sample + radius - np.float32(0.5)), 0), in_size - 1) + 1
        taps = np.arange(start, end, dtype=np.float32)
        row = keys_cubic((taps + np.float32(0.5) - sample) * one_over_kernel_scale)
        total = np.cumsum(row, dtype=np.float32)[-1]  # summed in order, as TF does
        if abs(total) >= 1000.0 * np.finfo(np.float32).tiny:
            weights[i, : end - start] = row * (np.float32(1.0) / total)
        starts[i] = start
    starts.flags.writeable = weights.flags.writeable = False  # shared by the cache
    return starts, weights


def _gather_spans(x: mx.array, in_size: int, out_size: int, axis: int) -> mx.array:
    """Resample ``axis`` of ``x``: TF's ``GatherRows`` / ``GatherColumns``, which add the taps of a
    span one after the other in float32 (the same order here, so the sums round as TF's do)."""
    starts, weights = scale_and_translate_spans(in_size, out_size)
    shape = [1] * x.ndim
    shape[axis] = out_size
    out = mx.zeros(x.shape[:axis] + (out_size,) + x.shape[axis + 1 :], dtype=x.dtype)
    for k in range(weights.shape[1]):
        # a tap past the image has weight 0: read the last pixel instead (0 * x adds nothing)
        source = mx.array(np.minimum(starts + k, in_size - 1))
        weight = mx.array(weights[:, k], dtype=x.dtype).reshape(shape)
        out = out + weight * mx.take(x, source, axis=axis)
    return out


def resize_bicubic_antialias(x: mx.array, size) -> mx.array:
    """``tf.image.resize(x, size, method="bicubic", antialias=True)``.

    TF's ``ScaleAndTranslate(kernel_type="keyscubic", antialias=True)``: a separable Keys cubic
    filter (a = -0.5), widened by the scale factor when downscaling so every input pixel counts,
    renormalised where it meets the border. Values are not clipped (they may leave ``[0, 255]``).

    Args:
        x: ``[B, H, W, C]`` or ``[H, W, C]``; integer inputs are resized in float32.
        size: output ``(height, width)`` or an int for both.

    Shape:
        ``[B, H, W, C] -> [B, height, width, C]`` (``[H, W, C] -> [height, width, C]``).
    """
    out_h, out_w = to_pair(size, "size")
    check_positive("size", (out_h, out_w))
    x, unbatched = _as_batch(x, "resize_bicubic_antialias")
    in_h, in_w = x.shape[1:3]
    x = _gather_spans(x, in_h, out_h, axis=1)
    x = _gather_spans(x, in_w, out_w, axis=2)
    return x[0] if unbatched else x
