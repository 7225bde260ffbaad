"""The full benchmark: every block, this library next to its peers, measured in one run.

    python bench/run.py                       # b1 and b8, float32, eager, every peer installed
    python bench/run.py --quick               # b1, a few calls per row, no peers: under a minute
    python bench/run.py --mode eager,compiled --dtype float32,float16 --kernels auto,off
    python bench/run.py --models              # whole models (NAT_Mini, DiNAT_Mini) b1 and b8

Peers, where installed: kecam on TensorFlow (the ``reference`` extra; float32, in a subprocess,
TensorFlow's default settings, i.e. oneDNN on; rows that oneDNN cannot run, a softmax over more
than 5 dimensions in VOLO and HaloNet, are rerun with oneDNN off and marked so), natten-mlx for
the neighbourhood block (its ``na2d`` between the same dense projections), and the
straightforward MLX floor (docs/benchmarks.md). Ratios are ours / peer, from this run only. Every
measurement watches the CPU other processes use and is repeated when they disturb it
(``benchmarks.Protocol``); rows that stay disturbed are marked ``*``. Each row records the kernel
setting and the backend that actually ran under it (``kernels.resolve_backend()``).

Writes ``bench/results/bench-<time>.{json,md,png}`` (the plot needs the ``bench`` extra). With
``--models``, whole models (``benchmarks.MODEL_ROWS``) beside kecam's same models on TensorFlow
(kecam's initialisation, the same subprocess and memory method as the blocks), in a table of
their own: ``bench/results/bench-models-<time>.{json,md}``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import mlx.core as mx

from mlx_attention import benchmarks

HERE = Path(__file__).resolve().parent
TF_ENV = {"TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}


def run_kecam(blocks, batches, protocol: benchmarks.Protocol) -> tuple[dict, dict]:
    """``{(block, batch): record}`` from kecam on TensorFlow, and its environment."""
    rows = [
        {
            "key": b.key, "kecam": b.kecam, "module": b.kecam_module, "kwargs": b.kwargs,
            "input_shapes": b.input_shapes, "is_class": b.is_class, "windows": b.windows,
        }
        for b in blocks
    ]  # fmt: skip
    return _kecam_rows(rows, batches, protocol)


def run_kecam_models(model_rows, batches, protocol: benchmarks.Protocol) -> tuple[dict, dict]:
    """``{(model row, batch): record}`` from kecam's same models on TensorFlow, and its
    environment."""
    from mlx_attention import models

    rows = []
    for row in model_rows:
        module, constructor = models.get_entry(row.name).kecam.rsplit(".", 1)
        shape = models.create_model(row.name, **row.kwargs).input_shape  # lazy: nothing runs
        rows.append({
            "key": row.key, "kecam": constructor, "module": f"keras_cv_attention_models.{module}",
            "kwargs": row.kwargs, "input_shapes": [shape], "is_class": False, "windows": 1,
            "model": True,
        })  # fmt: skip
    return _kecam_rows(rows, batches, protocol)


def _kecam_rows(rows: list[dict], batches, protocol: benchmarks.Protocol) -> tuple[dict, dict]:
    """The kecam peer on ``rows``: a timing pass with TensorFlow's defaults, and a memory pass."""
    job = {"rows": rows, "batches": list(batches), "protocol": asdict(protocol)}
    env, records = _kecam_pass(job, {})
    failed = {r["key"] for r in records.values() if "dims must be <= 5" in r["status"]}
    if failed:  # oneDNN's softmax takes at most 5 dimensions: rerun those rows without it
        retry = {**job, "rows": [r for r in rows if r["key"] in failed]}
        _, again = _kecam_pass(retry, {"TF_ENABLE_ONEDNN_OPTS": "0"})
        for key, record in again.items():
            records[key] = {**record, "kecam_note": "oneDNN off (its softmax fails on rank > 5)"}
    _, memory = _kecam_pass({**job, "memory": True}, {"TF_CPU_ALLOCATOR_USE_BFC": "true"})
    failed_memory = [r for r in rows if r["key"] in failed]
    if failed_memory:
        _, again = _kecam_pass(
            {**job, "rows": failed_memory, "memory": True},
            {"TF_CPU_ALLOCATOR_USE_BFC": "true", "TF_ENABLE_ONEDNN_OPTS": "0"},
        )
        memory.update(again)
    for key, record in records.items():
        if key in memory and "kecam_peak_mb" in memory[key]:
            record["kecam_peak_mb"] = memory[key]["kecam_peak_mb"]
    return records, env


