"""EfficientViT-B and -L (kecam ``efficientvit.efficientvit_b``) against kecam's own numbers.

Default run: ``lite_mhsa``'s kecam face and argument checks (its numbers against kecam's
function are the ``blocks/lite_mhsa_*`` cases of ``tests/cases.py``, in ``test_parity.py``);
the builders' signatures and kecam's constructor rules; the head (``pre_predictions``),
``forward_intermediates`` on the committed reduced fixtures
(``efficientvit_b_*``, compared with kecam's outputs and probes in ``test_models.py``).
``reference`` (TensorFlow and kecam 1.4.3): the real EfficientViT_B0 at 224 (``model.save``)
and at an odd non-square size (``save_weights``), EfficientViT_L0 at 224.
"""

from __future__ import annotations

import live
import mlx.core as mx
import pytest
from cases import signature_rows
from test_models import (
    ADDED,
    FIXTURES,
    INDEX,
    KECAM,
    expected_signature,
    fixture_arrays,
    fixture_model,
)

from mlx_attention import layers, models
from mlx_attention.convert import declared_layers
from mlx_attention.models import efficientvit, efficientvit_b

BUILDERS = "efficientvit.efficientvit_b"
CASES = sorted(c for c, e in INDEX.items() if e["builder"].startswith(BUILDERS))
FUSED, UNFUSED = "efficientvit_b_21x29_fused", "efficientvit_b_20"


def test_fixtures_cover_both_layouts_and_forms_within_budget():
    assert {FUSED, UNFUSED} <= set(CASES)
    assert {INDEX[c]["save"] for c in CASES} == {"model", "weights"}
    assert INDEX[FUSED]["kwargs"]["is_fused"][0] and not INDEX[UNFUSED]["kwargs"].get("is_fused")
    total = sum(p.stat().st_size for p in FIXTURES.glob("efficientvit_b_*"))
    assert total <= 350 * 2**10, f"EfficientViT-B fixtures take {total / 2**10:.0f} kB"


# --- lite_mhsa ----------------------------------------------------------------------------------


def test_lite_mhsa_kecam_face_and_layer():
    assert efficientvit.lite_mhsa is efficientvit_b.lite_mhsa
    block = efficientvit_b.lite_mhsa((4, 6, 16), 2, 4, name="blk_")
    assert isinstance(block, layers.LiteMHSA)
    names = [d.name for d in declared_layers(block)]
    assert names == ["blk_qkv_conv", "blk_qkv_dw_conv", "blk_qkv_pw_conv", "blk_out_conv",
                     "blk_out_bn"]  # fmt: skip
    assert block.qkv_dw.conv.weight.shape == (24, 5, 5, 1)  # sr_ratio 5, depthwise
    assert block.qkv_pw.conv.weight.shape == (24, 1, 1, 4)  # 3 * heads groups of key_dim
    assert block.out.conv.weight.shape == (16, 1, 1, 16)  # 2 * heads * key_dim in
    assert block(mx.zeros((2, 4, 6, 16))).shape == (2, 4, 6, 16)
    with pytest.raises(ValueError, match="built for inputs"):
        block(mx.zeros((2, 4, 5, 16)))
    native = layers.LiteMHSA(16, 2, key_dim=4, out_dims=8)
    assert native(mx.zeros((1, 3, 9, 16))).shape == (1, 3, 9, 8)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"sr_ratio": 4}, "sr_ratio=4 must be odd"),
        ({"activation": "prelu"}, "automatic Keras names"),
        ({"num_heads": 0}, "num_heads"),
        ({"num_heads": 32, "key_dim": 0}, "per-head key"),
    ],
)
def test_lite_mhsa_refuses_what_kecam_cannot_build_or_load(kwargs, match):
    with pytest.raises(ValueError, match=match):
        efficientvit_b.lite_mhsa((5, 5, 16), **kwargs)


# --- builders and constructors ------------------------------------------------------------------


def test_builder_b_signature_is_kecams():
    assert signature_rows(models.efficientvit_b.EfficientViT_B) == expected_signature(
        KECAM["builders"][f"{BUILDERS}.EfficientViT_B"]["params"]
    )


def test_builder_l_names_what_kecam_passes_on():
    """kecam's ``EfficientViT_L(num_blocks, ..., activation, model_name, **kwargs)`` hands the
    rest to ``EfficientViT_B``: ours has kecam's named arguments first, in order, then
    ``expansions`` (``None``: L's default) and those of ``EfficientViT_B`` that L does not set,
    with B's defaults."""
    kecam = KECAM["builders"][f"{BUILDERS}.EfficientViT_L"]["params"]
    assert kecam[-1] == ["kwargs", "VAR_KEYWORD", None]
    ours = signature_rows(models.efficientvit_b.EfficientViT_L)
    assert ours[: len(kecam) - 1] == kecam[:-1]
    b_rows = {row[0]: row for row in KECAM["builders"][f"{BUILDERS}.EfficientViT_B"]["params"]}
    passed_on = ["input_shape", "num_classes", "drop_connect_rate", "classifier_activation",
                 "dropout", "pretrained"]  # fmt: skip
    assert ours[len(kecam) - 1 :] == [
        ["expansions", "POSITIONAL_OR_KEYWORD", "None"],
        *(b_rows[n] for n in passed_on),
        *ADDED,
    ]


