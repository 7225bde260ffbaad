"""Every registered constructor declares kecam's Keras layers, checked without kecam's files.

``tests/fixtures/manifests`` holds, per constructor, what kecam 1.4.3's weight file of the
model at its defaults would say about itself (``tools/make_model_manifests.py``: Keras layer
names, weight names and shapes, ``count_params``). Each model is built at its defaults without
evaluating its parameters (MLX is lazy) and goes through the loader's own strict validation,
``models``' whole-model ``load_file``, with the manifest standing in for the ``.h5``: every
weighted Keras layer of kecam's model declared, with the same shapes after conversion, every
module parameter filled, nothing extra. So models of 2 billion parameters are checked in
seconds, on a few MB. Nothing here needs TensorFlow.

The models are built in one child process (the checks print JSON), whose peak resident memory
is reset before each model: a model that materialised its random weights would show there
without taking the test process's memory.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import mlx.core as mx
import numpy as np
import pytest

from mlx_attention import models
from mlx_attention.attention_layers import anti_alias_downsample

TOOL_PATH = Path(__file__).resolve().parents[1] / "tools" / "make_model_manifests.py"
_spec = importlib.util.spec_from_file_location("make_model_manifests", TOOL_PATH)
tool = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(tool)

NAMES = models.list_models()
PROC = Path("/proc/self/clear_refs")

# Building a model allocates its constant tables (index tables, Swin's shift masks) and
# Python objects, never its weights: the peak resident memory of one build and validation
# grows by less than half the model's float32 weights (a model that evaluated them grows by
# all of them), plus an allowance for allocator noise. The most measured: 18% (Swin v2
# Base at window 24 and 384x384: 16 windows of 576x576 masks per shifted block), 6% next.
PEAK_FRACTION, PEAK_ALLOWANCE = 0.5, 16 * 2**20


class Validated(Exception):  # noqa: N818  (not an error: the loader passed validation)
    """Raised where the loader, past validation, reads a weight's data: none is stored."""


class ManifestFile:
    """A kecam manifest standing in for the ``KerasH5`` of its weight file: the same layer
    names, weight names, shapes and dtypes (float32), constants' values; no other data."""

    def __init__(self, path: str | Path):
        from mlx_attention.convert.h5 import LayerInfo, WeightInfo

        self.path = Path(path)
        manifest = tool.load_manifest(self.path)
        self.layers = tuple(
            LayerInfo(
                layer, tuple(WeightInfo(w[0], tuple(w[1]), np.dtype("float32")) for w in weights)
            )
            for layer, _, weights in manifest["layers"]
        )
        self._by_name = {layer.name: layer for layer in self.layers}
        self._values = {
            (layer, w[0]): w[2] for layer, _, weights in manifest["layers"] for w in weights
            if len(w) > 2
        }  # fmt: skip

    @property
    def layer_names(self) -> tuple[str, ...]:
        return tuple(layer.name for layer in self.layers)

    def __contains__(self, name: str) -> bool:
        return name in self._by_name

    def get(self, name: str):
        return self._by_name.get(name)

    def __getitem__(self, name: str):
        return self._by_name[name]

    def read(self, layer: str, weight: int) -> np.ndarray:
        info = self._by_name[layer].weights[weight]
        values = self._values.get((layer, info.name))
        if values is None:
            raise Validated(layer)
        return np.frombuffer(base64.b64decode(values), "<f4").reshape(info.shape).copy()

    def __enter__(self) -> ManifestFile:
        return self

    def __exit__(self, *exc) -> None:
        pass


def _memory(field: str) -> int:
    """``VmHWM`` (peak) or ``VmRSS`` (current) resident memory of this process, in bytes."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(field + ":"))


def validate(model: models.ImageClassifier, name: str) -> str | None:
    """The loader's strict validation of ``model`` against the manifest of ``name``, through
    the whole-model ``load_file``: ``None`` when it passes, else the loader's message."""
    from mlx_attention.convert import WeightMismatchError, loader
    from mlx_attention.models import _pretrained

    real, loader.KerasH5 = loader.KerasH5, ManifestFile
    try:
        _pretrained.load_file(model, tool.manifest_path(name), strict=True, resize=False)
    except Validated:
        return None
    except WeightMismatchError as err:
        return str(err)
    finally:
        loader.KerasH5 = real
    return "validation passed without reading any weight: nothing was checked"


def check_constructor(name: str, materialise: bool = False) -> dict:
    """Build ``name`` at its defaults and validate it against its manifest (child process);
    ``materialise`` evaluates the parameters (what the memory check must catch)."""
    PROC.write_text("5")  # resets VmHWM to the current resident size
    before = _memory("VmRSS")
    model = models.create_model(name)
    if materialise:
        mx.eval(model.parameters())
    result = {
        "count_params": model.count_params(),
        "model_name": model.pretrained_cfg["name"],
        "input_shape": list(model.input_shape),
        "error": validate(model, name),
    }
    result["peak_growth"] = _memory("VmHWM") - before
    return result


needs_proc = pytest.mark.skipif(
    not PROC.exists(), reason="needs /proc/self/clear_refs (peak memory is measured per model)"
)


def run_checks(*args: str) -> dict[str, dict]:
    """``check_constructor`` of each named constructor in a child process."""
    done = subprocess.run(
        [sys.executable, __file__, *args], capture_output=True, text=True, timeout=1800
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout.splitlines()[-1])


@pytest.fixture(scope="module")
def checked() -> dict[str, dict]:
    """Every constructor with a manifest, checked in one child process."""
    return run_checks(*(n for n in NAMES if tool.manifest_path(n).exists()))


