"""Generate the kecam parity fixtures of ``tests/cases.py`` with kecam itself.

Each case is built in a tiny Keras model with every weight randomized (BatchNorm statistics
and biases included; constants fixed by construction are left as kecam made them); the script
saves the weights as a legacy Keras ``.h5`` and the inputs and outputs as ``.npz``.

Run with the ``reference`` extra installed (kecam 1.4.3), and once more in a venv with kecam
1.3.1 for the cases that come from 1.3.1 files (see README, "Fixtures")::

    python tools/make_fixtures.py                     # every case of the installed kecam
    python tools/make_fixtures.py --family common     # one family
    python tools/make_fixtures.py --only conv_same_s2 bn_plain
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import os
import sys
import zlib
from importlib import metadata
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import numpy as np  # noqa: E402
from cases import FIXTURES, Case, cases, signature_rows, with_layers  # noqa: E402

SIGNATURES = FIXTURES / "kecam_signatures.json"


def kecam_version() -> str:
    for dist in ("kecam", "keras-cv-attention-models"):
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    raise SystemExit("kecam is not installed: pip install -e '.[reference]'")


def import_kecam(version: str):
    if version.startswith("1.3."):  # stand-ins for the two packages 1.3.1 imports but we lack
        sys.path.append(str(Path(__file__).parent / "kecam131_shims"))
    import tensorflow as tf
    from keras_cv_attention_models import attention_layers

    tf.config.set_visible_devices([], "GPU")
    return tf, attention_layers


def kecam_target(case: Case, attention_layers):
    """kecam's class or function of ``case`` (kecam imported already)."""
    if case.in_attention_layers:
        return getattr(attention_layers, case.kecam)
    return getattr(importlib.import_module(case.kecam_module), case.name)


def _model(case: Case, attention_layers, tf, shapes, kwargs):
    keras = tf.keras
    inputs = [keras.Input(shape) for shape in shapes]
    target = kecam_target(case, attention_layers)
    kwargs = with_layers(
        kwargs, lambda layer: getattr(attention_layers, layer.kecam)(**layer.kwargs)
    )
    if case.is_class:
        outputs = target(*case.args, **kwargs)(*inputs)
    else:
        first = inputs[0] if len(inputs) == 1 else inputs
        outputs = target(first, *case.args, **kwargs)
    return keras.Model(inputs, outputs)


def _resized(case: Case, attention_layers, tf, source) -> object:
    """The model at ``case.input_shapes`` whose layer ``name`` kecam filled with
    ``load_resized_weights`` from ``source``'s saved weights (as ``load_weights_with_mismatch``
    does: ``{variable name: array}`` from the file)."""
    import tempfile

    import h5py

    model = _model(case, attention_layers, tf, case.input_shapes, case.kwargs)
    name = case.kwargs["name"]
    with tempfile.TemporaryDirectory() as folder:
        path = str(Path(folder) / "source.h5")
        source.save_weights(path)
        with h5py.File(path, "r") as f:
            group = f[name]
            weights = {
                (w.decode() if isinstance(w, bytes) else w).split("/")[-1]: np.array(group[w])
                for w in group.attrs["weight_names"]
            }
    method = {} if case.resize_method is None else {"method": case.resize_method}
    model.get_layer(name).load_resized_weights(weights, **method)
    return model


def build(case: Case, attention_layers, tf, rng: np.random.Generator):
    """The kecam model of ``case`` with randomized weights, and its inputs and outputs.

    For a resize case the model returned is the one saved at ``case.resize_from``, and the
    outputs are those of kecam's resized layer at ``case.input_shapes``."""
    shapes, kwargs = case.input_shapes, case.kwargs
    if case.resize_from:
        shapes, kwargs = case.resize_from, {**case.kwargs, **case.resize_kwargs}
    model = _model(case, attention_layers, tf, shapes, kwargs)
    # A layer built with trainable=False keeps variables whose own flag says trainable: ask the
    # model. Moving statistics are not trainable but are randomized too.
    trainable = {id(w) for w in model.trainable_weights}
    for weight in model.weights:
        if id(weight) not in trainable and "moving_" not in weight.name:
            continue
        shape = tuple(weight.shape)
        if "moving_variance" in weight.name:
            value = rng.uniform(0.5, 1.5, shape)
        else:
            value = rng.normal(0.0, 0.5, shape)
        weight.assign(value.astype(np.float32))
    draw = {
        "normal": lambda shape: rng.normal(size=shape),
        "positive": lambda shape: rng.uniform(0.5, 1.5, shape),
        "ones": np.ones,
    }[case.inputs]
    arrays = [draw((case.batch, *shape)) for shape in case.input_shapes]
    arrays = [a.astype(np.float32) for a in arrays]
    runner = _resized(case, attention_layers, tf, model) if case.resize_from else model
    result = runner(arrays if len(arrays) > 1 else arrays[0], training=False)
    results = result if isinstance(result, (list, tuple)) else [result]
    return model, arrays, [np.asarray(r) for r in results]


