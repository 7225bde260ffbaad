"""CMT (kecam ``cmt.CMT`` and ``cmt.CMT_torch``) against kecam's own numbers.

Default run: the committed reduced fixtures (``tests/fixtures/models/cmt_*`` and a kecam 1.3.1
``cmt131_*``, made by ``tools/make_model_fixtures.py`` with every variable re-randomised; their
comparison, kernels off and emulated, runs in ``test_models.py``); the stage's positional table
that ``CMT_torch`` shares between its blocks (one module: loaded, counted and exported once);
the builders' signatures; resizing and strictness. ``reference`` (TensorFlow and kecam 1.4.3):
the real CMTTiny_torch at 160 and at a non-square odd size resized from the 160 file, and
CMTTiny at 160, live.
"""

from __future__ import annotations

import live
import mlx.core as mx
import numpy as np
import pytest
from cases import signature_rows
from mlx.utils import tree_flatten
from test_models import FIXTURES, INDEX, KECAM, expected_signature, fixture_arrays, fixture_model

from mlx_attention import models
from mlx_attention.convert import WeightMismatchError, declared_layers
from mlx_attention.layers import (
    BiasPositionalEmbedding,
    KerasLayouts,
    MultiHeadRelativePositionalEmbedding,
)

CASES = sorted(c for c, e in INDEX.items() if e["builder"] in ("cmt.CMT", "cmt.CMT_torch"))
PLAIN, TORCH131 = "cmt_33x27", "cmt131_29x37"


def test_fixtures_cover_both_builders_layouts_and_versions():
    assert {INDEX[c]["builder"] for c in CASES} == {"cmt.CMT", "cmt.CMT_torch"}
    assert {INDEX[c]["save"] for c in CASES} == {"model", "weights"}
    assert {INDEX[c]["kecam"] for c in CASES} == {"1.3.1", "1.4.3"}
    # a CMT block is ~35 kecam variables, ~90 kB of HDF5 overhead in a file
    total = sum(p.stat().st_size for p in FIXTURES.glob("cmt*"))
    assert total <= 450 * 2**10, f"CMT fixtures take {total / 2**10:.0f} kB"


@pytest.mark.parametrize("builder", ["CMT", "CMT_torch"])
def test_family_builder_signatures_are_kecams(builder):
    assert signature_rows(getattr(models.cmt, builder)) == expected_signature(
        KECAM["builders"][f"cmt.{builder}"]["params"]
    )


def _blocks(model) -> list:
    return [m for m in model.layers if isinstance(m, models.cmt.CMTBlock)]