def _kecam_pass(job: dict, extra_env: dict) -> tuple[dict, dict]:
    env = {**os.environ, **TF_ENV, **extra_env}
    env.pop("LD_PRELOAD", None)  # the OpenBLAS preload is for MLX; TensorFlow has its own GEMM
    proc = subprocess.run(
        [sys.executable, str(HERE / "kecam_peer.py")],
        input=json.dumps(job), capture_output=True, text=True, env=env,
    )  # fmt: skip
    if proc.returncode != 0:
        raise RuntimeError(f"kecam peer failed:\n{proc.stderr[-2000:]}")
    document = json.loads(proc.stdout)
    return document["environment"], {(r["key"], r["batch"]): r for r in document["records"]}


def run_natten_mlx(blocks, batches, protocol, mode: str) -> dict:
    """natten-mlx's ``na2d`` between dense projections like the block's, on the NAT rows."""
    import natten_mlx

    records = {}
    for block in blocks:
        if block.kecam != "neighborhood_attention":
            continue
        height, width, dims = block.input_shapes[0]
        heads, kernel = block.kwargs["num_heads"], block.kwargs["kernel_size"]
        w_qkv = mx.random.normal((dims, 3 * dims)) * dims**-0.5
        w_out = mx.random.normal((dims, dims)) * dims**-0.5

        def call(x, heads=heads, kernel=kernel, w_qkv=w_qkv, w_out=w_out):
            q, k, v = (t.reshape(*x.shape[:3], heads, -1) for t in mx.split(x @ w_qkv, 3, axis=-1))
            return natten_mlx.na2d(q, k, v, kernel_size=kernel).reshape(x.shape) @ w_out

        for batch in batches:
            x = mx.random.normal((batch, height, width, dims))
            fn = mx.compile(call) if mode == "compiled" else call
            try:
                timing = benchmarks.measure(lambda fn=fn, x=x: fn(x), protocol)
                records[(block.key, batch)] = {
                    "status": "ok", **benchmarks.timing_fields("natten_mlx", timing)
                }  # fmt: skip
            except Exception as exc:  # an API change in natten-mlx must not stop the run
                records[(block.key, batch)] = {"status": f"error: {type(exc).__name__}: {exc}"}
    return records


def attach_peers(records: list[dict], peers: dict[str, dict], key: str = "block") -> None:
    """Put each peer's fields (``<peer>_ms``, ...) and ours / theirs on the float32 records
    (``key``: the record field that names the row, ``"block"`` or ``"model"``)."""
    for record in records:
        if record["dtype"] != "float32":
            continue
        for name, results in peers.items():
            peer = results.get((record[key], record["batch"]))
            if peer is None:
                continue
            if peer["status"] != "ok":
                record[f"{name}_status"] = peer["status"]
                continue
            record.update((k, v) for k, v in peer.items() if k.startswith(f"{name}_"))
            if "ours_ms" in record:
                record[f"ratio_{name}"] = record["ours_ms"] / peer[f"{name}_ms"]
            if record.get("ours_peak_mb") and peer.get(f"{name}_peak_mb"):
                record[f"mem_ratio_{name}"] = record["ours_peak_mb"] / peer[f"{name}_peak_mb"]


# --- output ---------------------------------------------------------------------------------

