"""Write kecam's manifest of every registered model constructor (``tests/test_model_manifests.py``).

A manifest is what a kecam 1.4.3 weight file of the constructor at its defaults would say
about itself, without its weights: the Keras layer names in ``model.layers`` order, each
layer's class and its weights' names and shapes in the order tf-keras writes them to an
``.h5`` (trainable, then non-trainable), kecam's ``count_params()``, and the values of the
small variables fixed by construction (non-trainable weights outside BatchNormalization:
anti-alias filters, fold kernels) that the loader checks. One gzip-compressed JSON per
constructor in ``tests/fixtures/manifests``; the test builds our model without evaluating it
and validates it against the manifest as the loader validates a file.

kecam allocates every weight when it builds, so each model is built in its own process
(memory bounded: a model whose process grows past ``--memory-gb`` is killed and skipped, with
a message) with ``pretrained=None``. Needs the reference extra (TensorFlow, tf-keras, kecam)::

    python tools/make_model_manifests.py                    # every constructor without one
    python tools/make_model_manifests.py --only NAT_Mini DiNAT_Base   # these, (re)written
    python tools/make_model_manifests.py --force            # every constructor, rewritten
"""

from __future__ import annotations

import argparse
import base64
import gzip
import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MANIFESTS = ROOT / "tests" / "fixtures" / "manifests"
COMMAND = "python tools/make_model_manifests.py"

# Non-trainable variables up to this many values are stored with their values (the loader
# compares a module's constants with the file's); larger ones are stored by shape only.
CONSTANT_LIMIT = 2**16


def manifest_path(name: str) -> Path:
    """The manifest of the registered constructor ``name``."""
    return MANIFESTS / f"{name}.json.gz"


def command_for(names: list[str]) -> str:
    """The command that writes the manifests of ``names``."""
    return f"{COMMAND} --only {' '.join(names)}"


def _weight_names(manifest: dict, stored: bool) -> dict:
    """The file stores a weight name under its layer's as ``"/kernel:0"`` (a quarter of the
    size); ``stored=False`` restores ``"layer/kernel:0"``. Keras names never start with "/"."""

    def name(layer: str, weight: str) -> str:
        if stored:
            return weight[len(layer) :] if weight.startswith(layer + "/") else weight
        return layer + weight if weight.startswith("/") else weight

    layers = [
        [layer, kind, [[name(layer, w[0]), *w[1:]] for w in weights]]
        for layer, kind, weights in manifest["layers"]
    ]
    return {**manifest, "layers": layers}


def load_manifest(path: Path) -> dict:
    """A manifest file's contents; see ``kecam_manifest``."""
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return _weight_names(json.load(f), stored=False)


def read_manifest(name: str) -> dict | None:
    """The manifest of the constructor ``name``, ``None`` when there is none."""
    path = manifest_path(name)
    return load_manifest(path) if path.exists() else None


def write_manifest(path: Path, manifest: dict) -> None:
    """gzip (no time stamp or file name in it: the same manifest gives the same bytes), one
    layer per line so that a diff of the decompressed files reads."""
    manifest = _weight_names(manifest, stored=True)
    compact = {"separators": (",", ":")}
    head = [
        f"{json.dumps(k)}:{json.dumps(v, **compact)}" for k, v in manifest.items() if k != "layers"
    ]
    lines = ",\n".join(json.dumps(layer, **compact) for layer in manifest["layers"])
    text = "{" + ",".join([*head, f'"layers":[\n{lines}\n]']) + "}\n"
    buffer = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buffer, mtime=0, compresslevel=9) as f:
        f.write(text.encode("utf-8"))
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # helpers may run this at once
    tmp.write_bytes(buffer.getvalue())
    tmp.replace(path)


# --- the child process: kecam builds one model ------------------------------------------------


