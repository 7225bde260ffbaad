"""Real named kecam models against ours, live: the ``reference`` tests of every family.

kecam 1.4.3 builds the model with TF's generator seeded (its kernel initialisers draw from it),
every variable re-randomised by the fixture tool's scheme (kecam's initial layer scales and
zero gammas switch residual branches off), and saves it as kecam releases its files
(``model.save``) or with ``save_weights``; kecam's outputs and probes on the tool's inputs are
recorded. The test loads the file into our model and :func:`assert_live` compares::

    run = live.kecam_run("nat.NAT_Mini", tmp_path, input_shape=(224, 224, 3),
                         probes=["stem_ln", "pre_output_ln"], classifier_activation=None)
    model = models.create_model("NAT_Mini", pretrained=str(run.path), input_shape=...,
                                classifier_activation=None)
    live.assert_live(model, run, features="pre_output_ln")

The callers request conftest's ``kecam_live`` fixture, which skips without TensorFlow.
"""

from __future__ import annotations

import fnmatch
import json
import sys
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import mlx.core as mx
import numpy as np
from helpers import assert_matches, max_error

TOOLS = Path(__file__).resolve().parents[1] / "tools"


@dataclass
class KecamRun:
    """A saved kecam model and what it computed.

    Attributes:
        path: the saved ``.h5``.
        x: the inputs (``make_inputs``: two U(-2, 2) samples and a low-contrast one).
        outputs: ``"logits"`` (a second output as ``"logits_1"``, ...) and each probe by name.
        probes: the probed kecam layer names, in order.
    """

    path: Path
    x: np.ndarray
    outputs: dict[str, np.ndarray]
    probes: list[str]


def fixture_tool():
    """``tools/make_model_fixtures.py``: kecam's builders, ``randomize``, ``make_inputs``."""
    if str(TOOLS) not in sys.path:
        sys.path.insert(0, str(TOOLS))
    import make_model_fixtures

    return make_model_fixtures


def kecam_run(
    builder: str,
    folder: Path,
    *,
    input_shape: Sequence[int],
    save: str = "model",
    probes: Sequence[str] | Callable[..., list[str]] = (),
    redraw: Mapping[str, Callable[[np.random.Generator, tuple], np.ndarray]] | None = None,
    **kwargs,
) -> KecamRun:
    """Build kecam's ``builder`` (``"nat.NAT_Mini"``, ``"efficientvit.efficientvit_m.
    EfficientViT_M0"``), re-randomise it, save it to ``folder`` and record its outputs.

    Args:
        builder: kecam's module path and function, as ``make_model_fixtures.kecam_builder``.
        folder: where the file goes.
        input_shape: the model's input shape; with ``builder`` it seeds TF and the draws.
        save: ``"model"`` (kecam's release layout) or ``"weights"`` (``save_weights``).
        probes: kecam layer names whose outputs are recorded, or a function of the built
            Keras model that returns them.
        redraw: after ``randomize``, variables whose name (``"stack1_block1_attn_scale/
            weight:0"``) matches a pattern (``fnmatch``) take ``draw(rng, shape)`` instead:
            a milder draw where the tool's generic one leaves a weight's realistic range.
        **kwargs: the builder's arguments. ``pretrained`` defaults to ``None``; a file there is
            loaded by kecam (its resizing loader included) and nothing is re-randomised.
    """
    import tensorflow as tf

    tool = fixture_tool()
    seed = zlib.crc32(f"{builder}{tuple(input_shape)}".encode())
    tf.keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    kwargs.setdefault("pretrained", None)
    model = tool.kecam_builder(builder)(input_shape=tuple(input_shape), **kwargs)
    if kwargs["pretrained"] is None:
        tool.randomize(model, rng)
        for pattern, draw in (redraw or {}).items():
            chosen = [w for w in model.weights if fnmatch.fnmatchcase(w.name, pattern)]
            if not chosen:
                raise ValueError(f"redraw: no variable of {model.name} matches {pattern!r}")
            for weight in chosen:
                weight.assign(draw(rng, tuple(weight.shape)).astype(np.float32))
    path = Path(folder) / f"{model.name}_{'x'.join(map(str, input_shape))}_{save}.h5"
    (model.save if save == "model" else model.save_weights)(str(path))
    x = tool.make_inputs(tuple(input_shape), rng)
    names = list(probes(model) if callable(probes) else probes)
    runner = tf.keras.Model(
        model.inputs, [*model.outputs, *(model.get_layer(n).output for n in names)]
    )
    values = runner(x, training=False)  # a bare tensor for one output
    values = [np.asarray(v) for v in (values if isinstance(values, list) else [values])]
    heads = len(model.outputs)
    outputs = {"logits" if i == 0 else f"logits_{i}": v for i, v in enumerate(values[:heads])}
    outputs.update(zip(names, values[heads:]))
    tf.keras.backend.clear_session()
    return KecamRun(path, x, outputs, names)


def assert_live(model, run: KecamRun, features: str | None = None, label: str = "") -> dict:
    """``model(x)`` against kecam's outputs, ``forward_intermediates(x)`` against each probe and
    ``forward_features(x)`` against ``run.outputs[features]``, each within the library's bar;
    prints the errors (``-s``) and returns them."""
    x = mx.array(run.x)
    out = model(x)
    out = list(out) if isinstance(out, tuple) else [out]
    heads = [v for k, v in run.outputs.items() if k.startswith("logits")]
    intermediates = model.forward_intermediates(x) if run.probes else {}
    errors = {("logits" if i == 0 else f"logits_{i}"): max_error(o, h)
              for i, (o, h) in enumerate(zip(out, heads))}  # fmt: skip
    errors.update({n: max_error(intermediates[n], run.outputs[n]) for n in run.probes})
    report = json.dumps({k: f"{v:.2g}" for k, v in errors.items()})
    print(f"\n{label or run.path.stem}: {report}")
    assert len(out) == len(heads), f"{len(out)} outputs, kecam has {len(heads)}"
    for o, h in zip(out, heads):
        assert_matches(o, h)
    for name in run.probes:
        assert_matches(intermediates[name], run.outputs[name])
    if features is not None:
        assert_matches(model.forward_features(x), run.outputs[features])
    return errors
