"""Shared by every test: the tolerance table, the comparison with kecam's numbers, and the skips
(one reason per missing piece, worded once, so ``-rs`` reads the same everywhere)."""

from __future__ import annotations

import mlx.core as mx
import numpy as np
import pytest

from mlx_attention import kernels

# One tolerance table for the whole suite. "Exact" for float32 (DESIGN.md):
# max|ours - kecam| <= 1e-4 * max(1, max|kecam|).
RELATIVE_TOLERANCE = {
    mx.float32: 1e-4,
    mx.float16: 1e-2,
    mx.bfloat16: 5e-2,
}


def max_error(ours, theirs) -> float:
    ours = np.asarray(ours.astype(mx.float32) if isinstance(ours, mx.array) else ours, np.float64)
    theirs = np.asarray(theirs, np.float64)
    assert ours.shape == theirs.shape, f"shape {ours.shape} != kecam's {theirs.shape}"
    return float(np.max(np.abs(ours - theirs))) if ours.size else 0.0


def assert_matches(ours, theirs, dtype=mx.float32) -> None:
    """Assert DESIGN.md's "exact": error <= tol * max(1, max|theirs|)."""
    theirs = np.asarray(theirs)
    bound = RELATIVE_TOLERANCE[dtype] * max(
        1.0, float(np.max(np.abs(theirs))) if theirs.size else 1.0
    )
    assert np.all(
        np.isfinite(np.asarray(ours.astype(mx.float32) if isinstance(ours, mx.array) else ours))
    )
    err = max_error(ours, theirs)
    assert err <= bound, f"max error {err:.3g} > {bound:.3g}"


# --- skips: why a test did not run, and what to install ------------------------------------------

REFERENCE_REASON = (
    "needs the reference extra (TensorFlow + kecam 1.4.3): pip install -e '.[reference]'"
)
PILLOW_REASON = "needs Pillow: pip install -e '.[image]'"
GXX_REASON = "needs g++ (kernel emulation)"
NVCC_REASON = "needs nvcc"

# what MLX_ATTENTION_KERNELS=auto picks on this machine, read once at collection
ACCELERATED = kernels.resolve_backend("auto")
requires_gpu = pytest.mark.skipif(
    ACCELERATED not in ("metal", "cuda"),
    reason=f"needs a Metal or CUDA device (auto resolves to {ACCELERATED!r} here)",
)


def require_reference(module: str = "keras_cv_attention_models"):
    """Import TensorFlow, then ``module`` (kecam or one of its submodules, or ``"tensorflow"``),
    and return ``module``; skip with :data:`REFERENCE_REASON` where either is missing."""
    __tracebackhide__ = True  # -rs names the test that skipped, not this line
    pytest.importorskip("tensorflow", reason=REFERENCE_REASON)
    return pytest.importorskip(module, reason=REFERENCE_REASON)


def require_pillow():
    """``PIL.Image``, or a skip with :data:`PILLOW_REASON`."""
    __tracebackhide__ = True
    return pytest.importorskip("PIL.Image", reason=PILLOW_REASON)
