"""Property: for every kecam name in ``attention_layers``, any one argument replaced by a wrong
type or an out-of-range value either builds a module whose call on a small input returns finite
output of a sane shape, or raises ``ValueError`` / ``TypeError`` naming that argument at
construction. Never another exception, never a crash, never a huge allocation.

The bases are the parity cases (``tests/cases.py``), one per kecam name, plus hand-written ones
for the helpers without a fixture. Hypothesis draws the name, the argument and its value
(derandomised). The sweep runs in a child process under an address-space limit, so a crash or an
accidental 10^12-element allocation fails the test instead of killing the run; the child is this
file run as a script.
"""

from __future__ import annotations

import inspect
import json
import math
import os
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from cases import CASES, FIXTURES  # noqa: E402

KECAM = json.loads((FIXTURES / "kecam_signatures.json").read_text())

# Bases for the kecam names without a parity case: (input_shapes, kwargs, call batch).
EXTRA_BASES = {
    "CompatibleExtractPatches": (((8, 7, 4),), {"sizes": 3, "strides": 2}, 2),
    "WindowAttentionMask": (
        ((2, 16, 16),),
        {
            "height": 8,
            "width": 8,
            "window_height": 4,
            "window_width": 4,
            "shift_height": 2,
            "shift_width": 2,
        },
        2 * 4,
    ),  # fmt: skip
    "fold_by_conv2d_transpose": (((4, 4, 18),), {"kernel_size": 3, "strides": 2}, 2),
    "make_divisible": ((), {"vv": 30.0, "divisor": 8}, 0),
    "pad_to_divisible_by_window_size": (((6, 7, 4),), {"window_size": 4}, 2),
    "reverse_padded_for_window_size": (((8, 8, 4),), {"padding_height": 2, "padding_width": 1}, 2),
    "window_partition": (((8, 8, 4),), {"window_height": 4}, 2),
    "window_reverse": (
        ((4, 4, 4),),
        {"patch_height": 2, "patch_width": 2, "window_height": 4, "window_width": 4},
        2 * 4,
    ),  # fmt: skip
}

# Arguments that take a module, array or callable (or are kecam's unused **kwargs): not drawn.
NOT_DRAWN = {"self", "kwargs", "pos_emb", "global_query", "mask", "attention_block"}

# Wrong types and values out of range, drawn for one argument at a time.
BAD_VALUES = [
    True, False, None, "x", 2.0, 2.5, -1, 0, 1, 3, -7, 33, 2**40, float("nan"), float("inf"),
    [], (1, 2, 3), (0, 2), (2, True), 1e-9, -0.5, 0.999,
]  # fmt: skip
BAD_SHAPES = [
    "input_shape", None, 8, (), (True, 8, 16), (8.0, 8, 16), (0, 8, 16), (-2, 8, 16),
    (10**6, 10**6, 8), (4,) * 6,
]  # fmt: skip


def base_calls() -> dict[str, tuple[tuple, dict, int]]:
    """Every kecam name: ``(input_shapes, kwargs by name, batch of the call)``."""
    from mlx_attention import attention_layers

    out = dict(EXTRA_BASES)
    for case in CASES:
        if case.kecam in out or case.resize_from or not case.in_attention_layers:
            continue
        if case.version != KECAM[case.kecam]["version"]:
            continue
        target = getattr(attention_layers, case.kecam)
        params = [p for p in inspect.signature(target).parameters if p != "input_shape"]
        kwargs = dict(zip(params, case.args)) | dict(case.kwargs)
        out[case.kecam] = (case.input_shapes, kwargs, 2)
    missing = sorted(set(KECAM) - set(out))
    assert not missing, f"no base for {missing}"
    return out


def drawn_arguments(name: str) -> list[str]:
    params = [p[0] for p in KECAM[name]["params"] if p[0] not in NOT_DRAWN]
    return ["input_shape" if p in ("inputs", "patches") else p for p in params]


def build(name: str, shapes: tuple, kwargs: dict):
    from mlx_attention import attention_layers

    target = getattr(attention_layers, name)
    if name == "make_divisible":
        return target(**kwargs)
    kwargs = dict(kwargs)
    shape = kwargs.pop("input_shape", shapes[0] if shapes else None)
    if name[0].isupper():
        return target(input_shape=shape, **kwargs)
    return target(shape, **kwargs)


def _arrays(value) -> list:
    import mlx.core as mx

    if isinstance(value, mx.array):
        return [value]
    if isinstance(value, (list, tuple)):
        return [a for v in value for a in _arrays(v)]
    return []