def write(case: Case, attention_layers, tf, weights_path: Path, arrays_path: Path) -> None:
    rng = np.random.default_rng(zlib.crc32(case.id.encode()))
    model, inputs, outputs = build(case, attention_layers, tf, rng)
    weights_path.parent.mkdir(parents=True, exist_ok=True)
    model.save_weights(str(weights_path))
    named = {f"input_{i}": a for i, a in enumerate(inputs)}
    named.update({f"output_{i}": a for i, a in enumerate(outputs)})
    np.savez_compressed(arrays_path, **named)


def write_demo(attention_layers, tf) -> None:
    """The seed's usage examples (``mlx_attention.demo.EXAMPLES``), shipped in the package."""
    from mlx_attention.demo import DEMO_WEIGHTS, EXAMPLES

    for example in EXAMPLES:
        case = Case(
            example.id, "demo", example.kecam, (example.input_shape,), example.kwargs,
            batch=1, inputs=example.inputs, args=example.args,
        )  # fmt: skip
        weights, arrays = DEMO_WEIGHTS / f"{case.id}.h5", DEMO_WEIGHTS / f"{case.id}.npz"
        write(case, attention_layers, tf, weights, arrays)
        print(f"demo/{case.id}: kecam {kecam_version()}")


def write_formats(attention_layers, tf) -> None:
    """The other Keras file layouts the loader meets: a full ``model.save`` (kecam's release
    format) and a Keras-3 style ``.weights.h5`` (no layer names), from the ``conv_same_s2`` case."""
    case = next(c for c in cases("common") if c.id == "conv_same_s2")
    model, inputs, outputs = build(case, attention_layers, tf, np.random.default_rng(0))
    folder = FIXTURES / "formats"
    folder.mkdir(exist_ok=True)
    model.save(str(folder / "full_model.h5"))
    model.save_weights(str(folder / "keras3.weights.h5"))
    np.savez_compressed(folder / "full_model.npz", input_0=inputs[0], output_0=outputs[0])


def _signature(obj) -> list[list]:
    return signature_rows(obj.__init__ if inspect.isclass(obj) else obj)


def write_signatures(attention_layers, version: str) -> None:
    """kecam's signature of every name our kecam namespace exports, for the signature test."""
    from mlx_attention import attention_layers as ours

    stored = json.loads(SIGNATURES.read_text()) if SIGNATURES.exists() else {}
    for name in dir(ours):
        if name.startswith("_") or not hasattr(attention_layers, name):
            continue
        if version.startswith("1.3.") and name in stored and stored[name]["version"] != version:
            continue  # 1.4.3's signature wins where both versions have the name
        stored[name] = {"version": version, "params": _signature(getattr(attention_layers, name))}
    SIGNATURES.write_text(json.dumps(dict(sorted(stored.items())), indent=1) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--family", help="only this fixture family")
    parser.add_argument("--only", nargs="+", help="only these case ids")
    parser.add_argument("--demo", action="store_true", help="only the demo weights of the package")
    parser.add_argument("--signatures", action="store_true", help="only kecam's signatures")
    args = parser.parse_args()
    version = kecam_version()
    tf, attention_layers = import_kecam(version)
    if args.demo:
        return write_demo(attention_layers, tf)
    if args.signatures:
        return write_signatures(attention_layers, version)
    selected = [c for c in cases(args.family, version) if not args.only or c.id in args.only]
    for case in selected:
        write(case, attention_layers, tf, case.weights_path, case.arrays_path)
        print(f"{case.family}/{case.id}: kecam {version}")
    if not args.only:
        write_signatures(attention_layers, version)
    if not args.only and args.family in (None, "common") and version == "1.4.3":
        write_formats(attention_layers, tf)
    print(f"{len(selected)} fixtures written under {FIXTURES}")


if __name__ == "__main__":
    main()
