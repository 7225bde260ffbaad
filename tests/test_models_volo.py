"""VOLO (kecam ``volo.VOLO``) against kecam's own numbers.

Default run: the committed reduced fixture (``tests/fixtures/models/volo_*``, made by
``tools/make_model_fixtures.py``: kecam's ``volo.VOLO`` with every variable re-randomised; the
logits, stage probes and ``forward_features`` are compared by ``test_models.py``), and here the
class stage's intermediates, ``num_classes=0``, the positional table resized on load, the
signatures (no ``classifier_activation``: kecam's VOLO returns logits) and half precision.
``reference`` (TensorFlow and kecam 1.4.3): the builder's options on small networks, kecam's own
resizing loader, and the real VOLO_d1 at 224 and at a non-square odd size, live.
"""

from __future__ import annotations

import live
import mlx.core as mx
import numpy as np
import pytest
from cases import signature_rows
from helpers import assert_matches
from test_models import FIXTURES, INDEX, KECAM, expected_signature, fixture_arrays, fixture_model

from mlx_attention import models
from mlx_attention.convert import WeightMismatchError
from mlx_attention.layers import KerasMultiHeadAttention, OutlookAttention
from mlx_attention.layers.positional import tf_resize

CASES = sorted(c for c, e in INDEX.items() if e["builder"] == "volo.VOLO")
CASE = "volo_31x55"


def test_fixtures_cover_the_family_within_budget():
    assert CASE in CASES
    assert {INDEX[c]["save"] for c in CASES} >= {"model"}  # save_weights: checked live
    total = sum(p.stat().st_size for p in FIXTURES.glob("volo_*"))
    assert total <= 350 * 2**10, f"VOLO fixtures take {total / 2**10:.0f} kB"


def test_family_builder_signature_is_kecams():
    assert signature_rows(models.volo.VOLO) == expected_signature(
        KECAM["builders"]["volo.VOLO"]["params"]
    )


def test_there_is_no_classifier_activation():
    """kecam's VOLO returns logits and takes no classifier_activation: neither do we."""
    with pytest.raises(TypeError, match="classifier_activation"):
        models.VOLO_d1(classifier_activation=None)
    with pytest.raises(TypeError, match="classifier_activation"):
        models.create_model("volo.VOLO", **INDEX[CASE]["kwargs"], classifier_activation=None)
    model = fixture_model(CASE)
    assert model.pretrained_cfg["classifier_activation"] is None
    with pytest.raises(ValueError, match="returns logits"):
        model.reset_classifier(3, classifier_activation="softmax")


def test_blocks_are_kecams():
    model = models.VOLO_d1()
    blocks = [m for m in model.layers if isinstance(m, models.volo.VOLOBlock)]
    assert [b.name for b in blocks[:5]] == [
        *(f"outlook_block{i}_" for i in range(4)),
        "MHSA_block0_",
    ]
    assert all(isinstance(b.attn, OutlookAttention) for b in blocks[:4])
    mhsa = blocks[4].attn
    assert isinstance(mhsa, KerasMultiHeadAttention) and (mhsa.num_heads, mhsa.key_dim) == (12, 32)
    assert [b.name for b in model.head.blocks] == ["classfiers0_", "classfiers1_"]
    summary = model.summary(print_fn=None)
    assert "(None, 14, 14, 384)" in summary and "(None, 28, 28, 192)" in summary


def test_class_stage_intermediates_and_features():
    """forward_features is kecam's num_classes=0 output (the MHSA map, before the class
    token); the class stage's layers are intermediates too (a class block's ``output`` is the
    class token alone, as kecam's layer)."""
    model, arrays = fixture_model(CASE), fixture_arrays(CASE)
    x = mx.array(arrays["input"])
    inter = model.forward_intermediates(x)
    assert list(inter)[-3:] == ["class_token", "classfiers0_output", "pre_out_LN"]
    assert inter["class_token"].shape == (3, 7, 32)
    assert inter["classfiers0_output"].shape == (3, 1, 32)
    assert model.forward_features(x).shape == (3, 2, 3, 32)
    assert_matches(model.forward_head(model.forward_features(x)), arrays["logits"])


