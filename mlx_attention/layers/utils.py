"""Argument checks shared by every family: one helper per kind of value, one error style.

Every constructor argument goes through one of these. A wrong type raises
:class:`ArgumentTypeError` (a ``TypeError``), a value out of range a ``ValueError``; both name
the argument and quote the value. An integer is a ``numbers.Integral`` that is not a ``bool``
(``True`` passes ``isinstance(v, int)``); a float is any ``numbers.Real`` that is not a bool.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import numpy as np

# Any parameter or intermediate over this many elements is refused before it is allocated:
# MLX's random initialisers and index arithmetic crash (or allocate terabytes) beyond it.
MAX_ELEMENTS = 2**31
# MLX's shapes, strides and slice indices are 32-bit: no integer argument may exceed this.
MAX_INT = 2**31 - 1


class ArgumentTypeError(TypeError, ValueError):
    """An argument of the wrong type. A ``TypeError``; also a ``ValueError``, so code that
    catches the ``ValueError`` every invalid argument raised before keeps working."""


def _prefix(what: str) -> str:
    return f"{what}: " if what else ""


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def _check_range(value, name, minimum, maximum, what) -> None:
    if minimum is not None and value < minimum:
        raise ValueError(f"{_prefix(what)}{name}={value!r} must be >= {minimum}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{_prefix(what)}{name}={value!r} must be <= {maximum}")


def check_int(
    value, name: str, *, minimum: int | None = None, maximum: int = MAX_INT, what: str = ""
) -> int:
    """``value`` as an ``int`` in ``[minimum, maximum]``.

    Args:
        value: the argument.
        name: its name, quoted in the error.
        minimum, maximum: inclusive bounds (``minimum=None``: unbounded below; above, MLX's
            32-bit sizes bound every int).
        what: the module or function, prefixed to the error.
    """
    if not _is_int(value):
        raise ArgumentTypeError(
            f"{_prefix(what)}{name} must be an int, got {value!r} ({type(value).__name__})"
        )
    value = int(value)
    _check_range(value, name, minimum, maximum, what)
    return value


def check_float(
    value, name: str, *, minimum: float | None = None, maximum: float | None = None,
    below: float | None = None, above: float | None = None, what: str = "",
) -> float:  # fmt: skip
    """``value`` as a finite ``float``; ``minimum``/``maximum`` inclusive, ``above``/``below``
    exclusive bounds."""
    if not isinstance(value, numbers.Real) or isinstance(value, (bool, np.bool_)):
        raise ArgumentTypeError(
            f"{_prefix(what)}{name} must be a number, got {value!r} ({type(value).__name__})"
        )
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{_prefix(what)}{name}={value!r} must be finite")
    _check_range(value, name, minimum, maximum, what)
    if above is not None and not value > above:
        raise ValueError(f"{_prefix(what)}{name}={value!r} must be > {above}")
    if below is not None and not value < below:
        raise ValueError(f"{_prefix(what)}{name}={value!r} must be < {below}")
    return value


def check_bool(value, name: str, *, what: str = "") -> bool:
    """``value`` as a ``bool``; only ``True``/``False`` (and NumPy's) are booleans."""
    if not isinstance(value, (bool, np.bool_)):
        raise ArgumentTypeError(
            f"{_prefix(what)}{name} must be True or False, got {value!r} ({type(value).__name__})"
        )
    return bool(value)


def check_bools(what: str, **flags) -> None:
    """:func:`check_bool` for each keyword: ``check_bools("Block", qkv_bias=qkv_bias)``."""
    for name, value in flags.items():
        check_bool(value, name, what=what)


def check_sizes(what: str, **values) -> tuple[int, ...]:
    """:func:`check_int` with ``minimum=1`` for each keyword, returned in order."""
    return tuple(check_int(v, name, minimum=1, what=what) for name, v in values.items())


def check_int_list(value, name: str, *, minimum: int | None = None, what: str = "") -> list[int]:
    """A list or tuple of ints (each checked as :func:`check_int` checks one)."""
    if not isinstance(value, (list, tuple)):
        raise ArgumentTypeError(
            f"{_prefix(what)}{name} must be a list of ints, got {value!r} ({type(value).__name__})"
        )
    return [check_int(v, name, minimum=minimum, what=what) for v in value]


def check_str(value, name: str, *, what: str = "") -> str:
    """``value``, which must be a ``str``."""
    if not isinstance(value, str):
        raise ArgumentTypeError(
            f"{_prefix(what)}{name} must be a string, got {value!r} ({type(value).__name__})"
        )
    return value


def check_choice(
    value, name: str, choices: Sequence[str], *, what: str = "", ignore_case: bool = False
) -> str:
    """``value``, one of ``choices`` (compared lower-cased with ``ignore_case``); returns it
    lower-cased in that case."""
    check_str(value, name, what=what)
    key = value.lower() if ignore_case else value
    if key not in choices:
        raise ValueError(f"{_prefix(what)}{name}={value!r} must be one of {list(choices)}")
    return key


def check_pair(
    value, name: str, *, minimum: int | None = None, maximum: int = MAX_INT, what: str = ""
) -> tuple[int, int]:
    """An int or a pair of ints as ``(height, width)``; kecam's ``[1, k, k, 1]`` gives
    ``(k, k)``. Each entry is checked as :func:`check_int` checks an int."""
    if _is_int(value):
        pair = (value, value)
    elif isinstance(value, (Sequence, np.ndarray)) and not isinstance(value, str):
        pair = tuple(value)
        if len(pair) == 4:
            pair = pair[1:3]
        if len(pair) != 2:
            raise ValueError(f"{_prefix(what)}{name}={value!r} must be an int or a pair of ints")
    else:
        raise ArgumentTypeError(
            f"{_prefix(what)}{name} must be an int or a pair of ints, got {value!r} "
            f"({type(value).__name__})"
        )
    if not all(_is_int(v) for v in pair):
        raise ArgumentTypeError(
            f"{_prefix(what)}{name} must be an int or a pair of ints, got {value!r}"
        )
    pair = (int(pair[0]), int(pair[1]))
    if minimum is not None and min(pair) < minimum:
        raise ValueError(f"{_prefix(what)}{name}={value!r}: each entry must be >= {minimum}")
    if max(pair) > maximum:
        raise ValueError(f"{_prefix(what)}{name}={value!r}: each entry must be <= {maximum}")
    return pair


def check_shape(shape, what: str) -> tuple[int, ...]:
    """A weight shape (an int or a sequence of positive ints) of at most :data:`MAX_ELEMENTS`
    elements, as a tuple."""
    entries = shape if isinstance(shape, (list, tuple)) else (shape,)
    shape = tuple(check_int(n, "shape", minimum=1, what=what) for n in entries)
    check_size(math.prod(shape), f"{what}: shape={shape}")
    return shape


def check_size(elements: int, what: str) -> None:
    """Refuse a parameter or intermediate of more than :data:`MAX_ELEMENTS` elements before it
    is allocated (``what`` says which, with the arguments that size it)."""
    if elements > MAX_ELEMENTS:
        raise ValueError(f"{what}: {elements} elements is over the limit of 2**31 = {MAX_ELEMENTS}")


def to_2tuple(value, what: str = "value") -> tuple[int, int]:
    """An int or a pair as ``(height, width)``; kecam's ``[1, k, k, 1]`` form gives ``(k, k)``.
    ``what`` names the argument (see :func:`check_pair`)."""
    return check_pair(value, what)


def make_divisible(
    vv: float, divisor: int = 4, min_value: int | None = None, limit_round_down: float = 0.9
) -> int:
    """kecam's ``make_divisible``: round ``vv`` to a multiple of ``divisor``, never down by >10%."""
    vv = check_float(vv, "vv", what="make_divisible")
    divisor = check_int(divisor, "divisor", minimum=1, what="make_divisible")
    if min_value is not None:
        min_value = check_int(min_value, "min_value", what="make_divisible")
    limit_round_down = check_float(limit_round_down, "limit_round_down", what="make_divisible")
    min_value = divisor if min_value is None else min_value
    new_v = max(min_value, int(vv + divisor / 2) // divisor * divisor)
    if new_v < limit_round_down * vv:
        new_v += divisor
    return new_v


def check_input_shape(
    input_shape: Sequence[int], rank: int | tuple[int, ...], what: str
) -> tuple[int, ...]:
    """Validate a kecam ``inputs`` shape without the batch axis (positive ints, one of the
    ``rank`` lengths); returns it as a tuple of ints."""
    ranks = (rank,) if isinstance(rank, int) else rank
    expected = " or ".join(str(r) for r in ranks)
    if not isinstance(input_shape, (Sequence, np.ndarray)) or isinstance(input_shape, str):
        raise ArgumentTypeError(
            f"{what}: input_shape must be a tuple of {expected} positive ints (no batch axis), "
            f"got {input_shape!r}"
        )
    shape = tuple(input_shape)
    if not all(_is_int(s) for s in shape):
        raise ArgumentTypeError(
            f"{what}: input_shape must be {expected} positive ints (no batch axis), got {shape!r}"
        )
    shape = tuple(int(s) for s in shape)
    if len(shape) not in ranks or min(shape, default=0) < 1:
        raise ValueError(
            f"{what}: input_shape must be {expected} positive ints (no batch axis), got {shape!r}"
        )
    check_size(math.prod(shape), f"{what}: input_shape={shape}")
    return shape


def check_channels_last(data_format: str | None) -> None:
    if data_format is not None:
        check_str(data_format, "data_format")
    if data_format not in (None, "channels_last"):
        raise ValueError(f"data_format={data_format!r}: only channels_last is supported")
