"""Fused local attention verified without the hardware: emulated Metal/CUDA builds vs ``ops/``,
nvcc, the shared-subset lint, VJPs and a mutation self-test (tests/kernel_harness/fused.py)."""

from __future__ import annotations

import re

import mlx.core as mx
import numpy as np
import pytest

from mlx_attention import ops
from mlx_attention.kernels import fused
from tests import kernel_harness
from tests.helpers import GXX_REASON, NVCC_REASON
from tests.kernel_harness import fused as harness
from tests.test_kernels import FORBIDDEN

pytestmark = pytest.mark.skipif(kernel_harness.GXX is None, reason=GXX_REASON)

# Tolerance of the fused kernel against ops/ (both accumulate in float32; the order differs:
# online softmax over taps vs softmax of the stacked scores), per data dtype.
TOLERANCE = {mx.float32: dict(rtol=1e-5, atol=1e-5), mx.float16: dict(rtol=2e-3, atol=2e-3)}


@pytest.fixture(autouse=True)
def emulator(kernel_emulator):
    """Every test here may run ``backend="emulated"``."""


# (batch, H, W, heads, kd, vd), kernel, dilation
NEIGHBORHOODS = {
    "square_k3": ((1, 8, 8, 2, 8, 8), 3, 1),
    "rect_k5": ((2, 9, 11, 3, 4, 4), 5, 1),
    "odd_pair_kernel": ((1, 7, 13, 2, 16, 16), (3, 5), 1),
    "dilated": ((1, 11, 9, 2, 8, 8), 3, 2),
    "dilated_pair": ((1, 13, 16, 2, 8, 32), 3, (2, 3)),
    "kernel_is_input": ((1, 5, 7, 2, 8, 8), (5, 7), 1),
    "border_heavy_dilated": ((2, 6, 9, 1, 8, 4), 3, (2, 3)),
}  # fmt: skip


def na_inputs(case, dtype, seed=0, with_bias=True):
    (batch, height, width, heads, kd, vd), kernel, dilation = NEIGHBORHOODS[case]
    rng = np.random.default_rng(seed)

    def normal(*shape):
        return mx.array(rng.standard_normal(shape).astype(np.float32))

    q, k = normal(batch, height, width, heads, kd), normal(batch, height, width, heads, kd)
    v = normal(batch, height, width, heads, vd)
    kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
    bias = normal(heads, 2 * kh - 1, 2 * kw - 1) if with_bias else None
    return (q.astype(dtype), k.astype(dtype), v.astype(dtype)), kernel, dilation, bias


@pytest.mark.parametrize("dtype", harness.EMULATED_DTYPES, ids=str)
@pytest.mark.parametrize("case", sorted(NEIGHBORHOODS))
def test_fused_neighborhood_matches_ops(case, dtype):
    """Emulated Metal and CUDA (bit-identical to each other) against the portable path."""
    (q, k, v), kernel, dilation, bias = na_inputs(case, dtype, with_bias=case != "rect_k5")

    def run(backend):
        return ops.neighborhood_attention(
            q, k, v, kernel, dilation=dilation, bias=bias, backend=backend
        )

    fused_out, expected = run("emulated"), run("ops")
    assert fused_out.dtype == expected.dtype == dtype
    np.testing.assert_allclose(
        np.asarray(fused_out.astype(mx.float32)), np.asarray(expected.astype(mx.float32)),
        **TOLERANCE[dtype],
    )  # fmt: skip


def launch_inputs(case="dilated_pair", dtype=mx.float32):
    (q, k, v), kernel, dilation, bias = na_inputs(case, dtype)
    rows, cols = ops.neighborhood_axis_maps(q.shape[1:3], kernel, dilation)
    params = fused.fused_params(q, rows, cols, (1, 1), fused.BIAS_MODES["table"])
    inputs = [params, q * q.shape[-1] ** -0.5, k, v, bias]
    expected = ops.neighborhood_attention(q, k, v, kernel, dilation=dilation, bias=bias,
                                          backend="ops")  # fmt: skip
    return inputs, expected


