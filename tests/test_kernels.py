"""Kernels verified without the hardware: emulated Metal/CUDA vs ops/, nvcc, lint, VJPs, chains."""

from __future__ import annotations

import re

import mlx.core as mx
import numpy as np
import pytest

from mlx_attention import kernels, ops
from mlx_attention.kernels import BODIES, PRELUDES, launch_params
from tests import kernel_harness as harness
from tests.helpers import GXX_REASON, NVCC_REASON, assert_matches

pytestmark = pytest.mark.skipif(harness.GXX is None, reason=GXX_REASON)


@pytest.fixture(autouse=True)
def emulator(kernel_emulator):
    """Every test here may run ``backend="emulated"``."""


def image(shape, dtype, seed=0):
    values = np.random.default_rng(seed).integers(-1000, 1000, size=shape)
    return mx.array(values.astype(harness.NUMPY[dtype]))


def patches_of(x, rows, cols):
    return image((x.shape[0], rows.grid, cols.grid, rows.kernel, cols.kernel, x.shape[-1]),
                 x.dtype, seed=1)  # fmt: skip


# (case, kernel, input shape, maps(x) -> (rows, cols), ops reference(src) -> array)
CASES = {
    "partition_shifted_padded": (
        "unfold", (2, 5, 9, 3), lambda s: ops.window_axis_maps(s, (3, 4), (1, 2)),
        lambda x: ops.window_partition(x, (3, 4), shift=(1, 2), backend="ops"),
    ),
    "unfold_strided_dilated_padded": (
        "unfold", (2, 7, 9, 3), lambda s: ops.unfold_axis_maps(s, (3, 2), (2, 1), (1, 2), (1, 2)),
        lambda x: ops.extract_patches(x, (3, 2), stride=(2, 1), dilation=(1, 2), padding=(1, 2),
                                      backend="ops"),
    ),
    "halo": (
        "unfold", (1, 8, 12, 5), lambda s: ops.unfold_axis_maps(s, 6, 4, 1, 1),
        lambda x: ops.halo_blocks(x, 4, 1, backend="ops"),
    ),
    "nat_dilated_pair": (
        "unfold", (2, 9, 13, 3), lambda s: ops.neighborhood_axis_maps(s, 3, (2, 3)),
        lambda x: ops.neighborhood_patches(x, 3, dilation=(2, 3), backend="ops"),
    ),
    "reverse_shifted_padded": (
        "fold", (2, 5, 9, 3), lambda s: ops.window_axis_maps(s, (3, 4), (1, 2)),
        lambda w: ops.window_reverse(w.reshape(-1, *w.shape[3:]), (5, 9), (3, 4), shift=(1, 2),
                                     backend="ops"),
    ),
    "fold_strided_padded": (
        "fold", (2, 7, 8, 3), lambda s: ops.unfold_axis_maps(s, 3, 2, 1, 1),
        lambda p: ops.fold(p, (7, 8), stride=2, padding=1, backend="ops"),
    ),
    "fold_overlapping_dilated": (
        "fold", (1, 6, 7, 2), lambda s: ops.unfold_axis_maps(s, (3, 2), 1, (2, 1), (2, 0)),
        lambda p: ops.fold(p, (6, 7), stride=1, dilation=(2, 1), padding=(2, 0), backend="ops"),
    ),
}  # fmt: skip


def case_inputs(case, dtype):
    name, shape, maps, reference = CASES[case]
    rows, cols = maps(shape[1:3])
    x = image(shape, dtype)
    src = x if name == "unfold" else patches_of(x, rows, cols)
    expected = reference(src)
    out_shape = expected.shape if name == "unfold" else shape
    if name == "unfold":
        out_shape = (shape[0], rows.grid, cols.grid, rows.kernel, cols.kernel, shape[-1])
    return name, src, rows, cols, out_shape, expected


