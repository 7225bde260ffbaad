"""EdgeNeXt (kecam ``edgenext.EdgeNeXt``) against kecam's own numbers.

Default run: the committed reduced fixtures (``tests/fixtures/models/edgenext_*``, made by
``tools/make_model_fixtures.py``: kecam's ``edgenext.EdgeNeXt`` with every variable
re-randomised) run in ``test_models.py``; here, the layout kecam fixes at build time (VALID
strides that floor odd sizes, STDA blocks at the end of each stage, splits and heads), the
head (``pre_output_ln`` after the pooling, absent from ``forward_features`` and from a
``num_classes=0`` model), kecam's refusals and strict loading (the convert round trip of
every fixture is in ``test_cli_models.py``).
``reference`` (TensorFlow and kecam 1.4.3): kecam refuses and builds what we do, the release
file names, and the real EdgeNeXt_XX_Small and EdgeNeXt_Small, live.
"""

from __future__ import annotations

import live
import mlx.core as mx
import pytest
from cases import signature_rows
from helpers import assert_matches
from test_models import FIXTURES, INDEX, KECAM, expected_signature, fixture_arrays, fixture_model

from mlx_attention import models
from mlx_attention.convert import WeightMismatchError, declared_layers
from mlx_attention.models.edgenext import ConvEncoder, SplitDepthwiseTransposeAttention

CASES = sorted(c for c, e in INDEX.items() if e["builder"] == "edgenext.EdgeNeXt")


def test_fixtures_cover_both_layouts_and_the_stda_options():
    assert len(CASES) >= 2
    assert {INDEX[c]["save"] for c in CASES} == {"model", "weights"}
    kwargs = [INDEX[c]["kwargs"] for c in CASES]
    assert any(any(k["stda_use_pos_emb"]) for k in kwargs)
    assert any(k.get("layer_scale", 1e-6) < 0 for k in kwargs)
    assert any(k.get("stem_width", -1) > 0 for k in kwargs)
    assert any(any(s % 2 for s in k["input_shape"][:2]) for k in kwargs)
    total = sum(p.stat().st_size for p in FIXTURES.glob("edgenext_*"))
    assert total <= 350 * 2**10, f"EdgeNeXt fixtures take {total / 2**10:.0f} kB"


def test_family_builder_signature_is_kecams():
    assert signature_rows(models.edgenext.EdgeNeXt) == expected_signature(
        KECAM["builders"]["edgenext.EdgeNeXt"]["params"]
    )


def _stages(model) -> list[list]:
    blocks = [
        m for m in model.layers if isinstance(m, ConvEncoder | SplitDepthwiseTransposeAttention)
    ]
    count = max(int(b.name.split("_")[0][len("stack") :]) for b in blocks)
    return [[b for b in blocks if b.name.startswith(f"stack{i + 1}_")] for i in range(count)]


@pytest.mark.parametrize(
    "shape, maps",
    [
        ((256, 256, 3), [(64, 64), (32, 32), (16, 16), (8, 8)]),
        ((97, 131, 3), [(24, 32), (12, 16), (6, 8), (3, 4)]),  # VALID strides floor
        ((3, 97, 131), [(24, 32), (12, 16), (6, 8), (3, 4)]),  # channels: the smallest
        ((200, 40, 3), [(50, 10), (25, 5), (12, 2), (6, 1)]),
    ],
)
def test_layout_follows_kecam(shape, maps):
    """kecam: stage ``i`` runs ``conv_kernel_size[i]`` conv encoders, then its last
    ``num_stda_layers[i]`` blocks are STDA (split ``stda_split[i]``, the Fourier encoding
    in stage 2 only); the sizes are floored at each VALID stride."""
    model = models.EdgeNeXt_XX_Small(input_shape=shape)
    stages = _stages(model)
    assert [len(s) for s in stages] == [2, 2, 6, 2]
    for stage, kernel, split, pos in zip(stages, [3, 5, 7, 9], [2, 2, 3, 4], [0, 1, 0, 0]):
        *convs, last = stage
        assert all(
            isinstance(b, ConvEncoder) and b.conv.kernel_size == (kernel,) * 2 for b in convs
        )
        if stage is stages[0]:
            assert isinstance(last, ConvEncoder)
            continue
        assert isinstance(last, SplitDepthwiseTransposeAttention)
        assert len(last.convs) == split - 1 and (last.pos is not None) == bool(pos)
        assert last.xca.num_heads == 4
    outputs = model.forward_intermediates(mx.zeros((1, *model.input_shape)))
    for i, size in enumerate(maps):
        assert outputs[stages[i][-1].output_name].shape[1:3] == size


