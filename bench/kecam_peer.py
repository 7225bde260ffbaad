"""kecam on TensorFlow, timed with the protocol of ``mlx_attention.benchmarks``.

Run by ``bench/run.py`` in a subprocess (TensorFlow and MLX do not share a process here: TF needs
``TF_USE_LEGACY_KERAS=1`` set before import, and its thread pools would skew MLX's figures).
Reads a JSON job on stdin, writes one JSON document on stdout, progress on stderr.

Job: ``{"rows": [{"key", "kecam", "module", "kwargs", "input_shapes", "is_class", "windows"}],
"batches": [...], "protocol": {"warmup", "min_calls", "min_seconds", "max_calls"}}``.
With ``"memory": true`` (run with ``TF_CPU_ALLOCATOR_USE_BFC=true``, the only CPU allocator
that keeps a peak counter, so it runs in a pass of its own and the timing pass keeps TensorFlow's
defaults) each row reports the peak of one call over what was allocated before it, like MLX's.
"""

from __future__ import annotations

import importlib
import json
import os
import statistics
import sys
import time


def _build(tf, keras, row: dict, batch: int):
    module = importlib.import_module(row["module"])
    target = getattr(module, row["kecam"])
    inputs = [keras.layers.Input(shape) for shape in row["input_shapes"]]
    if row["is_class"]:
        outputs = target(**row["kwargs"])(*inputs)
    else:
        outputs = target(*inputs, **row["kwargs"])
    model = keras.models.Model(inputs, outputs)
    call = tf.function(lambda *xs: model(list(xs) if len(xs) > 1 else xs[0], training=False))
    rng = tf.random.Generator.from_seed(0)
    xs = [rng.normal([batch * row["windows"], *s]) for s in row["input_shapes"]]
    return lambda: call(*xs)


def _peak_memory(tf, call) -> dict:
    call()  # traces
    call()
    tf.config.experimental.reset_memory_stats("CPU:0")
    resident = tf.config.experimental.get_memory_info("CPU:0")["current"]
    call()
    peak = tf.config.experimental.get_memory_info("CPU:0")["peak"]
    return {"peak_mb": max(0, peak - resident) / 2**20}


def _measure(call, protocol: dict) -> dict:
    call()  # traces
    for _ in range(protocol["warmup"]):
        call()
    times: list[float] = []
    started = time.perf_counter()
    while len(times) < protocol["max_calls"] and (
        len(times) < protocol["min_calls"]
        or time.perf_counter() - started < protocol["min_seconds"]
    ):
        t0 = time.perf_counter()
        call()  # a tf.function call on the CPU returns when its ops have run
        times.append((time.perf_counter() - t0) * 1e3)
    q1, _, q3 = statistics.quantiles(times, n=4) if len(times) > 1 else (times[0],) * 3
    return {"ms": statistics.median(times), "q1_ms": q1, "q3_ms": q3, "calls": len(times)}


def main() -> int:
    job = json.load(sys.stdin)
    import keras_cv_attention_models
    import tensorflow as tf
    import tf_keras as keras

    results = []
    for row in job["rows"]:
        for batch in job["batches"]:
            record = {"block": row["key"], "batch": batch}
            try:
                call = _build(tf, keras, row, batch)
                if job.get("memory"):
                    record.update(_peak_memory(tf, call))
                else:
                    record.update(_measure(call, job["protocol"]))
                record["status"] = "ok"
            except Exception as exc:  # a failing row is reported, the others still run
                record["status"] = f"error: {type(exc).__name__}: {str(exc)[:300]}"
            keras.backend.clear_session()
            results.append(record)
            print(f"kecam {row['key']} b{batch}: {record['status']}", file=sys.stderr, flush=True)
    env = {
        "tensorflow": tf.__version__,
        "kecam": keras_cv_attention_models.__version__,
        "onednn": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default (on)"),
    }
    json.dump({"environment": env, "records": results}, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
