"""The model commands of ``mlx-attention``: ``models``, ``predict`` and ``convert``.

They run on the committed whole-model fixtures (``tests/fixtures/models``, kecam's builders
in reduced configurations with re-randomised weights; ``nat_1000`` has ImageNet's 1000 classes
for ``predict``, one fixture of every family its 10 classes) and on images the tests write with
Pillow.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
import shutil
import sys
from pathlib import Path

import mlx.core as mx
import numpy as np
import pytest
from helpers import require_pillow, require_reference
from mlx.utils import tree_flatten

from mlx_attention import cli, models

FIXTURES = Path(__file__).parent / "fixtures" / "models"
INDEX = json.loads((FIXTURES / "index.json").read_text())
KECAM = json.loads((FIXTURES / "kecam_models.json").read_text())
MANIFESTS = FIXTURES.parent / "manifests"
PREDICT_CASE = next(k for k, v in INDEX.items() if v["kwargs"].get("num_classes") == 1000)
ROW = re.compile(r"^(n\d{8})  (.+?)\s+(\d\.\d{4})$")


def kwarg_options(kwargs: dict) -> list[str]:
    """A fixture's builder arguments as ``--kwarg KEY=JSON`` options."""
    return [opt for k, v in kwargs.items() for opt in ("--kwarg", f"{k}={json.dumps(v)}")]


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def write_image(path: Path, height: int, width: int, seed: int = 0) -> Path:
    image_module = require_pillow()
    rng = np.random.default_rng(seed)
    # a smooth gradient with noise: something the resize actually interpolates
    ramp = np.linspace(0, 255, width)[None, :, None] * np.linspace(0.2, 1, height)[:, None, None]
    pixels = np.clip(ramp + rng.normal(0, 30, (height, width, 3)), 0, 255).astype(np.uint8)
    image_module.fromarray(pixels).save(path)
    return path


def predicted_rows(out: str) -> dict[str, list[tuple[str, str, float]]]:
    """``{image: [(wnid, label, prob), ...]}`` from ``predict``'s output."""
    rows: dict[str, list] = {}
    current = None
    for line in out.splitlines():
        match = ROW.match(line)
        if match:
            rows[current].append((match[1], match[2].strip(), float(match[3])))
        elif line and not line.startswith(("wnid", "----")):
            current = line
            rows[current] = []
    return rows


@pytest.fixture(scope="module")
def converted(tmp_path_factory) -> Path:
    """The 1000-class fixture converted by the command, self-describing."""
    case = INDEX[PREDICT_CASE]
    out = tmp_path_factory.mktemp("converted") / "nat_1000.safetensors"
    assert (
        cli.main(
            [
                "convert",
                case["builder"],
                str(FIXTURES / case["weights"]),
                "-o",
                str(out),
                *kwarg_options(case["kwargs"]),
            ]
        )
        == 0
    )
    return out


# --- models -------------------------------------------------------------------------------


def test_models_lists_every_model_with_its_registry_facts(capsys):
    code, out, _ = run(capsys, "models")
    assert code == 0
    lines = out.splitlines()
    for name in models.list_models():
        cfg = models.create_model(name).pretrained_cfg
        kecam = KECAM["models"][name]  # recorded from kecam's own models
        (line,) = [line for line in lines if line.split()[:1] == [name]]
        assert cfg["kecam"] in line and f" {kecam['model_name']} " in line
        assert "x".join(map(str, cfg["input_shape"])) in line
        # at the default input size (kecam_models.json counts at 64x64; LeViT's tables depend
        # on the size): the count of kecam's manifest
        with gzip.open(MANIFESTS / f"{name}.json.gz", "rt") as f:
            count = json.load(f)["count_params"]
        assert f"{count / 1e6:.2f}M" in line
        assert all(tag in line for tag in cfg["tags"]), line
    assert f"{len(models.list_models())} models" in out


def test_models_says_which_files_have_another_head_and_several_sizes(capsys):
    _, out, _ = run(capsys, "models", "DiNAT_Large")
    (line,) = [line for line in out.splitlines() if line.startswith("DiNAT_Large ")]
    tags = models.create_model("DiNAT_Large").pretrained_cfg["tags"]
    sizes = ", ".join(map(str, tags["imagenet21k-ft1k"]["resolutions"]))
    assert f"imagenet21k-ft1k ({sizes})" in line
    assert f"imagenet21k ({tags['imagenet21k']['num_classes']} classes)" in line