def test_stda_splits_as_kecam():
    """``ceil(C / split)``-channel pieces and a remainder: 88 channels in 3 give 30, 30 and 28;
    168 in 4 give 42, 42, 42 and 42; per-stage heads (EdgeNeXt_Small: 8)."""
    stages = _stages(models.EdgeNeXt_XX_Small(input_shape=(64, 64, 3)))
    assert [(b.piece, len(b.convs)) for b in (s[-1] for s in stages[1:])] == [
        (24, 1), (30, 2), (42, 3),
    ]  # fmt: skip
    small = _stages(models.EdgeNeXt_Small(input_shape=(64, 64, 3)))
    assert [s[-1].xca.num_heads for s in small[1:]] == [8, 8, 8]
    listed = _stages(models.EdgeNeXt_XX_Small(input_shape=(64, 64, 3), num_heads=[1, 2, 4, 8]))
    assert [s[-1].xca.num_heads for s in listed[1:]] == [2, 4, 8]


_SMALL = {
    "num_blocks": [1, 1], "out_channels": [8, 16], "num_stda_layers": [0, 1],
    "stda_split": [2, 2], "stda_use_pos_emb": [False, True], "conv_kernel_size": [3, 5],
    "input_shape": (32, 32, 3), "num_classes": 10,
}  # fmt: skip
# Configurations kecam refuses (checked live in test_kecam_refuses_and_builds_the_same), and
# what our error says.
REFUSED = {
    "split 1": ({"stda_split": [2, 1]}, "split=1"),
    "5 channels in 4": ({"out_channels": [8, 5], "stda_split": [2, 4], "num_heads": 1}, "split=4"),
    "heads do not divide": ({"out_channels": [8, 10], "num_heads": 3}, "num_heads=3"),
    "too small": ({"input_shape": (7, 7, 3)}, "kernel_size=.2, 2."),
    "no split for stage 2": ({"stda_split": [2]}, r"stda_split=\[2\]"),
}
# Configurations kecam builds that stretch the rules (zip truncation, empty remainder, a zero
# layer scale that still creates gamma).
BUILT = {
    "zip truncates": {"num_blocks": [1, 1], "out_channels": [8, 16, 24, 32]},
    "no remainder": {"out_channels": [8, 9], "stda_split": [2, 4], "num_heads": 3},
    "16 channels in 17": {"stda_split": [2, 17], "num_heads": 2},
    "layer scale 0": {"layer_scale": 0},
    "stda in stage 1": {"num_stda_layers": [1, 1], "num_heads": [2, 4]},
}


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_what_kecam_refuses_is_a_value_error(name):
    kwargs, message = REFUSED[name]
    with pytest.raises(ValueError, match=message):
        models.edgenext.EdgeNeXt(**{**_SMALL, **kwargs})


def test_zero_layer_scale_keeps_gamma_negative_drops_it():
    """kecam tests ``layer_scale >= 0``: 0 creates every ``gamma`` (at 0), -1 none."""
    names = [
        {d.name for d in declared_layers(models.edgenext.EdgeNeXt(**_SMALL, layer_scale=s))}
        for s in (0, -1)
    ]
    gammas = {n for n in names[0] if n.endswith("gamma")}
    assert gammas == {"stack1_block1_conv_gamma", "stack2_block1_stda_xca_gamma",
                      "stack2_block1_stda_ir_gamma"}  # fmt: skip
    assert names[0] - names[1] == gammas


