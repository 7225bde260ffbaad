"""Calls on unusual inputs (issue 12): integer and bool inputs, empty batches, NaN and Inf
pixels, float16 gradients, threads. Each is compared with what kecam does."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import mlx.core as mx
import mlx.nn as nn
import numpy as np
import pytest
from cases import CASES
from helpers import assert_matches
from mlx.utils import tree_flatten, tree_map
from parity import build_module, load_arrays

from mlx_attention import attention_layers, ops
from mlx_attention.convert import load_keras_weights
from mlx_attention.convert.loader import declared_layers
from mlx_attention.ops.geometry import to_pair

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


# --- NaN and Inf: they reach exactly the outputs they reach in kecam ---------------------------


def _non_finite(x) -> tuple[np.ndarray, ...]:
    x = np.asarray(x.astype(mx.float32) if isinstance(x, mx.array) else x)
    return np.isnan(x), np.isposinf(x), np.isneginf(x)


def assert_same_spread(ours, theirs) -> None:
    """The same NaN, +inf and -inf entries, and the same finite values elsewhere."""
    for kind, mine, reference in zip(
        ("NaN", "+inf", "-inf"), _non_finite(ours), _non_finite(theirs)
    ):
        assert np.array_equal(mine, reference), (
            f"{kind}: {mine.sum()} entries, kecam's {reference.sum()}"
        )
    finite = np.isfinite(np.asarray(theirs))
    assert_matches(np.asarray(ours)[finite], np.asarray(theirs)[finite])


_BAD = {  # (tensor, pixel, head, channel or None for all) -> value
    "nan_query": [("q", (2, 3), 1, 0, np.nan)],
    "nan_key": [("k", (0, 0), 0, 2, np.nan)],
    "inf_keys": [("k", (4, 1), 1, 1, np.inf), ("k", (1, 5), 0, 3, -np.inf)],
    "inf_values": [
        ("v", (3, 3), 0, 1, np.inf),
        ("v", (4, 4), 0, 1, -np.inf),
        ("v", (0, 6), 1, 2, np.inf),
    ],
    "nan_value": [("v", (5, 2), 1, 3, np.nan)],
    "nan_pixel": [(t, (3, 4), h, None, np.nan) for t in "qkv" for h in (0, 1)],
}


@pytest.mark.parametrize("bad", _BAD, ids=str)
@pytest.mark.parametrize(
    "size, kernel, dilation", [((6, 6), 3, 1), ((7, 9), 3, (2, 1)), ((8, 7), 5, 1)]
)
def test_neighborhood_core_spreads_nan_and_inf_as_the_explicit_gather(
    bad, size, kernel, dilation, kernels_mode
):
    """Every path (the tiled portable one, the fused kernel) against kecam's form, which sums
    over each query's own K*K window: a non-finite entry reaches exactly the queries (and
    value channels) whose window holds it."""
    from tests.test_ops import explicit_neighborhood_attention

    keys = mx.random.split(mx.random.key(5), 4)
    shape = (1, *size, 2, 4)
    arrays = {name: np.array(mx.random.normal(shape, key=key)) for name, key in zip("qkv", keys)}
    for name, (row, col), head, channel, value in _BAD[bad]:
        arrays[name][
            0, row % size[0], col % size[1], head, slice(None) if channel is None else channel
        ] = value
    q, k, v = (mx.array(arrays[name]) for name in "qkv")
    kh, kw = to_pair(kernel, "kernel")
    bias = mx.random.normal((2, 2 * kh - 1, 2 * kw - 1), key=keys[3])
    expected = explicit_neighborhood_attention(q, k, v, kernel, dilation, bias)
    assert not np.all(np.isfinite(np.asarray(expected)))
    assert_same_spread(
        ops.neighborhood_attention(q, k, v, kernel, dilation=dilation, bias=bias), expected
    )


_NAT_CASES = [c for c in CASES if c.id in ("nat_square_k3", "nat_rect_k5_c30", "dinat_11x9_k3_d2")]


@pytest.mark.parametrize("case", _NAT_CASES, ids=lambda c: c.id)
@pytest.mark.parametrize("value", [np.nan, np.inf], ids=["nan", "inf"])
def test_a_non_finite_pixel_reaches_the_pixels_whose_window_holds_it(case, value, kernels_mode):
    """kecam's block: a NaN or Inf input pixel makes NaN exactly the outputs whose neighbourhood
    holds it (on 8x8 with kernel 3, the 9 around it, not the 4x4 tiles' key regions)."""
    module = build_module(case)
    inputs, _ = load_arrays(case)
    height, width, _ = case.input_shapes[0]
    rows, cols = ops.neighborhood_axis_maps(
        (height, width), case.kwargs["kernel_size"], case.kwargs.get("dilation_rate", 1)
    )
    for pixel in [(0, 0), (height // 2, width - 2), (height - 1, 1)]:
        x = inputs[0][:1].copy()
        x[0, pixel[0], pixel[1]] = value
        reached = np.isin(rows.source(), pixel[0]).any(1)[:, None] & np.isin(
            cols.source(), pixel[1]
        ).any(1)
        out = np.asarray(module(mx.array(x)))[0]
        assert np.array_equal(~np.isfinite(out).all(-1), reached), pixel
        assert np.isfinite(out[~reached]).all()


_ONE_INPUT = [
    c for c in CASES if c.version == "1.4.3" and not c.resize_from and len(c.input_shapes) == 1
]


@pytest.mark.reference
@pytest.mark.parametrize("case", _ONE_INPUT, ids=lambda c: f"{c.family}/{c.id}")
def test_a_non_finite_pixel_spreads_as_in_kecam_live(case, kecam_live, kernels_mode, tmp_path):
    """Every block with one input, kecam's weights, a NaN or -inf pixel (a corner, the last one,
    one inside): the same NaN and Inf outputs as kecam's, the same numbers elsewhere."""
    tf, kecam_layers, build = kecam_live
    model, inputs, _ = build(case, kecam_layers, tf, np.random.default_rng(7))
    model.save_weights(str(tmp_path / "weights.h5"))
    module = build_module(case)
    if declared_layers(module):
        load_keras_weights(module, tmp_path / "weights.h5")
    shape = inputs[0].shape
    for value in (np.nan, -np.inf):
        for pixel in [(0, 0), (-1, -1), (1, -2)]:
            x = inputs[0].copy()
            x[(0, *(p % n for p, n in zip(pixel[: len(shape) - 2], shape[1:])))] = value
            theirs = model(x, training=False)
            theirs = theirs if isinstance(theirs, (list, tuple)) else [theirs]
            for ours, reference in zip(_outputs(module(mx.array(x))), theirs):
                assert_same_spread(ours, np.asarray(reference))


# --- half-precision gradients ------------------------------------------------------------------

_NORMALISED = [
    c for c in CASES if c.kecam in ("shifted_window_attention", "cross_covariance_attention")
]


@pytest.mark.parametrize("dtype", [mx.float16, mx.bfloat16], ids=str)
@pytest.mark.parametrize("case", _NORMALISED, ids=lambda c: c.id)
def test_half_precision_gradients_are_finite(case, dtype):
    """Swin v2 pads its map with zero tokens, whose keys are zero vectors: the gradient of the
    key normalisation must not overflow float16 there (nor anywhere else)."""
    module = build_module(case)
    load_keras_weights(module, case.weights_path)
    module.update(tree_map(lambda p: p.astype(dtype), module.parameters()))
    x = mx.array(load_arrays(case)[0][0]).astype(dtype)

    def loss(params, x):
        module.update(params)
        return module(x).astype(mx.float32).sum()

    grads, grad_x = mx.grad(loss, argnums=(0, 1))(module.trainable_parameters(), x)
    for name, grad in [*tree_flatten(grads), ("input", grad_x)]:
        assert grad.dtype == dtype, name
        assert mx.all(mx.isfinite(grad)).item(), name


def test_relative_positional_heads_broadcast_only_as_in_kecam():
    """kecam sums ``[B, heads, Q, K]`` and its ``[num_heads, Q, K]`` table: one input head
    broadcasts over the table's (the fixtures ``beit_one_input_head*``), 2 and 3 fail."""
    module = attention_layers.MultiHeadRelativePositionalEmbedding(
        with_cls_token=False, num_heads=3, input_shape=(1, 16, 16), name="pe"
    )
    assert module(mx.zeros((2, 1, 16, 16))).shape == (2, 3, 16, 16)
    with pytest.raises(ValueError, match="num_heads=3 does not broadcast to the input's 2 heads"):
        attention_layers.MultiHeadRelativePositionalEmbedding(
            with_cls_token=False, num_heads=3, input_shape=(2, 16, 16), name="pe"
        )


# --- threads -------------------------------------------------------------------------------------

_THREADS = """
import threading
import mlx.core as mx, numpy as np
from cases import CASES
from parity import build_module, load_arrays

first = {}
for case in CASES:
    first.setdefault(case.kecam, case)
runs = [(build_module(c), [mx.array(a) for a in load_arrays(c)[0]]) for c in first.values()]
mx.eval([module.parameters() for module, _ in runs])  # (lazy arrays belong to their thread)
results = [None] * 8

def work(i):  # only threads call the blocks, and the process ends with them, as in MLX's case
    outs = []
    for module, inputs in runs:
        out = module(*inputs)
        outs.append(list(out) if isinstance(out, (list, tuple)) else [out])
        mx.eval(outs[-1])
    results[i] = [[np.array(o) for o in out] for out in outs]

threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
[t.start() for t in threads]
[t.join() for t in threads]
same = all(
    np.array_equal(a, b, equal_nan=True)
    for result in results[1:]
    for ours, reference in zip(result, results[0])
    for a, b in zip(ours, reference)
)
print("identical" if same else "different")
"""

# Records every call of an mx.compile'd function, MLX's own included (mlx.nn's activations are
# compiled when mlx.nn is imported, so mx.compile is wrapped before that).
_COMPILED_CALLS = """
import functools
import mlx.core as mx

compile, calls = mx.compile, []
def recording(fun=None, **options):
    def wrap(fun):
        compiled = compile(fun, **options)
        @functools.wraps(fun)
        def call(*args, **kwargs):
            calls.append(fun.__name__)
            return compiled(*args, **kwargs)
        return call
    return wrap if fun is None else wrap(fun)
mx.compile = recording

from cases import CASES
from parity import build_module, load_arrays
for case in CASES:
    module = build_module(case)
    module.train()  # dropout and drop paths too
    mx.eval(module(*[mx.array(a) for a in load_arrays(case)[0]]))
    if calls:
        print(case.id, sorted(set(calls)))
        break
print("calls", len(calls))
"""

# MLX's own: any mx.compile'd function (nn.gelu is one) called from threads; the interpreter
# aborts at exit with "terminate called without an active exception" in most runs.
MLX_COMPILE_THREADS = """
import threading
import mlx.core as mx, mlx.nn as nn
threads = [threading.Thread(target=lambda: mx.eval(nn.gelu(mx.ones((4, 8))))) for _ in range(8)]
[t.start() for t in threads]
[t.join() for t in threads]
"""


def _run(script: str, runs: int) -> list[subprocess.CompletedProcess]:
    """Up to ``runs`` fresh interpreters (stopping at the first that fails)."""
    done = []
    for _ in range(runs):
        done.append(
            subprocess.run(
                [sys.executable, "-c", script],
                cwd=Path(__file__).parent,
                capture_output=True,
                text=True,
                timeout=120,
            )  # fmt: skip
        )
        if done[-1].returncode:
            break
    return done


def test_no_block_calls_a_compiled_function():
    """What MLX aborts on (below) is out of reach of every block: none calls an
    ``mx.compile``d function (MLX's activations are; the library has uncompiled ones)."""
    (run,) = _run(_COMPILED_CALLS, 1)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip() == "calls 0"


def test_every_block_gives_the_same_result_in_eight_threads_and_exits_cleanly():
    for run in _run(_THREADS, 2):
        assert run.returncode == 0, run.stderr[-2000:]
        assert run.stdout.strip() == "identical"


# Not strict: the abort is a race at exit, seen in 0 to 5 of 6 runs here depending on the
# machine's load, so ten clean runs do not yet mean MLX fixed it (an XPASS is reported).
@pytest.mark.xfail(
    strict=False,
    reason="MLX (0.32) aborts the interpreter at exit after compiled functions ran in threads "
    "(its per-thread compile cache): python -c 'import threading, mlx.core as mx, mlx.nn as nn; "
    "ts = [threading.Thread(target=lambda: mx.eval(nn.gelu(mx.ones(4)))) for _ in range(8)]; "
    "[t.start() for t in ts]; [t.join() for t in ts]' exits 134 in some runs",
)
def test_mlx_compiled_functions_in_threads_exit_cleanly():
    """The upstream reproducer, repeated: an abort in any of 10 runs is the known MLX issue;
    when MLX has fixed it this XPASSes every time, and the README's "Known issues" note can go."""
    for run in _run(MLX_COMPILE_THREADS, 10):
        assert run.returncode == 0, run.stderr[-500:]
