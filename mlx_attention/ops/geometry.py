"""Per-axis index maps shared by ``ops`` (index arrays) and ``kernels`` (the ``params`` array).

Every gather of this package (window partition, unfold, halo blocks, NAT neighbourhoods) reads, for
window ``i`` and tap ``a`` of one spatial axis, input position ``source(i, a)`` or a zero. The two
axes are independent, so one :class:`AxisMap` per axis describes the whole gather, and fold is the
sum over the preimage of the same map.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PARAMS_PER_AXIS = 9


@dataclass(frozen=True)
class AxisMap:
    """How one spatial axis of a gather reads its input.

    Without ``clamp``: ``t = i*stride + a*dilation - pad + shift``, wrapped modulo ``period`` when
    ``period > 0`` (Swin's cyclic shift over the padded map); positions outside ``[0, size)`` read
    zero. With ``clamp`` (NAT/DiNAT): ``t = nat_start(i) + a*dilation``, always inside the image.

    Args:
        size: input length along the axis.
        grid: number of windows (output length along the axis).
        kernel: taps per window.
        stride: step between window starts. Default: ``1``.
        dilation: step between taps. Default: ``1``.
        pad: zero padding before the first element. Default: ``0``.
        shift: cyclic shift added before wrapping. Default: ``0``.
        period: wrap length; ``0`` means no wrap. Default: ``0``.
        clamp: NAT window start clamped inside the image. Default: ``False``.
    """

    size: int
    grid: int
    kernel: int
    stride: int = 1
    dilation: int = 1
    pad: int = 0
    shift: int = 0
    period: int = 0
    clamp: bool = False

    def params(self) -> list[int]:
        """The axis' slice of a kernel's int32 ``params`` array (layout fixed by the bodies)."""
        return [
            self.size, self.grid, self.kernel, self.stride, self.dilation,
            self.pad, self.shift, self.period, int(self.clamp),
        ]  # fmt: skip

    def nat_start(self) -> np.ndarray:
        """First tap of every window under kecam's extract-then-replicate-pad rule, ``[grid]``."""
        k, d, size = self.kernel, self.dilation, self.size
        half, valid = (k - 1) // 2, size - (k - 1) * d
        y = np.arange(self.grid)
        top, bottom = y < half * d, y >= half * d + valid
        start = y - half * d
        start = np.where(top, y % d, start)
        return np.where(bottom, valid - d + (y - half * d - valid) % d, start)

    def source(self) -> np.ndarray:
        """Position read by window ``i``, tap ``a``, or ``-1`` for a zero: ``[grid, kernel]``."""
        i = np.arange(self.grid)[:, None]
        a = np.arange(self.kernel)[None, :]
        if self.clamp:
            return self.nat_start()[:, None] + a * self.dilation
        t = i * self.stride + a * self.dilation - self.pad + self.shift
        if self.period > 0:
            t = t % self.period
        return np.where((t >= 0) & (t < self.size), t, -1)

    def preimage(self) -> np.ndarray:
        """For fold: the window whose tap ``a`` reads position ``y``, or ``-1``: ``[size, kernel]``.

        Raises ``ValueError`` for a clamped map, where one ``(y, a)`` can have several windows.
        """
        if self.clamp:
            raise ValueError("a clamped (NAT) map has no one-window preimage; use clamp=False")
        out = np.full((self.size, self.kernel), -1, np.int64)
        src = self.source()
        i, a = np.nonzero(src >= 0)
        out[src[i, a], a] = i
        return out


def to_pair(value, what: str) -> tuple[int, int]:
    """An int or a pair of ints as ``(height, width)``; kecam's ``[1, k, k, 1]`` gives 1, 2."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return (int(value), int(value))
    try:
        pair = tuple(int(v) for v in value)
    except TypeError:
        raise ValueError(f"{what} must be an int or a pair of ints, got {value!r}") from None
    if len(pair) == 4:
        pair = pair[1:3]
    if len(pair) != 2:
        raise ValueError(f"{what} must be an int or a pair of ints, got {value!r}")
    return pair


def check_positive(what: str, pair: tuple[int, int], minimum: int = 1) -> None:
    if min(pair) < minimum:
        raise ValueError(f"{what} must be >= {minimum}, got {pair}")


def check_image(x, rank: int, what: str) -> None:
    if x.ndim != rank:
        raise ValueError(f"{what}: expected a rank-{rank} channels-last array, got shape {x.shape}")