@pytest.mark.parametrize(
    "pattern", ["*mini", "DINAT_M*", "nat_t", "dinat_large_k"], ids=lambda p: p
)
def test_models_pattern_is_fnmatch_or_a_part_of_the_name(capsys, pattern):
    _, out, _ = run(capsys, "models", pattern)
    listed = [line.split()[0] for line in out.splitlines()[2:-1]]
    glob = pattern if "*" in pattern else f"*{pattern}*"
    assert listed == models.list_models(glob) and listed


def test_models_with_no_match_is_an_error(capsys):
    code, out, err = run(capsys, "models", "xcit*")
    assert code == 2 and not out
    assert (
        err.strip() == "mlx-attention models: no model matches 'xcit*' (mlx-attention models "
        "lists them all)"
    )


# --- convert ------------------------------------------------------------------------------


@pytest.mark.parametrize("case", sorted(INDEX))
def test_convert_round_trip_is_bit_identical(capsys, tmp_path, case):
    entry = INDEX[case]
    h5 = FIXTURES / entry["weights"]
    out = tmp_path / f"{case}.safetensors"
    argv = ["convert", entry["builder"], str(h5), "-o", str(out), *kwarg_options(entry["kwargs"])]
    code, stdout, _ = run(capsys, *argv)
    assert code == 0 and f"wrote {out}" in stdout
    meta = models.read_metadata(out)
    assert meta["source_md5"] == hashlib.md5(h5.read_bytes()).hexdigest()
    assert meta["model"] == models.get_entry(entry["builder"]).name

    from_h5 = models.create_model(entry["builder"], pretrained=str(h5), **entry["kwargs"])
    from_file = models.create_model(entry["builder"], pretrained=str(out))  # no arguments
    theirs = dict(tree_flatten(from_file.parameters()))
    ours = dict(tree_flatten(from_h5.parameters()))
    assert sorted(ours) == sorted(theirs)
    for key, value in ours.items():
        assert value.dtype == theirs[key].dtype, key
        assert np.array_equal(np.array(value), np.array(theirs[key])), key
    x = mx.array(np.load(FIXTURES / entry["arrays"])["input"].astype(np.float32))
    assert np.array_equal(np.array(from_h5(x)), np.array(from_file(x)))
    assert np.array_equal(
        np.array(from_h5.forward_features(x)), np.array(from_file.forward_features(x))
    )
    assert from_file.pretrained_cfg == from_h5.pretrained_cfg
    # kecam's add_pre_post_process: "tf" for BEiT, "torch" for every other family here
    family = models.get_entry(entry["builder"]).family.module
    assert from_file.pretrained_cfg["rescale_mode"] == ("tf" if family == "beit" else "torch")
    image = np.full((*entry["kwargs"]["input_shape"][:2], 3), 128, np.uint8)
    assert from_file.preprocess_input(image).shape == (1, *entry["kwargs"]["input_shape"])


def test_convert_writes_next_to_the_file_by_default(capsys, tmp_path):
    entry = INDEX[PREDICT_CASE]
    h5 = Path(shutil.copy(FIXTURES / entry["weights"], tmp_path / "weights.h5"))
    code, out, _ = run(
        capsys, "convert", entry["builder"], str(h5), *kwarg_options(entry["kwargs"])
    )
    assert code == 0 and (tmp_path / "weights.safetensors").is_file(), out


def test_convert_input_shape_and_num_classes_options(capsys, tmp_path):
    entry = INDEX[PREDICT_CASE]
    kwargs = dict(entry["kwargs"])
    height, width, _ = kwargs.pop("input_shape")
    classes = kwargs.pop("num_classes")
    out = tmp_path / "x.safetensors"
    code, _, err = run(
        capsys,
        "convert",
        entry["builder"],
        str(FIXTURES / entry["weights"]),
        "-o",
        str(out),
        "--input-shape",
        f"{height}x{width}",
        "--num-classes",
        str(classes),
        *kwarg_options(kwargs),
    )
    assert code == 0, err
    cfg = models.read_metadata(out)["pretrained_cfg"]
    assert cfg["input_shape"] == [height, width, 3] and cfg["num_classes"] == classes


