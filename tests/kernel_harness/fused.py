"""The fused local-attention kernel, verified like the gathers (see the package docstring).

- :func:`metal_source`: MLX's own Metal source, traced inside ``mx.export_function``;
- :func:`cuda_source`: MLX 0.32's ``cuda_kernel`` source (int template ``VD`` as ``constexpr``);
- :func:`emulate`: a g++ ASan+UBSan build (``fused_launcher.inc``) over the emulated grid, output
  pre-filled with the sentinel; :func:`emulate_both` requires Metal and CUDA to agree bit for bit;
- :func:`nvcc_compile`: nvcc for float32, float16 and bfloat16.
"""

from __future__ import annotations

import functools
import re
import tempfile
from pathlib import Path

import mlx.core as mx
import numpy as np

from mlx_attention.kernels import fused
from mlx_attention.kernels.fused import INPUT_NAMES, OUTPUT_NAMES
from mlx_attention.ops.geometry import PARAMS_PER_AXIS

from . import (
    CUDA_TYPE,
    HERE,
    NVCC_DTYPES,
    TYPE_STRING,
    _captured_stdout,
)

EMULATED_DTYPES = (mx.float32, mx.float16)
# VD built together (the common widths; nvcc and the mutation tests); emulating any other VD
# (a block fixture with kd = 6, say) builds an executable for it alone, on demand, cached.
VALUE_DIMS = (4, 8, 16, 32)


def _input_dtypes(dtype: mx.Dtype) -> list[mx.Dtype]:
    return [mx.int32, dtype, dtype, dtype, mx.float32]


def metal_source(dtype: mx.Dtype, value_dim: int) -> str:
    """The Metal source MLX would compile for ``dtype`` data and ``VD = value_dim``."""
    kernel = fused.build_fused("metal")
    sizes = [fused.HEADER_PARAMS + 2 * PARAMS_PER_AXIS] + [4096] * 4  # as large as real ones
    inputs = [mx.zeros((n,), t) for n, t in zip(sizes, _input_dtypes(dtype))]

    def traced(*inputs):
        return fused.launch_fused(kernel, inputs, (1, value_dim), dtype, verbose=True)

    with tempfile.TemporaryDirectory() as tmp, _captured_stdout() as printed:
        mx.export_function(str(Path(tmp) / "trace.mlxfn"), traced, *inputs)
    match = re.search(r"```\n(.*?)\n```", printed[0], re.S)
    if match is None:
        raise RuntimeError(f"MLX printed no Metal source for the fused kernel: {printed[0]!r}")
    return match.group(1)


def cuda_source(dtype: mx.Dtype, value_dim: int) -> str:
    """The CUDA source MLX 0.32's ``cuda_kernel`` builds for ``dtype`` and ``VD = value_dim``."""
    name = f"custom_kernel_{fused.NAME}_{TYPE_STRING[dtype]}_{value_dim}"
    typed = zip(INPUT_NAMES, _input_dtypes(dtype))
    signature = [f"    const {CUDA_TYPE[t]}* {n}" for n, t in typed]
    signature += [f"    {CUDA_TYPE[dtype]}* {n}" for n in OUTPUT_NAMES]
    constants = f"  using T = {CUDA_TYPE[dtype]};\n  constexpr int VD = {value_dim};\n\n"
    return (
        '\n#include "mlx/backend/cuda/device/utils.cuh"\n\n#include <cooperative_groups.h>\n\n'
        "namespace mlx::core::cu {\n\nnamespace cg = cooperative_groups;\n\n"
        f"__global__ void {name}(\n" + ",\n".join(signature) + ") {\n"
        + constants + fused.fused_source("cuda") + "\n}\n\n} // namespace mlx::core::cu\n"
    )  # fmt: skip


ARGS = "params, queries, keys, values, bias, out"


def translation_unit(backend: str, dtype: mx.Dtype, value_dims=VALUE_DIMS) -> str:
    """The ``VD`` instances of one backend and dtype plus the launcher, as one g++ source."""
    if backend == "metal":
        sources = [metal_source(dtype, vd) for vd in value_dims]
        callees = [re.search(r"decltype\((\w+<[^)]*>)\)", s).group(1) for s in sources]
        calls = [f"{c}({ARGS}, uint3{{unsigned(gid), 0, 0}})" for c in callees]
        head, data_type = '#include "metal_shim.h"\n#define EMULATE_METAL\n', TYPE_STRING[dtype]
    else:
        sources = [cuda_source(dtype, vd) for vd in value_dims]
        callees = [re.search(r"__global__ void (\w+)\(", s).group(1) for s in sources]
        calls = [f"mlx::core::cu::{c}({ARGS})" for c in callees]
        head, data_type = "", CUDA_TYPE[dtype]
    dispatch = "".join(
        f"  if (value_dim == {vd}) launch([&](int gid) {{ {call}; }}, grid, threadgroup);\n"
        for vd, call in zip(value_dims, calls)
    )
    return (
        head + "\n".join(sources) + f"\n#define DATA_T {data_type}\n"
        + (HERE / "fused_launcher.inc").read_text().replace("DISPATCH\n", dispatch)
    )  # fmt: skip


@functools.cache
def build(
    backend: str, dtype: mx.Dtype, mutate: tuple[str, str] | None = None, value_dims=VALUE_DIMS
) -> Path:
    """The emulation executable of the fused kernel (cached by source hash)."""
    from . import gxx_build

    unit = translation_unit(backend, dtype, value_dims)
    if mutate is not None:
        unit = unit.replace(*mutate)
    return gxx_build(unit, f"fused_{backend}_{TYPE_STRING[dtype]}")


def emulate(backend: str, inputs, out_shape, threadgroup: int, exe: Path | None = None):
    """Run the fused kernel on the emulated ``backend`` grid; raises on unwritten outputs."""
    from . import run_emulator

    dtype = inputs[1].dtype
    value_dim = out_shape[-1]
    widths = VALUE_DIMS if value_dim in VALUE_DIMS else (value_dim,)
    exe = exe or build(backend, dtype, value_dims=widths)
    grid = max(int(np.prod(out_shape)) // value_dim, 1)
    arrays = [np.asarray(x).reshape(-1) for x in inputs]
    args = [value_dim, grid, threadgroup]
    return run_emulator(exe, args, arrays, out_shape, dtype, f"fused {backend}")


def emulate_both(inputs, out_shape, threadgroup: int) -> mx.array:
    """``backend="emulated"``: Metal and CUDA emulations, which must agree bit for bit."""
    metal = emulate("metal", inputs, out_shape, threadgroup)
    cuda = emulate("cuda", inputs, out_shape, threadgroup)
    if metal.tobytes() != cuda.tobytes():
        raise AssertionError("emulated Metal and CUDA fused local attention differ")
    return mx.array(metal)


def nvcc_compile(dtypes=NVCC_DTYPES, arch: str = "sm_80") -> dict[str, str]:
    """Compile the fused CUDA source per dtype (every common ``VD``) with nvcc, in parallel."""
    from . import nvcc_units

    units = {
        TYPE_STRING[dtype]: "\n".join(cuda_source(dtype, vd) for vd in VALUE_DIMS)
        for dtype in dtypes
    }
    return nvcc_units(units, "nvcc_fused", arch)
