"""Small argument helpers shared by every family: int-or-pair, divisibility, shape checks."""

from __future__ import annotations

from collections.abc import Sequence


def to_2tuple(value: int | Sequence[int], what: str = "value") -> tuple[int, int]:
    """An int or a pair as ``(height, width)``; kecam's ``[1, k, k, 1]`` form gives ``(k, k)``."""
    if isinstance(value, int):
        return (value, value)
    value = tuple(value)
    if len(value) == 4:
        value = value[1:3]
    if len(value) != 2 or not all(isinstance(v, int) for v in value):
        raise ValueError(f"{what} must be an int or a pair of ints, got {value!r}")
    return value


def make_divisible(
    vv: float, divisor: int = 4, min_value: int | None = None, limit_round_down: float = 0.9
) -> int:
    """kecam's ``make_divisible``: round ``vv`` to a multiple of ``divisor``, never down by >10%."""
    min_value = divisor if min_value is None else min_value
    new_v = max(min_value, int(vv + divisor / 2) // divisor * divisor)
    if new_v < limit_round_down * vv:
        new_v += divisor
    return new_v


def check_input_shape(
    input_shape: Sequence[int], rank: int | tuple[int, ...], what: str
) -> tuple[int, ...]:
    """Validate a kecam ``inputs`` shape without the batch axis; returns it as a tuple."""
    ranks = (rank,) if isinstance(rank, int) else rank
    shape = tuple(input_shape)
    if len(shape) not in ranks or not all(isinstance(s, int) and s > 0 for s in shape):
        expected = " or ".join(str(r) for r in ranks)
        raise ValueError(
            f"{what}: input_shape must be {expected} positive ints (no batch axis), got {shape!r}"
        )
    return shape


def check_channels_last(data_format: str | None) -> None:
    if data_format not in (None, "channels_last"):
        raise ValueError(f"data_format={data_format!r}: only channels_last is supported")