def test_l_builder_rules_are_kecams():
    """The default expansions (16 then 4, 24 then 6 in the fourth stage) need four stages,
    given expansions or not (kecam computes the default first); the L constructors pass
    model_name themselves; L0 takes num_blocks, which L1 sets."""
    model = models.EfficientViT_L0(input_shape=(64, 64, 3))
    block = model.layers[2]  # stack_1_block_1_downsample_: fused, 16x
    assert block.name == "stack_1_block_1_downsample_"
    assert block.parts[0].conv.weight.shape == (32 * 16, 3, 3, 32)
    with pytest.raises(ValueError, match="4 stages"):
        models.efficientvit_b.EfficientViT_L(num_blocks=[1, 1], expansions=[2, 2])
    with pytest.raises(TypeError, match="multiple values for keyword argument 'model_name'"):
        models.EfficientViT_L1(model_name="mine")
    with pytest.raises(TypeError, match="multiple values for keyword argument 'num_blocks'"):
        models.EfficientViT_L1(num_blocks=[1, 1, 1, 1])
    small = models.EfficientViT_L0(input_shape=(64, 64, 3), num_blocks=[1, 1, 1, 2])
    assert small.output_names[-2] == "stack_4_block_2_output"
    assert small.pretrained_cfg["name"] == "efficientvit_l0"


def test_a_shortcut_of_another_shape_and_zero_heads_raise():
    with pytest.raises(ValueError, match="0 heads"):
        models.efficientvit_b.EfficientViT_B(out_channels=[8, 8, 8, 8], head_dimension=16,
                                             input_shape=(64, 64, 3))  # fmt: skip
    with pytest.raises(ValueError, match="shortcut=True"):
        efficientvit_b.MBConv((8, 8, 4), 6, shortcut=True, name="b_")


# --- the model API on the fixtures --------------------------------------------------------------


def test_head_pre_predictions_and_reset():
    model = fixture_model(FUSED)
    names = [d.name for d in declared_layers(model.head)]
    assert names == ["pre_predictions", "predictions", "pre_predictions_ln"]
    model.reset_classifier(3)
    assert model(mx.zeros((1, 21, 29, 3))).shape == (1, 3)
    assert model.head.pre_predictions.weight.shape == (16, 24)
    features = models.efficientvit_b.EfficientViT_B(**{**INDEX[FUSED]["kwargs"], "num_classes": 0})
    assert features(mx.zeros((1, 21, 29, 3))).shape == (1, 3, 4, 24)
    assert not [d.name for d in declared_layers(features.head)]
    unfused = fixture_model(UNFUSED)
    assert [d.name for d in declared_layers(unfused.head)] == ["predictions"]


def test_intermediates_list_each_attention_before_its_block():
    model, arrays = fixture_model(FUSED), fixture_arrays(FUSED)
    keys = list(model.forward_intermediates(mx.array(arrays["input"])))
    attn = keys.index("stack_3_block_2_attn_out_bn")
    assert keys[attn - 1 : attn + 2] == [
        "stack_3_block_1_downsample_output", "stack_3_block_2_attn_out_bn",
        "stack_3_block_2_output",
    ]  # fmt: skip
    assert keys[0] == "stem_gelu" and keys[-1] == "features_gelu"


# --- reference: real named models against kecam live -------------------------------------------

# docs/models.md's "live at"; the tests below, in this order
LIVE_MODELS = [
    ("EfficientViT_B0", (224, 224, 3)),
    ("EfficientViT_B0", (161, 97, 3)),
    ("EfficientViT_L0", (224, 224, 3)),
]


def _probes(model) -> list[str]:
    """kecam's stem MBConv, each stage's last block (and a transform stage's attention) and
    the features_ activation (forward_features)."""
    names = [layer.name for layer in model.layers]
    picked = ["stem_MB_output"]
    for stage in range(1, 5):
        outputs = [n for n in names if n.startswith(f"stack_{stage}_") and n.endswith("output")]
        attns = [n for n in names if n.startswith(f"stack_{stage}_") and n.endswith("attn_out_bn")]
        picked += attns[-1:] + outputs[-1:]
    return picked + [names[names.index("avg_pool") - 1]]


@pytest.mark.reference
@pytest.mark.slow
@pytest.mark.parametrize("index, save", [(0, "model"), (1, "weights"), (2, "model")])
def test_real_model_matches_kecam(kecam_live, tmp_path, index, save):
    name, shape = LIVE_MODELS[index]
    run = live.kecam_run(
        f"efficientvit.efficientvit_b.{name}", tmp_path, input_shape=shape, save=save,
        probes=_probes, classifier_activation=None,
    )  # fmt: skip
    model = models.create_model(
        name, pretrained=str(run.path), input_shape=shape, classifier_activation=None
    )
    live.assert_live(model, run, features=run.probes[-1], label=f"{name} {shape} {save}")
