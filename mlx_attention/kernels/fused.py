"""Fused local attention: scores, relative bias, online softmax and the weighted sum of values in
one kernel, one thread per query pixel and head, with nothing of size K*K*C written to memory.

One kernel serves neighbourhood attention (NAT/DiNAT: clamped windows, table bias) and halo
attention (strided blocks with a zero halo, per-query row/column logits): a query at ``(y, x)``
reads window ``(y / block_h, x / block_w)`` of the two :class:`~mlx_attention.ops.AxisMap` of the
gather kernels. The body is shared text; only its math name differs per backend (``EXP`` becomes
``metal::exp`` or ``expf``), so it is compiled per backend like a reduction kernel (DESIGN.md).
Backward: the VJP of the portable ``ops`` path (unfused), through ``mx.vjp``.

``params`` (int32): ``[batch, heads, total, key_dim, bias_mode, block_h, block_w, query_h,
query_w, rows map, cols map]``; bias modes: 0 none, 1 NAT table ``[heads, 2kh-1, 2kw-1]``,
2 per-query logits ``[B, qh, qw, heads, kh + kw]`` (row taps, then column taps).
Template: ``T`` the data type, ``VD`` the value dimension (the accumulator's length).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import mlx.core as mx
import numpy as np

from ..ops.geometry import PARAMS_PER_AXIS, AxisMap
from .bodies import _NAT_START, _READ_AXIS, PRELUDES

NAME = "local_attention"
SERVES = (
    "fused NAT/DiNAT neighbourhood and halo attention (scores, relative bias, online softmax, "
    "weighted values; no K*K patches)"
)
HEADER_PARAMS = 9
INPUT_NAMES = ("params", "queries", "keys", "values", "bias")
OUTPUT_NAMES = ("out",)
EXP = {"metal": "metal::exp", "cuda": "expf"}
THREADGROUP = 64
BIAS_MODES = {None: 0, "table": 1, "per_query": 2}

LOCAL_ATTENTION = """
if (gid >= params[2]) return;
int heads = params[1];
int key_dim = params[3];
int mode = params[4];
// gid = ((b * query_h + y) * query_w + x) * heads + h
int h = gid % heads;
int rest = gid / heads;
int query[2];
query[1] = rest % params[8];
rest = rest / params[8];
query[0] = rest % params[7];
int b = rest / params[7];
int first[2];
int step[2];
int count[2];
int extent[2];
for (int ax = 0; ax < 2; ++ax) {READ_AXIS
    int win = query[ax] / params[5 + ax];
    first[ax] = win * stride - pad + shift;
    if (nat != 0) {NAT_START
      first[ax] = start;
    }
    step[ax] = dil;
    count[ax] = taps;
    extent[ax] = size;
}
int span_w = 2 * count[1] - 1;
// the lowest finite float, not the first score: a leading -inf score must weigh 0, not give
// EXP(-inf - -inf) = NaN (kecam's two-pass softmax weighs it 0)
float top = -3.402823466e38f;
float total = 0.0f;
float acc[VD];
for (int c = 0; c < VD; ++c) {
  acc[c] = 0.0f;
}
for (int a = 0; a < count[0]; ++a) {
  int row = first[0] + a * step[0];
  for (int e = 0; e < count[1]; ++e) {
    int col = first[1] + e * step[1];
    bool inside = row >= 0 && row < extent[0] && col >= 0 && col < extent[1];
    // key/value pixel (b, row, col), head h; outside the image both are zero (halo padding)
    int pixel = ((b * extent[0] + row) * extent[1] + col) * heads + h;
    float score = 0.0f;
    if (inside) {
      for (int c = 0; c < key_dim; ++c) {
        score += static_cast<float>(queries[gid * key_dim + c]) *
                 static_cast<float>(keys[pixel * key_dim + c]);
      }
    }
    if (mode == 1) {
      int rel_row = (row - query[0]) / step[0] + count[0] - 1;
      int rel_col = (col - query[1]) / step[1] + count[1] - 1;
      score += static_cast<float>(bias[(h * (2 * count[0] - 1) + rel_row) * span_w + rel_col]);
    } else if (mode == 2) {
      int logits = gid * (count[0] + count[1]);
      score += static_cast<float>(bias[logits + a]) +
               static_cast<float>(bias[logits + count[0] + e]);
    }
    // online softmax: running maximum `top`, running sum `total` of EXP(score - top)
    float next = score > top ? score : top;
    float rescale = EXP(top - next);
    float weight = EXP(score - next);
    total = total * rescale + weight;
    for (int c = 0; c < VD; ++c) {
      float value = inside ? static_cast<float>(values[pixel * VD + c]) : 0.0f;
      acc[c] = acc[c] * rescale + weight * value;
    }
    top = next;
  }
}
for (int c = 0; c < VD; ++c) {
  out[gid * VD + c] = static_cast<T>(acc[c] / total);
}
"""

TEMPLATE_BODY = (
    LOCAL_ATTENTION.replace("READ_AXIS", _READ_AXIS)
    .replace("NAT_START", _NAT_START)
    .replace("HEADER", str(HEADER_PARAMS))
    .replace("PER_AXIS", str(PARAMS_PER_AXIS))
)


def fused_source(backend: str) -> str:
    """The source handed to ``mx.fast.metal_kernel`` / ``cuda_kernel`` for ``backend``."""
    return PRELUDES[backend] + "\n" + TEMPLATE_BODY.replace("EXP(", EXP[backend] + "(")


@functools.cache
def build_fused(backend: str):
    """The MLX kernel object of the fused local attention on ``backend`` (built once)."""
    common = dict(
        name=NAME, input_names=list(INPUT_NAMES), output_names=list(OUTPUT_NAMES),
        source=fused_source(backend),
    )  # fmt: skip
    if backend == "metal":
        return mx.fast.metal_kernel(**common)
    return mx.fast.cuda_kernel(**common)


def fused_params(
    queries: mx.array, rows: AxisMap, cols: AxisMap, blocks: tuple[int, int], mode: int
) -> mx.array:
    """The int32 ``params`` array of one launch (layout in the module docstring)."""
    batch, query_h, query_w, heads, key_dim = queries.shape
    total = batch * query_h * query_w * heads
    if total * max(key_dim, 1) >= 2**31:
        raise ValueError(f"kernels index with int32: {total} queries x {key_dim} is too many")
    header = [batch, heads, total, key_dim, mode, *blocks, query_h, query_w]
    return mx.array(np.array(header + rows.params() + cols.params(), np.int32))


def launch_fused(kernel, inputs, out_shape, dtype, *, threadgroup=THREADGROUP, verbose=False):
    """Call a built fused kernel: one thread per query pixel and head."""
    total = math.prod(out_shape[:-1])
    return kernel(
        inputs=list(inputs),
        template=[("T", dtype), ("VD", out_shape[-1])],
        grid=(max(total, 1), 1, 1),
        threadgroup=(threadgroup, 1, 1),
        output_shapes=[tuple(out_shape)],
        output_dtypes=[dtype],
        verbose=verbose,
    )[0]


# emulator(inputs, out_shape, threadgroup) -> mx.array; registered by the test harness
_emulator: Callable | None = None


def set_emulator(emulator: Callable | None) -> None:
    """Register (or remove) the CPU emulator of the fused kernel behind ``backend="emulated"``."""
    global _emulator
    _emulator = emulator


def local_attention(
    queries: mx.array,
    keys: mx.array,
    values: mx.array,
    rows: AxisMap,
    cols: AxisMap,
    blocks: tuple[int, int],
    bias: mx.array | None,
    bias_mode: str | None,
    backend: str,
    reference: Callable,
) -> mx.array:
    """Fused attention of every query over its window; ``queries`` already carry the scale.

    Args:
        queries: ``[B, qh, qw, heads, kd]``, scaled.
        keys, values: ``[B, H, W, heads, kd]``, ``[B, H, W, heads, vd]``.
        rows, cols: the key windows (window ``i`` of an axis serves queries ``i*block..``).
        blocks: queries per window along each axis (1 for NAT).
        bias, bias_mode: as in the module docstring (``"table"``, ``"per_query"`` or ``None``).
        backend: ``"metal"``, ``"cuda"`` or ``"emulated"``.
        reference: the portable function of ``(queries, keys, values, bias)`` whose VJP is used.

    Shape:
        ``-> [B, qh, qw, heads, vd]`` in the dtype of ``values``.
    """
    dtype = values.dtype
    out_shape = (*queries.shape[:4], values.shape[4])
    params = fused_params(queries, rows, cols, blocks, BIAS_MODES[bias_mode])
    table = mx.zeros((1,), mx.float32) if bias is None else bias.astype(mx.float32)

    def run(q, k, v, t):
        inputs = [params, q.astype(dtype), k.astype(dtype), v, t]
        if backend == "emulated":
            return _emulator(inputs, out_shape, THREADGROUP)
        return launch_fused(build_fused(backend), inputs, out_shape, dtype)

    @mx.custom_function
    def fused(q, k, v, t):
        return run(q, k, v, t)

    @fused.vjp
    def fused_vjp(primals, cotangent, output):
        return mx.vjp(reference, list(primals), [cotangent])[1]

    return fused(queries, keys, values, table)