def test_num_classes_0_is_the_mhsa_stage():
    """kecam's num_classes=0 model has no class stage: the fixture's file loads into it with
    the class stage's and heads' layers left over, and it returns the MHSA map."""
    kwargs = {**INDEX[CASE]["kwargs"], "num_classes": 0}
    path = str(FIXTURES / INDEX[CASE]["weights"])
    with pytest.raises(WeightMismatchError, match="classfiers0_"):
        models.volo.VOLO(**kwargs, pretrained=path)
    features = models.volo.VOLO(**kwargs, pretrained=path, strict=False)
    assert features.head.class_token is None and not features.head.blocks
    arrays = fixture_arrays(CASE)
    assert_matches(features(mx.array(arrays["input"])), arrays["probe/MHSA_block0_output"])
    full = fixture_model(CASE)
    assert features.count_params() < full.count_params()
    full.reset_classifier(0)
    assert full.count_params() == features.count_params()
    full.reset_classifier(4)
    assert full(mx.array(arrays["input"])).shape == (3, 4)


def test_positional_embedding_resizes_on_load():
    """kecam's mismatch_class: the (1, 2, 3, C) table of 31x55 loads at 39x71 (a 2x4 map) only
    with resize=True, bilinearly (tf.image.resize); nothing else depends on the size."""
    kwargs = {**INDEX[CASE]["kwargs"], "input_shape": [39, 71, 3]}
    path = str(FIXTURES / INDEX[CASE]["weights"])
    with pytest.raises(WeightMismatchError, match="resize=True"):
        models.volo.VOLO(**kwargs, pretrained=path)
    model = models.volo.VOLO(**kwargs, pretrained=path, resize=True)
    table = fixture_model(CASE).layers[3].positional_embedding
    resized = model.layers[3].positional_embedding
    assert resized.shape == (1, 2, 4, 32)
    np.testing.assert_allclose(np.array(resized), tf_resize(np.array(table), (2, 4), "bilinear"))
    assert model(mx.zeros((1, 39, 71, 3))).shape == (1, 10)


@pytest.mark.parametrize("dtype", [mx.float16, mx.bfloat16], ids=str)
def test_half_precision(dtype):
    """The class stage computes in the model's dtype (kecam's), only token_head and aux_head in
    float32 (kecam forces those two)."""
    model, arrays = fixture_model(CASE, dtype=dtype), fixture_arrays(CASE)
    assert model.head.blocks[0].attn.query.weight.dtype == dtype
    assert model.head.class_token.tokens.dtype == dtype
    assert model.head.token_head.weight.dtype == mx.float32
    logits = model(mx.array(arrays["input"]))
    assert logits.dtype == mx.float32
    assert_matches(logits, arrays["logits"], dtype)


def test_mix_token_is_inference_only():
    kwargs = {**INDEX[CASE]["kwargs"], "mix_token": True}
    model = models.volo.VOLO(**kwargs, pretrained=str(FIXTURES / INDEX[CASE]["weights"]))
    x = mx.array(fixture_arrays(CASE)["input"])
    assert_matches(model(x), fixture_arrays(CASE)["logits"])  # an empty box: no mixing
    model.train()
    with pytest.raises(NotImplementedError, match="MixupToken"):
        model(x)


def test_arguments_kecam_cannot_build_are_refused():
    base = INDEX[CASE]["kwargs"]
    with pytest.raises(ValueError, match="embed_dim=48 must equal the 32"):
        models.volo.VOLO(**{**base, "embed_dims": [16, 48]})
    with pytest.raises(ValueError, match="first_attn_type='mhsa'"):
        models.volo.VOLO(**base, first_attn_type="mhsa")
    with pytest.raises(ValueError, match="patch_size=1"):
        models.volo.VOLO(**base, patch_size=1)


# --- reference: kecam live ----------------------------------------------------------------------

