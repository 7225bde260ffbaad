"""EfficientViT-M (kecam ``efficientvit.efficientvit_m``): the windowed and direct cascaded
attention, the distillation head and its deploy fusion, positional tables of another input
size, strict loading, and (``reference``) real named models against kecam live.

The fixture cases (``efficientvit_m_*`` in ``tests/fixtures/models``, compared in
``test_models.py`` with the other families') are kecam's ``EfficientViT_M`` in reduced
configurations; a distilled case stores kecam's two outputs stacked.
"""

from __future__ import annotations

import live
import mlx.core as mx
import pytest
from helpers import assert_matches
from test_models import FIXTURES, INDEX, fixture_arrays, fixture_model

from mlx_attention import layers, models
from mlx_attention.convert import WeightMismatchError, declared_layers

BUILDER = "efficientvit.efficientvit_m.EfficientViT_M"
DISTILLED, WINDOWED = "efficientvit_m_40x56_distill", "efficientvit_m_77x45_w3"


def test_cases_cover_windows_and_both_heads():
    model = fixture_model(WINDOWED)
    assert any(isinstance(m, layers.WindowAttention) for _, m in model.named_modules())
    model = fixture_model(DISTILLED)
    assert not any(isinstance(m, layers.WindowAttention) for _, m in model.named_modules())
    assert INDEX[DISTILLED]["kwargs"]["use_distillation"]


def test_distillation_returns_both_heads_and_deploy_averages_them():
    model, arrays = fixture_model(DISTILLED), fixture_arrays(DISTILLED)
    x = mx.array(arrays["input"])
    out = model(x)
    assert isinstance(out, tuple) and len(out) == 2
    assert_matches(out[1], arrays["logits"][1])
    names = {d.name for d in declared_layers(model.head)}
    assert names == {"pre_output_bn", "head", "distill_output_bn", "distill_head"}
    deployed = model.switch_to_deploy()
    assert_matches(deployed(x), arrays["logits"].mean(axis=0))
    assert [d.name for d in declared_layers(deployed.head)] == ["head"]


def test_a_file_of_another_configuration_raises():
    path = str(FIXTURES / INDEX[DISTILLED]["weights"])
    kwargs = {**INDEX[DISTILLED]["kwargs"], "use_distillation": False}
    with pytest.raises(WeightMismatchError, match="distill_head"):
        models.create_model(BUILDER, pretrained=path, **kwargs)
    kwargs = {**INDEX[DISTILLED]["kwargs"], "kernel_sizes": 5}
    with pytest.raises(WeightMismatchError, match="query_dw_conv"):
        models.create_model(BUILDER, pretrained=path, **kwargs)


def test_positional_tables_of_another_size_load_with_resize():
    """window_size=3 (kecam's mismatch_class is on): the 3x3 window's tables of the file
    resized to the 2x2 map of a 29x29 input."""
    path = str(FIXTURES / INDEX[WINDOWED]["weights"])
    kwargs = {**INDEX[WINDOWED]["kwargs"], "input_shape": [29, 29, 3]}
    with pytest.raises(WeightMismatchError, match="attn_1_attn_pos"):
        models.create_model(BUILDER, pretrained=path, **kwargs)
    model = models.create_model(BUILDER, pretrained=path, resize=True, **kwargs)
    resized = model.load_report.resized
    assert len(resized) == 2 and all(name.endswith("attn_pos") for name in resized)
    assert model(mx.zeros((1, 29, 29, 3))).shape == (1, 10)


# --- reference: real named models against kecam live (tests/live.py) ------------------------

PROBES = ["stem_4_bn", "stack1_block1_post_output", "stack2_downsample_out_bn",
          "stack2_block2_post_output", "stack3_block3_post_output"]  # fmt: skip


# docs/models.md's "live at"; the two tests below, in this order
LIVE_MODELS = [("EfficientViT_M0", (224, 224, 3)), ("EfficientViT_M0", (160, 192, 3))]
KECAM_M0 = "efficientvit.efficientvit_m.EfficientViT_M0"


@pytest.mark.reference
@pytest.mark.slow
def test_efficientvit_m0_at_224_matches_kecam(kecam_live, tmp_path):
    run = live.kecam_run(KECAM_M0, tmp_path, input_shape=LIVE_MODELS[0][1], probes=PROBES,
                         classifier_activation=None)  # fmt: skip
    ours = models.EfficientViT_M0(pretrained=str(run.path), classifier_activation=None)
    live.assert_live(ours, run, features=PROBES[-1])


@pytest.mark.reference
@pytest.mark.slow
def test_efficientvit_m0_at_another_size_resizes_as_kecam(kecam_live, tmp_path):
    """EfficientViT_M0 at 160x192 (under 224: kecam reloads the tables) from a 224 file:
    stage 1 keeps its 7x7 windows, stages 2 and 3 (5x6 and 3x3 maps) resize theirs."""
    source = live.kecam_run(KECAM_M0, tmp_path, input_shape=LIVE_MODELS[0][1], save="weights",
                            classifier_activation=None).path  # fmt: skip
    shape = LIVE_MODELS[1][1]
    run = live.kecam_run(KECAM_M0, tmp_path, input_shape=shape, probes=PROBES,
                         pretrained=str(source), classifier_activation=None)  # fmt: skip
    ours = models.EfficientViT_M0(
        input_shape=shape, pretrained=str(source), classifier_activation=None, resize=True
    )
    assert ours.load_report.resized and all(
        n.startswith(("stack2_", "stack3_")) for n in ours.load_report.resized
    )
    live.assert_live(ours, run, features=PROBES[-1], label="EfficientViT_M0 160x192 from 224")