def _error(capsys, *argv: str) -> str:
    code, out, err = run(capsys, *argv)
    assert code == 2 and not out
    assert err.startswith(f"mlx-attention {argv[0]}: ") and err.count("\n") == 1, err
    return err


def test_convert_errors_are_one_line(capsys, tmp_path):
    entry = INDEX[PREDICT_CASE]
    h5 = str(FIXTURES / entry["weights"])
    out = str(tmp_path / "x.safetensors")
    assert "close matches" in _error(capsys, "convert", "NAT_Minii", h5, "-o", out)
    assert "no such file" in _error(capsys, "convert", "NAT_Mini", str(tmp_path / "no.h5"))
    bad = tmp_path / "bad.h5"
    bad.write_bytes(b"not hdf5")
    assert str(bad) in _error(capsys, "convert", "NAT_Mini", str(bad), "-o", out)
    # a file of another network: strict loading names what differs
    assert _error(capsys, "convert", "NAT_Mini", h5, "-o", out)
    assert "KEY=VALUE" in _error(capsys, "convert", "nat.NAT", h5, "--kwarg", "oops")
    assert "--input-shape" in _error(capsys, "convert", "nat.NAT", h5, "--input-shape", "32")
    assert "unexpected keyword" in _error(
        capsys, "convert", "NAT_Mini", h5, "-o", out, "--kwarg", "no_such_argument=1"
    )
    assert not Path(out).exists()


# --- predict ------------------------------------------------------------------------------


def expected_top(weights: Path, image: Path, top: int, **kwargs) -> list[tuple[str, str, float]]:
    """What the Python API gives for ``image``: kecam's preprocessing, the model, decoding."""
    from PIL import Image

    model = models.create_model("nat.NAT", pretrained=str(weights), **kwargs)
    with Image.open(image) as pil:
        pixels = np.asarray(pil.convert("RGB"))
    (rows,) = model.decode_predictions(model(model.preprocess_input(pixels)), top=top)
    return [(wnid, label, float(p)) for wnid, label, p in rows]


def test_predict_prints_the_top_classes_of_each_image(capsys, tmp_path, converted):
    images = [write_image(tmp_path / "a.png", 50, 37), write_image(tmp_path / "b.jpg", 20, 64, 1)]
    code, out, err = run(
        capsys, "predict", *map(str, images), "--weights", str(converted), "--top", "3"
    )
    assert code == 0, err
    rows = predicted_rows(out)
    assert list(rows) == [str(p) for p in images]
    from mlx_attention import imagenet

    wnids = set(imagenet.wnids())
    for image in images:
        printed = rows[str(image)]
        expected = expected_top(converted, image, 3)
        assert [r[:2] for r in printed] == [r[:2] for r in expected]
        np.testing.assert_allclose([r[2] for r in printed], [r[2] for r in expected], atol=5e-5)
        assert [r[2] for r in printed] == sorted((r[2] for r in printed), reverse=True)
        assert all(w in wnids for w, _, _ in printed)


def test_predict_from_a_kecam_h5_takes_the_model_and_its_arguments(capsys, tmp_path, converted):
    entry = INDEX[PREDICT_CASE]
    image = str(write_image(tmp_path / "a.png", 33, 31))
    code, out, err = run(
        capsys,
        "predict",
        image,
        "--model",
        entry["builder"],
        "--weights",
        str(FIXTURES / entry["weights"]),
        *kwarg_options(entry["kwargs"]),
    )
    assert code == 0, err
    _, again, _ = run(capsys, "predict", image, "--weights", str(converted))
    assert predicted_rows(out) == predicted_rows(again) and len(predicted_rows(out)[image]) == 5


