"""Which op dominates a block: ``perf record`` over a few seconds of calls, top symbols per row.

    python bench/profile.py cotnet coat_cpe          # batch 1, 3 s each
    python bench/profile.py nat --batch 8 --seconds 5

Needs Linux ``perf`` (MLX's CPU primitives are named C++ functions in ``libmlx.so``, e.g.
``slow_conv_2D`` for a grouped convolution, ``Softmax``, ``gather``, ``copy_general``; BLAS
products show as the BLAS library's GEMM kernel). One child process per row runs the row of
:data:`mlx_attention.benchmarks.BLOCKS` in a loop under ``perf record``; the report is the share of
samples per symbol. Run it with the same ``LD_PRELOAD`` as the benchmark it explains.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mlx_attention import benchmarks

# the child: build the row, warm it up, call it for `seconds`
CHILD = """
import sys, time
import mlx.core as mx
from mlx_attention import benchmarks
(block,) = benchmarks.select_blocks(sys.argv[1])
module, status = benchmarks.build_block(block)
if module is None:
    sys.exit(f"{block.key}: {status}")
inputs = benchmarks.make_inputs(block, int(sys.argv[2]))
mx.eval(module(*inputs))
started, calls = time.perf_counter(), 0
while time.perf_counter() - started < float(sys.argv[3]):
    mx.eval(module(*inputs))
    calls += 1
print(f"{(time.perf_counter() - started) / calls * 1e3:.3g} ms/call over {calls} calls")
"""


def short_name(symbol: str, dso: str) -> str:
    """A C++ symbol without its template and parameter lists, e.g. ``slow_conv_2D``."""
    if "openblas" in dso.lower() or "blas" in dso.lower():
        return f"BLAS {symbol}"
    if dso.startswith("lib") and dso.endswith(".so") and "mlx" not in dso and "_V_" in dso:
        return "mx.compile'd elementwise kernel"
    previous = None
    while previous != symbol:  # innermost groups first
        previous, symbol = symbol, re.sub(r"<[^<>]*>|\([^()]*\)", "", symbol)
    parts = [p for p in symbol.split("::") if p and p not in ("mlx", "core", "operator")]
    parts = [p for p in parts if not p.startswith("{lambda")]
    return parts[-1] if parts else symbol


def top_symbols(data: Path, count: int) -> list[tuple[float, str]]:
    """``(percent, name)`` of the ``count`` busiest symbols, same names merged."""
    report = subprocess.run(
        ["perf", "report", "-i", str(data), "--stdio", "--sort", "dso,symbol",
         "--field-separator", "\t"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    shares: dict[str, float] = {}
    for line in report.splitlines():
        fields = line.split("\t")
        if line.startswith("#") or len(fields) < 3:
            continue
        percent, dso, symbol = float(fields[0].strip().rstrip("%")), fields[1], fields[2]
        name = short_name(symbol.split("] ", 1)[-1].strip(), dso.strip())
        if dso.strip() == "[kernel.kallsyms]" or "sched_yield" in name:
            name = "kernel / thread scheduling"
        shares[name] = shares.get(name, 0.0) + percent
    return sorted(((p, n) for n, p in shares.items()), reverse=True)[:count]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("blocks", nargs="+", help="row keys or kecam names")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--top", type=int, default=5)
    args = parser.parse_args(argv)
    if shutil.which("perf") is None:
        print("bench/profile.py needs Linux perf (apt-get install linux-perf)", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        for block in benchmarks.select_blocks(args.blocks):
            data = Path(tmp) / f"{block.key}.data"
            started = time.perf_counter()
            child = subprocess.run(
                ["perf", "record", "-q", "-F", "499", "-o", str(data), sys.executable, "-c",
                 CHILD, block.key, str(args.batch), str(args.seconds)],
                capture_output=True, text=True,
            )  # fmt: skip
            if child.returncode != 0:
                print(f"{block.key}: {child.stderr.strip()[-300:]}")
                continue
            top = ", ".join(f"{n} {p:.0f}%" for p, n in top_symbols(data, args.top))
            print(f"{block.key} b{args.batch}: {child.stdout.strip()}; {top}"
                  f" ({time.perf_counter() - started:.0f} s)", flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
