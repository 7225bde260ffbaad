"""BEiT (kecam ``beit.Beit`` in BEiT's form) against kecam's own numbers.

Default run: the committed reduced fixtures (``tests/fixtures/models/beit_*``, made by
``tools/make_model_fixtures.py``: kecam's ``beit.Beit`` with every variable re-randomised);
the builder's signature and the ViT-family flags refused; the relative table and the patch
kernel resized on load (``resize=``); the strict error for a file of another model; the kecam
face ``models.beit.attention_block``. ``reference`` (TensorFlow and kecam 1.4.3): the real
BeitBasePatch16 at 224 and at 171x243, live, and kecam's own resizing loader
(``load_weights_with_mismatch``) on a reduced model at other grid and patch sizes.
"""

from __future__ import annotations

import live
import mlx.core as mx
import numpy as np
import pytest
from cases import signature_rows
from test_models import FIXTURES, INDEX, KECAM, expected_signature

from mlx_attention import models
from mlx_attention.convert import WeightMismatchError, declared_layers
from mlx_attention.layers import BeitAttention, PatchConv2D

CASES = sorted(c for c, e in INDEX.items() if e["builder"] == "beit.Beit")


def test_fixtures_cover_both_layouts():
    assert len(CASES) >= 2
    assert {INDEX[c]["save"] for c in CASES} == {"model", "weights"}
    total = sum(p.stat().st_size for p in FIXTURES.glob("beit_*"))
    assert total <= 600 * 2**10, f"BEiT fixtures take {total / 2**10:.0f} kB"


def test_family_builder_signature_is_kecams():
    assert signature_rows(models.beit.Beit) == expected_signature(
        KECAM["builders"]["beit.Beit"]["params"]
    )


@pytest.mark.parametrize(
    "flag",
    [
        {"use_abs_pos_emb": True}, {"use_rot_pos_emb": True}, {"use_gated_mlp": True},
        {"use_rms_norm": True}, {"use_cat_head": True}, {"vocab_size": 100},
        {"num_reg_tokens": 4}, {"patch_merging_block_id": 0}, {"with_cls_token": False},
    ],
    ids=lambda f: next(iter(f)),
)  # fmt: skip
def test_vit_family_flags_are_refused(flag):
    with pytest.raises(ValueError, match=f"{next(iter(flag))}=.*not supported"):
        models.beit.Beit(depth=1, embed_dim=8, num_heads=2, input_shape=(32, 32, 3), **flag)


def test_constructor_kwargs_are_kecams():
    """kecam's BeitBasePatch16 reads layer_scale with kwargs.get and passes it twice."""
    with pytest.raises(TypeError, match="multiple values for keyword argument 'layer_scale'"):
        models.BeitBasePatch16(layer_scale=0.2)
    small = models.BeitBasePatch16(input_shape=(64, 64, 3), patch_size=32, mlp_ratio=2)
    assert small.layers[0].stem_conv.kernel.shape == (32, 32, 3, 768)
    assert small.pretrained_cfg["name"] == "beit_base_patch16"


def test_relative_tables_follow_the_patch_grid():
    model = models.BeitBasePatch16(input_shape=(160, 224, 3))
    attn = model.layers[1].attn
    assert isinstance(attn, BeitAttention)
    assert (attn.pos_emb.height, attn.pos_emb.width) == (10, 14)
    assert attn.pos_emb.positional_embedding.shape == (12, 19 * 27 + 3)


def test_tables_and_patch_kernel_resize_on_load():
    """A file made for a 5x7 grid of 8x8 patches: refused at another size, loaded with
    resize=True (the relative tables and, for patch 4, the stem kernel); a same-size resample
    of the kernel is the identity."""
    entry = INDEX["beit_40x56"]
    path = str(FIXTURES / entry["weights"])
    other = {**entry["kwargs"], "input_shape": [48, 48, 3]}
    with pytest.raises(WeightMismatchError, match="resize=True"):
        models.beit.Beit(**other, pretrained=path)
    model = models.beit.Beit(**other, pretrained=path, resize=True)
    assert sorted(model.load_report.resized) == ["block0_attn_pos_emb", "block1_attn_pos_emb"]
    assert model(mx.zeros((1, 48, 48, 3))).shape == (1, 10)
    smaller = models.beit.Beit(**{**other, "patch_size": 4}, pretrained=path, resize=True)
    assert "stem_conv" in smaller.load_report.resized
    conv = PatchConv2D(3, 4, 8, name="stem_conv")
    kernel = np.random.default_rng(0).normal(size=(8, 8, 3, 4)).astype(np.float32)
    (same, bias) = conv.resized_weights([kernel, np.zeros(4, np.float32)])
    np.testing.assert_allclose(same, kernel, atol=1e-5)


