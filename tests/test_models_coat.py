"""CoaT (kecam ``coat.CoaT``) against kecam's own numbers.

Default run: the refusals of kecam's ``factor_attention_conv_relative_positional_encoding``
(its numbers against kecam's function, on square, non-square and odd grids, are the
``blocks/factor_attn_*`` cases of ``tests/cases.py``, in ``test_parity.py``); the whole-model
fixtures (``coat_*``, ``coat131_*``: kecam's ``coat.CoaT`` re-randomised, a parallel model and
a kecam 1.3.1 Lite file) are compared by ``test_models.py``; here the shared encodings, the
grids kecam builds, the builder's signature, the strict errors. ``reference`` (TensorFlow and
kecam 1.4.3): the real CoaTLiteTiny at 224 and CoaTTiny at a non-square odd size, live.
"""

from __future__ import annotations

import live
import mlx.core as mx
import numpy as np
import pytest
from cases import signature_rows
from helpers import assert_matches, max_error
from test_models import FIXTURES, INDEX, KECAM, expected_signature, fixture_arrays, fixture_model

from mlx_attention import attention_layers, models
from mlx_attention.convert import WeightMismatchError, declared_layers
from mlx_attention.layers import FactorAttention, KerasLayouts
from mlx_attention.layers.base import ModuleTree
from mlx_attention.models._base import channels_last
from mlx_attention.models.coat import factor_attention_conv_relative_positional_encoding

CASES = sorted(c for c, e in INDEX.items() if e["builder"] == "coat.CoaT")


def test_fixtures_cover_both_layouts_versions_and_heads():
    assert {INDEX[c]["save"] for c in CASES} == {"model", "weights"}
    assert {INDEX[c]["kecam"] for c in CASES} == {"1.3.1", "1.4.3"}
    assert {INDEX[c]["kwargs"].get("parallel_depth", 0) > 0 for c in CASES} == {True, False}
    total = sum(p.stat().st_size for p in [*FIXTURES.glob("coat_*"), *FIXTURES.glob("coat131_*")])
    # a kecam file costs ~8 kB per Keras layer (kecam's ops are layers too): the parallel
    # model alone is 0.32 MB
    assert total <= 650 * 2**10, f"CoaT fixtures take {total / 2**10:.0f} kB"


# --- the factorised attention ---------------------------------------------------------------


def test_factor_attention_refuses_what_kecam_cannot_build():
    with pytest.raises(ValueError, match="num_heads=3 must divide dims=16"):
        FactorAttention(16, 2, 2, num_heads=3)
    with pytest.raises(ValueError, match="sum to num_heads=4"):
        FactorAttention(16, 2, 2, num_heads=4)  # the default splits [2, 3, 3] are 8 heads
    with pytest.raises(ValueError, match=r"14 patch tokens are not a 3 x 4 grid"):
        factor_attention_conv_relative_positional_encoding((1 + 14, 16))
    crpe = attention_layers.ConvRelativePositionalEncoding(
        input_height=3, input_shape=(8, 16, 2), name="c_"
    )
    with pytest.raises(ValueError, match="does not hold the 12 patch tokens"):
        factor_attention_conv_relative_positional_encoding((13, 16), shared_crpe=crpe)
    with pytest.raises(TypeError, match="ConvRelativePositionalEncoding"):
        FactorAttention(16, 3, 5, crpe=FactorAttention(16, 3, 5))


# --- whole models -------------------------------------------------------------------------------


def _stage_modules(model, kind: str) -> set[int]:
    found = set()
    for stage in model.stages:
        for block in stage.blocks:
            found.add(id(block.cpe if kind == "cpe" else block.attn.crpe))
    return found


