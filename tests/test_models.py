"""Whole kecam models: the registry contract, and NAT/DiNAT against kecam's own numbers.

The fixtures (``tests/fixtures/models``, written by ``tools/make_model_fixtures.py`` with kecam
1.4.3, and 1.3.1 for ``nat131_*``) are reduced configurations of kecam's ``nat.NAT`` with every
variable re-randomised; ``kecam_models.json`` holds kecam's constructor signatures and parameter
counts. Nothing here needs TensorFlow.
"""

from __future__ import annotations

import json
import subprocess
import sys
import types
from pathlib import Path

import mlx.core as mx
import numpy as np
import pytest
from cases import signature_rows
from helpers import assert_matches, requires_gpu
from mlx.utils import tree_flatten

import mlx_attention
from mlx_attention import models
from mlx_attention.convert import WeightMismatchError, declared_layers
from mlx_attention.kernels import fused
from mlx_attention.layers import DropBlock, KerasLayouts
from mlx_attention.models import _download, _pretrained

FIXTURES = Path(__file__).parent / "fixtures" / "models"
INDEX = json.loads((FIXTURES / "index.json").read_text())
KECAM = json.loads((FIXTURES / "kecam_models.json").read_text())


def has_activation(case: str) -> bool:
    """Whether the case's builder takes ``classifier_activation`` (kecam's VOLO returns logits
    only: its fixture has no "probs")."""
    return "classifier_activation" in models.get_entry(INDEX[case]["builder"]).signature.parameters


def fixture_model(case: str, **kwargs) -> models.ImageClassifier:
    """The case's model loaded from its fixture file, returning logits."""
    entry = INDEX[case]
    head = {"classifier_activation": None} if has_activation(case) else {}
    arguments = {**head, **entry["kwargs"], **kwargs}
    return models.create_model(
        entry["builder"], pretrained=str(FIXTURES / entry["weights"]), **arguments
    )


def fixture_arrays(case: str) -> dict[str, np.ndarray]:
    with np.load(FIXTURES / INDEX[case]["arrays"]) as data:
        arrays = dict(data)
    arrays["input"] = arrays["input"].astype(np.float32)
    return arrays


# The deliberate differences from kecam's signatures: pretrained=None (kecam's default tag
# downloads at construction), and the loading arguments added (keyword-only).
ADDED = [
    ["strict", "KEYWORD_ONLY", "True"],
    ["resize", "KEYWORD_ONLY", "False"],
    ["dtype", "KEYWORD_ONLY", repr(mx.float32)],
]


def expected_signature(kecam: list[list]) -> list[list]:
    out = [[n, k, "None" if n == "pretrained" else d] for n, k, d in kecam]
    if out and out[-1][1] == "VAR_KEYWORD":
        return out[:-1] + ADDED + out[-1:]
    return out + ADDED


# --- registry ---------------------------------------------------------------------------------


def test_every_kecam_constructor_is_registered_and_only_those():
    assert models.list_models() == sorted(KECAM["models"])
    assert "nat.NAT" not in models.list_models()  # the family builder is not a model


def test_list_models_pattern_is_fnmatch_case_insensitive():
    assert models.list_models("*nat_m*") == ["DiNAT_Mini", "NAT_Mini"]
    assert models.list_models("DINAT_LARGE*") == ["DiNAT_Large", "DiNAT_Large_K11"]
    assert models.list_models("nat_?ase") == ["NAT_Base"]
    assert models.list_models("xcit*") == []


@pytest.mark.parametrize("name", sorted(KECAM["models"]))
def test_lookup_by_constructor_or_model_name(name):
    entry = models.get_entry(name)
    assert models.get_entry(KECAM["models"][name]["model_name"]) is entry
    assert models.get_entry(name.upper()) is entry
    assert getattr(models, name).__name__ == name
    assert entry.kecam == f"{entry.family.module}.{name}"


