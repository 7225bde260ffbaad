"""UniFormer (kecam ``uniformer.Uniformer``) against kecam's own numbers.

Default run: the committed reduced fixtures (``tests/fixtures/models/uniformer_*``, made by
``tools/make_model_fixtures.py``: kecam's ``uniformer.Uniformer`` with every variable
re-randomised; ``tests/test_models.py`` compares them, kernels off and emulated), the stage
sizes kecam's stems give, the builder's signature, the arguments kecam cannot build, and the
token-label head: loaded and used with ``token_label_top``, reported as skipped without it.
``reference`` (TensorFlow and kecam 1.4.3): the real UniformerSmall32 at 224 and at a
non-square odd size, UniformerSmallPlus32 (the conv stem), and kecam's two-output token-label
model with its combined decoding, live.
"""

from __future__ import annotations

import shutil

import h5py
import live
import mlx.core as mx
import numpy as np
import pytest
from cases import signature_rows
from helpers import assert_matches
from test_models import FIXTURES, INDEX, KECAM, expected_signature, fixture_arrays, fixture_model

from mlx_attention import imagenet, models
from mlx_attention.convert import WeightMismatchError
from mlx_attention.models.uniformer import (
    UniformerAttnBlock,
    UniformerConvBlock,
    combine_token_label,
)

CASES = sorted(c for c, e in INDEX.items() if e["builder"] == "uniformer.Uniformer")


def test_fixtures_cover_both_layouts_stems_and_blocks():
    assert len(CASES) >= 2
    assert {INDEX[c]["save"] for c in CASES} == {"model", "weights"}
    kwargs = [INDEX[c]["kwargs"] for c in CASES]
    assert {k.get("use_conv_stem", False) for k in kwargs} == {True, False}
    assert {t for k in kwargs for t in k["block_types"]} == {"conv", "transform"}
    assert any(k.get("layer_scale", -1) > 0 for k in kwargs)
    total = sum(p.stat().st_size for p in FIXTURES.glob("uniformer_*"))
    assert total <= 350 * 2**10, f"UniFormer fixtures take {total / 2**10:.0f} kB"


def test_family_builder_signature_is_kecams():
    assert signature_rows(models.uniformer.Uniformer) == expected_signature(
        KECAM["builders"]["uniformer.Uniformer"]["params"]
    )


def _stage_maps(model) -> list[tuple[int, int, str]]:
    """``(H, W, block kind)`` of each stage's blocks, from the summary's shapes."""
    x = mx.zeros((1, *model.input_shape))
    maps = []
    for layer in model.layers:
        x = layer(x)
        if isinstance(layer, (UniformerConvBlock, UniformerAttnBlock)):
            kind = "conv" if isinstance(layer, UniformerConvBlock) else "attn"
            entry = (x.shape[1], x.shape[2], kind)
            if not maps or maps[-1] != entry:
                maps.append(entry)
    return maps


@pytest.mark.parametrize(
    "name, shape, maps",
    [
        # the VALID 4x4 stem and 2x2 downsamples floor
        ("UniformerSmall32", (97, 131, 3), [(24, 32), (12, 16), (6, 8), (3, 4)]),
        ("UniformerSmall32", (3, 64, 40), [(16, 10), (8, 5), (4, 2), (2, 1)]),
        # the padded 3x3 stride-2 convs of the conv stem round up
        ("UniformerSmallPlus32", (97, 131, 3), [(25, 33), (13, 17), (7, 9), (4, 5)]),
    ],
)
def test_stage_sizes_follow_the_stems(name, shape, maps):
    model = models.create_model(name, input_shape=shape)
    kinds = ["conv", "conv", "attn", "attn"]
    assert _stage_maps(model) == [(*m, k) for m, k in zip(maps, kinds)]