@pytest.mark.parametrize("threadgroup", [7, 64])
@pytest.mark.parametrize("backend", ["metal", "cuda"])
def test_threadgroup_sizes(backend, threadgroup):
    inputs, expected = launch_inputs()
    out = harness.emulate(backend, inputs, expected.shape, threadgroup)
    np.testing.assert_allclose(out, np.asarray(expected), **TOLERANCE[mx.float32])


def test_vjp_equals_grad_of_ops():
    (q, k, v), kernel, dilation, bias = na_inputs("dilated", mx.float32)
    weight = mx.random.normal(v.shape, key=mx.random.key(3))

    def loss(q, k, v, bias, backend):
        out = ops.neighborhood_attention(q, k, v, kernel, dilation=dilation, bias=bias,
                                         backend=backend)  # fmt: skip
        return (out * weight).sum()

    grads = mx.grad(loss, argnums=(0, 1, 2, 3))
    for ours, expected in zip(grads(q, k, v, bias, "emulated"), grads(q, k, v, bias, "ops")):
        np.testing.assert_allclose(np.asarray(ours), np.asarray(expected), rtol=1e-5, atol=1e-6)


def test_metal_source_is_captured_from_mlx():
    source = harness.metal_source(mx.float16, 8)
    assert re.search(r"\[\[kernel\]\] void custom_kernel_local_attention_\w+\(", source)
    assert "const device float16_t* queries [[buffer(1)]]" in source
    assert fused.fused_source("metal") in source


@pytest.mark.skipif(kernel_harness.NVCC is None, reason=NVCC_REASON)
def test_nvcc_compiles_the_fused_cuda_source():
    failures = harness.nvcc_compile()
    assert not failures, failures


def test_fused_body_stays_in_the_subset_but_for_exp():
    for what, pattern in FORBIDDEN.items():
        found = re.search(pattern, fused.TEMPLATE_BODY)
        assert not found, f"{what} ({found[0]!r})"
    first = next(line for line in fused.TEMPLATE_BODY.splitlines() if line.strip())
    assert first == "if (gid >= params[2]) return;"
    assert all(name + "(" in fused.fused_source(b) for b, name in fused.EXP.items())


@pytest.mark.parametrize(
    "mutation",
    [("if (gid >= params[2]) return;", ""), ("int rel_col = (col", "int rel_col = 1 + (col")],
    ids=["no_bounds_guard", "off_by_one_bias"],
)
def test_the_harness_catches_a_mutated_fused_kernel(mutation):
    inputs, expected = launch_inputs()
    exe = harness.build("cuda", mx.float32, mutate=mutation)
    try:
        out = harness.emulate("cuda", inputs, expected.shape, 64, exe=exe)
    except (RuntimeError, AssertionError):
        return
    assert not np.allclose(out, np.asarray(expected), **TOLERANCE[mx.float32])


# --- halo attention -------------------------------------------------------------------------

# (batch, H, W, heads, kd, vd), block, halo, query block (block // strides)
HALOS = {
    "square_b4_h1": ((1, 8, 8, 2, 8, 8), 4, 1, 4),
    "rect_b4_h2": ((2, 8, 12, 1, 4, 16), 4, 2, 4),
    "strided_qb2": ((1, 8, 8, 2, 8, 4), 4, 1, 2),
    "halo_larger_than_block": ((1, 6, 9, 2, 8, 8), 3, 2, 3),
}