def test_predict_of_a_logits_model_prints_probabilities(capsys, tmp_path, converted):
    entry = INDEX[PREDICT_CASE]
    logits = tmp_path / "logits.safetensors"
    argv = ["convert", entry["builder"], str(FIXTURES / entry["weights"]), "-o", str(logits)]
    argv += [*kwarg_options(entry["kwargs"]), "--kwarg", "classifier_activation=null"]
    assert run(capsys, *argv)[0] == 0
    image = str(write_image(tmp_path / "a.png", 32, 32))
    _, softmax, _ = run(capsys, "predict", image, "--weights", str(converted))
    _, from_logits, _ = run(capsys, "predict", image, "--weights", str(logits))
    assert models.read_metadata(logits)["kwargs"]["classifier_activation"] is None
    assert predicted_rows(from_logits) == predicted_rows(softmax)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_predict_in_half_precision(capsys, tmp_path, converted, dtype):
    image = str(write_image(tmp_path / "a.png", 40, 40))
    _, full, _ = run(capsys, "predict", image, "--weights", str(converted), "--top", "1000")
    code, half, err = run(
        capsys, "predict", image, "--weights", str(converted), "--top", "1000", "--dtype", dtype
    )
    assert code == 0, err
    full_p = {w: p for w, _, p in predicted_rows(full)[image]}
    half_p = {w: p for w, _, p in predicted_rows(half)[image]}
    assert sorted(full_p) == sorted(half_p)
    # a near-uniform tiny network: compare the probabilities, not the ranking
    assert max(abs(full_p[w] - half_p[w]) for w in full_p) <= 2e-4


def test_predict_without_pillow_says_how_to_install_it(capsys, monkeypatch, tmp_path, converted):
    monkeypatch.setitem(sys.modules, "PIL", None)  # import PIL raises ImportError
    err = _error(capsys, "predict", str(tmp_path / "a.png"), "--weights", str(converted))
    assert 'pip install -e ".[image]"' in err and "pip install pillow" in err


def test_predict_errors_are_one_line(capsys, tmp_path, converted):
    image = str(write_image(tmp_path / "a.png", 32, 32))
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    assert str(bad) in _error(capsys, "predict", str(bad), "--weights", str(converted))
    assert (
        "no such file"
        in _error(
            capsys, "predict", str(tmp_path / "none.png"), "--weights", str(converted)
        ).lower()
    )
    entry = INDEX[PREDICT_CASE]
    h5 = str(FIXTURES / entry["weights"])
    assert "--model is needed" in _error(capsys, "predict", image, "--weights", h5)
    assert "close matches" in _error(
        capsys, "predict", image, "--model", "NAT_Mni", "--weights", h5
    )
    # the file's network is not NAT_Mini's: strict loading says what differs
    assert _error(capsys, "predict", image, "--model", "NAT_Mini", "--weights", h5)
    # another model than the converted file's
    assert "not 'NAT_Mini'" in _error(
        capsys, "predict", image, "--model", "NAT_Mini", "--weights", str(converted)
    )


