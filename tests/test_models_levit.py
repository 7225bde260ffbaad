"""LeViT (kecam ``levit``): the distillation head, its deploy fusion, positional tables of
another input size, strict loading, and (``reference``) real named models against kecam live.

The fixture cases (``levit_*`` in ``tests/fixtures/models``, compared in ``test_models.py``
with the other families') are kecam's ``levit.LeViT`` in reduced configurations; a distilled
case stores kecam's two outputs stacked.
"""

from __future__ import annotations

import live
import mlx.core as mx
import numpy as np
import pytest
from helpers import assert_matches
from test_models import FIXTURES, INDEX, fixture_arrays, fixture_model

from mlx_attention import models
from mlx_attention.convert import WeightMismatchError, declared_layers

DISTILLED, PLAIN = "levit_32x48_distill", "levit_45x47"


def test_levit_cases_cover_both_heads():
    cases = [c for c in INDEX if INDEX[c]["builder"] == "levit.LeViT"]
    assert {INDEX[c]["kwargs"].get("use_distillation", False) for c in cases} == {True, False}


def test_distillation_returns_both_heads_as_kecam():
    model, arrays = fixture_model(DISTILLED), fixture_arrays(DISTILLED)
    out = model(mx.array(arrays["input"]))
    assert isinstance(out, tuple) and len(out) == 2
    assert_matches(out[0], arrays["logits"][0])
    assert_matches(out[1], arrays["logits"][1])
    names = {d.name for d in declared_layers(model.head)}
    assert names == {"head_bn", "head", "distill_head_bn", "distill_head"}


@pytest.mark.parametrize("activation", [None, "softmax"])
def test_switch_to_deploy_averages_the_fused_heads(activation):
    """kecam's fuse_distill_head: each BN folded into its Dense, the two Dense averaged, one
    output; the model it came from is unchanged."""
    model = fixture_model(DISTILLED, classifier_activation=activation)
    logits = fixture_arrays(DISTILLED)["logits"]
    x = mx.array(fixture_arrays(DISTILLED)["input"])
    deployed = model.switch_to_deploy()
    fused = deployed(x)
    assert isinstance(fused, mx.array)
    expected = logits.mean(axis=0)
    if activation == "softmax":
        expected = np.exp(expected) / np.exp(expected).sum(-1, keepdims=True)
    assert_matches(fused, expected)
    assert [d.name for d in declared_layers(deployed.head)] == ["head"]
    assert isinstance(model(x), tuple)


def test_switch_to_deploy_without_distillation_folds_the_bn():
    model, arrays = fixture_model(PLAIN), fixture_arrays(PLAIN)
    assert_matches(model.switch_to_deploy()(mx.array(arrays["input"])), arrays["logits"])


def test_constructor_defaults_are_kecams():
    assert not models.LeViT128S(input_shape=(64, 64, 3)).head.distill_names
    assert models.LeViT256(input_shape=(64, 64, 3)).head.distill_names
    assert not models.LeViT256(input_shape=(64, 64, 3), use_distillation=False).head.distill_names
    assert models.LeViT128S(input_shape=(64, 64, 3)).pretrained_cfg["classifier_activation"] is None


def test_a_file_of_another_configuration_raises():
    distilled = FIXTURES / INDEX[DISTILLED]["weights"]
    kwargs = {**INDEX[DISTILLED]["kwargs"], "use_distillation": False}
    with pytest.raises(WeightMismatchError, match="distill_head"):
        models.create_model("levit.LeViT", pretrained=str(distilled), **kwargs)


def test_positional_tables_of_another_size_load_with_resize():
    """kecam's mismatch_class for LeViT is MultiHeadPositionalEmbedding: a file of another
    input size needs resize=True (then every attn_pos table is resized and nothing else)."""
    path = str(FIXTURES / INDEX[PLAIN]["weights"])
    kwargs = {**INDEX[PLAIN]["kwargs"], "input_shape": [64, 80, 3]}
    with pytest.raises(WeightMismatchError, match="resize=True"):
        models.create_model("levit.LeViT", pretrained=path, **kwargs)
    model = models.create_model("levit.LeViT", pretrained=path, resize=True, **kwargs)
    resized = model.load_report.resized
    assert resized and all(name.endswith("attn_pos") for name in resized)
    assert model(mx.zeros((1, 64, 80, 3))).shape == (1, 10)


def test_predict_ranks_the_deployed_model(capsys, tmp_path, monkeypatch):
    """`mlx-attention predict` on a distillation model ranks kecam's deployed (fused) head."""
    from test_cli_models import predicted_rows, write_image

    from mlx_attention import cli

    kwargs = {**INDEX[DISTILLED]["kwargs"], "num_classes": 1000}
    model = models.create_model("levit.LeViT", **kwargs)
    monkeypatch.setattr(models, "create_model", lambda *args, **kw: model)
    image = write_image(tmp_path / "a.png", 40, 30)
    code = cli.main(["predict", str(image), "--model", "LeViT256", "--weights", "x.h5"])
    out, err = capsys.readouterr()
    assert code == 0, err
    logits = np.array(mx.stack(model(model.preprocess_input(cli._load_image(str(image))))))
    fused = logits.mean(axis=0)[0]
    probs = np.exp(fused - fused.max()) / np.exp(fused - fused.max()).sum()
    printed = predicted_rows(out)[str(image)]
    assert [p for _, _, p in printed] == pytest.approx(np.sort(probs)[::-1][:5], abs=1e-4)


# --- reference: real named models against kecam live -------------------------------------------


PROBES = ["stem_4_bn"] + [f"stack{i}_output" for i in (1, 2, 3)]  # the last: forward_features
# docs/models.md's "live at"; the two tests below, in this order
LIVE_MODELS = [("LeViT128S", (224, 224, 3)), ("LeViT128S", (192, 256, 3))]


@pytest.mark.reference
@pytest.mark.slow
def test_levit128s_at_224_matches_kecam(kecam_live, tmp_path):
    """LeViT128S at its default size, with the distillation head (kecam's two outputs)."""
    run = live.kecam_run("levit.LeViT128S", tmp_path, input_shape=LIVE_MODELS[0][1],
                         probes=PROBES, use_distillation=True)  # fmt: skip
    ours = models.create_model("LeViT128S", pretrained=str(run.path), use_distillation=True)
    live.assert_live(ours, run, features=PROBES[-1])


@pytest.mark.reference
@pytest.mark.slow
def test_levit128s_at_another_size_resizes_as_kecam(kecam_live, tmp_path):
    """LeViT128S at 192x256 loading a 224 file: kecam's load_resized_weights (bilinear) on
    every MultiHeadPositionalEmbedding against our resize=True."""
    source = live.kecam_run("levit.LeViT128S", tmp_path, input_shape=LIVE_MODELS[0][1],
                            save="weights").path  # fmt: skip
    shape = LIVE_MODELS[1][1]
    run = live.kecam_run("levit.LeViT128S", tmp_path, input_shape=shape, probes=PROBES,
                         pretrained=str(source))  # fmt: skip
    ours = models.LeViT128S(input_shape=shape, pretrained=str(source), resize=True)
    tables = [d.name for d in declared_layers(ours) if d.name.endswith("attn_pos")]
    assert sorted(ours.load_report.resized) == sorted(tables) and len(tables) == 11
    live.assert_live(ours, run, features=PROBES[-1], label="LeViT128S 192x256 from 224")
