"""Calls on unusual inputs (issue 12): integer and bool inputs, empty batches, NaN and Inf
pixels, float16 gradients, threads. Each is compared with what kecam does."""

from __future__ import annotations

import mlx.core as mx
import mlx.nn as nn
import numpy as np
import pytest
from cases import CASES
from helpers import assert_matches
from parity import build_module, load_arrays

from mlx_attention import attention_layers

_IDS = [f"{c.family}/{c.id}" for c in CASES]


def _outputs(result) -> list[mx.array]:
    return list(result) if isinstance(result, (list, tuple)) else [result]


@pytest.mark.parametrize("case", CASES, ids=_IDS)
def test_integer_and_bool_inputs_compute_in_float32(case):
    """kecam's inputs are float32 tensors: an int32 or bool input gives the float32 result of
    the same values, never a result truncated to the input's dtype."""
    module = build_module(case)
    inputs, _ = load_arrays(case)
    integral = [np.round(3 * x) for x in inputs]  # values from -9 to 9, and 0 / 1 for bool
    for dtype in (mx.int32, mx.bool_):
        given = [mx.array(x).astype(dtype) for x in integral]
        expected = _outputs(module(*[x.astype(mx.float32) for x in given]))
        results = _outputs(module(*given))
        assert len(results) == len(expected)
        for ours, float_path in zip(results, expected):
            assert ours.dtype == float_path.dtype
            assert_matches(ours, np.asarray(float_path))


def test_complex_inputs_are_refused():
    module = attention_layers.layer_norm((4, 6), name="ln_")
    with pytest.raises(TypeError, match="complex64"):
        module(mx.zeros((1, 4, 6), mx.complex64))


@pytest.mark.parametrize("case", CASES, ids=_IDS)
def test_an_empty_batch_gives_an_empty_result_of_the_right_shape(case):
    """kecam returns an empty result for ``B = 0``: the shape of a batch of one with 0 in front
    (index tables that do not depend on the batch come back as they are)."""
    module = build_module(case)
    inputs, _ = load_arrays(case)
    one = _outputs(module(*[mx.array(x[:1]) for x in inputs]))
    empty = _outputs(module(*[mx.array(x[:0]) for x in inputs]))
    mx.eval(empty)
    assert len(empty) == len(one)
    for out, single in zip(empty, one):
        assert out.dtype == single.dtype
        if single.shape[0] == 1:
            assert out.shape == (0, *single.shape[1:])
        else:  # a constant of the layer (PairWiseRelativePositionalEmbedding's tables)
            assert out.shape == single.shape and mx.array_equal(out, single)


def test_an_empty_batch_in_training_leaves_the_batch_norm_statistics_alone():
    module = attention_layers.batchnorm_with_activation((3, 4, 6), name="bn_")
    module.train()
    assert isinstance(module.bn, nn.BatchNorm)
    before = {k: np.array(v) for k, v in module.bn.state.items() if isinstance(v, mx.array)}
    assert module(mx.ones((0, 3, 4, 6))).shape == (0, 3, 4, 6)
    assert {"running_mean", "running_var"} <= before.keys()
    for key, value in before.items():
        assert np.array_equal(np.array(module.bn[key]), value), key