fmt = benchmarks.fmt
COLUMNS = (
    ("block", lambda r: r["block"]),
    ("shape", lambda r: r["shape"]),
    ("b", lambda r: str(r["batch"])),
    ("dtype", lambda r: r["dtype"]),
    ("mode", lambda r: r["mode"]),
    ("kernels", benchmarks.kernels_cell),
    ("MFLOP", lambda r: fmt(r["mflops"])),
    ("ours ms", lambda r: benchmarks.time_cell(r, "ours") if r["status"] == "ok"
     else r["status"][:30]),
    ("ours MB", lambda r: fmt(r.get("ours_peak_mb"))),
    ("floor ms", lambda r: benchmarks.time_cell(r, "floor", spread=False)),
    ("x floor", lambda r: fmt(r.get("ratio_floor"), 2)),
    ("kecam-TF ms", lambda r: _peer_ms(r, "kecam")),
    ("x kecam", lambda r: fmt(r.get("ratio_kecam"), 2)),
    ("TF MB", lambda r: fmt(r.get("kecam_peak_mb"))),
    ("natten-mlx ms", lambda r: _peer_ms(r, "natten_mlx")),
    ("x natten-mlx", lambda r: fmt(r.get("ratio_natten_mlx"), 2)),
)  # fmt: skip
# whole models (--models): time, memory and throughput beside kecam's same model on TensorFlow
MODEL_COLUMNS = (
    ("model", lambda r: r["model"]),
    ("input", lambda r: r.get("shape", "–")),
    ("params M", lambda r: fmt(r.get("params_m"), 4)),
    ("b", lambda r: str(r["batch"])),
    ("dtype", lambda r: r["dtype"]),
    ("mode", lambda r: r["mode"]),
    ("kernels", benchmarks.kernels_cell),
    ("ours ms", lambda r: benchmarks.time_cell(r, "ours") if r["status"] == "ok"
     else r["status"][:30]),
    ("ours MB", lambda r: fmt(r.get("ours_peak_mb"))),
    ("ours img/s", lambda r: fmt(r.get("ours_images_per_s"))),
    ("kecam-TF ms", lambda r: _peer_ms(r, "kecam")),
    ("x kecam", lambda r: fmt(r.get("ratio_kecam"), 2)),
    ("TF MB", lambda r: fmt(r.get("kecam_peak_mb"))),
    ("x TF MB", lambda r: fmt(r.get("mem_ratio_kecam"), 2)),
)  # fmt: skip
# columns of the run's settings: shown only where the run varies them, else said once above
SETTINGS = ("dtype", "mode", "kernels")


def _peer_ms(record: dict, name: str) -> str:
    if f"{name}_ms" in record:
        return benchmarks.time_cell(record, name) + (" ¹" if f"{name}_note" in record else "")
    return record.get(f"{name}_status", "–")[:30]


def _used_columns(records, columns=COLUMNS):
    empty = {"–", ""}
    return [
        (h, f)
        for h, f in columns
        if any(f(r) not in empty for r in records)
        and not (h in SETTINGS and len({f(r) for r in records}) == 1)
    ]


def _settings(records, columns=COLUMNS) -> str:
    """The settings every record shares, e.g. ``float32, eager, kernels auto: ops``."""
    shared = [
        ("kernels " if h == "kernels" else "") + f(records[0])
        for h, f in columns
        if h in SETTINGS and len({f(r) for r in records}) == 1
    ]
    return ", ".join(shared)


def markdown(
    records: list[dict], env: dict, protocol: benchmarks.Protocol, all_columns=COLUMNS
) -> str:
    columns = _used_columns(records, all_columns)
    lines = [
        f"Machine: {env['processor']}, {env['cpus']} CPUs, {env['platform']}; MLX {env['mlx']} "
        f"on {env['device']}, BLAS: {env['blas']}; kernels: {env['kernels_backend']}; "
        f"kecam-TF: {env.get('kecam', 'not run')}. "
        f"Rows: {_settings(records, all_columns) or 'see columns'}. "
        f"Protocol: {protocol.warmup} warm-up calls, then >= {protocol.min_calls} calls and "
        f">= {protocol.min_seconds} s (at most {protocol.max_calls}); median "
        "(inter-quartile range). MB: peak memory of one call over what was allocated before it. "
        "x peer = ours / peer in this run (> 1: slower).",
        "",
        benchmarks.noise_summary(records, protocol),
        "",
        "| " + " | ".join(h for h, _ in columns) + " |",
        "|"
        + "|".join(
            "---" if h in ("block", "model", "shape", "input", *SETTINGS) else "---:"
            for h, _ in columns
        )
        + "|",  # fmt: skip
    ]
    lines += ["| " + " | ".join(f(r) for _, f in columns) + " |" for r in records]
    if any("kecam_note" in r for r in records):
        lines += ["", "¹ kecam with oneDNN off: oneDNN's softmax fails on rank > 5."]
    return "\n".join(lines) + "\n"


