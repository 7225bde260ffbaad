"""``mlx-attention evaluate``: data listing and label forms, sharding, padded batches, skipped
images, the JSON, and ``mlx.launch -n 2`` against one process on a generated image set."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

import mlx.core as mx
import numpy as np
import pytest
from helpers import require_pillow, require_reference

from mlx_attention import cli, evaluate, models

Image = require_pillow()  # evaluate decodes images with Pillow

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "models"
MODEL = "nat.NAT"  # the fixture is a reduced configuration of kecam's family builder
BROKEN = 2  # corrupt files in the set
IMAGES = 30  # good ones: a third ranked first, a third 2nd-5th, a third far behind


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    """The tiny 1000-class kecam fixture as a converted file (its arguments travel in it)."""
    case = json.loads((FIXTURES / "index.json").read_text())["nat_1000"]
    out = tmp_path_factory.mktemp("weights") / "nat_1000.safetensors"
    models.convert(case["builder"], FIXTURES / case["weights"], out, **case["kwargs"])
    return out


@pytest.fixture(scope="module")
def model(weights):
    return models.create_model(MODEL, pretrained=str(weights))


def _picture(rng: np.random.Generator, index: int):
    """A small image of varied size, aspect and mode: a colour gradient with noise."""
    height, width = rng.integers(17, 71, size=2)
    yy, xx = np.mgrid[0:height, 0:width] / max(height, width)
    colour = rng.uniform(0, 255, (3, 3))
    pixels = colour[0] * yy[..., None] + colour[1] * xx[..., None] + colour[2] * (1 - yy)[..., None]
    pixels = np.clip(pixels / 2 + rng.normal(0, 30, pixels.shape), 0, 255).astype(np.uint8)
    image = Image.fromarray(pixels, "RGB")
    return image.convert(["RGB", "RGB", "L", "RGBA", "P"][index % 5])


class ImageSet(NamedTuple):
    """A generated set in its three forms, and what evaluating it must count."""

    wnid_dir: Path
    index_dir: Path
    list_file: Path
    ranks: dict[str, int]  # file name -> rank of its label in the model's scores (stable sort)


def _counts(ranks: list[int]) -> tuple[int, int, int]:
    return len(ranks), sum(r < 1 for r in ranks), sum(r < 5 for r in ranks)


@pytest.fixture(scope="module")
def image_set(tmp_path_factory, model) -> ImageSet:
    """Labels are chosen from the model's own scores of each decoded file (one image at a time,
    ranked by numpy's stable sort), so the counts are known without evaluate's code."""
    root = tmp_path_factory.mktemp("images")
    staging = root / "staging"
    staging.mkdir()
    rng = np.random.default_rng(16)
    prepare = evaluate.preprocessor(model, "eval")
    wnids = evaluate.label_set(model)
    labels, ranks = {}, {}
    for i in range(IMAGES):
        name = f"img {i:02d}.png" if i == 7 else f"img_{i:02d}.{'jpg' if i % 2 else 'png'}"
        _picture(rng, i).convert("RGB" if name.endswith("jpg") else None).save(staging / name)
        x = prepare(evaluate.decode(str(staging / name)))
        scores = np.array(model(mx.array(x[None])).astype(mx.float32))[0]
        order = np.argsort(-scores, kind="stable")
        gaps = np.abs(np.diff(scores[order[:200]]))
        # a label whose rank a rounding difference cannot move: a clear gap on both sides
        wanted = [range(0, 1), range(1, 5), range(50, 199)][i % 3]
        rank = max(wanted, key=lambda r: min(gaps[r], gaps[r - 1] if r else np.inf))
        labels[name], ranks[name] = int(order[rank]), rank
    (staging / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a JPEG at all" * 10)
    truncated = (staging / "img_00.png").read_bytes()
    (staging / "truncated.png").write_bytes(truncated[: len(truncated) // 2])
    labels["broken.jpg"] = labels["truncated.png"] = labels["img_00.png"]
    lines = ["# path label", ""]
    for i, (name, label) in enumerate(sorted(labels.items())):
        for folder in (root / "wnid" / wnids[label], root / "index" / str(label)):
            folder.mkdir(parents=True, exist_ok=True)
            shutil.copy(staging / name, folder / name)
        # either label form, after a space or a tab
        sep, text = ("\t", wnids[label]) if i % 2 else (" ", str(label))
        lines.append(f"staging/{name}{sep}{text}")
    (root / "wnid" / wnids[0]).mkdir(exist_ok=True)  # an empty class folder
    (root / "wnid" / wnids[0] / "notes.txt").write_text("not an image")
    (root / "list.txt").write_text("\n".join(lines) + "\n")
    return ImageSet(root / "wnid", root / "index", root / "list.txt", ranks)


def _run(model, data, **kwargs) -> evaluate.Result:
    samples = evaluate.label_samples(evaluate.scan(data), model)
    return evaluate.evaluate(model, samples, progress=False, **kwargs)


def _tuple(result) -> tuple[int, int, int, int]:
    return result.images, result.top1_hits, result.top5_hits, result.skipped


def test_counts_are_the_ranks_of_the_labels_and_corrupt_files_are_skipped(model, image_set, capsys):
    result = _run(model, image_set.wnid_dir, batch_size=7)
    assert _tuple(result) == (*_counts(list(image_set.ranks.values())), BROKEN)
    assert 0 < result.top1_hits < result.top5_hits < result.images  # the set tests all three
    assert result.top1 == result.top1_hits / result.images and result.processes == 1
    err = capsys.readouterr().err
    for name in ("broken.jpg", "truncated.png"):
        assert f"skipped {image_set.wnid_dir}" in err and name in err


def test_label_forms_wnid_folders_index_folders_and_a_list_file_agree(model, image_set):
    counts = {
        data: _tuple(_run(model, data, batch_size=8))
        for data in (image_set.wnid_dir, image_set.index_dir, image_set.list_file)
    }
    assert len(set(counts.values())) == 1, counts


@pytest.mark.parametrize("batch_size", [1, 7, IMAGES + BROKEN + 3])
def test_padded_batches_make_counts_independent_of_the_batch_size(model, image_set, batch_size):
    expected = (*_counts(list(image_set.ranks.values())), BROKEN)
    assert _tuple(_run(model, image_set.list_file, batch_size=batch_size)) == expected


class _Group:
    """A stand-in for rank ``rank`` of ``size`` whose all_sum is the identity (one rank's
    counts)."""

    def __init__(self, rank: int, size: int):
        self._rank, self._size = rank, size

    def rank(self) -> int:
        return self._rank

    def size(self) -> int:
        return self._size


def test_ranks_take_disjoint_shards_that_add_up_to_the_whole(model, image_set, monkeypatch):
    samples = evaluate.label_samples(evaluate.scan(image_set.wnid_dir), model)
    shards = [evaluate.shard(samples, rank, 3) for rank in range(3)]
    assert sorted(s for part in shards for s in part) == sorted(samples)
    assert {len(part) for part in shards} <= {len(samples) // 3, len(samples) // 3 + 1}
    monkeypatch.setattr(mx.distributed, "all_sum", lambda x, **kwargs: x)
    parts = [
        evaluate.evaluate(model, samples, batch_size=5, group=_Group(r, 3), progress=False)
        for r in range(3)
    ]
    summed = tuple(sum(v) for v in zip(*map(_tuple, parts)))
    assert summed == _tuple(_run(model, image_set.wnid_dir, batch_size=5))


def test_only_rank_0_builds_from_a_tag_while_the_others_wait(monkeypatch, weights):
    calls = []
    monkeypatch.setattr(models, "create_model", lambda *a, **k: calls.append("build") or "model")

    def all_sum(x, **kwargs):
        calls.append("barrier")
        return x

    monkeypatch.setattr(mx.distributed, "all_sum", all_sum)
    for rank, expected in ((0, ["build", "barrier"]), (1, ["barrier", "build"])):
        calls.clear()
        assert evaluate.build_model("NAT_Mini", "imagenet", _Group(rank, 2)) == "model"
        assert calls == expected, rank
    calls.clear()
    evaluate.build_model("NAT_Mini", str(weights), _Group(1, 2))  # a file: all at once
    assert calls == ["build"]


def test_a_rank_0_failure_releases_and_fails_the_others(monkeypatch):
    def fail(*args, **kwargs):
        raise RuntimeError("offline")

    monkeypatch.setattr(models, "create_model", fail)
    monkeypatch.setattr(mx.distributed, "all_sum", lambda x, **kwargs: x + 1)  # a failed peer
    with pytest.raises(RuntimeError, match="offline"):
        evaluate.build_model("NAT_Mini", "imagenet", _Group(0, 2))
    with pytest.raises(ValueError, match="rank 0 could not build NAT_Mini with weights 'imagenet'"):
        evaluate.build_model("NAT_Mini", "imagenet", _Group(1, 2))


def _cli(weights, data, *extra) -> list[str]:
    return ["evaluate", "--model", MODEL, "--weights", str(weights), "--data", str(data), *extra]


@pytest.mark.parametrize("dtype,resize", [("float32", "eval"), ("bfloat16", "kecam")])
def test_cli_writes_the_json(weights, image_set, tmp_path, capsys, dtype, resize):
    out = tmp_path / "result.json"
    settings = ["--batch-size", "4", "--dtype", dtype, "--resize", resize, "--json", str(out)]
    assert cli.main(_cli(weights, image_set.wnid_dir, *settings)) == 0
    record = json.loads(out.read_text())
    assert (record["dtype"], record["resize"]) == (dtype, resize)
    assert {"images", "top1", "top5", "skipped", "images_per_s"} <= set(record)
    assert record["images"] == IMAGES and record["skipped"] == BROKEN
    assert record["top1"] == record["top1_hits"] / IMAGES and record["images_per_s"] > 0
    assert record["batch_size"] == 4 and record["processes"] == 1
    assert f"top-1 {record['top1']:.4f}" in capsys.readouterr().out


def test_cli_limit_takes_the_first_sorted_paths_before_sharding(weights, image_set, tmp_path):
    out = tmp_path / "result.json"
    limit = 11
    names = [Path(path).name for path, _ in evaluate.scan(image_set.wnid_dir)[:limit]]
    ranks = [image_set.ranks[n] for n in names if n in image_set.ranks]
    assert (
        cli.main(_cli(weights, image_set.wnid_dir, "--limit", str(limit), "--json", str(out))) == 0
    )
    record = json.loads(out.read_text())
    images, top1, top5 = _counts(ranks)
    assert (record["images"], record["top1_hits"], record["top5_hits"]) == (images, top1, top5)
    assert record["skipped"] == limit - len(ranks) and record["limit"] == limit


def _free_ports(count: int) -> int:
    """A port ``p`` with ``p .. p + count - 1`` free (the ring backend takes one per rank)."""
    for _ in range(50):
        with socket.socket() as first:
            first.bind(("127.0.0.1", 0))
            port = first.getsockname()[1]
            others = [socket.socket() for _ in range(count - 1)]
            try:
                for i, other in enumerate(others, 1):
                    other.bind(("127.0.0.1", port + i))
                return port
            except OSError:
                continue
            finally:
                for other in others:
                    other.close()
    pytest.skip(f"needs {count} consecutive free ports (found none)")


def test_mlx_launch_two_processes_agree_exactly_with_one(weights, image_set, tmp_path):
    launcher = Path(sys.executable).with_name("mlx.launch")
    if not launcher.exists():
        pytest.skip(f"needs mlx.launch beside {sys.executable}")
    single, double = tmp_path / "one.json", tmp_path / "two.json"
    args = _cli(weights, image_set.list_file, "--batch-size", "5")
    assert cli.main([*args, "--json", str(single)]) == 0
    script = launcher.with_name("mlx-attention")  # the README's command, where installed
    program = [str(script)] if script.exists() else [sys.executable, "-m", "mlx_attention.cli"]
    command = [
        str(launcher), "-n", "2", "--backend", "ring", "-p", str(_free_ports(2)), "--",
        *program, *args, "--json", str(double),
    ]  # fmt: skip
    run = subprocess.run(
        command, cwd=ROOT, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stdout + run.stderr
    one, two = json.loads(single.read_text()), json.loads(double.read_text())
    assert two["processes"] == 2
    for key in ("images", "top1_hits", "top5_hits", "skipped", "top1", "top5"):
        assert one[key] == two[key], key
    assert run.stdout.count("top-1") == 1  # rank 0 alone reports
    assert run.stderr.count("broken.jpg") == 1  # by the rank whose shard holds it


# --- pieces ---------------------------------------------------------------------------------


def test_correct_counts_rank_like_a_stable_sort_with_nan_last():
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 4, (40, 9)).astype(np.float32)  # many ties
    scores[3, 2] = np.nan
    labels = rng.integers(0, 9, 40)
    labels[3] = 2
    valid = rng.uniform(size=40) < 0.8
    order = np.argsort(-np.nan_to_num(scores, nan=-np.inf), axis=1, kind="stable")
    rank = np.argmax(order == labels[:, None], axis=1)
    expected = [valid.sum(), (valid & (rank < 1)).sum(), (valid & (rank < 5)).sum()]
    got = evaluate.correct_counts(mx.array(scores), mx.array(labels), mx.array(valid))
    assert got.tolist() == expected and got.dtype == mx.int32


def test_scan_refuses_missing_data_malformed_lines_and_empty_sets(tmp_path):
    with pytest.raises(ValueError, match="no such directory or list file"):
        evaluate.scan(tmp_path / "absent")
    bad = tmp_path / "bad.txt"
    bad.write_text("a.png 1\nlonely\n")
    with pytest.raises(ValueError, match=r"bad.txt:2: expected 'path label', got 'lonely'"):
        evaluate.scan(bad)
    (tmp_path / "flat.png").write_bytes(b"")  # images, but not in class folders
    with pytest.raises(ValueError, match="no image in class subfolders"):
        evaluate.scan(tmp_path)


def test_labels_are_looked_up_in_the_model_label_set_not_numbered(model, tmp_path):
    wnids = evaluate.label_set(model)
    assert len(wnids) == 1000 and wnids == sorted(wnids)
    pairs = [("a.png", wnids[999]), ("b.png", "3"), ("c.png", wnids[1])]
    assert [s.label for s in evaluate.label_samples(pairs, model)] == [999, 3, 1]
    with pytest.raises(ValueError, match=r"c.png: label 'n99999999' is neither a class index"):
        evaluate.label_samples([("c.png", "n99999999")], model)
    with pytest.raises(ValueError, match="class index 1000 is out of range for a model of 1000"):
        evaluate.label_samples([("d.png", "1000")], model)


def test_cli_without_pillow_says_how_to_install_it(weights, image_set, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "PIL", None)  # import PIL raises ImportError
    assert cli.main(_cli(weights, image_set.wnid_dir)) == 2
    assert 'pip install -e ".[image]"' in capsys.readouterr().err


def test_cli_says_what_is_wrong_without_a_traceback(weights, image_set, tmp_path, capsys):
    assert cli.main(_cli(weights, tmp_path / "absent")) == 2
    assert "no such directory or list file" in capsys.readouterr().err
    assert cli.main(_cli(weights, image_set.wnid_dir, "--batch-size", "0")) == 2
    assert "--batch-size and --limit must be >= 1" in capsys.readouterr().err


def test_resize_modes_are_kecam_evaluation_rule_and_preprocess_input(model):
    from mlx_attention import imagenet

    pixels = np.asarray(_picture(np.random.default_rng(3), 0))  # 60 x 21: the crop shows
    expected = {
        "eval": imagenet.evaluation_input(pixels, model.pretrained_cfg),
        "kecam": model.preprocess_input(pixels),
    }
    for resize, want in expected.items():
        got = evaluate.preprocessor(model, resize)(pixels)
        assert got.shape == tuple(model.pretrained_cfg["input_shape"]) and got.dtype == np.float32
        np.testing.assert_array_equal(got, np.array(want)[0])
    assert not np.allclose(np.array(expected["eval"]), np.array(expected["kecam"]), atol=1e-3)
    with pytest.raises(ValueError, match="resize must be one of"):
        evaluate.preprocessor(model, "bilinear")


@pytest.mark.reference
def test_eval_input_is_kecam_evaluation_pipeline_on_decoded_files(model, image_set):
    """kecam's own ``tf_imread`` + ``evaluation_process_crop_resize`` + rescale, file by file.

    PNGs (RGB, grey, RGBA, palette) decode to TF's pixels exactly. JPEGs do not: TF decodes them
    with libjpeg's fast integer DCT, Pillow with the accurate one (TF's
    ``dct_method="INTEGER_ACCURATE"``, which Pillow matches exactly), a few levels apart.
    """
    tf = require_reference("tensorflow")
    tf_data = require_reference("keras_cv_attention_models.imagenet.tf_data")
    from keras_cv_attention_models.common_layers import init_mean_std_by_rescale_mode

    cfg = model.pretrained_cfg
    mean, std = init_mean_std_by_rescale_mode(cfg["rescale_mode"])
    prepare = evaluate.preprocessor(model, "eval")
    staging = image_set.wnid_dir.parent / "staging"
    for name in sorted(image_set.ranks):
        path = str(staging / name)
        pixels = evaluate.decode(path)
        if name.endswith(".jpg"):
            raw = tf.io.read_file(path)
            accurate = tf.io.decode_jpeg(raw, channels=3, dct_method="INTEGER_ACCURATE")
            np.testing.assert_array_equal(pixels, accurate.numpy(), err_msg=name)
            continue
        np.testing.assert_array_equal(pixels, tf_data.tf_imread(path).numpy(), err_msg=name)
        image = tf_data.tf_imread(path)
        kecam = tf_data.evaluation_process_crop_resize(
            image, cfg["input_shape"][:2], 1.0, "bicubic", True
        )
        kecam = ((kecam - mean) / std).numpy()
        ours = prepare(pixels)
        bound = 1e-4 * max(1.0, float(np.abs(kecam).max()))
        assert np.abs(ours - kecam).max() <= bound, name


@pytest.mark.reference
def test_counts_match_kecam_evaluation_on_the_same_files(model, image_set, tmp_path, monkeypatch):
    """kecam's ``imagenet.eval_func.evaluation`` on kecam's own model of the fixture file, over
    a kecam JSON data set of the PNGs (JPEGs decode a few levels apart: see ``decode``)."""
    require_reference()
    monkeypatch.syspath_prepend(str(ROOT / "tools"))
    import make_model_fixtures

    _, nat = make_model_fixtures.import_kecam()  # TensorFlow set up as the fixtures were made
    from keras_cv_attention_models.imagenet import eval_func

    case = json.loads((FIXTURES / "index.json").read_text())["nat_1000"]
    kecam_model = nat.NAT(**case["kwargs"], pretrained=None)
    kecam_model.load_weights(str(FIXTURES / case["weights"]))
    samples = evaluate.label_samples(evaluate.scan(image_set.list_file), model)
    pngs = [s for s in samples if Path(s.path).name in image_set.ranks and s.path.endswith("png")]
    rows = [{"image": s.path, "label": s.label} for s in pngs]
    data = tmp_path / "kecam.json"
    data.write_text(json.dumps({"train": rows[:1], "test": rows, "info": {"num_classes": 1000}}))
    y_true, top1, top5 = eval_func.evaluation(kecam_model, str(data), batch_size=4)
    kecam_counts = (len(y_true), int((y_true == top1).sum()))
    kecam_counts += (sum(int(t in row) for t, row in zip(y_true, top5)),)
    ours = evaluate.evaluate(model, pngs, batch_size=4, progress=False)
    assert (ours.images, ours.top1_hits, ours.top5_hits) == kecam_counts
    assert 0 < kecam_counts[1] < kecam_counts[2] < kecam_counts[0]