def test_attention_heads_follow_head_dimension():
    """kecam: ``out_channel // head_dimension`` heads in the attention stages."""
    for name, heads in [("UniformerSmall32", [10, 16]), ("UniformerSmall64", [5, 8])]:
        model = models.create_model(name, input_shape=(64, 64, 3))
        blocks = [m for m in model.layers if isinstance(m, UniformerAttnBlock)]
        assert sorted({b.attn.num_heads for b in blocks}) == heads


def test_arguments_kecam_cannot_build_are_refused():
    small = {
        "num_blocks": [1, 1], "out_channels": [8, 16], "head_dimension": 8,
        "block_types": ["conv", "transform"],
    }  # fmt: skip
    with pytest.raises(ValueError, match="mlp_drop_rate=0.1"):
        models.uniformer.Uniformer(**small, mlp_drop_rate=0.1)
    with pytest.raises(ValueError, match=r"stem_width=12 must equal out_channels\[0\]=8"):
        models.uniformer.Uniformer(**small, stem_width=12)
    with pytest.raises(ValueError, match=r"out_channels\[2\]=8 < head_dimension=16"):
        models.uniformer.Uniformer(
            num_blocks=[1, 1, 1], out_channels=[8, 8, 8], head_dimension=16,
            block_types=["conv", "conv", "transform"],
        )  # fmt: skip
    with pytest.raises(ValueError, match="one entry per stage"):
        models.uniformer.Uniformer(**{**small, "block_types": ["conv"]})
    with pytest.raises(TypeError, match="multiple values for keyword argument 'use_conv_stem'"):
        models.UniformerSmallPlus32(use_conv_stem=False)


def test_a_file_of_another_model_is_refused():
    entry = INDEX["uniformer_35x45"]
    with pytest.raises(WeightMismatchError, match="stack2_block2_"):
        models.uniformer.Uniformer(
            **{**entry["kwargs"], "num_blocks": [1, 2]}, pretrained=str(FIXTURES / entry["weights"])
        )


# --- the token-label head ----------------------------------------------------------------------


def _append_layer_name(group: h5py.Group, name: str) -> None:
    names = [n if isinstance(n, bytes) else str(n).encode() for n in group.attrs["layer_names"]]
    group.attrs["layer_names"] = [*names, name.encode()]


def _with_aux_head(tmp_path, case: str) -> tuple[str, np.ndarray, np.ndarray]:
    """The fixture's file with a token-label ``aux_head`` Dense added as kecam stores it (its
    layer group under ``model_weights``, kernel ``[C, classes]`` and bias); its path and the
    two arrays."""
    entry = INDEX[case]
    path = tmp_path / "with_aux.h5"
    shutil.copy(FIXTURES / entry["weights"], path)
    channels, classes = entry["kwargs"]["out_channels"][-1], entry["kwargs"]["num_classes"]
    rng = np.random.default_rng(5)
    kernel = rng.normal(0, 0.5, (channels, classes)).astype(np.float32)
    bias = rng.normal(0, 0.1, (classes,)).astype(np.float32)
    with h5py.File(path, "a") as f:
        root = f["model_weights"] if entry["save"] == "model" else f
        _append_layer_name(root, "aux_head")
        group = root.create_group("aux_head")
        names = ["aux_head/kernel:0", "aux_head/bias:0"]
        for name, value in zip(names, (kernel, bias)):
            group.create_dataset(name, data=value)
        group.attrs["weight_names"] = [n.encode() for n in names]
    return str(path), kernel, bias


def test_a_release_files_aux_head_is_skipped_without_token_label_top(tmp_path):
    """kecam's token-label release files carry ``aux_head``; a default model (no
    ``token_label_top``) loads them strictly and reports the head as skipped."""
    entry, arrays = INDEX["uniformer_35x45"], fixture_arrays("uniformer_35x45")
    path, _, _ = _with_aux_head(tmp_path, "uniformer_35x45")
    model = models.uniformer.Uniformer(
        **entry["kwargs"], pretrained=path, classifier_activation=None
    )
    report = model.load_report
    assert report.ok and report.skipped == ("aux_head",)
    assert "aux_head" not in report.loaded and "skipped (optional): aux_head" in str(report)
    assert_matches(model(mx.array(arrays["input"])), arrays["logits"])
    # a file without it reports nothing skipped
    plain = fixture_model("uniformer_35x45")
    assert getattr(plain.load_report, "skipped", ()) == ()