def test_the_stage_encodings_are_shared_and_count_once():
    """kecam's ``cpe{i}_`` / ``crpe{i}_`` are one layer per stage, read by the stage's serial
    blocks and its parallel branches; they load and count once."""
    model = models.CoaTTiny()
    assert len(_stage_modules(model, "cpe")) == 4 and len(_stage_modules(model, "crpe")) == 4
    for block in model.parallel:
        for stage, branch in zip(model.stages[1:], block.branches):
            assert branch.cpe is stage.cpe and branch.attn.crpe is stage.crpe
    assert model.count_params() == KECAM["models"]["CoaTTiny"]["count_params"]
    tree = ModuleTree.of(model)
    assert sum(v.size for v in tree.parameters.values()) == model.count_params()
    unshared = models.coat.CoaT(
        **{**INDEX["coat131_27x39"]["kwargs"], "input_shape": [24, 24, 3]},
        use_shared_cpe=False, use_shared_crpe=False,
    )  # fmt: skip
    names = {d.layouts[0][0].name for d in declared_layers(unshared) if isinstance(d, KerasLayouts)}
    assert "serial1_block2_cpe_depth_conv" in names
    assert "serial1_block2_factoratt_crpe_crpe_depth_conv_1" in names


def test_unshared_encodings_need_a_square_grid():
    """kecam infers a block's own encoding grid as floor(sqrt(N)) rows: only square inputs."""
    with pytest.raises(ValueError, match="3584 patch tokens are not a 59 x 60 grid"):
        models.CoaTLiteTiny(input_shape=(224, 256, 3), use_shared_cpe=False)


@pytest.mark.parametrize(
    "shape, grids",
    [
        ((224, 224, 3), [(56, 56), (28, 28), (14, 14), (7, 7)]),
        ((97, 131, 3), [(24, 32), (12, 16), (6, 8), (3, 4)]),  # VALID patches floor
        ((3, 160, 96), [(40, 24), (20, 12), (10, 6), (5, 3)]),  # channels: the smallest
    ],
)
def test_grids_follow_the_input_size(shape, grids):
    model = models.CoaTMini(input_shape=shape)
    assert [(s.height, s.width) for s in model.stages] == grids
    assert model.parallel[0].grids == grids[1:]
    assert model.forward_features(mx.zeros((1, *channels_last(shape)))).shape == (1, 216)


def test_family_builder_signature_is_kecams():
    assert signature_rows(models.coat.CoaT) == expected_signature(
        KECAM["builders"]["coat.CoaT"]["params"]
    )


def test_an_input_too_small_for_the_patches_is_refused():
    """12x40: grids 3x10, then 1x5, where stage 4's 2x2 patch does not fit (kecam cannot build)."""
    with pytest.raises(ValueError, match=r"kernel_size=\(2, 2\).*larger than the 1x5 input"):
        models.CoaTLiteTiny(input_shape=(12, 40, 3))


def test_parallel_stages_must_share_one_width():
    with pytest.raises(ValueError, match="need one width"):
        models.coat.CoaT(embed_dims=[8, 16, 24, 16], parallel_depth=1, input_shape=(64, 64, 3))


def test_out_features_returns_the_stages_patch_tokens():
    entry = INDEX["coat_parallel_36x44"]
    model = models.coat.CoaT(
        **{**entry["kwargs"], "out_features": [1, 3]}, pretrained=str(FIXTURES / entry["weights"]),
        strict=False,
    )  # fmt: skip
    arrays = fixture_arrays("coat_parallel_36x44")
    outs = model(mx.array(arrays["input"]))
    assert [o.shape for o in outs] == [(3, 20, 16), (3, 1, 16)]
    assert_matches(outs[0], arrays["probe/parallel1_2_output"][:, 1:])


@pytest.mark.parametrize("case", CASES)
def test_num_classes_zero_returns_the_features(case):
    """kecam's ``num_classes=0`` model returns the tensor its ``predictions`` reads: the
    fixtures' ``features`` probe."""
    entry = INDEX[case]
    model = models.coat.CoaT(
        **{**entry["kwargs"], "num_classes": 0}, pretrained=str(FIXTURES / entry["weights"]),
        strict=False,
    )  # fmt: skip
    arrays = fixture_arrays(case)
    assert_matches(model(mx.array(arrays["input"])), arrays["probe/features"])