def test_registry_names_are_unique():
    """Each constructor name and model.name leads to one entry, and a name taken by another
    model cannot be registered (families that share a kecam model.name default must differ)."""
    entries = {id(models.get_entry(n)) for n in KECAM["models"]}
    entries |= {id(models.get_entry(m["model_name"])) for m in KECAM["models"].values()}
    assert len(entries) == len(KECAM["models"])
    with pytest.raises(ValueError, match="registered twice"):
        models._registry._add_lookup("nat_mini", models.get_entry("NAT_Tiny"))


def test_unknown_name_lists_close_matches():
    with pytest.raises(ValueError, match=r"unknown model 'NAT_Mni'.*NAT_Mini"):
        models.create_model("NAT_Mni")
    with pytest.raises(ValueError, match="close matches: none"):
        models.create_model("inception_v3")
    with pytest.raises(TypeError, match="string"):
        models.create_model(3)


@pytest.mark.parametrize("name", sorted(KECAM["models"]))
def test_constructor_signature_is_kecams(name):
    assert signature_rows(getattr(models, name)) == expected_signature(
        KECAM["models"][name]["params"]
    )


def test_family_builder_signature_is_kecams():
    assert signature_rows(models.nat.NAT) == expected_signature(
        KECAM["builders"]["nat.NAT"]["params"]
    )


@pytest.mark.parametrize("name", sorted(KECAM["models"]))
def test_constructor_builds_with_kecams_parameters(name):
    """At 64x64 (kecam's counts were taken there; no NAT weight depends on the input size):
    the same number of parameters and of weighted Keras layers as kecam's model."""
    model = models.create_model(name, input_shape=(64, 64, 3))
    assert model.count_params() == KECAM["models"][name]["count_params"]
    weighted = [
        layer  # a block that loads two kecam versions' layouts: the 1.4.3 one (first)
        for d in declared_layers(model)
        for layer in (d.layouts[0] if isinstance(d, KerasLayouts) else (d,))
    ]  # constants too: kecam stores them as weights (VOLO's fold_convtrans)
    assert len(weighted) == KECAM["models"][name]["weighted_layers"]
    assert model.pretrained_cfg["name"] == KECAM["models"][name]["model_name"]
    assert not model.training


# Peak resident memory of a fresh process, in bytes: VmHWM is reset by exec, where
# ru_maxrss would start at the (larger) peak of the pytest process that spawned it.
PEAK_RSS = """
def peak_rss():
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) * 1024 for l in f if l.startswith("VmHWM"))
"""
needs_proc = pytest.mark.skipif(
    not Path("/proc/self/status").exists(), reason="needs /proc (peak RSS is read from it: Linux)"
)