def kecam_manifest(kecam_name: str) -> dict:
    """Build kecam's ``module.Constructor`` at its defaults (``pretrained=None``) and describe it.

    Returns:
        ``{"kecam", "constructor", "model_name", "input_shape", "count_params", "layers"}``;
        ``layers`` is ``[name, class, [[weight name, shape], ...]]`` per Keras layer, with a
        third entry ``values`` (base64 of little-endian float32) for small constants.
    """
    import importlib

    sys.path.insert(0, str(ROOT / "tools"))
    import make_fixtures
    import numpy as np

    version = make_fixtures.kecam_version()
    make_fixtures.import_kecam(version)
    module_name, constructor = kecam_name.rsplit(".", 1)  # "efficientvit.efficientvit_m.X"
    module = importlib.import_module(f"keras_cv_attention_models.{module_name}")
    model = getattr(module, constructor)(pretrained=None)
    layers = []
    for layer in model.layers:
        # tf-keras' h5 order (hdf5_format._legacy_weights): trainable first
        entries = []
        for weight in layer.trainable_weights + layer.non_trainable_weights:
            entry = [weight.name, [int(d) for d in weight.shape]]
            size = int(np.prod(entry[1], dtype=np.int64))
            constant = not weight.trainable and type(layer).__name__ != "BatchNormalization"
            if constant and size <= CONSTANT_LIMIT:
                values = np.asarray(weight.numpy(), dtype="<f4").tobytes()
                entry.append(base64.b64encode(values).decode("ascii"))
            entries.append(entry)
        layers.append([layer.name, type(layer).__name__, entries])
    return {
        "kecam": version,
        "constructor": kecam_name,
        "model_name": model.name,
        "input_shape": [int(d) for d in model.input_shape[1:]],
        "count_params": int(model.count_params()),
        "layers": layers,
    }


# --- the parent: one child per model, memory watched ------------------------------------------


def _rss_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            return next((int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS")), 0)
    except OSError:  # exited
        return 0


def make_one(name: str, kecam_name: str, memory_gb: float) -> str:
    """Run the child for one constructor; returns what happened, for the summary."""
    env = {
        **os.environ, "TF_USE_LEGACY_KERAS": "1", "TF_ENABLE_ONEDNN_OPTS": "0",
        "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": "",
    }  # fmt: skip
    command = [sys.executable, __file__, "--child", name, kecam_name]
    start, peak = time.monotonic(), 0
    child = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    while child.poll() is None:
        peak = max(peak, _rss_bytes(child.pid))
        if peak > memory_gb * 2**30:
            child.kill()
            child.wait()
            return f"SKIPPED: kecam's model grew past {memory_gb:g} GB (--memory-gb) while building"
        time.sleep(0.2)
    out, err = child.communicate()
    seconds = time.monotonic() - start
    if child.returncode != 0:
        tail = err.decode(errors="replace").strip().splitlines()[-5:]
        return "FAILED: " + " | ".join(tail)
    return out.decode().strip() + f" ({seconds:.0f} s, peak {peak / 2**30:.1f} GB)"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--only", nargs="+", metavar="NAME", help="these constructors")
    parser.add_argument("--force", action="store_true", help="without --only: every constructor")
    parser.add_argument(
        "--memory-gb", type=float, default=16.0, help="skip a model whose build grows past this"
    )
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)  # (internal) NAME KECAM
    args = parser.parse_args()
    if args.child:
        name, kecam_name = args.child
        manifest = kecam_manifest(kecam_name)
        write_manifest(manifest_path(name), manifest)
        size = manifest_path(name).stat().st_size
        print(f"{manifest['count_params']:,} parameters, {len(manifest['layers'])} layers, "
              f"{size / 1024:.1f} kB")  # fmt: skip
        return
    from mlx_attention import models

    registered = models.list_models()
    names = args.only or [n for n in registered if args.force or not manifest_path(n).exists()]
    unknown = [n for n in names if n not in registered]
    if unknown:
        raise SystemExit(f"not registered constructors: {unknown} (models.list_models())")
    MANIFESTS.mkdir(parents=True, exist_ok=True)
    failed = []
    for name in names:
        outcome = make_one(name, models.get_entry(name).kecam, args.memory_gb)
        print(f"{name}: {outcome}", flush=True)
        if outcome.startswith("FAILED"):
            failed.append(name)
    if failed:
        raise SystemExit(f"kecam failed to build {failed}")


if __name__ == "__main__":
    main()