def peak_limit(manifest: dict) -> float:
    return PEAK_FRACTION * manifest["count_params"] * 4 + PEAK_ALLOWANCE


def test_registry_is_not_empty():
    assert len(NAMES) >= 10


@needs_proc
@pytest.mark.parametrize("name", NAMES)
def test_declared_layers_match_kecams_manifest(name, checked):
    manifest = tool.read_manifest(name)
    assert manifest is not None, (
        f"{name} is registered but has no kecam manifest: run `{tool.command_for([name])}` "
        f"(needs TensorFlow and kecam) and commit {tool.manifest_path(name).relative_to(tool.ROOT)}"
    )
    result = checked[name]
    assert result["error"] is None, f"{name} against kecam's manifest: {result['error']}"
    assert result["count_params"] == manifest["count_params"]
    assert result["model_name"] == manifest["model_name"]
    assert result["input_shape"] == manifest["input_shape"]
    assert result["peak_growth"] < peak_limit(manifest), (
        f"{name}: building and validating grew the peak memory by "
        f"{result['peak_growth'] / 2**20:.0f} MB "
        f"(float32 weights: {manifest['count_params'] * 4 / 2**20:.0f} MB)"
    )


@needs_proc
def test_the_memory_check_sees_evaluated_weights():
    """NAT_Mini with its parameters evaluated (80 MB) grows the child's peak past the limit."""
    result = run_checks("--materialise", "NAT_Mini")["NAT_Mini"]
    manifest = tool.read_manifest("NAT_Mini")
    assert result["peak_growth"] > max(peak_limit(manifest), 0.9 * manifest["count_params"] * 4)


def test_manifests_are_of_registered_constructors_only():
    stale = sorted(
        p.name.removesuffix(".json.gz")
        for p in tool.MANIFESTS.glob("*.json.gz")
        if p.name.removesuffix(".json.gz") not in NAMES
    )
    assert not stale, f"manifests of constructors that are not registered: {stale}"


def test_manifests_are_small():
    total = sum(p.stat().st_size for p in tool.MANIFESTS.glob("*.json.gz"))
    assert total <= 512 * 2**10, f"manifests take {total / 2**10:.0f} kB"


def test_the_stand_in_catches_a_wrong_shape_a_missing_and_an_extra_layer(tmp_path, monkeypatch):
    """The check can fail: a manifest with one kernel's shape changed, one weighted layer
    less or one more is refused by the loader's validation, the layer named."""
    manifest = tool.read_manifest("NAT_Mini")
    assert manifest is not None
    model = models.create_model("NAT_Mini")  # lazy: its 80 MB of weights are never allocated
    assert validate(model, "NAT_Mini") is None
    monkeypatch.setattr(tool, "MANIFESTS", tmp_path)
    layers = manifest["layers"]
    conv = next(i for i, layer in enumerate(layers) if layer[0] == "stem_1_conv")
    wrong = json.loads(json.dumps(manifest))
    wrong["layers"][conv][2][0][1] = [3, 3, 3, 31]
    missing = {**manifest, "layers": [x for x in layers if x[0] != "stack4_block2_mlp_Dense_1"]}
    extra_layer = ["extra_dense", "Dense", [["extra_dense/kernel:0", [4, 4]]]]
    extra = {**manifest, "layers": [*layers, extra_layer]}
    for changed, message in [
        (wrong, r"'stem_1_conv'.*\(31, 3, 3, 3\) after conversion"),
        (missing, "missing Keras layer 'stack4_block2_mlp_Dense_1'"),
        (extra, "unexpected Keras layer 'extra_dense'"),
    ]:
        tool.write_manifest(tmp_path / "NAT_Mini.json.gz", changed)
        error = validate(model, "NAT_Mini")
        assert error is not None and re.search(message, error), error


class _Blurred(models.ImageClassifier):
    """A model with a constant (kecam's fixed anti-alias filter, stored but never loaded)."""

    def __init__(self):
        super().__init__((8, 8, 4))
        self.add(anti_alias_downsample((8, 8, 4), name="blur_"), "blur_anti_alias_down")
        self._finish(models._glue.ClassifierHead(4, 2, classifier_activation=None))


def test_the_stand_in_serves_constants_to_the_loaders_check(tmp_path, monkeypatch):
    """A constant's values travel in the manifest; the loader compares them with the module's
    own (the filter's values against kecam's are the block tests' business)."""
    model = _Blurred()
    kernel = model.layers[0].keras_kernel
    monkeypatch.setattr(tool, "MANIFESTS", tmp_path)

    def manifest(values: np.ndarray) -> dict:
        blur = ["blur_anti_alias_down/depthwise_kernel:0", list(kernel.shape)]
        blur.append(base64.b64encode(values.astype("<f4").tobytes()).decode("ascii"))
        head = [["predictions/kernel:0", [4, 2]], ["predictions/bias:0", [2]]]
        layers = [
            ["blur_anti_alias_down", "DepthwiseConv2D", [blur]],
            ["predictions", "Dense", head],
        ]
        return {"layers": layers}

    tool.write_manifest(tmp_path / "blurred.json.gz", manifest(kernel))
    assert validate(model, "blurred") is None
    tool.write_manifest(tmp_path / "blurred.json.gz", manifest(kernel * 2))
    error = validate(model, "blurred")
    assert error is not None and "'blur_anti_alias_down' holds a constant that differs" in error


if __name__ == "__main__":  # the child of ``run_checks``: JSON of every named constructor
    materialise = "--materialise" in sys.argv[1:]
    names = [a for a in sys.argv[1:] if a != "--materialise"]
    print(json.dumps({name: check_constructor(name, materialise) for name in names}))