@needs_proc
def test_building_does_not_materialise_the_random_weights():
    """MLX arrays are lazy: building every model (DiNAT_Large alone has 0.8 GB of weights)
    must not allocate them, so that loading a file costs about the weights once. At 64x64,
    where the attention's constant index tables (which do exist at construction) are small."""
    code = PEAK_RSS + (
        "from mlx_attention import models\n"
        "models.create_model('NAT_Mini', input_shape=(32, 32, 3))\n"
        "before = peak_rss()\n"
        "kept = [models.create_model(n, input_shape=(64, 64, 3)) for n in models.list_models()]\n"
        "print(peak_rss() - before)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    grown_mb = int(done.stdout) / 2**20
    total_mb = sum(KECAM["models"][n]["count_params"] for n in KECAM["models"]) * 4 / 2**20
    assert grown_mb < 0.02 * total_mb, f"building grew {grown_mb:.0f} MB of {total_mb:.0f} MB"


def test_kwargs_are_kecams():
    assert models.NAT_Small(mlp_ratio=3).count_params() > models.NAT_Small().count_params()
    assert models.NAT_Mini(layer_scale=0.1).count_params() > models.NAT_Mini().count_params()
    with pytest.raises(TypeError, match="multiple values for keyword argument 'num_blocks'"):
        models.NAT_Mini(num_blocks=[1, 1, 1, 1])
    with pytest.raises(TypeError, match="unexpected keyword argument 'window_size'"):
        models.create_model("NAT_Mini", window_size=7)
    with pytest.raises(TypeError, match="model_name"):
        models.NAT_Mini(model_name="other")


@pytest.mark.parametrize(
    "shape, stages",
    [
        ((224, 224, 3), [(56, 56), (28, 28), (14, 14), (7, 7)]),
        ((160, 160, 3), [(40, 40), (20, 20), (10, 10), (5, 5)]),
        ((192, 256, 3), [(48, 64), (24, 32), (12, 16), (6, 8)]),
        ((97, 131, 3), [(25, 33), (13, 17), (7, 9), (4, 5)]),
        ((32, 32, 3), [(8, 8), (4, 4), (2, 2), (1, 1)]),
        ((3, 97, 131), [(25, 33), (13, 17), (7, 9), (4, 5)]),  # kecam: smallest size = channels
    ],
)
def test_dinat_dilations_follow_the_feature_size(shape, stages):
    """kecam: every other block dilated by ``max(1, size // kernel)`` of its map, per axis."""
    model = models.DiNAT_Mini(input_shape=shape)
    blocks = [m for m in model.layers if isinstance(m, models.nat.NATBlock)]
    per_stage = [3, 4, 6, 5]
    for stage, (size, count) in enumerate(zip(stages, per_stage)):
        stage_blocks = [b for b in blocks if b.name.startswith(f"stack{stage + 1}_")]
        assert len(stage_blocks) == count
        for j, block in enumerate(stage_blocks):
            want = (max(1, size[0] // 7), max(1, size[1] // 7)) if j % 2 else (1, 1)
            assert block.attn.dilation == want, (block.name, block.attn.dilation, want)
    summary = model.summary(print_fn=None)
    assert f"(None, {stages[-1][0]}, {stages[-1][1]}, 512)" in summary


def test_pretrained_of_another_format_is_refused():
    with pytest.raises(ValueError, match=r"x\.keras.*\.h5.*\.safetensors"):
        models.NAT_Mini(pretrained="x.keras")
    with pytest.raises(TypeError, match="pretrained"):
        models.NAT_Mini(pretrained=3)


def test_input_shape_is_checked():
    model = models.NAT_Mini(input_shape=(64, 64, 3))
    with pytest.raises(ValueError, match=r"\[B, 64, 64, 3\]"):
        model(mx.zeros((1, 64, 65, 3)))
    with pytest.raises(ValueError, match="input_shape"):
        models.NAT_Mini(input_shape=(None, None, 3))


# --- against kecam's fixtures -----------------------------------------------------------------


@pytest.mark.parametrize("case", sorted(INDEX))
def test_fixture_matches_kecam(case, kernels_mode, monkeypatch):
    """Logits, forward_features and every stage probe within the library's bar, with the
    kernels off and with the fused kernel's body emulated inside the whole model (each
    attention block's call counted there)."""
    model, arrays = fixture_model(case), fixture_arrays(case)
    x = mx.array(arrays["input"])
    fused_calls = []
    if kernels_mode == "emulated":
        emulator = fused._emulator
        monkeypatch.setattr(
            fused, "_emulator", lambda *a, **k: fused_calls.append(a) or emulator(*a, **k)
        )
    assert_matches(model(x), arrays["logits"])
    if kernels_mode == "emulated" and INDEX[case]["builder"] == "nat.NAT":
        assert len(fused_calls) == sum(INDEX[case]["kwargs"]["num_blocks"])
    intermediates = model.forward_intermediates(x)
    for name in INDEX[case]["probes"]:
        assert_matches(intermediates[name], arrays[f"probe/{name}"])
    # the last probe is what kecam's num_classes=0 model returns
    assert_matches(model.forward_features(x), arrays[f"probe/{INDEX[case]['probes'][-1]}"])


@pytest.mark.parametrize("case", sorted(filter(has_activation, INDEX)))
def test_fixture_probabilities_match_kecam(case):
    arrays = fixture_arrays(case)
    model = fixture_model(case, classifier_activation="softmax")
    assert_matches(model(mx.array(arrays["input"])), arrays["probs"])


@pytest.mark.gpu
@requires_gpu
@pytest.mark.parametrize("case", sorted(INDEX))
def test_fixture_matches_kecam_on_gpu(case, monkeypatch):
    monkeypatch.setenv("MLX_ATTENTION_KERNELS", "auto")
    model, arrays = fixture_model(case), fixture_arrays(case)
    with mx.stream(mx.gpu):
        x = mx.array(arrays["input"])
        assert_matches(model(x), arrays["logits"])
        intermediates = model.forward_intermediates(x)
        for name in INDEX[case]["probes"]:
            assert_matches(intermediates[name], arrays[f"probe/{name}"])


def test_both_file_layouts_and_both_kecam_versions_are_covered():
    assert {e["save"] for e in INDEX.values()} == {"model", "weights"}
    assert {e["kecam"] for e in INDEX.values()} == {"1.3.1", "1.4.3"}
    assert any(e["kwargs"].get("use_every_other_dilations") for e in INDEX.values())
    total = sum(p.stat().st_size for p in FIXTURES.iterdir())
    assert total <= 10 * 2**20, f"model fixtures take {total / 2**20:.2f} MB"


@pytest.mark.parametrize("dtype", [mx.float16, mx.bfloat16], ids=str)
@pytest.mark.parametrize("case", sorted(INDEX))
def test_half_precision_model(case, dtype):
    """Parameters in ``dtype``, the head in float32 (kecam forces it), outputs float32 near
    kecam's float32 numbers."""
    model, arrays = fixture_model(case, dtype=dtype), fixture_arrays(case)
    kinds = {v.dtype for k, v in tree_flatten(model.parameters()) if not k.startswith("head.")}
    assert kinds == {dtype}
    head = {v.dtype for k, v in tree_flatten(model.parameters()) if k.startswith("head.")}
    assert mx.float32 in head and head <= {mx.float32, dtype}  # VOLO's class blocks: dtype
    logits = model(mx.array(arrays["input"]))
    logits = mx.stack(logits) if isinstance(logits, tuple) else logits  # as the fixture stores two
    assert logits.dtype == mx.float32
    assert_matches(logits, arrays["logits"], dtype)


# --- strict loading of whole files ------------------------------------------------------------


def test_a_file_of_another_configuration_raises_naming_the_layers():
    """The root has no Keras prefix, so every layer of a whole-model file is checked: a file
    with an extra block in stage 1 does not load into a model without it (nor the reverse)."""
    entry = INDEX["dinat_56x96"]  # num_blocks [2, 1, 1, 1]
    smaller = {**entry["kwargs"], "num_blocks": [1, 1, 1, 1]}
    with pytest.raises(WeightMismatchError, match="stack1_block2_"):
        models.nat.NAT(**smaller, pretrained=str(FIXTURES / entry["weights"]))
    larger = {**entry["kwargs"], "num_blocks": [2, 2, 1, 1]}
    with pytest.raises(WeightMismatchError, match="stack2_block2_"):
        models.nat.NAT(**larger, pretrained=str(FIXTURES / entry["weights"]))
    other_head = {**entry["kwargs"], "num_classes": 7}
    with pytest.raises(WeightMismatchError, match="predictions"):
        models.nat.NAT(**other_head, pretrained=str(FIXTURES / entry["weights"]))


def test_load_report_is_kept():
    model = fixture_model("nat_1000")
    assert model.load_report is not None and model.load_report.ok


class _SharedNorm(models.ImageClassifier):
    """A model whose two feature layers are one module (as CMT's stage bias, CoaT's
    positional encodings): it must load and export once, by identity."""

    def __init__(self):
        super().__init__((4, 4, 3))
        norm = mlx_attention.attention_layers.layer_norm((4, 4, 3), name="shared_")
        self.add(norm, "shared_ln")
        self.add(norm, "shared_ln")
        self._finish(models._glue.ClassifierHead(3, 2, classifier_activation=None))


def test_a_module_shared_by_two_layers_exports_and_loads_once(tmp_path):
    from mlx_attention.convert import export_safetensors, load_safetensors, safetensors_header

    source = _SharedNorm()
    source.layers[0].ln.weight = mx.array([2.0, 3.0, 4.0])
    path = export_safetensors(source, tmp_path / "shared.safetensors")
    entries, _ = safetensors_header(path)
    assert sorted(entries) == [
        "head.predictions.bias", "head.predictions.weight", "layers.0.ln.bias",
        "layers.0.ln.weight",
    ]  # fmt: skip
    target = _SharedNorm()
    load_safetensors(target, path)
    assert target.layers[0] is target.layers[1]
    assert np.array_equal(np.array(target.layers[1].ln.weight), [2.0, 3.0, 4.0])
    x = mx.array(np.random.default_rng(0).standard_normal((1, 4, 4, 3)).astype(np.float32))
    assert np.array_equal(np.array(target(x)), np.array(source(x)))


# --- model API --------------------------------------------------------------------------------


def test_forward_head_of_forward_features_is_the_model():
    model, arrays = fixture_model("nat_45x59_scaled"), fixture_arrays("nat_45x59_scaled")
    x = mx.array(arrays["input"])
    assert np.array_equal(
        np.array(model.forward_head(model.forward_features(x))), np.array(model(x))
    )
    assert model.num_features == INDEX["nat_45x59_scaled"]["kwargs"]["out_channels"][-1]


def test_num_classes_zero_returns_the_features():
    entry = INDEX["nat_45x59_scaled"]
    kwargs = {**entry["kwargs"], "num_classes": 0}
    model = models.nat.NAT(**kwargs, pretrained=str(FIXTURES / entry["weights"]), strict=False)
    arrays = fixture_arrays("nat_45x59_scaled")
    assert_matches(model(mx.array(arrays["input"])), arrays["probe/pre_output_ln"])


def test_reset_classifier():
    model = fixture_model("nat_1000", classifier_activation="softmax")
    x = mx.array(fixture_arrays("nat_1000")["input"])
    features = model.forward_features(x)
    model.reset_classifier(5)  # keeps the softmax
    assert model(x).shape == (3, 5) and model.pretrained_cfg["num_classes"] == 5
    assert np.allclose(np.array(model(x)).sum(-1), 1, atol=1e-5)
    model.reset_classifier(4, classifier_activation=None)
    assert not np.allclose(np.array(model(x)).sum(-1), 1, atol=1e-2)
    model.reset_classifier(0)
    assert np.array_equal(np.array(model(x)), np.array(features))


def test_summary_lists_layers_shapes_and_parameters(capsys):
    model = fixture_model("nat_1000")
    text = model.summary()
    assert capsys.readouterr().out.strip() == text.strip()
    for name in ("stem_1_conv", "stem_ln", "stack4_block1_2_output", "pre_output_ln"):
        assert name in text
    assert "(None, 1000)" in text and f"Total params: {model.count_params():,}" in text
    assert model.count_params() == INDEX["nat_1000"]["count_params"]


def test_summary_of_a_two_output_model_lists_both_shapes():
    model = models.LeViT128S(use_distillation=True, num_classes=7)
    assert isinstance(model(mx.zeros((1, 224, 224, 3))), tuple)
    assert "[(None, 7), (None, 7)]" in model.summary(print_fn=None)


def _smallest_per_builder() -> list[str]:
    """The constructor with the fewest parameters of each kecam family builder."""
    smallest: dict[str, str] = {}
    for name in models.list_models():
        family = models.get_entry(name).family
        key = f"{family.module}.{family.builder_name}"
        if key not in smallest or (
            KECAM["models"][name]["count_params"] < KECAM["models"][smallest[key]]["count_params"]
        ):
            smallest[key] = name
    return sorted(smallest.values())


@pytest.mark.reference
@pytest.mark.parametrize("name", _smallest_per_builder())
def test_preprocessing_is_kecams(kecam_live, name):
    """``model.preprocess_input``'s rescale mode, mean and std are those kecam attaches to the
    same model (``add_pre_post_process``): real weights need the same normalisation."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
    import make_model_fixtures as tool

    family = models.get_entry(name).family
    kecam = tool.kecam_builder(f"{family.module}.{name}")(input_shape=(64, 64, 3), pretrained=None)
    theirs = kecam.preprocess_input
    cfg = models.create_model(name).pretrained_cfg
    assert cfg["rescale_mode"] == theirs.rescale_mode
    np.testing.assert_allclose(np.broadcast_to(cfg["mean"], 3), np.broadcast_to(theirs.mean, 3))
    np.testing.assert_allclose(np.broadcast_to(cfg["std"], 3), np.broadcast_to(theirs.std, 3))


def test_drop_connect_rates_follow_kecams_depth_schedule():
    """``rate * global_block_id / total_blocks``, per stack; the blocks' drop paths get them."""
    assert models._glue.drop_connect_rates([2, 0, 3], 0.5) == [[0, 0.1], [], [0.2, 0.3, 0.4]]
    model = models.NAT_Mini(drop_connect_rate=0.3)
    drops = [m.drop_rate for _, m in model.named_modules() if isinstance(m, DropBlock)]
    want = [r for stack in models._glue.drop_connect_rates([3, 4, 6, 5], 0.3) for r in stack]
    assert sorted(drops) == sorted(want * 2)  # each block's attention and MLP residuals


def test_pretrained_cfg():
    cfg = models.DiNAT_Large().pretrained_cfg
    for key in ("name", "kecam", "input_shape", "num_classes", "rescale_mode", "mean", "std",
                "resize", "labels", "tags"):  # fmt: skip
        assert key in cfg, key
    assert cfg["name"] == "dinat_large" and cfg["kecam"] == "nat.DiNAT_Large"
    assert cfg["rescale_mode"] == "torch" and cfg["labels"] == "imagenet"
    assert cfg["tags"]["imagenet21k-ft1k"] == {
        "resolutions": [224, 384],
        "files": ["dinat_large_224_imagenet21k-ft1k.h5", "dinat_large_384_imagenet21k-ft1k.h5"],
        "md5": ["4be0fd03d4abba37ac815184017ac197", "52b5397af0d337e2f366e41d34ad9c90"],
        "num_classes": 1000,
    }
    assert cfg["tags"]["imagenet21k"]["num_classes"] == 21841
    assert models.NAT_Mini().pretrained_cfg["tags"] == {
        "imagenet": {
            "resolutions": None, "files": ["nat_mini_imagenet.h5"],
            "md5": ["921de737ccebe4ab210dcd79ec0aed5f"], "num_classes": 1000,
        }
    }  # fmt: skip


def test_preprocess_and_decode_delegate_to_imagenet(monkeypatch):
    model = models.NAT_Mini(input_shape=(32, 32, 3))
    calls = []
    fake = types.SimpleNamespace(
        preprocess_input=lambda image, cfg, **kw: calls.append(("pre", cfg["name"])) or image,
        decode_predictions=lambda preds, top=5: calls.append(("decode", top)) or [],
    )
    monkeypatch.setattr(mlx_attention, "imagenet", fake, raising=False)
    monkeypatch.setitem(sys.modules, "mlx_attention.imagenet", fake)
    model.preprocess_input(np.zeros((32, 32, 3)))
    model.decode_predictions(np.zeros((1, 1000)), top=3)
    assert calls == [("pre", "nat_mini"), ("decode", 3)]


def test_preprocess_input_takes_the_models_size_and_rescale_mode():
    from mlx_attention import imagenet

    model = models.NAT_Mini(input_shape=(32, 48, 3))
    image = np.random.default_rng(0).integers(0, 256, (40, 40, 3)).astype(np.uint8)
    ours = model.preprocess_input(image)
    assert ours.shape == (1, 32, 48, 3)
    expected = imagenet.preprocess_input(image, (32, 48, 3), rescale_mode="torch")
    assert np.array_equal(np.array(ours), np.array(expected))


# --- pretrained tags ---------------------------------------------------------------------------


@pytest.fixture
def fake_release(monkeypatch):
    """Tags resolve through ``_download``; here, to a record of the request (no network)."""
    requests = []

    def fetch(entry, model_name, tag, width):
        requests.append((model_name, tag, width))
        return Path("release.h5"), entry.family.pretrained_classes.get((model_name, tag), 1000)

    monkeypatch.setattr(_pretrained, "_fetch", fetch)
    monkeypatch.setattr(_pretrained, "load_file", lambda model, path, **kw: None)
    return requests


def test_a_tag_without_a_release_file_raises():
    with pytest.raises(_download.PretrainedUnavailable, match="imagenet21k"):
        models.NAT_Mini(pretrained="imagenet21k")
    with pytest.raises(_download.PretrainedUnavailable, match="'nat'"):
        models.nat.NAT(pretrained="imagenet")  # the builder's default model_name has no files


def test_a_tag_resolves_for_the_input_width(fake_release):
    models.DiNAT_Large(pretrained="imagenet21k-ft1k", input_shape=(384, 256, 3))
    assert fake_release == [("dinat_large", "imagenet21k-ft1k", 256)]


def test_a_tag_with_another_head_sets_num_classes_or_raises(fake_release):
    assert models.DiNAT_Large(pretrained="imagenet21k").head.num_classes == 21841
    assert models.DiNAT_Large(pretrained="imagenet21k").pretrained_cfg["labels"] == "imagenet21k"
    with pytest.raises(ValueError, match="num_classes=1000.*21841"):
        models.DiNAT_Large(pretrained="imagenet21k", num_classes=1000)


# --- convert: .safetensors with the model's arguments ------------------------------------------


@pytest.fixture
def converted(tmp_path):
    entry = INDEX["dinat_77x45_k5"]
    out = models.convert(
        "nat.NAT", FIXTURES / entry["weights"], tmp_path / "m.safetensors",
        **entry["kwargs"], classifier_activation=None,
    )  # fmt: skip
    return out, entry


def test_convert_round_trip_is_bit_identical(converted):
    out, entry = converted
    original = fixture_model("dinat_77x45_k5")
    restored = models.create_model("nat.NAT", pretrained=str(out))  # no arguments needed
    ours, theirs = (
        dict(tree_flatten(original.parameters())),
        dict(tree_flatten(restored.parameters())),
    )
    assert ours.keys() == theirs.keys()
    for key in ours:
        assert ours[key].dtype == theirs[key].dtype
        assert np.array_equal(np.array(ours[key]), np.array(theirs[key])), key
    x = mx.array(fixture_arrays("dinat_77x45_k5")["input"])
    assert np.array_equal(np.array(original(x)), np.array(restored(x)))
    meta = models.read_metadata(out)
    assert meta["format"] == _pretrained.FORMAT and meta["model"] == "nat.NAT"
    assert meta["kwargs"]["input_shape"] == entry["kwargs"]["input_shape"]
    assert meta["source_md5"] == _download.file_md5(FIXTURES / entry["weights"])
    assert meta["kecam_version"] == "1.4.3" and meta["pretrained_cfg"]["name"] == "nat"


def test_converted_file_loads_without_h5py(converted):
    out, _ = converted
    code = (
        "import sys; sys.modules['h5py'] = None\n"  # any import of h5py now fails
        "from mlx_attention import models\n"
        f"m = models.create_model('nat.NAT', pretrained={str(out)!r})\n"
        "print(m.pretrained_cfg['input_shape'])\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[77, 45, 3]"


def test_kwargs_that_contradict_the_metadata_raise(converted):
    out, entry = converted
    with pytest.raises(ValueError, match=r"num_classes=5 \(the file's: 10\)"):
        models.create_model("nat.NAT", pretrained=str(out), num_classes=5)
    with pytest.raises(ValueError, match=r"input_shape=\(45, 77, 3\)"):
        models.create_model("nat.NAT", pretrained=str(out), input_shape=(45, 77, 3))
    same = models.create_model("nat.NAT", pretrained=str(out), num_classes=10)
    assert same.head.num_classes == 10
    # arguments that change no weight may differ from the file's (it was converted for logits)
    probs = models.create_model("nat.NAT", pretrained=str(out), classifier_activation="softmax")
    assert np.allclose(np.array(probs(mx.zeros((1, 77, 45, 3)))).sum(), 1, atol=1e-5)
    with pytest.raises(ValueError, match="holds 'nat.NAT', not 'NAT_Mini'"):
        models.create_model("NAT_Mini", pretrained=str(out))