def test_only_the_aux_head_is_optional(tmp_path):
    """Strict still refuses any other extra layer; without strict it is reported as
    unexpected and the optional head as skipped."""
    entry = INDEX["uniformer_35x45"]
    path, _, _ = _with_aux_head(tmp_path, "uniformer_35x45")
    with h5py.File(path, "a") as f:
        root = f["model_weights"]
        _append_layer_name(root, "extra")
        group = root.create_group("extra")
        group.create_dataset("extra/kernel:0", data=np.zeros((2, 2), np.float32))
        group.attrs["weight_names"] = [b"extra/kernel:0"]
    with pytest.raises(WeightMismatchError, match="unexpected Keras layer 'extra'"):
        models.uniformer.Uniformer(**entry["kwargs"], pretrained=path)
    loose = models.uniformer.Uniformer(**entry["kwargs"], pretrained=path, strict=False)
    assert loose.load_report.unexpected == ("extra",)
    assert loose.load_report.skipped == ("aux_head",)


def test_token_label_top_loads_and_returns_the_aux_head(tmp_path):
    """``token_label_top``: kecam's ``(class logits, aux_head on every post_bn token)``; the
    class logits are kecam's, the tokens' are its ``post_bn`` map through the file's Dense."""
    entry, arrays = INDEX["uniformer_35x45"], fixture_arrays("uniformer_35x45")
    path, kernel, bias = _with_aux_head(tmp_path, "uniformer_35x45")
    model = models.uniformer.Uniformer(**entry["kwargs"], pretrained=path, token_label_top=True)
    assert model.load_report.ok and "aux_head" in model.load_report.loaded
    logits, tokens = model(mx.array(arrays["input"]))
    assert_matches(logits, arrays["logits"])  # kecam's class output has no softmax here
    post_bn = arrays["probe/post_bn"]
    expected = post_bn.reshape(post_bn.shape[0], -1, post_bn.shape[-1]) @ kernel + bias
    assert_matches(tokens, expected)
    # the file without the head is refused: the model needs it
    with pytest.raises(WeightMismatchError, match="missing Keras layer 'aux_head'"):
        models.uniformer.Uniformer(
            **entry["kwargs"], pretrained=str(FIXTURES / entry["weights"]), token_label_top=True
        )


def test_token_label_decoding_combines_the_two_outputs():
    """kecam's ``token_label_imagenet_decode_predictions``: ``softmax(class + 0.5 * max over
    tokens)``, then decoded (checked against kecam's function live, below)."""
    model = models.UniformerSmall32(input_shape=(64, 64, 3), token_label_top=True)
    logits, tokens = model(mx.random.uniform(shape=(2, 64, 64, 3), key=mx.random.key(0)))
    assert logits.shape == (2, 1000) and tokens.shape == (2, 4, 1000)
    probs = combine_token_label((logits, tokens))
    assert np.allclose(np.array(probs).sum(-1), 1, atol=1e-5)
    decoded = model.decode_predictions((logits, tokens), top=3)
    assert decoded == imagenet.decode_predictions(probs, top=3)


def test_predict_and_evaluate_rank_the_combined_score():
    """``single_output`` (``predict``, ``evaluate``): kecam's combined token-label score, one
    output, the same arrays; a model without the token-label head is itself."""
    from mlx_attention.models._glue import single_output

    entry = INDEX["uniformer_35x45"]
    plain = fixture_model("uniformer_35x45")
    assert single_output(plain) is plain
    model = models.uniformer.Uniformer(**entry["kwargs"], token_label_top=True)
    one = single_output(model)
    x = mx.array(fixture_arrays("uniformer_35x45")["input"])
    assert np.array_equal(np.array(one(x)), np.array(combine_token_label(model(x))))
    assert one.count_params() == model.count_params()
    assert one.pretrained_cfg["classifier_activation"] == "softmax"
    assert isinstance(model(x), tuple)  # the original keeps kecam's two outputs