@pytest.mark.parametrize("threadgroup", [7, 64])
@pytest.mark.parametrize("dtype", harness.EMULATED_DTYPES, ids=str)
@pytest.mark.parametrize("backend", ["metal", "cuda"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_emulated_kernel_bit_identical_to_ops(case, backend, dtype, threadgroup):
    name, src, rows, cols, out_shape, expected = case_inputs(case, dtype)
    params = launch_params(src, out_shape, rows, cols)
    out = harness.emulate(backend, name, src, params, out_shape, threadgroup)
    expected = np.asarray(expected).reshape(out_shape)
    assert out.dtype == expected.dtype
    assert out.tobytes() == expected.tobytes()


def test_metal_source_is_captured_from_mlx():
    """The traced source is MLX's own: its signature around our prelude and body, verbatim."""
    source = harness.metal_source("unfold", mx.float16)
    assert re.search(r"\[\[kernel\]\] void custom_kernel_unfold_\w+\(", source)
    assert "const device float16_t* src [[buffer(1)]]" in source
    assert "uint3 thread_position_in_grid [[thread_position_in_grid]]" in source
    assert kernels.kernel_source("unfold", "metal") in source


@pytest.mark.skipif(harness.NVCC is None, reason=NVCC_REASON)
def test_nvcc_compiles_every_cuda_source():
    failures = harness.nvcc_compile()
    assert not failures, failures


FORBIDDEN = {
    "atomics": r"atomic",
    "threadgroup/shared memory": r"threadgroup|__shared__|\bshared\b|__syncthreads|barrier",
    "unsigned types": r"\buint\w*|\bunsigned\b|\bsize_t\b",
    "backend-specific names": r"metal::|\bprecise::|\bfast::|__\w+|\bsimd\w*|thread_position"
    r"|blockIdx|threadIdx|blockDim|\bhalf\b|float16_t|bfloat|\bkernel\b|\bdevice\b|\bconstant\b",
    "math functions": r"\b(exp|log|sqrt|rsqrt|pow|min|max|fmin|fmax|abs|fabs|clamp|floor|ceil)"
    r"\w*\s*\(",
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(BODIES))
def test_shared_bodies_stay_in_the_restricted_subset(name):
    body = BODIES[name]
    for what, pattern in FORBIDDEN.items():
        assert not re.search(pattern, body), f"{name}: {what} ({re.search(pattern, body)[0]!r})"
    first = next(line for line in body.splitlines() if line.strip())
    assert first == "if (gid >= params[2]) return;", first


def test_preludes_are_one_line():
    assert all("\n" not in line and "int gid" in line for line in PRELUDES.values())


def test_the_lint_rejects_forbidden_constructs():
    snippets = ("atomic_fetch_add(x, 1);", "threadgroup float t[4];", "uint i = 0;",
                "float e = metal::exp(x);", "float e = expf(x);", "__syncthreads();")  # fmt: skip
    for snippet in snippets:
        assert any(re.search(p, snippet) for p in FORBIDDEN.values()), snippet


# --- gradients, chains, dispatch ------------------------------------------------------------------

GRAD_CASES = {
    "partition": lambda x, be: ops.window_partition(x, (3, 4), shift=(1, 2), backend=be),
    "reverse": lambda x, be: ops.window_reverse(
        ops.window_partition(x, (3, 4), shift=(2, 1), backend="ops"), (5, 9), (3, 4),
        shift=(2, 1), backend=be),
    "unfold": lambda x, be: ops.extract_patches(x, 3, stride=2, dilation=1, padding=1, backend=be),
    "nat": lambda x, be: ops.neighborhood_patches(x[:, :, :8], 3, dilation=(1, 2), backend=be),
    "fold": lambda x, be: ops.fold(
        ops.extract_patches(x, 3, stride=2, padding=1, backend="ops"), (5, 9), stride=2,
        padding=1, backend=be),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(GRAD_CASES))
def test_vjp_equals_grad_of_ops(case):
    x = mx.random.normal((2, 5, 9, 3), key=mx.random.key(0))
    fn = GRAD_CASES[case]
    weight = mx.random.normal(fn(x, "ops").shape, key=mx.random.key(1))

    def loss(x, backend):
        return (fn(x, backend) * weight).sum()

    expected = mx.grad(loss)(x, "ops")
    assert_matches(mx.grad(loss)(x, "emulated"), np.asarray(expected))


def window_attention(windows, mask):
    tokens = windows.reshape(windows.shape[0], -1, windows.shape[-1])
    scores = tokens @ tokens.swapaxes(-1, -2) / tokens.shape[-1] ** 0.5 + mask
    return (mx.softmax(scores, axis=-1) @ tokens).reshape(windows.shape)


@pytest.mark.parametrize("backend", ["emulated"])
def test_chained_kernels_match_ops(backend):
    """partition -> attention -> reverse and unfold -> fold in one lazy graph (MLX #3347)."""
    x = mx.random.normal((2, 7, 10, 4), key=mx.random.key(5))
    window, shift = (3, 4), (1, 2)
    grid = ops.window_grid((7, 10), window)
    mask = ops.shifted_window_mask((grid[0] * 3, grid[1] * 4), window, shift)
    mask = mx.tile(mask, (2, 1, 1))

    def chain(be):
        parts = ops.window_partition(x, window, shift=shift, backend=be)
        merged = ops.window_reverse(window_attention(parts, mask), (7, 10), window, shift=shift,
                                    backend=be)  # fmt: skip
        patches = ops.extract_patches(merged, 3, stride=2, padding=1, backend=be)
        return ops.fold(patches * 0.5, (7, 10), stride=2, padding=1, backend=be)

    assert_matches(chain(backend), np.asarray(chain("ops")))


def test_dispatch_resolution(monkeypatch):
    monkeypatch.setenv(kernels.ENV_VAR, "off")
    assert kernels.resolve_backend() == "ops"
    monkeypatch.setenv(kernels.ENV_VAR, "emulated")
    assert kernels.resolve_backend() == "emulated"
    monkeypatch.setenv(kernels.ENV_VAR, "auto")
    expected = "metal" if mx.metal.is_available() else "cuda" if mx.cuda.is_available() else "ops"
    assert kernels.resolve_backend() == expected
    assert kernels.resolve_backend("off") == "ops"
    monkeypatch.setenv(kernels.ENV_VAR, "sometimes")
    with pytest.raises(ValueError, match="MLX_ATTENTION_KERNELS 'sometimes'"):
        kernels.resolve_backend()
    for name, ok, reason in kernels.backend_report():
        assert name in ("metal", "cuda", "ops", "emulated") and isinstance(ok, bool) and reason
        if not ok and name != "emulated":
            with pytest.raises(ValueError, match="not available here"):
                kernels.resolve_backend(name)
    assert [k for k, _ in kernels.kernel_list()] == ["unfold", "fold", "local_attention"]


def test_env_emulated_runs_the_kernels(monkeypatch):
    monkeypatch.setenv(kernels.ENV_VAR, "emulated")
    x = image((1, 4, 6, 2), mx.int32)
    assert mx.array_equal(ops.window_partition(x, 2), ops.window_partition(x, 2, backend="ops"))


@pytest.mark.parametrize(
    "mutation",
    [("if (gid >= params[2]) return;", ""), ("int t = win * stride", "int t = 1 + win * stride")],
    ids=["no_bounds_guard", "off_by_one_index"],
)
def test_the_harness_catches_a_mutated_kernel(mutation):
    """A broken guard or index makes the emulation fail (ASan, sentinel or mismatch)."""
    name, src, rows, cols, out_shape, expected = case_inputs("unfold_strided_dilated_padded",
                                                             mx.float32)  # fmt: skip
    params = launch_params(src, out_shape, rows, cols)
    exe = harness.build("cuda", mx.float32, mutate=mutation)
    try:
        out = harness.emulate("cuda", name, src, params, out_shape, 64, exe=exe)
    except (RuntimeError, AssertionError):
        return
    assert out.tobytes() != np.asarray(expected).tobytes()
