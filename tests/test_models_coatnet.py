"""CoAtNet (kecam ``coatnet.CoAtNet``) against kecam's own numbers.

Default run (test_models.py already compares every fixture, kernels off and emulated): what the
committed reduced fixtures (``tests/fixtures/models/coatnet_*``, made by
``tools/make_model_fixtures.py``: kecam's ``coatnet.CoAtNet`` with every variable re-randomised)
cover; the attention heads kecam derives from the channels; ``pretrained`` through ``**kwargs``
(kecam's CoAtNetT and CoAtNet1-7 have no such argument); the positional tables resized on load;
the strict error for a file of another configuration; the builder's required arguments.
``reference`` (TensorFlow and kecam 1.4.3): the real CoAtNet0 at 224 and at a non-square odd
size, live, and the resize on load against kecam's own loader.
"""

from __future__ import annotations

import inspect

import mlx.core as mx
import numpy as np
import pytest
from cases import signature_rows
from helpers import assert_matches, max_error
from test_models import FIXTURES, INDEX, KECAM, expected_signature

from mlx_attention import models
from mlx_attention.convert import KerasFileError, WeightMismatchError
from mlx_attention.layers import CoAtNetAttention

CASES = sorted(c for c, e in INDEX.items() if e["builder"] == "coatnet.CoAtNet")
RESIZE_CASE = "coatnet_25x37"


def test_fixtures_cover_both_layouts_and_options():
    assert {INDEX[c]["save"] for c in CASES} == {"model", "weights"}
    options = {k: v for c in CASES for k, v in INDEX[c]["kwargs"].items()}
    assert options["bn_act_first"] is True and options["use_dw_strides"] is False
    total = sum(p.stat().st_size for p in FIXTURES.glob("coatnet_*"))
    assert total <= 350 * 2**10, f"CoAtNet fixtures take {total / 2**10:.0f} kB"


def test_family_builder_signature_is_kecams():
    assert signature_rows(models.coatnet.CoAtNet) == expected_signature(
        KECAM["builders"]["coatnet.CoAtNet"]["params"]
    )


def _attentions(model) -> list[CoAtNetAttention]:
    return [m.attn for m in model.layers if isinstance(m, models.coatnet.MHSABlock)]


@pytest.mark.parametrize(
    "name, shape, heads, grids",
    [
        # heads = the block's input channels // head_dimension (32; 64 for CoAtNet5)
        ("CoAtNet0", (224, 224, 3), [6] + [12] * 4 + [12, 24], [(14, 14)] * 5 + [(7, 7)] * 2),
        ("CoAtNet0", (161, 193, 3), [6] + [12] * 4 + [12, 24], [(11, 13)] * 5 + [(6, 7)] * 2),
        ("CoAtNet5", (64, 64, 3), [8] + [20] * 27 + [20, 32], [(4, 4)] * 28 + [(2, 2)] * 2),
    ],
)
def test_heads_and_tables_follow_kecam(name, shape, heads, grids):
    attentions = _attentions(models.create_model(name, input_shape=shape))
    assert [a.num_heads for a in attentions] == heads
    assert [(a.pos_emb.height, a.pos_emb.width) for a in attentions] == grids


def test_coatnet6_has_an_unstrided_transformer_stage():
    """CoAtNet6/7: stage 4 (kecam's "transfrom") at stride 1 keeps the 4x4 map of 64x64 and
    pools nothing; stage 5 pools to 2x2."""
    model = models.CoAtNet6(input_shape=(64, 64, 3))
    blocks = [m for m in model.layers if isinstance(m, models.coatnet.MHSABlock)]
    assert len(blocks) == 44 and blocks[0].pool is None and blocks[0].shortcut.pool is None
    assert blocks[0].shortcut.conv is not None and blocks[42].pool is not None
    assert model.forward_features(mx.zeros((1, 64, 64, 3))).shape == (1, 2, 2, 2048)