def test_token_label_top_counts_kecams_parameters():
    """The aux head is one Dense of kecam's (``num_classes=0``: no head at all, as kecam)."""
    base = models.UniformerSmall32(input_shape=(64, 64, 3))
    token = models.UniformerSmall32(input_shape=(64, 64, 3), token_label_top=True)
    assert token.count_params() - base.count_params() == 512 * 1000 + 1000
    features = models.UniformerSmall32(input_shape=(64, 64, 3), num_classes=0, token_label_top=True)
    assert features(mx.zeros((1, 64, 64, 3))).shape == (1, 2, 2, 512)


# --- reference: the real models, live ----------------------------------------------------------

LIVE = [
    ("UniformerSmall32", (224, 224, 3), "model"),
    ("UniformerSmall32", (97, 131, 3), "weights"),
    ("UniformerSmallPlus32", (131, 97, 3), "model"),
]
LIVE_MODELS = [(name, shape) for name, shape, _ in LIVE]  # docs/models.md's "live at"


def _probes(model) -> list[str]:
    """kecam's stem output, each stage's last block and ``post_bn`` (forward_features)."""
    names = [layer.name for layer in model.layers]
    stem = "stem_2_bn" if "stem_2_bn" in names else "stem_ln"
    last = {}
    for name in names:
        if name.startswith("stack") and name.endswith("_2_output"):
            last[name.split("_", 1)[0]] = name
    return [stem, *last.values(), "post_bn"]


@pytest.mark.reference
@pytest.mark.slow
@pytest.mark.parametrize("name, shape, save", LIVE, ids=[f"{n}-{s[0]}x{s[1]}" for n, s, _ in LIVE])
def test_real_uniformer_matches_kecam(kecam_live, tmp_path, name, shape, save):
    run = live.kecam_run(f"uniformer.{name}", tmp_path, input_shape=shape, save=save,
                         probes=_probes, classifier_activation=None)  # fmt: skip
    ours = models.create_model(
        name, pretrained=str(run.path), input_shape=shape, classifier_activation=None
    )
    live.assert_live(ours, run, features="post_bn")


@pytest.mark.reference
@pytest.mark.slow
def test_token_label_model_matches_kecam(kecam_live, tmp_path):
    """kecam's two-output model (``token_label_top``, with ``mix_token``: the class output
    gains kecam's inference ``lam`` of 1), and ``decode_predictions``' combination against
    kecam's ``token_label_imagenet_decode_predictions``."""
    from keras_cv_attention_models.uniformer import uniformer as kecam_uniformer

    kwargs = {
        "num_blocks": [1, 1, 1], "out_channels": [8, 16, 24], "head_dimension": 8,
        "block_types": ["conv", "transform", "transform"], "token_label_top": True,
        "mix_token": True, "num_classes": 12,
    }  # fmt: skip
    shape = (45, 61, 3)
    run = live.kecam_run("uniformer.Uniformer", tmp_path, input_shape=shape, save="weights",
                         probes=_probes, **kwargs)  # fmt: skip
    ours = models.create_model(
        "uniformer.Uniformer", pretrained=str(run.path), input_shape=shape, **kwargs
    )
    live.assert_live(ours, run, features="post_bn")
    logits, tokens = run.outputs["logits"], run.outputs["logits_1"]
    assert logits.shape == (3, 13) and tokens.shape == (3, 2 * 3, 12)
    theirs = kecam_uniformer.token_label_imagenet_decode_predictions(
        [logits[:, :12], tokens], do_decode=False
    )
    assert_matches(combine_token_label((mx.array(logits[:, :12]), mx.array(tokens))), theirs)
