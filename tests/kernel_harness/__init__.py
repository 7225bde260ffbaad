"""Verify the Metal and CUDA kernels without the hardware.

- :func:`metal_source`: the exact Metal source MLX generates, captured by tracing the launch inside
  ``mx.export_function`` with ``verbose=True`` (MLX prints it to the C++ stdout; we read fd 1).
- :func:`cuda_source`: the CUDA source as MLX 0.32's ``cuda_kernel`` builds it. ``cuda_kernel``
  raises at construction without CUDA, so nothing can be printed here; :func:`cuda_source`
  re-implements ``build_kernel`` of ``mlx/backend/cuda/custom_kernel.cpp`` (v0.32.1) line by line.
- :func:`build`: one g++ executable per backend and dtype holding both kernels plus
  ``launcher.inc``, with AddressSanitizer; cached by source hash in a temp dir.
- :func:`emulate`: runs one kernel over the emulated grid (Metal: exactly ``grid`` threads; CUDA:
  whole blocks), output pre-filled with a sentinel that must be fully overwritten.
- :func:`nvcc_compile`: compiles the CUDA sources with ``nvcc`` (float32, float16, bfloat16).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import mlx.core as mx
import numpy as np

from mlx_attention.kernels import BODIES, build_kernel, kernel_source, launch, set_emulator
from mlx_attention.kernels.bodies import INPUT_NAMES, OUTPUT_NAMES
from mlx_attention.kernels.dispatch import template

HERE = Path(__file__).parent
CACHE = Path(tempfile.gettempdir()) / f"mlx_attention_kernel_harness_{os.getuid()}"
KERNEL_INDEX = {"unfold": 0, "fold": 1}
EMULATED_DTYPES = (mx.float32, mx.float16, mx.int32)
NVCC_DTYPES = (mx.float32, mx.float16, mx.bfloat16)
NUMPY = {mx.float32: np.float32, mx.float16: np.float16, mx.int32: np.int32}
# Bit patterns no test value takes: a NaN payload (floats) and an unlikely int.
SENTINEL = {
    mx.float32: np.uint32(0x7FC0DEAD),
    mx.float16: np.uint16(0x7E6B),
    mx.int32: np.int32(-0x7BADBEEF),
}
# MLX's get_type_string (Metal, template hashes) and dtype_to_cuda_type (CUDA signatures).
TYPE_STRING = {mx.float32: "float", mx.float16: "float16_t", mx.bfloat16: "bfloat16_t",
               mx.int32: "int32_t"}  # fmt: skip
CUDA_TYPE = {mx.float32: "float", mx.float16: "__half", mx.bfloat16: "__nv_bfloat16",
             mx.int32: "int32_t"}  # fmt: skip
GXX = shutil.which("g++")
NVCC = shutil.which("nvcc")


@contextlib.contextmanager
def _captured_stdout():
    """Capture what C++ writes to file descriptor 1 (MLX prints generated sources there)."""
    with tempfile.TemporaryFile(mode="w+b") as sink:
        saved = os.dup(1)
        os.dup2(sink.fileno(), 1)
        text: list[str] = []
        try:
            yield text
        finally:
            os.dup2(saved, 1)
            os.close(saved)
            sink.seek(0)
            text.append(sink.read().decode())


def metal_source(name: str, dtype: mx.Dtype, src_size: int = 4096) -> str:
    """The Metal source MLX would compile for ``name`` with ``dtype`` data (traced, not run)."""
    kernel = build_kernel(name, "metal")
    params = mx.zeros((21,), mx.int32)
    src = mx.zeros((src_size,), dtype)

    def traced(params, src):
        return launch(kernel, name, src, params, (src_size,), verbose=True)

    with tempfile.TemporaryDirectory() as tmp, _captured_stdout() as printed:
        mx.export_function(str(Path(tmp) / "trace.mlxfn"), traced, params, src)
    match = re.search(r"```\n(.*?)\n```", printed[0], re.S)
    if match is None:
        raise RuntimeError(f"MLX printed no Metal source while tracing {name}: {printed[0]!r}")
    return match.group(1)


def cuda_source(name: str, dtype: mx.Dtype) -> str:
    """The CUDA source MLX 0.32's ``cuda_kernel`` builds (``build_kernel``), re-created here."""
    source = kernel_source(name, "cuda")
    args = template(name, dtype)
    kernel_name = "custom_kernel_" + name + "".join("_" + TYPE_STRING[t] for _, t in args)
    signature = [f"    const {CUDA_TYPE[t]}* {n}" for n, t in zip(INPUT_NAMES, (mx.int32, dtype))]
    signature += [f"    {CUDA_TYPE[dtype]}* {n}" for n in OUTPUT_NAMES]
    constants = "".join(f"  using {n} = {CUDA_TYPE[t]};\n" for n, t in args) + "\n"
    return (
        '\n#include "mlx/backend/cuda/device/utils.cuh"\n\n#include <cooperative_groups.h>\n\n'
        "namespace mlx::core::cu {\n\nnamespace cg = cooperative_groups;\n\n"
        f"__global__ void {kernel_name}(\n" + ",\n".join(signature) + ") {\n"
        + constants + source + "\n}\n\n} // namespace mlx::core::cu\n"
    )  # fmt: skip