def test_head_dimension_above_the_channels_is_refused():
    with pytest.raises(ValueError, match=r"head_dimension=32 is larger than the 16 input"):
        models.coatnet.CoAtNet([1, 1], [16, 16], stem_width=8, block_types=["c", "t"])


def test_pretrained_reaches_the_builder_through_kwargs():
    """kecam's CoAtNetT and CoAtNet1-7 take no ``pretrained`` argument: their ``**kwargs`` pass
    it on to ``CoAtNet``, and so do ours; CoAtNet0 has its own (default None here)."""
    assert "pretrained" not in inspect.signature(models.CoAtNet1).parameters
    assert inspect.signature(models.CoAtNet0).parameters["pretrained"].default is None
    with pytest.raises(KerasFileError, match="missing.h5: no such file"):
        models.CoAtNet1(input_shape=(64, 64, 3), pretrained="missing.h5")
    with pytest.raises(ValueError, match="coatnet1"):  # kecam has no release file of it
        models.create_model("CoAtNet1", pretrained="imagenet", input_shape=(64, 64, 3))


def test_release_files_are_kecams_by_resolution():
    tags = models.CoAtNet0().pretrained_cfg["tags"]
    assert tags["imagenet"]["resolutions"] == [160, 224]
    assert tags["imagenet"]["files"] == ["coatnet0_160_imagenet.h5", "coatnet0_224_imagenet.h5"]
    assert models.CoAtNetT().pretrained_cfg["tags"] == {}


def test_tables_resize_on_load():
    """A file of another input size: refused unless resize=True, which resizes each
    attention's relative table (kecam's mismatch_class) and nothing else."""
    entry = INDEX[RESIZE_CASE]
    path = str(FIXTURES / entry["weights"])
    other = {**entry["kwargs"], "input_shape": [31, 45, 3]}
    with pytest.raises(WeightMismatchError, match="resize=True"):
        models.coatnet.CoAtNet(**other, pretrained=path)
    model = models.coatnet.CoAtNet(**other, pretrained=path, resize=True)
    assert model.load_report.resized == ("stack_2_block_1_mhsa_pos_emb",)
    assert model(mx.zeros((1, 31, 45, 3))).shape == (1, 10)


def test_a_file_of_another_configuration_is_refused():
    entry = INDEX[RESIZE_CASE]
    deeper = {**entry["kwargs"], "num_blocks": [1, 2]}
    with pytest.raises(WeightMismatchError, match="stack_2_block_2_"):
        models.coatnet.CoAtNet(**deeper, pretrained=str(FIXTURES / entry["weights"]))


def test_the_builder_needs_kecams_required_arguments():
    """kecam's CoAtNet has no defaults for num_blocks and out_channels: without a converted
    file that holds them, the builder asks for them."""
    with pytest.raises(TypeError, match=r"missing required arguments: \['num_blocks', 'out_c"):
        models.create_model("coatnet.CoAtNet", input_shape=(32, 32, 3))


# --- reference: the real CoAtNet0, live --------------------------------------------------------

LIVE = [((224, 224, 3), "model"), ((161, 193, 3), "weights")]
LIVE_MODELS = [("CoAtNet0", shape) for shape, _ in LIVE]  # docs/models.md's "live at"
PROBES = [
    "stem_1_gelu", "stem_2_conv", "stack_1_block_2_output", "stack_2_block_3_output",
    "stack_3_block_1_output", "stack_3_block_5_ffn_output", "stack_4_block_2_ffn_output",
]  # fmt: skip


@pytest.mark.reference
@pytest.mark.slow
@pytest.mark.parametrize("shape, save", LIVE, ids=[f"{s[0]}x{s[1]}" for s, _ in LIVE])
def test_real_coatnet0_matches_kecam(kecam_live, tmp_path, shape, save):
    import live

    run = live.kecam_run(
        "coatnet.CoAtNet0", tmp_path, input_shape=shape, save=save, probes=PROBES,
        classifier_activation=None,
    )  # fmt: skip
    model = models.create_model(
        "CoAtNet0", pretrained=str(run.path), input_shape=shape, classifier_activation=None
    )
    live.assert_live(model, run, features=PROBES[-1], label=f"CoAtNet0 {shape}")


