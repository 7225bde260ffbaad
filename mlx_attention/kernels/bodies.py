"""The shared kernel bodies: one restricted-C text per gather, compiled by Metal and CUDA alike.

Subset (enforced by the lint test): ``int``/``bool`` scalars and small local arrays, ``if``/``for``,
``static_cast``; no atomics, no threadgroup/shared memory, no ``uint``, no backend math names.
Each backend prepends one line (its :data:`PRELUDES` entry) that defines ``int gid``; every body
returns early on ``gid >= total`` because CUDA rounds the grid up to whole blocks. Runtime scalars
travel in one int32 ``params`` array: ``[batch, channels, total, rows map, cols map]`` with each
map laid out as :meth:`mlx_attention.ops.AxisMap.params`. Template types: ``T`` the data type,
``A`` the fold accumulator.
"""

from __future__ import annotations

from ..ops.geometry import PARAMS_PER_AXIS

HEADER_PARAMS = 3  # batch, channels, total
INPUT_NAMES = ("params", "src")
OUTPUT_NAMES = ("dst",)

PRELUDES = {
    "metal": "int gid = static_cast<int>(thread_position_in_grid.x);",
    "cuda": "int gid = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x);",
}

# Reads axis ``ax``'s map into locals; both bodies index params through it.
_READ_AXIS = """
    int base = HEADER + ax * PER_AXIS;
    int size = params[base];
    int grid = params[base + 1];
    int taps = params[base + 2];
    int stride = params[base + 3];
    int dil = params[base + 4];
    int pad = params[base + 5];
    int shift = params[base + 6];
    int period = params[base + 7];
    int nat = params[base + 8];"""

# NAT window start of window ``win`` (kecam: VALID extraction, then the first/last grid rows
# replicated; DiNAT tiles the first/last ``dil`` rows), for ``size >= taps * dil``.
_NAT_START = """
      int centre = (taps - 1) / 2;
      int valid = size - (taps - 1) * dil;
      int start = win - centre * dil;
      if (win < centre * dil) {
        start = win % dil;
      } else if (win >= centre * dil + valid) {
        start = valid - dil + (win - centre * dil - valid) % dil;
      }"""

UNFOLD = """
if (gid >= params[2]) return;
int channels = params[1];
// gid = ((((b * grid0 + win0) * grid1 + win1) * kernel0 + tap0) * kernel1 + tap1) * C + c
int c = gid % channels;
int rest = gid / channels;
int tap[2];
int win_of[2];
tap[1] = rest % params[HEADER + PER_AXIS + 2];
rest = rest / params[HEADER + PER_AXIS + 2];
tap[0] = rest % params[HEADER + 2];
rest = rest / params[HEADER + 2];
win_of[1] = rest % params[HEADER + PER_AXIS + 1];
rest = rest / params[HEADER + PER_AXIS + 1];
win_of[0] = rest % params[HEADER + 1];
int b = rest / params[HEADER + 1];
int src_of[2];
bool inside = true;
for (int ax = 0; ax < 2; ++ax) {READ_AXIS
    int win = win_of[ax];
    int t = win * stride + tap[ax] * dil - pad + shift;
    if (nat != 0) {NAT_START
      t = start + tap[ax] * dil;
    } else if (period > 0) {
      t = ((t % period) + period) % period;
    }
    inside = inside && t >= 0 && t < size;
    src_of[ax] = t;
}
int height = params[HEADER];
int width = params[HEADER + PER_AXIS];
if (inside) {
  dst[gid] = src[((b * height + src_of[0]) * width + src_of[1]) * channels + c];
} else {
  dst[gid] = static_cast<T>(0.0f);
}
"""

FOLD = """
if (gid >= params[2]) return;
int channels = params[1];
// gid = ((b * size0 + pos0) * size1 + pos1) * C + c
int c = gid % channels;
int rest = gid / channels;
int pos[2];
pos[1] = rest % params[HEADER + PER_AXIS];
rest = rest / params[HEADER + PER_AXIS];
pos[0] = rest % params[HEADER];
int b = rest / params[HEADER];
// candidates per axis: the taps (strided, cyclic) or the windows within reach (NAT clamp)
int count[2];
for (int ax = 0; ax < 2; ++ax) {READ_AXIS
    count[ax] = nat != 0 ? 2 * (taps - 1) * dil + 1 : taps;
}
A acc = static_cast<A>(0);
for (int r0 = 0; r0 < count[0]; ++r0) {
  for (int r1 = 0; r1 < count[1]; ++r1) {
    int cand[2];
    cand[0] = r0;
    cand[1] = r1;
    int win_of[2];
    int tap[2];
    bool hit = true;
    for (int ax = 0; ax < 2; ++ax) {READ_AXIS
      if (nat != 0) {
        int win = pos[ax] - (taps - 1) * dil + cand[ax];NAT_START
        int offset = pos[ax] - start;
        hit = hit && win >= 0 && win < grid && offset >= 0 && offset % dil == 0;
        win_of[ax] = win;
        tap[ax] = offset / dil;
        hit = hit && tap[ax] < taps;
      } else {
        tap[ax] = cand[ax];
        int t = pos[ax] + pad - shift - tap[ax] * dil;
        if (period > 0) {
          t = ((t % period) + period) % period;
        }
        hit = hit && t >= 0 && t % stride == 0 && t / stride < grid;
        win_of[ax] = t / stride;
      }
    }
    if (hit) {
      int grid0 = params[HEADER + 1];
      int grid1 = params[HEADER + PER_AXIS + 1];
      int kernel0 = params[HEADER + 2];
      int kernel1 = params[HEADER + PER_AXIS + 2];
      int tap_index = (((b * grid0 + win_of[0]) * grid1 + win_of[1]) * kernel0 + tap[0]) * kernel1;
      acc += static_cast<A>(src[(tap_index + tap[1]) * channels + c]);
    }
  }
}
dst[gid] = static_cast<T>(acc);
"""


def _expand(body: str) -> str:
    return (
        body.replace("READ_AXIS", _READ_AXIS)
        .replace("NAT_START", _NAT_START)
        .replace("HEADER", str(HEADER_PARAMS))
        .replace("PER_AXIS", str(PARAMS_PER_AXIS))
    )


BODIES = {"unfold": _expand(UNFOLD), "fold": _expand(FOLD)}

# What each kernel serves, for ``mlx-attention info``.
KERNELS = {
    "unfold": "window partition (pad + cyclic shift), extract_patches (stride, dilation, padding), "
    "halo blocks, NAT/DiNAT neighbourhoods (clamped start)",
    "fold": "window reverse (shift + crop), fold/col2im as a gather (no atomics), "
    "and the VJP of every unfold",
}


def kernel_source(name: str, backend: str) -> str:
    """The source handed to ``mx.fast.metal_kernel`` / ``cuda_kernel``: prelude + shared body."""
    return PRELUDES[backend] + "\n" + BODIES[name]