@pytest.fixture
def release(monkeypatch, tmp_path):
    """The 1000-class fixture registered as kecam's ``imagenet`` release file of its model name,
    empty caches, and a release URL where nothing listens (offline)."""
    entry = INDEX[PREDICT_CASE]
    h5 = FIXTURES / entry["weights"]
    model_name = entry["kwargs"]["model_name"]
    md5 = hashlib.md5(h5.read_bytes()).hexdigest()
    monkeypatch.setitem(models.nat.PRETRAINED_DICT, model_name, {"imagenet": md5})
    monkeypatch.setenv("MLX_ATTENTION_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.setenv("MLX_ATTENTION_WEIGHTS_URL", "http://127.0.0.1:9")
    return h5, f"{model_name}_imagenet.h5", tmp_path


def _predict_tag(capsys, image: str, *extra: str):
    entry = INDEX[PREDICT_CASE]
    return run(
        capsys,
        "predict",
        image,
        "--model",
        entry["builder"],
        "--weights",
        "imagenet",
        *kwarg_options(entry["kwargs"]),
        *extra,
    )


def test_predict_with_a_tag_offline_says_where_to_put_the_file(capsys, release):
    h5, file_name, root = release
    image = str(write_image(root / "a.png", 32, 32))
    code, out, err = _predict_tag(capsys, image)
    assert code == 2 and not out and err.count("\n") == 1, err
    assert file_name in err and "http://127.0.0.1:9/nat/" in err and str(root / "cache") in err


@pytest.mark.parametrize("cache", ["cache", "keras/models"])
def test_predict_with_a_tag_uses_the_cached_release_file(capsys, release, cache):
    h5, file_name, root = release
    (root / cache).mkdir(parents=True)
    shutil.copy(h5, root / cache / file_name)
    image = str(write_image(root / "a.png", 32, 32))
    code, out, err = _predict_tag(capsys, image)
    assert code == 0, err
    _, from_file, _ = run(
        capsys,
        "predict",
        image,
        "--model",
        INDEX[PREDICT_CASE]["builder"],
        "--weights",
        str(h5),
        *kwarg_options(INDEX[PREDICT_CASE]["kwargs"]),
    )
    assert predicted_rows(out) == predicted_rows(from_file)


# one fixture per model family (its builder's registry module), the first by id: the families
# of later waves are covered as their fixtures land in index.json
FAMILY_CASES: dict[str, str] = {}
for _case in sorted(INDEX):
    FAMILY_CASES.setdefault(models.get_entry(INDEX[_case]["builder"]).family.module, _case)
CLASS_ROW = re.compile(r"^(\d+)\s+(\d\.\d{4})$")


@pytest.mark.parametrize("case", FAMILY_CASES.values(), ids=FAMILY_CASES.keys())
def test_convert_and_predict_work_for_every_family(capsys, tmp_path, case):
    """``convert`` the fixture (kecam's builder and arguments), then ``predict`` from the
    .safetensors alone: a 10-class head has no names, so each image gets its top class indices
    with the probabilities of the model built from the .h5 (kecam's deployed head for a
    distillation model; a softmax over logits), best first."""
    entry = INDEX[case]
    h5 = FIXTURES / entry["weights"]
    out = tmp_path / f"{case}.safetensors"
    argv = ["convert", entry["builder"], str(h5), "-o", str(out), *kwarg_options(entry["kwargs"])]
    assert run(capsys, *argv)[0] == 0
    pil_image = require_pillow()
    images = [write_image(tmp_path / "a.png", 37, 50), write_image(tmp_path / "b.jpg", 64, 21, 1)]
    code, stdout, err = run(capsys, "predict", *map(str, images), "--weights", str(out),
                            "--top", "3")  # fmt: skip
    assert code == 0, err
    model = models.create_model(entry["builder"], pretrained=str(h5), **entry["kwargs"])
    model = models._glue.single_output(model)
    lines = stdout.splitlines()
    assert lines[:3] == [str(images[0]), "class  prob", "-----  ------"], stdout
    starts = [lines.index(str(image)) for image in images]
    assert starts == [0, 6] and len(lines) == 12, stdout  # a title, a header and 3 rows each
    for image, start in zip(images, starts):
        printed = [CLASS_ROW.match(line) for line in lines[start + 3 : start + 6]]
        assert all(printed), stdout
        with pil_image.open(image) as pil:
            scores = model(model.preprocess_input(np.asarray(pil.convert("RGB"))))
        if model.pretrained_cfg.get("classifier_activation") is None:
            scores = mx.softmax(scores, axis=-1)
        probs = np.array(scores[0])
        assert probs.shape == (entry["kwargs"]["num_classes"],)
        indices = [int(row[1]) for row in printed]
        assert indices == list(np.argsort(-probs, kind="stable")[:3])
        np.testing.assert_allclose([float(row[2]) for row in printed], probs[indices], atol=5e-5)


@pytest.mark.reference
def test_predict_matches_kecam(capsys, tmp_path, converted):
    """kecam's ``model.preprocess_input`` and model on the same image and weights."""
    nat = require_reference("keras_cv_attention_models.nat")
    from PIL import Image

    from mlx_attention import imagenet

    entry = INDEX[PREDICT_CASE]
    kecam_model = nat.NAT(**entry["kwargs"], pretrained=None)
    kecam_model.load_weights(str(FIXTURES / entry["weights"]))
    image = write_image(tmp_path / "a.png", 45, 71)
    with Image.open(image) as pil:
        pixels = np.asarray(pil.convert("RGB"))
    probs = kecam_model(kecam_model.preprocess_input(pixels)).numpy()
    # kecam's probability of every class, by wnid (the near-uniform tiny network's ranking is
    # compared through the values, not the order)
    (every,) = imagenet.decode_predictions(mx.array(probs), top=probs.shape[-1])
    kecam_by_wnid = {wnid: float(p) for wnid, _, p in every}
    _, out, _ = run(capsys, "predict", str(image), "--weights", str(converted))
    printed = predicted_rows(out)[str(image)]
    np.testing.assert_allclose([p for _, _, p in printed], np.sort(probs[0])[::-1][:5], atol=6e-5)
    for wnid, _, p in printed:
        assert abs(kecam_by_wnid[wnid] - p) <= 6e-5, wnid
