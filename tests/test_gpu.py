"""The kernels on a real GPU (Metal on a Mac, CUDA on NVIDIA) against ``ops/``.

Skipped where ``MLX_ATTENTION_KERNELS=auto`` resolves to the pure-MLX path (this Linux CPU, CI).
On a Mac or a machine with an NVIDIA GPU: ``python -m pytest -m gpu -q``. Gathers must be
bit-identical to ``ops/``; the fused attention agrees within the tolerance of ``test_fused.py``;
every kecam fixture of the local blocks passes with the kernels on. Nothing here times anything.
"""

from __future__ import annotations

import mlx.core as mx
import numpy as np
import pytest
from cases import cases
from helpers import requires_gpu
from parity import run_case

from mlx_attention import ops

pytestmark = [pytest.mark.gpu, requires_gpu]

DTYPES = (mx.float32, mx.float16, mx.bfloat16)
# fused attention vs the portable path: both accumulate in float32, in a different order
FUSED_TOLERANCE = {mx.float32: 1e-5, mx.float16: 2e-3, mx.bfloat16: 2e-2}


def image(shape, dtype, seed=0):
    return mx.array(np.random.default_rng(seed).standard_normal(shape).astype(np.float32)).astype(
        dtype
    )


GATHERS = {
    "partition_pad_shift": lambda x, b: ops.window_partition(x, (4, 3), shift=(2, 1), backend=b),
    "window_round_trip": lambda x, b: ops.window_reverse(
        ops.window_partition(x, 4, shift=1, backend=b), x.shape[1:3], 4, shift=1, backend=b
    ),
    "patches_s2_pad": lambda x, b: ops.extract_patches(x, 3, stride=2, padding=1, backend=b),
    "patches_dilated": lambda x, b: ops.extract_patches(x, 3, dilation=(2, 3), backend=b),
    "halo_blocks": lambda x, b: ops.halo_blocks(x[:, :8, :8], 4, 1, backend=b),
    "neighborhoods_dilated": lambda x, b: ops.neighborhood_patches(x, 3, dilation=2, backend=b),
    "unfold_then_fold": lambda x, b: ops.fold(
        ops.extract_patches(x, 3, stride=2, padding=1, backend=b), x.shape[1:3], stride=2,
        padding=1, backend=b,
    ),
}  # fmt: skip


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("name", sorted(GATHERS))
def test_gathers_are_bit_identical_to_ops(name, dtype):
    x = image((2, 9, 13, 5), dtype)
    ours, reference = GATHERS[name](x, None), GATHERS[name](x, "ops")
    assert ours.dtype == reference.dtype and ours.shape == reference.shape
    assert mx.array_equal(ours, reference).item()


def test_partition_attention_reverse_in_one_graph():
    """MLX #3347: several custom kernels chained in one lazy graph once gave NaNs on Metal."""
    x = image((2, 10, 12, 8), mx.float32)
    mask = ops.shifted_window_mask((12, 12), 4, 2)

    def chain(backend):
        padded = mx.pad(x, [(0, 0), (0, 2), (0, 0), (0, 0)])
        windows = ops.window_partition(padded, 4, shift=2, backend=backend)
        tokens = windows.reshape(-1, 1, 16, 8)
        blocks = tokens.shape[0] // mask.shape[0]
        attn_mask = mx.tile(mask[:, None], (blocks, 1, 1, 1))
        out = mx.fast.scaled_dot_product_attention(
            tokens, tokens, tokens, scale=0.5, mask=attn_mask
        )
        out = ops.window_reverse(out.reshape(windows.shape), (12, 12), 4, shift=2, backend=backend)
        patches = ops.extract_patches(out, 3, padding=1, backend=backend)
        return ops.fold(patches, (12, 12), padding=1, backend=backend)

    ours, reference = chain(None), chain("ops")
    assert bool(mx.all(mx.isfinite(ours)).item())
    np.testing.assert_allclose(np.asarray(ours), np.asarray(reference), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("kernel, dilation", [(7, 1), (3, (2, 3)), ((5, 7), 1)])
def test_fused_neighborhood_attention(kernel, dilation, dtype):
    kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
    q, k, v = (image((2, 14, 15, 2, 32), dtype, seed) for seed in range(3))
    bias = image((2, 2 * kh - 1, 2 * kw - 1), mx.float32, 3)
    ours = ops.neighborhood_attention(q, k, v, kernel, dilation=dilation, bias=bias)
    reference = ops.neighborhood_attention(
        q, k, v, kernel, dilation=dilation, bias=bias, backend="ops"
    )
    tol = FUSED_TOLERANCE[dtype]
    np.testing.assert_allclose(
        np.asarray(ours.astype(mx.float32)), np.asarray(reference.astype(mx.float32)), rtol=tol,
        atol=tol,
    )  # fmt: skip


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_fused_halo_attention(dtype):
    q, k, v = (image((2, 16, 8, 4, 16), dtype, seed) for seed in range(3))
    pos_rows, pos_cols = image((16, 11), mx.float32, 3), image((16, 11), mx.float32, 4)
    args = (q, k, v, 4, 1)
    ours = ops.halo_attention(*args, pos_rows=pos_rows, pos_cols=pos_cols)
    reference = ops.halo_attention(*args, pos_rows=pos_rows, pos_cols=pos_cols, backend="ops")
    tol = FUSED_TOLERANCE[dtype]
    np.testing.assert_allclose(
        np.asarray(ours.astype(mx.float32)), np.asarray(reference.astype(mx.float32)), rtol=tol,
        atol=tol,
    )  # fmt: skip


LOCAL = cases("local", "1.4.3")


@pytest.mark.parametrize("case", LOCAL, ids=[c.id for c in LOCAL])
def test_local_blocks_match_kecam_with_the_kernels_on(case):
    run_case(case)