def test_torch_stage_table_is_one_module_of_the_stage_blocks():
    """kecam builds one BiasPositionalEmbedding per stage outside the blocks: every block of
    a stage adds the same table (one module), declared and counted once, sized from the
    stage's map (queries) and its map reduced by sr_ratio (keys)."""
    model = models.CMTTiny_torch(input_shape=(131, 97, 3))
    grids = [(33, 24), (16, 12), (8, 6), (4, 3)]
    for stage, ((h, w), sr, heads, count) in enumerate(
        zip(grids, [8, 4, 2, 1], [1, 2, 4, 8], [2, 2, 10, 2])
    ):
        blocks = [b for b in _blocks(model) if b.name.startswith(f"stack{stage + 1}_")]
        tables = {id(b.attn.pos_emb) for b in blocks}
        assert len(blocks) == count and len(tables) == 1
        table = blocks[0].attn.pos_emb
        assert (
            isinstance(table, BiasPositionalEmbedding) and table.name == f"stack{stage + 1}_pos_emb"
        )
        assert table.positional_embedding.shape == (heads, h * w, (h // sr) * (w // sr))
    names = [d.name for d in declared_layers(model) if not isinstance(d, KerasLayouts)]
    assert sorted(n for n in names if n.endswith("pos_emb")) == [
        f"stack{i}_pos_emb" for i in range(1, 5)
    ]
    shared = sum(b.attn.pos_emb.positional_embedding.size for b in _blocks(model))
    once = sum(_blocks(model)[i].attn.pos_emb.positional_embedding.size for i in (0, 2, 4, 14))
    total = sum(v.size for _, v in tree_flatten(model.parameters()))
    assert model.count_params() == total - shared + once


def test_plain_cmt_has_a_relative_table_per_block():
    model = models.CMTTiny(input_shape=(160, 160, 3))
    tables = [b.attn.pos_emb for b in _blocks(model)]
    assert len({id(t) for t in tables}) == 16
    assert all(isinstance(t, MultiHeadRelativePositionalEmbedding) for t in tables)
    assert tables[0].name == "stack1_block1_light_mhsa_pos_emb"
    assert tables[0]._index.shape == (1600, 25)  # 40x40 queries, the last 25 columns kept


def test_export_writes_the_shared_table_once_and_restores_it_shared(tmp_path):
    entry = INDEX[TORCH131]
    out = models.convert(
        "cmt.CMT_torch", FIXTURES / entry["weights"], tmp_path / "m.safetensors",
        **entry["kwargs"], classifier_activation=None,
    )  # fmt: skip
    assert [k for k in mx.load(str(out)) if "pos_emb" in k] == [
        "layers.3.attn.pos_emb.positional_embedding"
    ]
    # kecam's CMT_torch has no defaults for num_blocks and out_channels
    restored = models.create_model(
        "cmt.CMT_torch", pretrained=str(out), num_blocks=[2], out_channels=[8]
    )
    first, second = _blocks(restored)
    assert first.attn.pos_emb is second.attn.pos_emb
    x = mx.array(fixture_arrays(TORCH131)["input"])
    assert np.array_equal(np.array(restored(x)), np.array(fixture_model(TORCH131)(x)))
    assert restored.pretrained_cfg["rescale_mode"] == "torch"


def test_cmt_torch_is_cmt_with_kecams_torch_defaults():
    kwargs = {**INDEX[TORCH131]["kwargs"], "pretrained": str(FIXTURES / INDEX[TORCH131]["weights"])}
    model = models.cmt.CMT_torch(**kwargs, classifier_activation=None)
    x = mx.array(fixture_arrays(TORCH131)["input"])
    assert np.array_equal(np.array(model(x)), np.array(fixture_model(TORCH131)(x)))
    same = models.cmt.CMT(**kwargs, **models.cmt.TORCH_DEFAULTS, classifier_activation=None)
    assert np.array_equal(np.array(same(x)), np.array(model(x)))
    with pytest.raises(TypeError, match="num_blocks"):
        models.cmt.CMT_torch(out_channels=[8])


def test_a_file_of_the_other_builder_is_refused():
    torch = INDEX[TORCH131]
    with pytest.raises(WeightMismatchError, match="pos_emb"):
        models.cmt.CMT(**torch["kwargs"], pretrained=str(FIXTURES / torch["weights"]))
    plain = INDEX[PLAIN]
    with pytest.raises(WeightMismatchError):
        models.cmt.CMT_torch(**plain["kwargs"], pretrained=str(FIXTURES / plain["weights"]))


def test_relative_tables_of_another_size_load_with_resize():
    """kecam's mismatch_class for CMT is MultiHeadRelativePositionalEmbedding: a file of
    another input size needs resize=True, which resizes those tables and nothing else."""
    path = str(FIXTURES / INDEX[PLAIN]["weights"])
    kwargs = {**INDEX[PLAIN]["kwargs"], "input_shape": [45, 39, 3]}
    with pytest.raises(WeightMismatchError, match="resize=True"):
        models.cmt.CMT(**kwargs, pretrained=path)
    model = models.cmt.CMT(**kwargs, pretrained=path, resize=True)
    assert model.load_report.resized == ("stack1_block1_light_mhsa_pos_emb",)
    assert model(mx.zeros((1, 45, 39, 3))).shape == (1, 10)


def test_a_non_square_bias_table_does_not_resize():
    """kecam's BiasPositionalEmbedding resize assumes square source grids (it crashes on the
    7x9 one of the 1.3.1 fixture); ours refuses it by name."""
    path = str(FIXTURES / INDEX[TORCH131]["weights"])
    kwargs = {**INDEX[TORCH131]["kwargs"], "input_shape": [33, 41, 3]}
    with pytest.raises(WeightMismatchError, match="stack1_pos_emb.*square"):
        models.cmt.CMT_torch(**kwargs, pretrained=path, resize=True)


@pytest.mark.parametrize(
    "name, shape, message",
    [
        ("CMTTiny", (24, 24, 3), r"sr_ratios\[0\]=8 exceeds stage 1's 6x6 map"),
        ("CMTTiny_torch", (40, 24, 3), r"sr_ratios\[0\]=8 exceeds stage 1's 10x6 map"),
        ("CMTTiny_torch", (24, 24, 3), "sr_ratios"),
    ],
)
def test_too_small_an_input_raises(name, shape, message):
    """kecam's reduction conv (kernel and stride sr_ratio, VALID) has no output there."""
    with pytest.raises(ValueError, match=message):
        models.create_model(name, input_shape=shape)


def test_stages_are_kecams_zip_of_the_lists():
    """kecam zips num_blocks, out_channels, num_heads and sr_ratios: the default four heads
    make four stages of a five-entry num_blocks (kecam: 11,209 parameters here, measured)."""
    model = models.cmt.CMT(
        num_blocks=[1] * 5, out_channels=[8] * 5, stem_width=8, input_shape=(64, 64, 3),
        num_classes=10, output_num_features=0,
    )  # fmt: skip
    assert [b.name for b in _blocks(model)] == [f"stack{i}_block1_" for i in range(1, 5)]
    assert model.count_params() == 11209


def test_a_map_too_small_to_downsample_raises():
    kwargs = {**INDEX[PLAIN]["kwargs"], "input_shape": [5, 5, 3], "sr_ratios": [1, 1]}
    kwargs.update(num_blocks=[1, 1], out_channels=[8, 8], num_heads=[2, 2])
    with pytest.raises(ValueError, match="stage 2 gets a 1x1 map"):
        models.cmt.CMT(**kwargs)


# --- reference: real named models against kecam live ------------------------------------------


def _probes(head: str) -> list[str]:
    blocks = [f"stack{i}_block{n}_ffn_output" for i, n in zip(range(1, 5), [2, 2, 10, 2])]
    return ["stem_3_bn", *blocks, head]  # the last: forward_features


TORCH_PROBES, PLAIN_PROBES = _probes("features_swish"), _probes("features_bn")
# docs/models.md's "live at"; the three tests below, in this order
LIVE_MODELS = [
    ("CMTTiny_torch", (160, 160, 3)), ("CMTTiny_torch", (131, 97, 3)), ("CMTTiny", (160, 160, 3)),
]  # fmt: skip


@pytest.mark.reference
@pytest.mark.slow
def test_cmt_tiny_torch_at_160_matches_kecam(kecam_live, tmp_path):
    run = live.kecam_run("cmt.CMTTiny_torch", tmp_path, input_shape=LIVE_MODELS[0][1],
                         probes=TORCH_PROBES, classifier_activation=None)  # fmt: skip
    ours = models.create_model(
        "CMTTiny_torch", pretrained=str(run.path), classifier_activation=None
    )
    live.assert_live(ours, run, features=TORCH_PROBES[-1])


@pytest.mark.reference
@pytest.mark.slow
def test_cmt_tiny_torch_at_another_size_resizes_as_kecam(kecam_live, tmp_path):
    """CMTTiny_torch at 131x97 loading a 160 file (save_weights): kecam's
    load_resized_weights (bilinear) on each stage's BiasPositionalEmbedding against our
    resize=True."""
    source = live.kecam_run("cmt.CMTTiny_torch", tmp_path, input_shape=LIVE_MODELS[0][1],
                            save="weights").path  # fmt: skip
    shape = LIVE_MODELS[1][1]
    run = live.kecam_run("cmt.CMTTiny_torch", tmp_path, input_shape=shape, probes=TORCH_PROBES,
                         pretrained=str(source), classifier_activation=None)  # fmt: skip
    ours = models.CMTTiny_torch(
        input_shape=shape, pretrained=str(source), resize=True, classifier_activation=None
    )
    assert sorted(ours.load_report.resized) == [f"stack{i}_pos_emb" for i in range(1, 5)]
    live.assert_live(ours, run, features=TORCH_PROBES[-1], label="CMTTiny_torch 131x97 from 160")


@pytest.mark.reference
@pytest.mark.slow
def test_cmt_tiny_at_160_matches_kecam(kecam_live, tmp_path):
    run = live.kecam_run("cmt.CMTTiny", tmp_path, input_shape=LIVE_MODELS[2][1], save="weights",
                         probes=PLAIN_PROBES, classifier_activation=None)  # fmt: skip
    ours = models.create_model("CMTTiny", pretrained=str(run.path), classifier_activation=None)
    live.assert_live(ours, run, features=PLAIN_PROBES[-1])
