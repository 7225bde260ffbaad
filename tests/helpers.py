"""Shared by every test: the tolerance table and the comparison with kecam's numbers."""

from __future__ import annotations

import inspect

import mlx.core as mx
import numpy as np

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


def signature_rows(fn) -> list[list]:
    """``[name, kind, repr(default) or None]`` per parameter: how kecam's signatures are recorded
    (tools/) and compared with ours (tests)."""
    rows = []
    for p in inspect.signature(fn).parameters.values():
        default = None if p.default is inspect.Parameter.empty else repr(p.default)
        rows.append([p.name, p.kind.name, default])
    return rows