_SMALL = {
    "num_blocks": [1, 1], "embed_dims": [16, 32], "num_heads": [2, 4], "mlp_ratios": [2, 2],
    "stem_hidden_dim": 8, "num_classes": 10,
}  # fmt: skip
# (input shape, save, the builder's options): each one a graph kecam builds differently
OPTIONS = {
    "square_weights": ((48, 48, 3), "weights", {"classfiers": 2}),
    "outlook_simple": ((48, 48, 3), "model", {"first_attn_type": "outlook_simple"}),
    "token_label_mix": ((40, 56, 3), "weights", {"token_label_top": True, "mix_token": True}),
    "mean_top_patch4": ((33, 45, 3), "weights", {"mean_classifier_top": True, "patch_size": 4}),
    "token_top_swish": ((45, 59, 3), "weights", {
        "token_classifier_top": True, "mlp_activation": "swish", "classfiers": 0,
        "num_blocks": [2, 2], "mlp_ratios": [1.5, 3], "drop_connect_rate": 0.3,
    }),
}  # fmt: skip


_NAMED = ("stem_patch_conv", "positional_embedding", "class_token", "pre_out_LN")


def _probes(model) -> list[str]:
    """Every block's output and the named layers between the stages, in kecam's order."""
    return [
        layer.name
        for layer in model.layers
        if layer.name.endswith("_output") or layer.name in _NAMED
    ]


@pytest.mark.reference
@pytest.mark.slow
@pytest.mark.parametrize("option", list(OPTIONS))
def test_builder_options_match_kecam(kecam_live, tmp_path, option):
    shape, save, extra = OPTIONS[option]
    kwargs = {**_SMALL, **extra}
    run = live.kecam_run(
        "volo.VOLO", tmp_path, input_shape=shape, save=save, probes=_probes, **kwargs
    )
    ours = models.create_model("volo.VOLO", pretrained=str(run.path), input_shape=shape, **kwargs)
    last = f"MHSA_block{kwargs['num_blocks'][1] - 1}_output"
    live.assert_live(ours, run, features=last, label=option)


@pytest.mark.reference
@pytest.mark.slow
def test_resizing_matches_kecams_loader(kecam_live, tmp_path):
    """kecam's reload at another size (load_resized_weights of PositionalEmbedding) and ours
    (resize=True) give the same model."""
    saved = live.kecam_run("volo.VOLO", tmp_path, input_shape=(40, 56, 3), **_SMALL)
    run = live.kecam_run(
        "volo.VOLO", tmp_path, input_shape=(64, 48, 3), pretrained=str(saved.path),
        probes=["positional_embedding"], **_SMALL,
    )  # fmt: skip
    ours = models.create_model(
        "volo.VOLO", pretrained=str(saved.path), input_shape=(64, 48, 3), resize=True, **_SMALL
    )
    live.assert_live(ours, run, label="resized 40x56 -> 64x48")


# --- reference: the real VOLO_d1, live ----------------------------------------------------------

LIVE = [((224, 224, 3), "model"), ((200, 232, 3), "weights")]  # 200x232: maps 25x29 and 12x14
LIVE_MODELS = [("VOLO_d1", shape) for shape, _ in LIVE]  # docs/models.md's "live at"
REAL_PROBES = [
    "stem_patch_conv", "outlook_block3_output", "positional_embedding", "MHSA_block6_output",
    "MHSA_block13_output", "class_token", "classfiers1_output", "pre_out_LN",
]  # fmt: skip


@pytest.mark.reference
@pytest.mark.slow
@pytest.mark.parametrize("shape, save", LIVE, ids=[f"{s[0]}x{s[1]}" for s, _ in LIVE])
def test_real_volo_d1_matches_kecam(kecam_live, tmp_path, shape, save):
    run = live.kecam_run("volo.VOLO_d1", tmp_path, input_shape=shape, save=save, probes=REAL_PROBES)
    ours = models.create_model("VOLO_d1", pretrained=str(run.path), input_shape=shape)
    live.assert_live(ours, run, features="MHSA_block13_output")
