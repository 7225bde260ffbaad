"""Every case of ``cases.py`` against kecam's numbers: committed fixtures, and live when the
``reference`` extra (TensorFlow + kecam) is installed."""

from __future__ import annotations

import mlx.core as mx
import pytest
from cases import CASES
from parity import build_module, run_case


@pytest.mark.parametrize("case", CASES, ids=[f"{c.family}/{c.id}" for c in CASES])
def test_matches_kecam_fixture(case):
    run_case(case)


@pytest.mark.reference
@pytest.mark.parametrize(
    "case", [c for c in CASES if c.version == "1.4.3"], ids=lambda c: f"{c.family}/{c.id}"
)
def test_matches_kecam_live(case, kecam_live, tmp_path):
    tf, kecam_layers, build = kecam_live
    import numpy as np

    model, inputs, outputs = build(case, kecam_layers, tf, np.random.default_rng(7))
    path = tmp_path / "weights.h5"
    model.save_weights(str(path))
    run_case(case, path, inputs, outputs)


def _one_case_per_name() -> list:
    first = {}
    for case in CASES:
        if case.version == "1.4.3":
            first.setdefault(case.kecam, case)
    return list(first.values())


@pytest.mark.parametrize("dtype", [mx.float16, mx.bfloat16], ids=str)
@pytest.mark.parametrize("case", _one_case_per_name(), ids=lambda c: f"{c.family}/{c.id}")
def test_half_precision_runs_in_its_dtype_and_matches_kecam(case, dtype):
    """Weights and inputs in float16/bfloat16: the output keeps the dtype (softmax and norm
    statistics accumulate in float32) and stays within the half-precision tolerance."""
    run_case(case, dtype=dtype)


@pytest.mark.parametrize("case", _one_case_per_name(), ids=lambda c: f"{c.family}/{c.id}")
def test_an_input_of_another_shape_is_refused(case):
    """kecam builds its layers for ``input_shape``; another channel count, size or rank is a
    ValueError, not a broadcast into a silently wrong answer."""
    module = build_module(case)
    first, *rest = case.input_shapes
    wrong = [first[:-1] + (first[-1] + 1,), first[1:]] + (
        [(first[0] + 1, *first[1:])] * (len(first) > 1)
    )
    for shape in wrong:
        inputs = [mx.zeros((2, *shape))] + [mx.zeros((2, *s)) for s in rest]
        with pytest.raises(ValueError, match="was built for inputs of shape"):
            module(*inputs)
