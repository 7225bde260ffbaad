"""Keras pooling and TF-"SAME" padding on channels-last maps.

TF "SAME" pads ``max((ceil(n / s) - 1) * s + k - n, 0)`` cells per axis, the odd one at the
bottom/right. A max pool pads with ``-inf`` (padding never wins); an average pool leaves the
padded cells out of its divisor. kecam's AotNet stem instead zero-pads *before* a VALID max
pool (``ZeroPadding2D(1)`` + ``MaxPool2D(3, 2)``): after a swish the zeros win over negative
values, so that stem calls :func:`zero_pad2d` and then :func:`max_pool2d` with ``"valid"``.
"""

from __future__ import annotations

import mlx.core as mx

from .geometry import to_pair


def same_pads(size: int, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """TF "SAME" padding ``(before, after)`` of one axis: the extra cell goes after."""
    out = -(-size // stride)
    total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


def pool_pads(
    height: int, width: int, pool_size, strides, padding: str = "valid"
) -> list[tuple[int, int]]:
    """``[(top, bottom), (left, right)]`` of a Keras pool with ``padding`` ``"valid"`` or
    ``"same"`` on an ``height x width`` map."""
    mode = _check_padding(padding)
    if mode == "valid":
        return [(0, 0), (0, 0)]
    (kh, kw), (sh, sw) = to_pair(pool_size, "pool_size"), to_pair(strides, "strides")
    return [same_pads(height, kh, sh), same_pads(width, kw, sw)]


def pool_output_size(height: int, width: int, pool_size, strides, padding: str = "valid"):
    """The ``(H', W')`` a Keras pool gives: ``ceil(n / s)`` for SAME, ``(n - k) // s + 1`` for
    VALID; a ``ValueError`` where VALID would be empty."""
    (kh, kw), (sh, sw) = to_pair(pool_size, "pool_size"), to_pair(strides, "strides")
    if _check_padding(padding) == "same":
        return -(-height // sh), -(-width // sw)
    if height < kh or width < kw:
        raise ValueError(
            f"pool_size={(kh, kw)} is larger than the {height}x{width} map: a VALID pool "
            "would be empty"
        )
    return (height - kh) // sh + 1, (width - kw) // sw + 1


def zero_pad2d(x: mx.array, padding) -> mx.array:
    """Keras ``ZeroPadding2D``: an int, ``(rows, cols)``, or ``((top, bottom), (left, right))``.

    Shape:
        ``[B, H, W, C] -> [B, H + top + bottom, W + left + right, C]``
    """
    if isinstance(padding, int):
        rows = cols = (padding, padding)
    else:
        rows, cols = (p if isinstance(p, (tuple, list)) else (p, p) for p in padding)
    return mx.pad(x, [(0, 0), tuple(rows), tuple(cols), (0, 0)])


def _check_padding(padding: str) -> str:
    if not isinstance(padding, str) or padding.lower() not in ("valid", "same"):
        raise ValueError(f"padding={padding!r} must be 'valid' or 'same'")
    return padding.lower()


def _windows(x: mx.array, pool_size, strides):
    """The ``kh * kw`` strided slices of the (already padded) ``x``: tap ``(i, j)`` of every
    output cell."""
    (kh, kw), (sh, sw) = pool_size, strides
    height, width = x.shape[1], x.shape[2]
    out_h, out_w = (height - kh) // sh + 1, (width - kw) // sw + 1
    for i in range(kh):
        for j in range(kw):
            yield x[:, i : i + (out_h - 1) * sh + 1 : sh, j : j + (out_w - 1) * sw + 1 : sw]


def max_pool2d(x: mx.array, pool_size=2, strides=None, padding: str = "valid") -> mx.array:
    """Keras ``MaxPool2D(pool_size, strides, padding)``: SAME pads with ``-inf``.

    Args:
        x: ``[B, H, W, C]``.
        pool_size: int or pair.
        strides: int or pair; ``None`` means ``pool_size`` (Keras).
        padding: ``"valid"`` or ``"same"`` (TF's: the odd cell at the bottom/right).

    Shape:
        ``[B, H, W, C] -> [B, H', W', C]`` (:func:`pool_output_size`)
    """
    pool, stride = _pair_args(pool_size, strides)
    pool_output_size(x.shape[1], x.shape[2], pool, stride, padding)
    (top, bottom), (left, right) = pool_pads(x.shape[1], x.shape[2], pool, stride, padding)
    if top or bottom or left or right:
        x = mx.pad(x, [(0, 0), (top, bottom), (left, right), (0, 0)], constant_values=-mx.inf)
    out = None
    for tap in _windows(x, pool, stride):
        out = tap if out is None else mx.maximum(out, tap)
    return out


def avg_pool2d(x: mx.array, pool_size=2, strides=None, padding: str = "valid") -> mx.array:
    """Keras ``AveragePooling2D(pool_size, strides, padding)``: SAME leaves the padded cells
    out of the divisor (a corner cell of a 3x3 window over a 2x2 overlap divides by 4).

    Args:
        x: ``[B, H, W, C]``.
        pool_size: int or pair.
        strides: int or pair; ``None`` means ``pool_size`` (Keras).
        padding: ``"valid"`` or ``"same"`` (TF's: the odd cell at the bottom/right).

    Shape:
        ``[B, H, W, C] -> [B, H', W', C]`` (:func:`pool_output_size`)
    """
    pool, stride = _pair_args(pool_size, strides)
    pool_output_size(x.shape[1], x.shape[2], pool, stride, padding)
    (top, bottom), (left, right) = pool_pads(x.shape[1], x.shape[2], pool, stride, padding)
    # half-precision sums accumulate in float32, as TF's pooling kernels do
    acc = mx.float32 if x.dtype in (mx.float16, mx.bfloat16) else x.dtype
    padded = x.astype(acc)
    if top or bottom or left or right:
        padded = mx.pad(padded, [(0, 0), (top, bottom), (left, right), (0, 0)])
    total = None
    for tap in _windows(padded, pool, stride):
        total = tap if total is None else total + tap
    if top or bottom or left or right:
        ones = mx.pad(
            mx.ones((1, x.shape[1], x.shape[2], 1), acc),
            [(0, 0), (top, bottom), (left, right), (0, 0)],
        )
        count = sum(_windows(ones, pool, stride))
    else:
        count = pool[0] * pool[1]
    return (total / count).astype(x.dtype)


def _pair_args(pool_size, strides):
    pool = to_pair(pool_size, "pool_size")
    stride = pool if strides is None else to_pair(strides, "strides")
    if min(pool) < 1 or min(stride) < 1:
        raise ValueError(f"pool_size={pool} and strides={stride} must be positive")
    return pool, stride
