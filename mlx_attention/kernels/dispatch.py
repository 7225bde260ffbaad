"""Choosing a backend, building kernels lazily, and wrapping them as ``mx.custom_function``.

Order (first that applies): the per-call ``backend=``, else ``MLX_ATTENTION_KERNELS``
(``auto`` | ``off`` | ``emulated``); ``auto`` picks Metal when ``mx.metal.is_available()``, CUDA
when ``mx.cuda.is_available()``, else the pure-MLX ``ops`` path. ``emulated`` (tests only) runs the
g++ builds of the Metal and CUDA sources on the CPU through an emulator the test harness registers
with :func:`set_emulator`.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Callable

import mlx.core as mx
import numpy as np

from ..ops.geometry import AxisMap
from ..ops.patches import accumulator_dtype
from . import fused
from .bodies import INPUT_NAMES, KERNELS, OUTPUT_NAMES, kernel_source

ENV_VAR = "MLX_ATTENTION_KERNELS"
BACKENDS = ("ops", "metal", "cuda", "emulated")
THREADGROUP = 256

# emulator(kernel, src, params, out_shape, threadgroup) -> mx.array; registered by the test harness
_emulator: Callable | None = None


def set_emulator(emulator: Callable | None) -> None:
    """Register (or, with ``None``, remove) the CPU emulator behind ``backend="emulated"``."""
    global _emulator
    _emulator = emulator


def _available(backend: str) -> tuple[bool, str]:
    if backend == "ops":
        return True, "pure MLX gathers; runs everywhere"
    if backend == "metal":
        ok = mx.metal.is_available()
        return ok, "mx.metal.is_available() is " + str(ok)
    if backend == "cuda":
        ok = mx.cuda.is_available()
        return ok, "mx.cuda.is_available() is " + str(ok)
    if _emulator is None:
        return False, "tests only: no emulator registered (tests/kernel_harness registers one)"
    return True, "g++ builds of the Metal and CUDA sources on the CPU (tests only)"


def backend_report() -> list[tuple[str, bool, str]]:
    """``(backend, available here, reason)`` for every backend, in dispatch order."""
    return [(name, *_available(name)) for name in ("metal", "cuda", "ops", "emulated")]


def kernel_list() -> list[tuple[str, str]]:
    """``(kernel, what it serves)`` for every custom kernel: the two gathers, then the fused
    local attention."""
    return [*KERNELS.items(), (fused.NAME, fused.SERVES)]


def resolve_backend(backend: str | None = None) -> str:
    """The backend a gather runs on: ``"ops"``, ``"metal"``, ``"cuda"`` or ``"emulated"``."""
    # the environment variable is read case-insensitively, as shells and launchers differ
    choice = backend if backend is not None else os.environ.get(ENV_VAR, "auto").strip().lower()
    choice = {"off": "ops"}.get(choice, choice)
    if choice == "auto":
        for name in ("metal", "cuda"):
            if _available(name)[0]:
                return name
        return "ops"
    if choice not in BACKENDS:
        source = "backend=" if backend is not None else ENV_VAR
        raise ValueError(f"{source} {choice!r} is not one of auto, off, {', '.join(BACKENDS)}")
    ok, reason = _available(choice)
    if not ok:
        raise ValueError(f"backend {choice!r} is not available here: {reason}")
    return choice


@functools.cache
def build_kernel(name: str, backend: str):
    """The MLX kernel object for ``name`` on ``backend`` (built once; CUDA raises without CUDA)."""
    source = kernel_source(name, backend)
    common = dict(name=name, input_names=list(INPUT_NAMES), output_names=list(OUTPUT_NAMES))
    if backend == "metal":
        return mx.fast.metal_kernel(**common, source=source)
    return mx.fast.cuda_kernel(**common, source=source)


def template(name: str, dtype: mx.Dtype) -> list[tuple[str, mx.Dtype]]:
    """Template arguments of a kernel: ``T`` the data type, plus ``A`` the fold accumulator."""
    args = [("T", dtype)]
    if name == "fold":
        args.append(("A", accumulator_dtype(dtype)))
    return args


def launch_params(src: mx.array, out_shape: tuple[int, ...], rows: AxisMap, cols: AxisMap):
    """The int32 ``params`` array: ``[batch, channels, total, rows map, cols map]``."""
    total = math.prod(out_shape)
    if total >= 2**31 or src.size >= 2**31:
        raise ValueError(f"kernels index with int32: {total} or {src.size} elements is too many")
    values = [out_shape[0], out_shape[-1], total, *rows.params(), *cols.params()]
    return mx.array(np.array(values, np.int32))


def launch(
    kernel,
    name: str,
    src: mx.array,
    params: mx.array,
    out_shape,
    *,
    threadgroup=THREADGROUP,
    verbose: bool = False,
) -> mx.array:
    """Call a built kernel over ``prod(out_shape)`` threads (``grid`` counts threads in MLX)."""
    total = math.prod(out_shape)
    return kernel(
        inputs=[params, src],
        template=template(name, src.dtype),
        grid=(max(total, 1), 1, 1),
        threadgroup=(threadgroup, 1, 1),
        output_shapes=[tuple(out_shape)],
        output_dtypes=[src.dtype],
        verbose=verbose,
    )[0]


def _run(name: str, src: mx.array, rows: AxisMap, cols: AxisMap, out_shape, backend: str):
    params = launch_params(src, out_shape, rows, cols)
    if backend == "emulated":
        return _emulator(name, src, params, tuple(out_shape), THREADGROUP)
    return launch(build_kernel(name, backend), name, src, params, out_shape)


def _shapes(x: mx.array, rows: AxisMap, cols: AxisMap):
    batch, channels = x.shape[0], x.shape[-1]
    image = (batch, rows.size, cols.size, channels)
    patches = (batch, rows.grid, cols.grid, rows.kernel, cols.kernel, channels)
    return image, patches


def unfold(x: mx.array, rows: AxisMap, cols: AxisMap, backend: str | None = None) -> mx.array:
    """Kernel gather ``[B, H, W, C] -> [B, grid_h, grid_w, kh, kw, C]``; VJP: :func:`fold`.

    Args:
        x: ``[B, rows.size, cols.size, C]``, row-contiguous.
        rows, cols: the per-axis maps (see :class:`mlx_attention.ops.AxisMap`).
        backend: as in :func:`resolve_backend`; must not resolve to ``"ops"``.
    """
    name = resolve_backend(backend)
    image, patches = _shapes(x, rows, cols)
    if tuple(x.shape) != image:
        raise ValueError(f"unfold: input shape {x.shape} does not match the maps' {image}")

    @mx.custom_function
    def gather(x):
        return _run("unfold", x, rows, cols, patches, name)

    @gather.vjp
    def gather_vjp(primals, cotangent, output):
        return fold(cotangent, rows, cols, name)

    return gather(x)


def fold(patches: mx.array, rows: AxisMap, cols: AxisMap, backend: str | None = None) -> mx.array:
    """Kernel sum-gather ``[B, grid_h, grid_w, kh, kw, C] -> [B, H, W, C]``; VJP: :func:`unfold`.

    Every output element sums, in a fixed order, the patch entries whose map reads it: the
    adjoint of :func:`unfold` with the same maps, without atomics.
    """
    name = resolve_backend(backend)
    image, expected = _shapes(patches, rows, cols)
    if tuple(patches.shape) != expected:
        raise ValueError(f"fold: patches shape {patches.shape} does not match the maps' {expected}")

    @mx.custom_function
    def sum_gather(patches):
        return _run("fold", patches, rows, cols, image, name)

    @sum_gather.vjp
    def sum_gather_vjp(primals, cotangent, output):
        return unfold(cotangent, rows, cols, name)

    return sum_gather(patches)