# Builder options no committed fixture holds, live against kecam's coatnet.CoAtNet
OPTIONS = {
    # transformer stages only, an int stride, expansion 3; TF-SAME pools on 19x15 and 10x8
    "transformers_37x29": ((37, 29, 3), "model", {
        "num_blocks": [1, 2], "out_channels": [16, 32], "stem_width": 16,
        "block_types": ["transform", "t"], "strides": 2, "expansion": 3, "head_dimension": 8,
    }),
    # MBConv only: a stride-1 first stage (conv shortcut without pool), identity blocks with SE,
    # the stride on the expand conv, relu
    "mbconv_23x31": ((23, 31, 3), "weights", {
        "num_blocks": [2, 2], "out_channels": [16, 24], "stem_width": 8,
        "block_types": ["conv", "c"], "strides": [1, 2], "use_dw_strides": False,
        "activation": "relu",
    }),
}  # fmt: skip


@pytest.mark.reference
@pytest.mark.slow
@pytest.mark.parametrize("option", sorted(OPTIONS))
def test_builder_options_match_kecam(kecam_live, tmp_path, option):
    import live

    shape, save, kwargs = OPTIONS[option]
    suffix = {"c": "output", "t": "ffn_output"}
    probes = [
        "stem_2_conv",
        *(f"stack_{i + 1}_block_{n}_" + suffix[kind[0]]
          for i, (n, kind) in enumerate(zip(kwargs["num_blocks"], kwargs["block_types"]))),
    ]  # fmt: skip
    run = live.kecam_run(
        "coatnet.CoAtNet", tmp_path, input_shape=shape, save=save, probes=probes,
        num_classes=10, classifier_activation=None, **kwargs,
    )  # fmt: skip
    model = models.coatnet.CoAtNet(
        **kwargs, input_shape=shape, num_classes=10, classifier_activation=None,
        pretrained=str(run.path),
    )  # fmt: skip
    live.assert_live(model, run, features=probes[-1], label=option)


@pytest.mark.reference
def test_pretrained_dict_is_kecams(kecam_live):
    from keras_cv_attention_models.coatnet import coatnet

    assert models.coatnet.PRETRAINED_DICT == coatnet.PRETRAINED_DICT


@pytest.mark.reference
@pytest.mark.slow
@pytest.mark.parametrize(
    "case, shape",
    [
        (RESIZE_CASE, (31, 45, 3)),  # a 4x5 table to 4x6: kecam reads a square 7x7 of its 7x9
        ("coatnet_33x27_act_first", (45, 33, 3)),  # 3x3 to 4x3
    ],
)
def test_resize_on_load_matches_kecams_loader(kecam_live, case, shape):
    """A fixture file into another input size: ours with resize=True against kecam's
    load_weights_with_mismatch (CoAtNet's mismatch_class, MultiHeadRelativePositionalEmbedding)."""
    import live

    tf, _, _ = kecam_live
    from keras_cv_attention_models import download_and_load
    from keras_cv_attention_models.coatnet import coatnet

    entry = INDEX[case]
    kwargs = {**entry["kwargs"], "input_shape": list(shape)}
    path = str(FIXTURES / entry["weights"])
    kecam = coatnet.CoAtNet(**kwargs, pretrained=None, classifier_activation=None)
    download_and_load.load_weights_with_mismatch(
        kecam, path, coatnet.MultiHeadRelativePositionalEmbedding, force_reload_mismatch=True
    )
    ours = models.coatnet.CoAtNet(
        **kwargs, pretrained=path, resize=True, classifier_activation=None
    )
    x = live.fixture_tool().make_inputs(shape, np.random.default_rng(0))
    theirs = np.asarray(kecam(x, training=False))
    tf.keras.backend.clear_session()
    logits = ours(mx.array(x))
    print(f"\n{case} resized to {shape}: logits {max_error(logits, theirs):.2g}")
    assert_matches(logits, theirs)
