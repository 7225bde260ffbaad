"""ImageNet preprocessing, resizes, labels and decoding against TensorFlow and kecam 1.4.3.

Default run: the committed fixtures of tools/make_imagenet_fixtures.py. ``reference`` tests: live
TF resizes and kecam's ``PreprocessInput`` / ``decode_predictions``.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import mlx.core as mx
import numpy as np
import pytest

from mlx_attention import imagenet
from mlx_attention.ops import resize_bicubic_antialias, resize_bilinear
from tests.helpers import assert_matches, max_error, require_reference

FIXTURES = np.load(Path(__file__).parent / "fixtures" / "imagenet" / "imagenet.npz")
RESIZES = {"bilinear": resize_bilinear, "bicubic": resize_bicubic_antialias}
# TF's float32 rounding on 0-255 pixels (the ops follow TF's order of operations, and on this
# Linux CPU match it bit for bit); normalised outputs are pixels / std, std >= 1, so it bounds them
PIXEL_ATOL = 2e-4


def assert_close(ours, tf_out) -> None:
    assert ours.dtype == mx.float32
    error = max_error(ours, tf_out)
    assert error <= PIXEL_ATOL, f"max |ours - tf| = {error:.3g} > {PIXEL_ATOL}"


def cases(kind: str) -> list[str]:
    return sorted({k.split("/")[1] for k in FIXTURES.files if k.startswith(kind + "/")})


def load(kind: str, case: str):
    key = f"{kind}/{case}"
    return FIXTURES[f"{key}/x"], FIXTURES[f"{key}/tf"], json.loads(str(FIXTURES[f"{key}/args"]))


# --- resizes --------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(RESIZES))
@pytest.mark.parametrize("case", cases("bilinear"))
def test_resize_matches_tf(kind, case):
    x, expected, args = load(kind, case)
    assert_close(RESIZES[kind](mx.array(x), args["size"]), expected)
    # unbatched [H, W, C] is the same resize
    assert_close(RESIZES[kind](mx.array(x[0]), args["size"]), expected[0])


@pytest.mark.parametrize("kind", sorted(RESIZES))
def test_resize_integer_input_is_float32_and_half_stays_half(kind):
    x, expected, args = load(kind, "odd_40x31_to_13x17")
    pixels = np.round(x).clip(0, 255).astype(np.uint8)  # integer pixels, as images arrive
    assert RESIZES[kind](mx.array(pixels), args["size"]).dtype == mx.float32
    half = RESIZES[kind](mx.array(x, dtype=mx.float16), args["size"])
    assert half.dtype == mx.float16
    assert_matches(half, expected, dtype=mx.float16)


def test_resize_bilinear_has_the_gradient_of_its_weights():
    # each output is a convex combination of inputs: d(sum out)/dx sums to the output count
    x = mx.array(load("bilinear", "odd_40x31_to_13x17")[0])
    grad = mx.grad(lambda t: resize_bilinear(t, (13, 17)).sum())(x)
    assert grad.shape == x.shape
    assert grad.sum().item() == pytest.approx(13 * 17 * 3, rel=1e-5)
    assert mx.min(grad).item() >= 0


@pytest.mark.parametrize("size", [0, (3, 0), (2, -1)])
def test_resize_refuses_empty_sizes(size):
    with pytest.raises(ValueError, match="size must be >= 1"):
        resize_bilinear(mx.zeros((4, 4, 3)), size)


def test_resize_refuses_other_ranks():
    with pytest.raises(ValueError, match=r"\[H, W, C\] or \[B, H, W, C\], got shape \(4, 4\)"):
        resize_bicubic_antialias(mx.zeros((4, 4)), 2)


# --- preprocessing --------------------------------------------------------------------------------


@pytest.mark.parametrize("case", cases("preprocess"))
def test_preprocess_input_matches_kecam(case):
    x, expected, args = load("preprocess", case)
    out = imagenet.preprocess_input(x, args["input_shape"], rescale_mode=args["rescale_mode"])
    assert_close(out, expected)


def test_preprocess_input_reads_the_pretrained_cfg():
    x, expected, args = load("preprocess", "torch_13x17_to_24x20")
    cfg = {"input_shape": args["input_shape"], "rescale_mode": "torch"}
    assert_close(imagenet.preprocess_input(mx.array(x), cfg), expected)
    # an explicit rescale_mode overrides the cfg's; without one, a shape means "torch"
    overridden = imagenet.preprocess_input(x, {**cfg, "rescale_mode": "raw"}, rescale_mode="torch")
    assert_close(overridden, expected)
    assert_close(imagenet.preprocess_input(x, args["input_shape"]), expected)


@pytest.mark.parametrize("case", cases("evaluation"))
def test_evaluation_input_matches_kecam(case):
    x, expected, args = load("evaluation", case)
    out = imagenet.evaluation_input(
        x, args["size"], rescale_mode=args["rescale_mode"], central_crop=args["central_crop"]
    )
    assert_close(out, expected)


def test_evaluation_input_takes_images_of_several_sizes():
    images = [load("evaluation", c)[0] for c in ("crop1_40x31_to_24x24", "crop1_13x17_to_32x32")]
    both = imagenet.evaluation_input(images, (24, 24), rescale_mode="torch")
    for i, image in enumerate(images):
        assert mx.array_equal(both[i : i + 1], imagenet.evaluation_input(image, (24, 24)))


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: imagenet.preprocess_input(np.zeros((4, 4, 3)), (None, None, 3)), "dynamic"),
        (lambda: imagenet.preprocess_input(np.zeros((4, 4, 3)), (8, 8), "trch"), "rescale_mode"),
        (lambda: imagenet.preprocess_input(np.zeros((4, 4, 3)), (8, 8), (1, 2, 3)), "pair"),
        (lambda: imagenet.preprocess_input(np.zeros((4, 4)), (8, 8)), r"got shape \(4, 4\)"),
        (lambda: imagenet.evaluation_input(np.zeros((4, 6, 3)), (8, 8), central_crop=1.5), "6"),
        (lambda: imagenet.evaluation_input(np.zeros((4, 6, 3)), (8, 8), central_crop=0.1), "0-"),
    ],
)
def test_preprocessing_errors_say_why(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_rescale_modes_are_kecams_values():
    mean, std = imagenet.rescale_mean_std("torch")
    assert mean.dtype == std.dtype == np.float32 and mean.shape == (3,)
    assert imagenet.rescale_mean_std("raw01")[1] == 255
    assert imagenet.rescale_mean_std(([1, 2, 3], 4))[0].tolist() == [1, 2, 3]


# --- labels and decoding --------------------------------------------------------------------------


def test_labels_are_kecams_file_in_sorted_wnid_order():
    data = imagenet.CLASS_INDEX_FILE.read_bytes()
    assert hashlib.md5(data).hexdigest() == imagenet.CLASS_INDEX_MD5
    wnids, names = imagenet.labels()
    assert len(wnids) == len(set(wnids)) == len(names) == 1000
    assert list(wnids) == sorted(wnids)
    assert all(re.fullmatch(r"n\d{8}", w) for w in wnids)
    assert imagenet.wnids() == wnids
    assert (imagenet.CLASS_INDEX_FILE.parent / "README.md").exists()  # provenance and licence


def test_decode_predictions_orders_by_score_with_kecams_ties():
    preds = np.zeros((2, 1000), np.float32)
    preds[0, [3, 7, 500]] = [0.2, 0.5, 0.3]
    preds[1, [10, 20]] = 0.5  # a tie: argsort()[-top:][::-1] puts the higher index first
    wnids, names = imagenet.labels()
    rows = imagenet.decode_predictions(mx.array(preds).astype(mx.bfloat16), top=3)
    assert [r[:2] for r in rows[0]] == [(wnids[i], names[i]) for i in (7, 500, 3)]
    assert [r[2] for r in rows[0]] == pytest.approx([0.5, 0.3, 0.2], abs=2e-3)
    assert [r[0] for r in rows[1][:2]] == [wnids[20], wnids[10]]
    assert all(isinstance(r[2], float) for r in rows[1])


@pytest.mark.parametrize(
    ("shape", "top", "match"),
    [((1000,), 5, r"\[N, 1000\]"), ((1, 21843), 5, "ImageNet-1k"), ((1, 1000), 0, "top")],
)
def test_decode_predictions_errors(shape, top, match):
    with pytest.raises(ValueError, match=match):
        imagenet.decode_predictions(np.zeros(shape), top=top)


# --- live references ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tf():
    return require_reference("tensorflow")


@pytest.fixture(scope="module")
def kecam():
    return require_reference()


@pytest.mark.reference
@pytest.mark.parametrize("kind", sorted(RESIZES))
def test_resize_sweep_live(tf, kind):
    method, antialias = ("bilinear", False) if kind == "bilinear" else ("bicubic", True)
    rng = np.random.default_rng(0)
    worst = 0.0
    for source in [(1, 1), (2, 7), (13, 17), (40, 31), (96, 64)]:
        x = rng.uniform(0, 255, size=(1, *source, 3)).astype(np.float32)
        for size in [(1, 1), (1, 5), (3, 2), (13, 17), (17, 13), (31, 40), (224, 160), (7, 96)]:
            expected = tf.image.resize(x, size, method=method, antialias=antialias).numpy()
            out = RESIZES[kind](mx.array(x), size)
            assert_close(out, expected)
            worst = max(worst, max_error(out, expected))
    print(f"{kind}: max |ours - tf| = {worst:.3g}")


@pytest.mark.reference
@pytest.mark.parametrize("mode", ["torch", "tf", "tf128", "raw01", "raw", "clip", (64.0, 32.0)])
def test_preprocess_input_live(kecam, mode):
    from keras_cv_attention_models.common_layers import PreprocessInput

    rng = np.random.default_rng(1)
    for image in (
        rng.integers(0, 256, size=(31, 45, 3)).astype(np.uint8),
        rng.uniform(0, 1, size=(2, 20, 17, 3)).astype(np.float32),
    ):
        expected = PreprocessInput((23, 29, 3), rescale_mode=mode)(image).numpy()
        assert_close(imagenet.preprocess_input(image, (23, 29, 3), rescale_mode=mode), expected)


@pytest.mark.reference
def test_decode_predictions_live(kecam, monkeypatch, tmp_path):
    # kecam's decode_predictions takes the shipped file as its own (md5-checked, no download)
    from keras_cv_attention_models.imagenet import eval_func

    source = Path(eval_func.__file__).read_text()
    assert f'file_hash = "{imagenet.CLASS_INDEX_MD5}"' in source
    datasets = tmp_path / ".keras" / "datasets"
    datasets.mkdir(parents=True)
    (datasets / "imagenet_class_index.json").write_bytes(imagenet.CLASS_INDEX_FILE.read_bytes())
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setattr(eval_func, "CLASS_INDEX_IMAGENET", None)
    preds = np.random.default_rng(2).uniform(size=(3, 1000)).astype(np.float32)
    theirs = eval_func.decode_predictions(preds, top=7)
    ours = imagenet.decode_predictions(preds, top=7)
    assert [[(w, n, float(s)) for w, n, s in row] for row in theirs] == ours


@pytest.mark.reference
@pytest.mark.parametrize("central_crop", [1.0, 0.875, -1.0])
def test_evaluation_input_live_on_kecams_test_image(tf, kecam, central_crop):
    from keras_cv_attention_models import test_images
    from keras_cv_attention_models.common_layers import init_mean_std_by_rescale_mode
    from keras_cv_attention_models.imagenet.tf_data import evaluation_process_crop_resize

    photo = np.asarray(test_images.dog_cat())  # [512, 512, 3] uint8
    mean, std = init_mean_std_by_rescale_mode("torch")
    for image in (photo, photo[37:, :301]):  # the 512x512 photo, and a non-square cut of it
        expected = evaluation_process_crop_resize(
            tf.constant(image), (224, 160), central_crop, "bicubic", True
        )
        expected = ((expected - mean) / std).numpy()[None]
        out = imagenet.evaluation_input(image, (224, 160, 3), "torch", central_crop)
        assert_close(out, expected)
