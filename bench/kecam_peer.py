"""kecam on TensorFlow, timed with the protocol of ``mlx_attention.benchmarks``.

Run by ``bench/run.py`` in a subprocess (TensorFlow and MLX do not share a process here: TF needs
``TF_USE_LEGACY_KERAS=1`` set before import, and its thread pools would skew MLX's figures).
Reads a JSON job on stdin, writes one JSON document on stdout, progress on stderr.

Job: ``{"rows": [{"key", "kecam", "module", "kwargs", "input_shapes", "is_class", "windows"}],
"batches": [...], "protocol": {the fields of mlx_attention.benchmarks.Protocol}}``. A row with
``"model": true`` is a whole kecam model: ``module.kecam(**kwargs, pretrained=None)`` (kecam's
initialisation, nothing downloaded), called on a ``[batch, *input_shapes[0]]`` batch. Timing uses
``benchmarks.time_calls`` (the same loop and other-load check as MLX's rows; only that module's
pure-Python helpers run here); records hold ``kecam_ms``, ``kecam_q1_ms``, ... like MLX's.
With ``"memory": true`` (run with ``TF_CPU_ALLOCATOR_USE_BFC=true``, the only CPU allocator
that keeps a peak counter, so it runs in a pass of its own and the timing pass keeps TensorFlow's
defaults) each row reports ``kecam_peak_mb``, the peak of one call over what was allocated before
it, like MLX's. Records are keyed by the row's ``key`` and the batch.
"""

from __future__ import annotations

import importlib
import json
import os
import sys

from mlx_attention import benchmarks


def _build(tf, keras, row: dict, batch: int):
    module = importlib.import_module(row["module"])
    target = getattr(module, row["kecam"])
    if row.get("model"):
        model = target(**row["kwargs"], pretrained=None)
    else:
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
    return {"kecam_peak_mb": max(0, peak - resident) / 2**20}


def _measure(call, protocol: benchmarks.Protocol) -> dict:
    call()  # traces
    for _ in range(protocol.warmup):
        call()
    # a tf.function call on the CPU returns when its ops have run
    return benchmarks.timing_fields("kecam", benchmarks.time_calls(call, protocol))


def main() -> int:
    job = json.load(sys.stdin)
    import keras_cv_attention_models
    import tensorflow as tf
    import tf_keras as keras

    results = []
    for row in job["rows"]:
        for batch in job["batches"]:
            record = {"key": row["key"], "batch": batch}
            if not hasattr(importlib.import_module(row["module"]), row["kecam"]):
                record["status"] = f"n/a (not in kecam {keras_cv_attention_models.__version__})"
                results.append(record)
                continue
            try:
                call = _build(tf, keras, row, batch)
                if job.get("memory"):
                    record.update(_peak_memory(tf, call))
                else:
                    record.update(_measure(call, benchmarks.Protocol(**job["protocol"])))
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