def test_a_file_of_another_model_is_refused():
    entry = INDEX["beit_40x56"]
    deeper = {**entry["kwargs"], "depth": 3}
    with pytest.raises(WeightMismatchError, match="block2_"):
        models.beit.Beit(**deeper, pretrained=str(FIXTURES / entry["weights"]))
    davit = INDEX["davit_40x72"]
    with pytest.raises(WeightMismatchError):
        models.beit.Beit(**entry["kwargs"], pretrained=str(FIXTURES / davit["weights"]))


def test_attention_block_kecam_face():
    block = models.beit.attention_block((1 + 5 * 7, 16), 2, qv_bias=True, attn_height=5,
                                        use_pos_emb=True, name="blk_")  # fmt: skip
    assert (block.pos_emb.height, block.pos_emb.width) == (5, 7)
    names = [d.name for d in declared_layers(block)]
    assert names == ["blk_qkv", "blk_output", "blk_query_bias", "blk_value_bias", "blk_pos_emb"]
    assert block(mx.zeros((2, 36, 16))).shape == (2, 36, 16)
    with pytest.raises(ValueError, match="use_rot_pos_emb"):
        models.beit.attention_block((17, 16), use_rot_pos_emb=True)
    with pytest.raises(ValueError, match="built for inputs"):
        block(mx.zeros((2, 37, 16)))


@pytest.mark.parametrize(
    "tokens, kwargs",
    [
        (16, {"with_cls_token": False}),  # kecam's table: a class token and a square 3x3 grid
        (16, {}),  # 15 patches, no attn_height: kecam's table is square (3x3), and fails
        (17, {"with_cls_token": False, "attn_height": 3}),  # a class token and 3x5 = 15 patches
    ],
)
def test_attention_block_refuses_what_kecams_table_cannot_add(tokens, kwargs):
    """kecam builds the block's table with a class token whatever ``with_cls_token`` says, and
    square without ``attn_height``: where that grid does not fill the tokens, kecam's Add fails."""
    with pytest.raises(ValueError, match="does not fill|do not fill"):
        models.beit.attention_block((tokens, 12), 2, use_pos_emb=True, **kwargs)


# --- reference: the real BeitBasePatch16 and kecam's resizing loader, live --------------------


# 171x243: a 10x15 grid of 16x16 patches, kecam's VALID stem dropping the last 11 rows and 3 columns
LIVE = [((224, 224, 3), "model"), ((171, 243, 3), "weights")]
LIVE_MODELS = [("BeitBasePatch16", shape) for shape, _ in LIVE]  # docs/models.md's "live at"


@pytest.mark.reference
@pytest.mark.slow
@pytest.mark.parametrize("shape, save", LIVE, ids=[f"{s[0]}x{s[1]}" for s, _ in LIVE])
def test_real_beit_base_matches_kecam(kecam_live, tmp_path, shape, save):
    run = live.kecam_run("beit.BeitBasePatch16", tmp_path, input_shape=shape, save=save,
                         probes=["cls_token", "block5_mlp_output", "out_ln"],
                         classifier_activation=None)  # fmt: skip
    ours = models.create_model("BeitBasePatch16", pretrained=str(run.path), input_shape=shape,
                               classifier_activation=None)  # fmt: skip
    assert (ours.layers[1].attn.pos_emb.height, ours.layers[1].attn.pos_emb.width) == (
        shape[0] // 16, shape[1] // 16,
    )  # fmt: skip
    live.assert_live(ours, run, features="out_ln")


@pytest.mark.reference
@pytest.mark.slow
@pytest.mark.parametrize("shape, patch", [((48, 64, 3), 8), ((40, 56, 3), 4)])
def test_resize_on_load_matches_kecams_loader(kecam_live, tmp_path, shape, patch):
    """The fixture file (a 5x7 grid of 8x8 patches) into another grid / patch size: ours with
    resize=True against kecam's loader (load_weights_with_mismatch with its mismatch_class)."""
    entry = INDEX["beit_40x56"]
    source = str(FIXTURES / entry["weights"])
    kwargs = {**entry["kwargs"], "input_shape": shape, "patch_size": patch}
    run = live.kecam_run("beit.Beit", tmp_path, **kwargs, pretrained=source,
                         probes=["cls_token", "block1_mlp_output", "out_ln"],
                         classifier_activation=None)  # fmt: skip
    ours = models.beit.Beit(**kwargs, pretrained=source, resize=True, classifier_activation=None)
    assert "block0_attn_pos_emb" in ours.load_report.resized
    live.assert_live(ours, run, features="out_ln", label=f"resized to {shape} patch {patch}")
