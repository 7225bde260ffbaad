"""NAT stage 1 (56x56x64, 2 heads, kernel 7), batch 1: our portable block against explicit K*K
gathering and kecam on TensorFlow, in one run.

- ``explicit``: :func:`mlx_attention.benchmarks.build_floor` of the ``nat`` row (dense qkv, every
  query's clamped K*K neighbourhood of keys and values gathered into one array, then
  ``softmax(QK^T)V``, dense output);
- ``ours``: the same projections around :func:`mlx_attention.ops.neighborhood_attention` with
  kecam's relative-position bias, on the backend ``MLX_ATTENTION_KERNELS`` selects (``off``: the
  portable path);
- ``kecam``: kecam's ``neighborhood_attention`` on TensorFlow (default settings, oneDNN on) via
  ``bench/kecam_peer.py`` in a subprocess, with its peak memory in a second pass (BFC allocator).

The MLX variants are timed in alternating rounds (the figure is the median of the round medians)
so that load from other processes hits them alike. Run with OpenBLAS preloaded for MLX, e.g.
``LD_PRELOAD=/lib/x86_64-linux-gnu/libopenblas.so.0 python bench/local_attention.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

import mlx.core as mx

from mlx_attention import benchmarks, ops
from mlx_attention.kernels import resolve_backend

HERE = Path(__file__).parent
TF_ENV = {"TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}


def ours(dims: int, heads: int, kernel: int):
    w_qkv = benchmarks._weight(dims, 3 * dims, mx.float32)
    w_out = benchmarks._weight(dims, dims, mx.float32)
    bias = mx.random.normal((heads, 2 * kernel - 1, 2 * kernel - 1)) * 0.02

    def call(x: mx.array) -> mx.array:
        q, k, v = (t.reshape(*x.shape[:3], heads, -1) for t in mx.split(x @ w_qkv, 3, axis=-1))
        return ops.neighborhood_attention(q, k, v, kernel, bias=bias).reshape(x.shape) @ w_out

    return call


def kecam(block: benchmarks.Block, protocol: benchmarks.Protocol, memory: bool) -> dict:
    row = {"key": block.key, "kecam": block.kecam, "module": block.kecam_module,
           "kwargs": block.kwargs, "input_shapes": block.input_shapes,
           "is_class": block.is_class, "windows": block.windows}  # fmt: skip
    job = {"rows": [row], "batches": [1], "protocol": vars(protocol), "memory": memory}
    env = {**os.environ, **TF_ENV}
    env.pop("LD_PRELOAD", None)
    env.pop("TF_ENABLE_ONEDNN_OPTS", None)  # default settings: oneDNN on
    if memory:
        env["TF_CPU_ALLOCATOR_USE_BFC"] = "true"
    proc = subprocess.run([sys.executable, str(HERE / "kecam_peer.py")], input=json.dumps(job),
                          capture_output=True, text=True, env=env)  # fmt: skip
    if proc.returncode:
        raise RuntimeError(proc.stderr[-2000:])
    return json.loads(proc.stdout)["records"][0]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    block = benchmarks.select_blocks("nat")[0]
    height, width, dims = block.input_shapes[0]
    heads, kernel = block.kwargs["num_heads"], block.kwargs["kernel_size"]
    x = mx.random.normal((1, height, width, dims))
    variants = {"explicit": benchmarks.build_floor(block), "ours": ours(dims, heads, kernel)}
    protocol = benchmarks.Protocol(warmup=2, min_calls=10, min_seconds=0.5, max_calls=50)
    rounds = {name: [] for name in variants}
    peaks = {}
    for _ in range(args.rounds):
        for name, fn in variants.items():
            timing = benchmarks.measure(lambda fn=fn: fn(x), protocol)
            rounds[name].append(timing.median_ms)
            peaks[name] = timing.peak_bytes / 1e6
    result = {name: {"ms": statistics.median(ms), "rounds_ms": ms, "peak_mb": peaks[name]}
              for name, ms in rounds.items()}  # fmt: skip
    result["ours"]["backend"] = resolve_backend()
    tf_time = kecam(block, benchmarks.Protocol(), memory=False)
    tf_memory = kecam(block, benchmarks.Protocol(), memory=True)
    tf_mb = tf_memory.get("peak_mb", 0) * 2**20 / 1e6  # the peer reports MiB
    result["kecam_tf"] = {"ms": tf_time.get("ms"), "peak_mb": tf_mb, "status": tf_time["status"]}
    mine, base, tf = result["ours"], result["explicit"], result["kecam_tf"]
    print(f"NAT stage 1 {height}x{width}x{dims}, {heads} heads, k{kernel}, b1 "
          f"(ours on backend {mine['backend']!r})")  # fmt: skip
    for name, row in result.items():
        print(f"  {name:9s} {row['ms']:8.2f} ms  {row['peak_mb']:7.1f} MB")
    print(f"  explicit/ours time {base['ms'] / mine['ms']:.2f}x, "
          f"memory {base['peak_mb'] / mine['peak_mb']:.2f}x; ours/kecam-TF time "
          f"{mine['ms'] / tf['ms']:.2f}")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
