"""Issue 9's acceptance figure: the portable neighbourhood block at NAT stage 1 (the ``nat`` row of
:mod:`mlx_attention.benchmarks`: 56x56x64, 2 heads, kernel 7), batch 1, float32, against explicit
K*K gathering (that row's floor) and kecam on TensorFlow (default settings), in one run.

The block and the floor come from the benchmark table and are timed with its protocol; they
alternate for ``--rounds`` rounds, so that load from other processes hits both alike, and the
figure is the median of the round medians. kecam runs through ``bench/run.py``'s subprocess peer.
Run with OpenBLAS preloaded for MLX, e.g.
``LD_PRELOAD=/lib/x86_64-linux-gnu/libopenblas.so.0 python bench/local_attention.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path

import run as bench_run

from mlx_attention import benchmarks


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--kernels", default="off", help="MLX_ATTENTION_KERNELS for the block")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    os.environ["MLX_ATTENTION_KERNELS"] = args.kernels
    block = benchmarks.select_blocks("nat")[0]
    module, status = benchmarks.build_block(block)
    if module is None:
        raise SystemExit(f"the nat block does not build: {status}")
    x = benchmarks.make_inputs(block, 1)[0]
    variants = {"block": module, "explicit": benchmarks.build_floor(block)}
    protocol = benchmarks.Protocol(warmup=2, min_calls=10, min_seconds=0.5, max_calls=50)
    rounds: dict[str, list[float]] = {name: [] for name in variants}
    peaks: dict[str, float] = {}
    for _ in range(args.rounds):
        for name, fn in variants.items():
            timing = benchmarks.measure(lambda fn=fn: fn(x), protocol)
            rounds[name].append(timing.median_ms)
            peaks[name] = timing.peak_bytes / 2**20
    result = {name: {"ms": statistics.median(ms), "rounds_ms": ms, "peak_mb": peaks[name]}
              for name, ms in rounds.items()}  # fmt: skip
    result["block"]["backend"] = benchmarks.kernel_backend(args.kernels)
    kecam, _ = bench_run.run_kecam([block], [1], benchmarks.FULL)
    record = kecam[(block.key, 1)]
    result["kecam_tf"] = {"ms": record.get("kecam_ms"), "peak_mb": record.get("kecam_peak_mb"),
                          "status": record["status"]}  # fmt: skip

    ours, floor, tf = result["block"], result["explicit"], result["kecam_tf"]
    print(f"{block.source}: {block.shape_text}, b1 float32, block on {ours['backend']!r}, "
          f"medians of {args.rounds} alternating rounds; MB = peak MiB of one call")  # fmt: skip
    for name, row in result.items():
        ms = "n/a" if row["ms"] is None else f"{row['ms']:8.2f} ms"
        mb = "n/a" if row["peak_mb"] is None else f"{row['peak_mb']:7.1f} MB"
        print(f"  {name:9s} {ms}  {mb}")
    print(f"  explicit / block: time {floor['ms'] / ours['ms']:.2f}x (per round: "
          + ", ".join(f"{f / b:.2f}" for f, b in zip(floor["rounds_ms"], ours["rounds_ms"]))
          + f"), memory {floor['peak_mb'] / ours['peak_mb']:.2f}x")  # fmt: skip
    if tf["ms"]:
        print(f"  block / kecam-TF time: {ours['ms'] / tf['ms']:.2f}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
