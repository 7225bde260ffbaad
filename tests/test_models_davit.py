"""DaViT (kecam ``davit.DaViT``) against kecam's own numbers.

Default run: the committed reduced fixtures (``tests/fixtures/models/davit_*``, made by
``tools/make_model_fixtures.py``: kecam's ``davit.DaViT`` with every variable re-randomised),
kernels off and emulated; the windows kecam fixes at build time; the builder's signature; the
strict error for a file of another model. ``reference`` (TensorFlow and kecam 1.4.3): the real
DaViT_T at 224 and at a non-square odd size, live.
"""

from __future__ import annotations

import live
import mlx.core as mx
import pytest
from cases import signature_rows
from test_models import FIXTURES, INDEX, KECAM, expected_signature

from mlx_attention import models
from mlx_attention.convert import WeightMismatchError
from mlx_attention.layers import ChannelSelfAttention, WindowAttention

CASES = sorted(c for c, e in INDEX.items() if e["builder"] == "davit.DaViT")


def test_fixtures_cover_both_layouts_and_attentions():
    assert len(CASES) >= 2
    assert {INDEX[c]["save"] for c in CASES} == {"model", "weights"}
    assert any(INDEX[c]["kwargs"].get("layer_scale", -1) > 0 for c in CASES)
    total = sum(p.stat().st_size for p in FIXTURES.glob("davit_*"))
    assert total <= 700 * 2**10, f"DaViT fixtures take {total / 2**10:.0f} kB"


def _blocks(model):
    return [m for m in model.layers if isinstance(m, models.davit.DaViTBlock)]


@pytest.mark.parametrize(
    "shape, window, maps",
    [
        ((224, 224, 3), (7, 7), [(56, 56), (28, 28), (14, 14), (7, 7)]),
        ((160, 192, 3), (5, 6), [(40, 48), (20, 24), (10, 12), (5, 6)]),
        ((97, 131, 3), (4, 5), [(25, 33), (13, 17), (7, 9), (4, 5)]),  # TF SAME rounds up
        ((3, 40, 72), (2, 3), [(10, 18), (5, 9), (3, 5), (2, 3)]),  # channels: the smallest
        ((200, 40, 3), (7, 2), [(50, 10), (25, 5), (13, 3), (7, 2)]),
    ],
)
def test_windows_follow_the_input_size(shape, window, maps):
    """kecam: the window is ``ceil(input / 32)`` per axis, clamped to each stage's map; even
    blocks attend in windows, odd ones over the channels."""
    model = models.DaViT_T(input_shape=shape)
    per_stage = [2, 2, 6, 2]
    blocks = _blocks(model)
    assert len(blocks) == sum(per_stage)
    for stage, (size, count) in enumerate(zip(maps, per_stage)):
        stage_blocks = [b for b in blocks if b.name.startswith(f"stack{stage + 1}_")]
        assert len(stage_blocks) == count
        for j, block in enumerate(stage_blocks):
            if j % 2:
                assert isinstance(block.attn, ChannelSelfAttention)
            else:
                assert isinstance(block.attn, WindowAttention)
                assert block.attn.window == tuple(min(w, s) for w, s in zip(window, size))
    assert f"(None, {maps[-1][0]}, {maps[-1][1]}, 768)" in model.summary(print_fn=None)


def test_family_builder_signature_is_kecams():
    assert signature_rows(models.davit.DaViT) == expected_signature(
        KECAM["builders"]["davit.DaViT"]["params"]
    )


def test_a_file_of_another_model_is_refused():
    """Strict: a DaViT file into a DaViT of other depths, and a NAT file into DaViT."""
    entry = INDEX["davit_40x72"]
    deeper = {**entry["kwargs"], "num_blocks": [1, 2]}
    with pytest.raises(WeightMismatchError, match="stack2_block2_"):
        models.davit.DaViT(**deeper, pretrained=str(FIXTURES / entry["weights"]))
    nat = INDEX["nat_45x59_scaled"]
    with pytest.raises(WeightMismatchError):
        models.davit.DaViT(
            **{**entry["kwargs"], "input_shape": nat["kwargs"]["input_shape"]},
            pretrained=str(FIXTURES / nat["weights"]),
        )


def test_non_default_sizes_are_other_networks_not_other_weights():
    """The weights do not depend on the input size (no positional tables): a file made at
    40x72 loads into the same configuration at 45x59."""
    entry = INDEX["davit_40x72"]
    model = models.davit.DaViT(
        **{**entry["kwargs"], "input_shape": [45, 59, 3]},
        pretrained=str(FIXTURES / entry["weights"]),
    )
    assert model(mx.zeros((1, 45, 59, 3))).shape == (1, 10)


# --- reference: the real DaViT_T, live -------------------------------------------------------

LIVE = [((224, 224, 3), "model"), ((97, 131, 3), "weights")]
LIVE_MODELS = [("DaViT_T", shape) for shape, _ in LIVE]  # docs/models.md's "live at"


@pytest.mark.reference
@pytest.mark.slow
@pytest.mark.parametrize("shape, save", LIVE, ids=[f"{s[0]}x{s[1]}" for s, _ in LIVE])
def test_real_davit_t_matches_kecam(kecam_live, tmp_path, shape, save):
    probes = ["stem_ln", *(f"stack{i}_block{n}_2_output" for i, n in [(1, 2), (2, 2), (3, 6)])]
    run = live.kecam_run("davit.DaViT_T", tmp_path, input_shape=shape, save=save,
                         probes=[*probes, "pre_output_ln"], classifier_activation=None)  # fmt: skip
    ours = models.create_model(
        "DaViT_T", pretrained=str(run.path), input_shape=shape, classifier_activation=None
    )
    live.assert_live(ours, run, features="pre_output_ln")