def halo_inputs(case, dtype, with_pos=True):
    (batch, height, width, heads, kd, vd), block, halo, qb = HALOS[case]
    rng = np.random.default_rng(1)

    def normal(*shape):
        return mx.array(rng.standard_normal(shape).astype(np.float32))

    q = normal(batch, height // block * qb, width // block * qb, heads, kd).astype(dtype)
    k = normal(batch, height, width, heads, kd).astype(dtype)
    v = normal(batch, height, width, heads, vd).astype(dtype)
    kv = block + 2 * halo
    pos = (normal(kd, 2 * kv - 1), normal(kd, 2 * kv - 1)) if with_pos else (None, None)
    return q, k, v, block, halo, qb, pos


def halo_brute_force(q, k, v, block, halo, qb, pos):
    """kecam's halo_attention core (3.3 steps 3-6), one query at a time in numpy."""
    q, k, v = (np.asarray(t.astype(mx.float32)).astype(np.float64) for t in (q, k, v))
    kv, scale = block + 2 * halo, q.shape[-1] ** -0.5
    out = np.zeros((*q.shape[:4], v.shape[-1]))
    for b, y, x, h in np.ndindex(*q.shape[:4]):
        rows = y // qb * block - halo + np.arange(kv)
        cols = x // qb * block - halo + np.arange(kv)
        scores, vals = np.zeros((kv, kv)), np.zeros((kv, kv, v.shape[-1]))
        for ty, tx in np.ndindex(kv, kv):
            r, c = rows[ty], cols[tx]
            inside = 0 <= r < k.shape[1] and 0 <= c < k.shape[2]
            scores[ty, tx] = q[b, y, x, h] @ k[b, r, c, h] * scale if inside else 0.0
            vals[ty, tx] = v[b, r, c, h] if inside else 0.0
            if pos[0] is not None:
                u, w = y % qb, x % qb
                scores[ty, tx] += q[b, y, x, h] @ np.asarray(pos[0])[:, kv - 1 + ty - u]
                scores[ty, tx] += q[b, y, x, h] @ np.asarray(pos[1])[:, kv - 1 + tx - w]
        weights = np.exp(scores - scores.max())
        out[b, y, x, h] = (weights[..., None] * vals).sum((0, 1)) / weights.sum()
    return out


@pytest.mark.parametrize("case", sorted(HALOS))
def test_halo_ops_matches_kecam_formula(case):
    q, k, v, block, halo, qb, pos = halo_inputs(case, mx.float32)
    ours = ops.halo_attention(q, k, v, block, halo, pos_rows=pos[0], pos_cols=pos[1],
                              backend="ops")  # fmt: skip
    expected = halo_brute_force(q, k, v, block, halo, qb, pos)
    np.testing.assert_allclose(np.asarray(ours), expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("dtype", harness.EMULATED_DTYPES, ids=str)
@pytest.mark.parametrize("case", sorted(HALOS))
def test_fused_halo_matches_ops(case, dtype):
    q, k, v, block, halo, qb, pos = halo_inputs(case, dtype, with_pos=case != "strided_qb2")

    def run(backend):
        return ops.halo_attention(q, k, v, block, halo, pos_rows=pos[0], pos_cols=pos[1],
                                  backend=backend)  # fmt: skip

    np.testing.assert_allclose(
        np.asarray(run("emulated").astype(mx.float32)), np.asarray(run("ops").astype(mx.float32)),
        **TOLERANCE[dtype],
    )  # fmt: skip


def test_halo_vjp_equals_grad_of_ops():
    q, k, v, block, halo, qb, pos = halo_inputs("rect_b4_h2", mx.float32)

    def loss(q, k, v, rows, cols, backend):
        out = ops.halo_attention(q, k, v, block, halo, pos_rows=rows, pos_cols=cols,
                                 backend=backend)  # fmt: skip
        return (out * out).sum()

    grads = mx.grad(loss, argnums=(0, 1, 2, 3, 4))
    for ours, expected in zip(grads(q, k, v, *pos, "emulated"), grads(q, k, v, *pos, "ops")):
        np.testing.assert_allclose(np.asarray(ours), np.asarray(expected), rtol=1e-4, atol=1e-5)