def test_convert_round_trip_stores_the_shared_encodings_once(tmp_path):
    """``models.convert`` writes each stage's ``cpe`` / ``crpe`` once (at the stage), and the
    .safetensors alone rebuilds the same model; kecam's "torch" rescaling."""
    from mlx_attention.convert import safetensors_header

    entry = INDEX["coat131_27x39"]
    out = models.convert(
        "coat.CoaT", FIXTURES / entry["weights"], tmp_path / "m.safetensors",
        **entry["kwargs"], classifier_activation=None,
    )  # fmt: skip
    keys, _ = safetensors_header(out)
    assert sorted(k for k in keys if ".cpe." in k or "crpe" in k) == [
        "stages.0.cpe.conv.bias", "stages.0.cpe.conv.weight",
        *(f"stages.0.crpe.convs.{i}.{p}" for i in range(3) for p in ("bias", "weight")),
    ]  # fmt: skip
    restored = models.create_model("coat.CoaT", pretrained=str(out))
    x = mx.array(fixture_arrays("coat131_27x39")["input"])
    assert np.array_equal(np.array(restored(x)), np.array(fixture_model("coat131_27x39")(x)))
    assert restored.pretrained_cfg["rescale_mode"] == "torch"


def test_a_file_of_another_model_is_refused():
    entry = INDEX["coat131_27x39"]
    deeper = {**entry["kwargs"], "serial_depths": [3]}
    with pytest.raises(WeightMismatchError, match="serial1_block3_"):
        models.coat.CoaT(**deeper, pretrained=str(FIXTURES / entry["weights"]))


def test_forward_head_of_forward_features_is_the_model():
    model = fixture_model("coat_parallel_36x44")
    x = mx.array(fixture_arrays("coat_parallel_36x44")["input"])
    assert np.array_equal(
        np.array(model.forward_head(model.forward_features(x))), np.array(model(x))
    )
    assert "parallel1_4_output" in model.summary(print_fn=None)
    assert list(model.forward_intermediates(x)) == model.output_names
    assert model.output_names[-1] == "features"


# --- reference: the real CoaTLiteTiny and CoaTTiny, live --------------------------------------

LIVE = [("CoaTLiteTiny", (224, 224, 3), "model"), ("CoaTTiny", (161, 127, 3), "weights")]
LIVE_MODELS = [(name, shape) for name, shape, _ in LIVE]  # docs/models.md's "live at"


def _live_probes(name: str):
    def probes(model) -> list[str]:
        names = ["serial1_patch_ln", "serial4_block2_output"]
        if name == "CoaTTiny":
            names += ["parallel6_2_output", "parallel6_4_output", "aggregate"]
        else:
            names.append("out_ln")
        # kecam's num_classes=0 output: the unnamed slice that `predictions` reads
        return names + [model.get_layer("predictions").input.node.layer.name]

    return probes


@pytest.mark.reference
@pytest.mark.slow
@pytest.mark.parametrize("name, shape, save", LIVE, ids=[n for n, _, _ in LIVE])
def test_real_coat_matches_kecam(kecam_live, tmp_path, name, shape, save):
    run = live.kecam_run(
        f"coat.{name}", tmp_path, input_shape=shape, save=save, probes=_live_probes(name),
        classifier_activation=None,
    )  # fmt: skip
    features = run.probes.pop()  # compared with forward_features, not an intermediate
    model = models.create_model(
        name, pretrained=str(run.path), input_shape=shape, classifier_activation=None
    )
    live.assert_live(model, run, features=features, label=name)
    error = max_error(model.forward_features(mx.array(run.x)), run.outputs[features])
    print(f"{name} features: {error:.2g} (max |kecam| {np.abs(run.outputs[features]).max():.2g})")