def plot(records: list[dict], path: Path) -> bool:
    """Time and memory per block, ours vs peers, one row of panels per batch size.

    One setting is drawn: the first record's dtype, mode and kernels (float32 eager by default).
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("no plot: matplotlib is missing (pip install -e '.[bench]' in the clone)")
        return False
    setting = [(k, records[0][k]) for k in SETTINGS]
    shown = [r for r in records if all(r[k] == v for k, v in setting)]
    batches = sorted({r["batch"] for r in shown})
    series = (("ours", "this library"), ("floor", "MLX floor"), ("kecam", "kecam TF"),
              ("natten_mlx", "natten-mlx"))  # fmt: skip
    fig, axes = plt.subplots(len(batches), 2, figsize=(14, 0.32 * len(shown) + 3), squeeze=False)
    for row, batch in enumerate(batches):
        rs = [r for r in shown if r["batch"] == batch]
        for col, (suffix, label) in enumerate((("_ms", "time, ms"), ("_peak_mb", "peak, MB"))):
            ax = axes[row][col]
            height = 0.8 / len(series)
            for i, (prefix, name) in enumerate(series):
                values = [r.get(prefix + suffix) or 0 for r in rs]
                if any(values):
                    ys = [j + i * height for j in range(len(rs))]
                    ax.barh(ys, [v or math.nan for v in values], height, label=name)
            ax.set_yticks([j + 0.4 - height / 2 for j in range(len(rs))], [r["block"] for r in rs])
            ax.invert_yaxis()
            ax.set_xscale("log")
            ax.set_title(f"batch {batch}, {_settings(shown)}: {label} (log scale)")
            ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    benchmarks.add_arguments(parser, full_batches="1,8", modes="eager")
    parser.add_argument("--peers", help="kecam,natten_mlx or none (default: those installed; "
                        "none in quick mode)")  # fmt: skip
    parser.add_argument("--out", default=str(HERE / "results"), help="output folder")
    args = parser.parse_args(argv)
    if args.list:
        print(benchmarks.row_table(models=bool(args.models)))
        return 0
    options = benchmarks.options_from_args(args, args.quick)
    if "models" in options:
        return main_models(args, options)
    protocol = benchmarks.QUICK if args.quick else benchmarks.FULL
    blocks, batches = options["blocks"], options["batches"]
    stem = Path(args.out) / time.strftime("bench-%Y%m%d-%H%M%S")
    benchmarks.check_writable(f"{stem}.json")
    wanted = peers_to_run(args.peers, args.quick)
    env = start(options)
    records = benchmarks.run(
        **options, protocol=protocol, progress=benchmarks.Progress(benchmarks.planned(options))
    )

    peers: dict[str, dict] = {}
    if "float32" in options["dtypes"]:
        if "kecam" in wanted:
            print("kecam on TensorFlow (subprocess) ...", file=sys.stderr, flush=True)
            peers["kecam"], tf_env = run_kecam(blocks, batches, protocol)
            env["kecam"] = f"kecam {tf_env['kecam']}, TensorFlow {tf_env['tensorflow']}"
        if "natten_mlx" in wanted:
            peers["natten_mlx"] = run_natten_mlx(blocks, batches, protocol, options["modes"][0])
    attach_peers(records, peers)
    written = report(records, env, protocol, sorted(peers), stem, COLUMNS)
    if plot(records, Path(f"{stem}.png")):
        written.append(f"{stem}.png")
    print("wrote " + ", ".join(written))
    return 0


def start(options: dict) -> dict:
    """The run's environment, said on the terminal with the slow-BLAS hint where it applies."""
    env = benchmarks.environment()
    env["kernels_backend"] = ", ".join(
        f"{s} -> {benchmarks.kernel_backend(s)}" for s in options["kernels"]
    )
    print(f"MLX {env['mlx']} on {env['device']} ({env['processor']}, {env['cpus']} CPUs, "
          f"BLAS: {env['blas']})", flush=True)  # fmt: skip
    if hint := benchmarks.cpu_blas()[1]:
        print(f"Slow BLAS: {hint}.", file=sys.stderr, flush=True)
    return env