def test_head_norm_follows_the_pooling_and_only_with_a_classifier():
    """``pre_output_ln`` normalises the pooled vector (so it is not in ``forward_features``);
    kecam's ``num_classes=0`` model has no such layer, nor does ours after a reset to 0."""
    case = "edgenext_29x43"
    model, arrays = fixture_model(case), fixture_arrays(case)
    x = mx.array(arrays["input"])
    features = model.forward_features(x)
    pooled = mx.mean(features, axis=(1, 2))
    assert_matches(model.forward_head(features), model.head.predictions(model.head.norm(pooled)))
    headless = models.edgenext.EdgeNeXt(**{**INDEX[case]["kwargs"], "num_classes": 0})
    assert "pre_output_ln" not in {d.name for d in declared_layers(headless)}
    assert headless(x).shape == features.shape
    model.reset_classifier(0)
    assert model.head.norm is None and model(x).shape == features.shape
    model.reset_classifier(5)
    assert model.head.norm is not None and model(x).shape == (3, 5)


def test_a_file_of_another_model_is_refused():
    """Strict: a file without layer scales into a model with them, and one without the
    positional encoding into a model with it."""
    entry = INDEX["edgenext_25x29_split4"]
    with pytest.raises(WeightMismatchError, match="gamma"):
        models.edgenext.EdgeNeXt(
            **{**entry["kwargs"], "layer_scale": 1e-6}, pretrained=str(FIXTURES / entry["weights"])
        )
    entry = INDEX["edgenext_29x43"]
    with pytest.raises(WeightMismatchError, match="stack2_block1_stda_pos"):
        models.edgenext.EdgeNeXt(
            **{**entry["kwargs"], "stda_use_pos_emb": [False, False]},
            pretrained=str(FIXTURES / entry["weights"]),
        )


# --- reference: kecam's own rules and the real models, live ------------------------------------


@pytest.mark.reference
@pytest.mark.parametrize("name", sorted(REFUSED) + sorted(BUILT))
def test_kecam_refuses_and_builds_the_same(kecam_live, name):
    """What kecam refuses raises here (REFUSED); what it builds (BUILT) we build with its
    parameter count."""
    tool = live.fixture_tool()
    kwargs = {**_SMALL, **(REFUSED[name][0] if name in REFUSED else BUILT[name])}
    build = tool.kecam_builder("edgenext.EdgeNeXt")
    if name in REFUSED:
        with pytest.raises((ValueError, IndexError)):
            build(**kwargs, pretrained=None)
        return
    kecam = build(**kwargs, pretrained=None)
    assert models.edgenext.EdgeNeXt(**kwargs).count_params() == kecam.count_params()


LIVE = [
    ("EdgeNeXt_XX_Small", (256, 256, 3), "model"),
    ("EdgeNeXt_XX_Small", (97, 131, 3), "weights"),
    ("EdgeNeXt_Small", (256, 256, 3), "model"),
]
LIVE_MODELS = [(name, shape) for name, shape, _ in LIVE]  # docs/models.md's "live at"


def _probes(model) -> list[str]:
    """``stem_ln`` and each stage's last block (the last is forward_features)."""
    blocks = [n.name for n in model.layers if n.name.endswith(("_conv_output", "_stda_output"))]
    last = {name.split("_")[0]: name for name in blocks}
    return ["stem_ln", *last.values()]


@pytest.mark.reference
@pytest.mark.slow
@pytest.mark.parametrize("name, shape, save", LIVE, ids=[f"{n}-{s[0]}x{s[1]}" for n, s, _ in LIVE])
def test_real_edgenext_matches_kecam(kecam_live, tmp_path, name, shape, save):
    run = live.kecam_run(
        f"edgenext.{name}", tmp_path, input_shape=shape, save=save, probes=_probes,
        classifier_activation=None,
    )  # fmt: skip
    ours = models.create_model(
        name, pretrained=str(run.path), input_shape=shape, classifier_activation=None
    )
    live.assert_live(ours, run, features=run.probes[-1])