def _metal_call(source: str) -> str:
    """``fn<T..>(params, src, dst, uint3{gid, 0, 0})`` for a captured Metal source."""
    callee = re.search(r"decltype\((\w+<[^)]*>)\)", source).group(1)
    return f"{callee}(params, src, dst, uint3{{unsigned(gid), 0, 0}})"


def _cuda_call(source: str) -> str:
    callee = re.search(r"__global__ void (\w+)\(", source).group(1)
    return f"mlx::core::cu::{callee}(params, src, dst)"


def translation_unit(backend: str, dtype: mx.Dtype) -> str:
    """Both kernels of one backend and dtype plus the launcher, as one g++ source."""
    if backend == "metal":
        sources = {name: metal_source(name, dtype) for name in BODIES}
        head, call = '#include "metal_shim.h"\n#define EMULATE_METAL\n', _metal_call
        data_type = TYPE_STRING[dtype]
    else:
        sources = {name: cuda_source(name, dtype) for name in BODIES}
        head, call, data_type = "", _cuda_call, CUDA_TYPE[dtype]
    return (
        head
        + "\n".join(sources.values())
        + f"\n#define DATA_T {data_type}\n"
        + f"#define CALL_UNFOLD {call(sources['unfold'])}\n"
        + f"#define CALL_FOLD {call(sources['fold'])}\n"
        + (HERE / "launcher.inc").read_text()
    )


GXX_FLAGS = ["-std=c++17", "-O1", "-g", "-fsanitize=address,undefined",
             "-fno-sanitize-recover=all", "-fno-omit-frame-pointer", "-Wno-attributes"]  # fmt: skip


def gxx_build(unit: str, stem: str) -> Path:
    """Compile one emulation translation unit with g++ (ASan+UBSan), cached by its hash."""
    if GXX is None:
        raise RuntimeError("g++ not found")
    includes = ["-I", str(HERE / "include"), "-I", str(HERE / "include_cpu")]
    digest = hashlib.sha1((unit + " ".join(GXX_FLAGS)).encode()).hexdigest()[:16]
    CACHE.mkdir(exist_ok=True)
    exe = CACHE / f"{stem}_{digest}"
    if not exe.exists():
        cpp = exe.with_suffix(".cpp")
        cpp.write_text(unit)
        cmd = [GXX, *GXX_FLAGS, *includes, str(cpp), "-o", str(exe) + ".tmp"]
        result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode:
            raise RuntimeError(f"g++ failed for {stem}:\n{result.stderr[-4000:]}")
        os.replace(str(exe) + ".tmp", exe)
    return exe


@functools.cache
def build(backend: str, dtype: mx.Dtype, mutate: tuple[str, str] | None = None) -> Path:
    """The emulation executable of the gather kernels for ``backend`` and ``dtype``."""
    unit = translation_unit(backend, dtype)
    if mutate is not None:
        unit = unit.replace(*mutate)
    return gxx_build(unit, f"emulate_{backend}_{TYPE_STRING[dtype]}")