def check_one(name: str, argument: str, value) -> str:
    """Build ``name`` with ``argument=value`` over its base; ``"built"`` or ``"refused"``, or
    an AssertionError saying what went wrong."""
    import mlx.core as mx
    import numpy as np

    shapes, kwargs, batch = base_calls()[name]
    kwargs = dict(kwargs) | {argument: value}
    try:
        module = build(name, shapes, kwargs)
    except (ValueError, TypeError) as error:
        message = str(error)
        named = argument in message
        if not named and not isinstance(error, TypeError):
            # a value of the right kind may clash with another argument or the input shape:
            # then the error quotes that one (``other=value``)
            named = re.search(r"\b[a-z_]+=", message) is not None
        assert named, (
            f"{name}({argument}={value!r}): {type(error).__name__} does not name "
            f"{argument!r}: {message}"
        )
        return "refused"
    if name == "make_divisible":
        assert isinstance(module, int) and module >= 0, f"make_divisible gave {module!r}"
        return "built"
    call_shapes = shapes if argument != "input_shape" else (tuple(value), *shapes[1:])
    if name == "WindowAttentionMask":  # the scores of every window of the map
        batch = (
            2
            * math.ceil(kwargs["height"] / kwargs["window_height"])
            * math.ceil(kwargs["width"] / kwargs["window_width"])
        )
    elif name == "window_reverse":  # every window of every image
        rows, cols = kwargs["patch_height"], kwargs["patch_width"]
        batch = 2 * rows * (cols if cols > 0 else rows)
    inputs = [
        mx.random.normal((batch, *s), key=mx.random.key(i)) for i, s in enumerate(call_shapes)
    ]
    try:
        result = module(*inputs)
        arrays = _arrays(result)
        mx.eval(arrays)
    except Exception as error:  # noqa: BLE001 - any failure of a built module is the finding
        raise AssertionError(
            f"{name}({argument}={value!r}) built but its call raised {type(error).__name__}: "
            f"{error}"
        ) from None
    assert arrays, f"{name}({argument}={value!r}) returned no array"
    for out in arrays:
        assert out.shape and out.shape[0] > 0 and out.size > 0, (
            f"{name}({argument}={value!r}) returned an empty shape {out.shape}"
        )
        if mx.issubdtype(out.dtype, mx.floating):
            assert np.isfinite(np.asarray(out.astype(mx.float32))).all(), (
                f"{name}({argument}={value!r}) returned non-finite values"
            )
    return "built"


def _sweep(name: str, max_examples: int, counts: dict[str, int]):
    """A derandomised hypothesis test over ``name``'s arguments, one argument at a time."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    values = st.one_of(
        st.sampled_from(BAD_VALUES),
        st.integers(-3, 40),
        st.floats(-2.0, 40.0),
        st.tuples(st.integers(0, 9), st.integers(0, 9)),
    )
    shapes = st.one_of(
        st.sampled_from(BAD_SHAPES), st.lists(st.integers(-1, 9), min_size=1, max_size=5)
    )
    draw = st.sampled_from(drawn_arguments(name)).flatmap(
        lambda a: st.tuples(st.just(a), shapes if a == "input_shape" else values)
    )

    @settings(
        derandomize=True, max_examples=max_examples, deadline=None, database=None,
        suppress_health_check=list(HealthCheck),
    )  # fmt: skip
    @given(draw)
    def sweep(pair):
        counts[check_one(name, *pair)] += 1

    return sweep


def run_sweep(max_examples: int) -> dict[str, int]:
    """Every kecam name's sweep, in this process; the counts of built and refused examples."""
    counts = {"built": 0, "refused": 0}
    for name in sorted(KECAM):
        _sweep(name, max_examples, counts)()
    return counts


def _limit_memory() -> None:
    limit = 8 * 2**30  # a 10^12-element allocation must fail here, not take the machine
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def _run_child(max_examples: int, timeout: float) -> tuple[dict, float]:
    start = time.monotonic()
    child = subprocess.run(
        [sys.executable, __file__, str(max_examples)], capture_output=True, text=True,
        timeout=timeout, preexec_fn=_limit_memory, cwd=HERE.parent,
        env=os.environ | {"MLX_ATTENTION_KERNELS": "off"},
    )  # fmt: skip
    elapsed = time.monotonic() - start
    assert child.returncode == 0, (
        f"the sweep exited with {child.returncode}:\n{child.stdout[-4000:]}\n{child.stderr[-8000:]}"
    )
    return json.loads(child.stdout.strip().splitlines()[-1]), elapsed


def test_every_argument_is_built_or_refused_by_name():
    """The default run: a few examples per kecam name, about a minute in all."""
    counts, elapsed = _run_child(max_examples=60, timeout=600)
    print(f"{counts} in {elapsed:.0f} s")
    assert counts["built"] + counts["refused"] > 0


@pytest.mark.slow
def test_every_argument_is_built_or_refused_by_name_long(request):
    """The long sweep (``-m slow``): many more examples per kecam name."""
    if "slow" not in (request.config.getoption("markexpr") or ""):
        pytest.skip("needs -m slow (the long sweep)")
    counts, elapsed = _run_child(max_examples=1000, timeout=3600)
    print(f"{counts} in {elapsed:.0f} s")


if __name__ == "__main__":
    print(json.dumps(run_sweep(int(sys.argv[1]))))