def main_models(args: argparse.Namespace, options: dict) -> int:
    """``--models``: whole models, beside kecam's same models on TensorFlow (float32 rows)."""
    protocol = benchmarks.QUICK if args.quick else benchmarks.MODEL_FULL
    stem = Path(args.out) / time.strftime("bench-models-%Y%m%d-%H%M%S")
    benchmarks.check_writable(f"{stem}.json")
    wanted = peers_to_run(args.peers, args.quick)
    if "natten_mlx" in wanted:
        print("natten-mlx: a neighbourhood-attention op, not a model; not in the model table",
              file=sys.stderr)  # fmt: skip
    env = start(options)
    progress = benchmarks.Progress(benchmarks.planned(options))
    records = benchmarks.run_models(**options, protocol=protocol, progress=progress)
    peers: dict[str, dict] = {}
    if "kecam" in wanted and "float32" in options["dtypes"]:
        print("kecam models on TensorFlow (subprocess) ...", file=sys.stderr, flush=True)
        peers["kecam"], tf_env = run_kecam_models(options["models"], options["batches"], protocol)
        env["kecam"] = f"kecam {tf_env['kecam']}, TensorFlow {tf_env['tensorflow']}"
    attach_peers(records, peers, key="model")
    print("wrote " + ", ".join(report(records, env, protocol, sorted(peers), stem, MODEL_COLUMNS)))
    return 0


def report(records, env, protocol, peers: list[str], stem: Path, all_columns) -> list[str]:
    """The table on the terminal, and the run as ``<stem>.json`` and ``<stem>.md``."""
    columns = _used_columns(records, all_columns)
    print(benchmarks.text_table([[f(r) for _, f in columns] for r in records],
                                [h for h, _ in columns]))  # fmt: skip
    print(f"Rows: {_settings(records, all_columns)}. "
          f"{benchmarks.noise_summary(records, protocol)}")  # fmt: skip
    benchmarks.write_json(f"{stem}.json", records, env, protocol, peers=peers)
    Path(f"{stem}.md").write_text(markdown(records, env, protocol, all_columns))
    return [f"{stem}.json", f"{stem}.md"]


def peers_to_run(requested: str | None, quick: bool) -> set[str]:
    """The peers named by ``--peers`` (one not installed is an error before the run), or by
    default those installed (none in quick mode), saying which are skipped."""
    text = requested or ("none" if quick else ",".join(PEER_MODULES))
    wanted = {p for p in text.split(",") if p and p != "none"}
    unknown = wanted - set(PEER_MODULES)
    if unknown:
        raise SystemExit(f"--peers: {sorted(unknown)} not in {', '.join(PEER_MODULES)}, none")
    missing = sorted(p for p in wanted if not _installed(*PEER_MODULES[p]))
    hints = "; ".join(f"{p}: {PEER_INSTALL[p]}" for p in missing)
    if requested and missing:
        raise SystemExit(f"--peers {requested}: not installed ({hints})")
    if missing:
        print(f"peers skipped, not installed ({hints})", file=sys.stderr)
    return wanted - set(missing)


PEER_MODULES = {
    "kecam": ("keras_cv_attention_models", "tensorflow", "tf_keras"),
    "natten_mlx": ("natten_mlx",),
}
PEER_INSTALL = {
    "kecam": "pip install -e '.[reference]' from the repository",
    "natten_mlx": "pip install natten-mlx",
}


def _installed(*modules: str) -> bool:
    return all(importlib.util.find_spec(m) is not None for m in modules)


if __name__ == "__main__":
    sys.exit(main())