def run_emulator(exe: Path, args: list, arrays: list[np.ndarray], out_shape, dtype, label: str):
    """Run an emulation executable on one file: an int64 header (each input's size, then the
    output's), the inputs, and the output pre-filled with the sentinel; read the output back.

    Raises if the run fails (ASan/UBSan reports included) or any output keeps the sentinel.
    """
    total = int(np.prod(out_shape))
    bits = SENTINEL[dtype]
    header = np.array([a.size for a in arrays] + [total], np.int64)
    with tempfile.NamedTemporaryFile(dir=CACHE, suffix=".bin", delete=False) as f:
        f.write(header.tobytes() + b"".join(a.tobytes() for a in arrays))
        f.write(np.full(total, bits, dtype=bits.dtype).tobytes())
        path = f.name
    try:
        result = subprocess.run([str(exe), *map(str, args), path], capture_output=True, text=True)
        if result.returncode:
            raise RuntimeError(f"emulated {label} failed:\n{result.stderr[-3000:]}")
        offset = header.nbytes + sum(a.nbytes for a in arrays)
        out = np.fromfile(path, NUMPY[dtype], offset=offset)
    finally:
        os.unlink(path)
    untouched = out.view(bits.dtype) == bits
    if np.any(untouched):
        raise AssertionError(f"emulated {label}: {untouched.sum()} outputs never written")
    return out.reshape(out_shape)


def emulate(
    backend: str,
    name: str,
    src: mx.array,
    params: mx.array,
    out_shape,
    threadgroup: int,
    exe: Path | None = None,
) -> np.ndarray:
    """Run ``name`` on the emulated ``backend`` grid; raises if any output keeps the sentinel."""
    exe = exe or build(backend, src.dtype)
    grid = max(int(np.prod(out_shape)), 1)
    arrays = [np.asarray(params, np.int32), np.asarray(src)]
    args = [KERNEL_INDEX[name], grid, threadgroup]
    return run_emulator(exe, args, arrays, out_shape, src.dtype, f"{backend} {name}")


def emulate_both(name: str, src: mx.array, params: mx.array, out_shape, threadgroup: int):
    """The ``backend="emulated"`` path: Metal and CUDA emulations, which must agree bit for bit."""
    metal = emulate("metal", name, src, params, out_shape, threadgroup)
    cuda = emulate("cuda", name, src, params, out_shape, threadgroup)
    if metal.tobytes() != cuda.tobytes():
        raise AssertionError(f"emulated Metal and CUDA {name} differ")
    return mx.array(metal)


def register() -> None:
    """Make ``backend="emulated"`` (and ``MLX_ATTENTION_KERNELS=emulated``) run the emulators."""
    from mlx_attention.kernels import fused as fused_kernels

    from . import fused

    set_emulator(emulate_both)
    fused_kernels.set_emulator(fused.emulate_both)


def unregister() -> None:
    """Undo :func:`register`: ``backend="emulated"`` is unavailable again."""
    from mlx_attention.kernels import fused as fused_kernels

    set_emulator(None)
    fused_kernels.set_emulator(None)


def nvcc_units(units: dict[str, str], stem: str, arch: str = "sm_80") -> dict[str, str]:
    """Compile each CUDA translation unit (by label) with nvcc, in parallel, cached by content;
    returns the output of each that failed."""
    CACHE.mkdir(exist_ok=True)
    jobs = {}
    for label, unit in units.items():
        digest = hashlib.sha1((unit + arch).encode()).hexdigest()[:16]
        obj = CACHE / f"{stem}_{digest}.o"
        if obj.exists():
            continue
        cu = obj.with_suffix(".cu")
        cu.write_text(unit)
        cmd = [NVCC, "-std=c++17", f"-arch={arch}", "-I", str(HERE / "include"), "-c", str(cu),
               "-o", str(obj)]  # fmt: skip
        jobs[label] = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
    return {k: p.communicate()[0] for k, p in jobs.items() if p.wait() != 0}


def nvcc_compile(dtypes=NVCC_DTYPES, arch: str = "sm_80") -> dict[str, str]:
    """Compile both CUDA gather kernels per dtype with nvcc; returns the output per failure."""
    units = {
        TYPE_STRING[dtype]: "\n".join(cuda_source(name, dtype) for name in BODIES)
        for dtype in dtypes
    }
    return nvcc_units(units, "nvcc", arch)
