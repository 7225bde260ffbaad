"""The AotNet template and its families (BoTNet, HaloNet, CotNet, ResNeSt).

Default run: the committed reduced fixtures (``aotnet_*``, kecam's ``aotnet.AotNet``) are
compared by ``tests/test_models.py`` with kernels off and emulated; here: the strict error for
a file of another configuration, the relative-embedding resize (``resize=True``), the halo
``gap_pad`` and the stem's zero padding, and the constructors' arguments as kecam's.
``reference``: real named models (BotNet26T, HaloNet26T, CotNet50, ResNest50, each at its
default size and at a non-square or odd one) built, re-randomised and saved by kecam 1.4.3
(``tests/live.py``), kecam's own resize on load, and the template's unused options.
"""

from __future__ import annotations

import json
from pathlib import Path

import live
import mlx.core as mx
import pytest

from mlx_attention import models
from mlx_attention.convert import WeightMismatchError
from mlx_attention.models import aotnet

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "models"
INDEX = json.loads((FIXTURES / "index.json").read_text())
AOT_CASES = sorted(c for c in INDEX if c.startswith("aotnet_"))


def _fixture(case: str, **overrides):
    entry = INDEX[case]
    kwargs = {**entry["kwargs"], **overrides}
    return entry, kwargs, str(FIXTURES / entry["weights"])


def test_the_fixtures_cover_every_attention_type_and_shortcut():
    kinds = set()
    for case in AOT_CASES:
        kw = INDEX[case]["kwargs"]
        types = kw.get("attn_types")
        kinds |= set(types if isinstance(types, list) else [types])
        kinds.add(("shortcut", kw.get("shortcut_type", "conv")))
        kinds.add(("stem", kw.get("stem_type")))
    assert {None, "bot", "halo", "sa", "cot", ("shortcut", "avg"), ("shortcut", "conv")} <= kinds
    assert {("stem", "tiered"), ("stem", "deep"), ("stem", "kernel_3x3")} <= kinds


def test_a_file_of_another_configuration_raises_naming_the_layers():
    entry, kwargs, path = _fixture("aotnet_bot_29x45")
    with pytest.raises(WeightMismatchError, match="stack3_block2_"):
        models.create_model(entry["builder"], **{**kwargs, "num_blocks": [1, 1, 2]},
                            pretrained=path)  # fmt: skip
    with pytest.raises(WeightMismatchError, match="eca_conv1d"):
        models.create_model(entry["builder"], **{**kwargs, "use_eca": False}, pretrained=path)


def test_relative_embeddings_resize_on_load():
    """The bot block's tables depend on the map (4x6 at 29x45): another input size (6x8 at
    48x64) loads only with ``resize=True`` (kecam's mismatch_class), and then runs."""
    entry, kwargs, path = _fixture("aotnet_bot_29x45", input_shape=[48, 64, 3])
    with pytest.raises(WeightMismatchError, match="resize=True"):
        models.create_model(entry["builder"], **kwargs, pretrained=path)
    model = models.create_model(entry["builder"], **kwargs, pretrained=path, resize=True)
    assert model(mx.zeros((1, 48, 64, 3))).shape == (1, 10)


def test_halo_gap_pad_pads_a_whole_block_on_the_axis_that_divides():
    """kecam's ``gap_pad`` computes ``block - size % block`` on both axes once one does not
    divide: 8x11 with blocks of 4 is padded to 12x12 (2 + 2 rows, 0 + 1 columns)."""
    entry, kwargs, _ = _fixture("aotnet_halo_15x21")
    model = models.create_model(entry["builder"], **kwargs)
    block = model.layers[2]  # stem, stack1, stack2's halo block
    assert block.gap_pad is not None and block.gap_pad.padding == ((2, 2), (0, 1))


def test_stem_pool_pads_with_zeros():
    """After a swish the stem's map is negative near zero: kecam pads with zeros before its
    VALID max pool, so a constant negative map pools to 0 at the border."""
    stem = aotnet.AotStem(
        (8, 8, 3), 8, "kernel_3x3", activation="swish", bn_params={"epsilon": 1e-5}
    )
    pool = stem.parts[-1]
    out = pool(stem.parts[-2](-mx.ones((1, 4, 4, 8))))
    assert float(out.max()) == 0.0


@pytest.mark.parametrize(
    "name, args",
    [
        ("BotNet50", {"strides": 1}),
        ("ResNest50", {"groups": 2}),
        ("HaloNetH0", {}),
        ("CotNetSE152D", {}),
    ],
)
def test_constructor_arguments(name, args):
    import inspect

    params = inspect.signature(getattr(models, name)).parameters
    for key, default in args.items():
        assert params[key].default == default
    assert params["pretrained"].default is None


def test_branches_of_different_shapes_are_refused():
    # a 3x3 deep branch keeps its hidden width: kecam's Add cannot build 16 + 4 channels
    with pytest.raises(ValueError, match=r"stack1_block1_add: the shortcut gives \(8, 8, 16\)"):
        aotnet.AotNet(num_blocks=[1], out_channels=[16], strides=[1], use_3x3_kernel=True,
                      input_shape=(32, 32, 3))  # fmt: skip


def test_constructors_refuse_their_own_settings():
    with pytest.raises(TypeError, match="multiple values for keyword argument 'attn_types'"):
        models.BotNet26T(attn_types="bot")


# --- reference: real named models against kecam, live ------------------------------------------


def pooled(model) -> str:
    """The kecam layer whose output the head pools: ``forward_features``."""
    return model.get_layer("avg_pool").input._keras_history.layer.name


def aot_probes(model) -> list[str]:
    """Each stage's first block output, and the pooled features."""
    blocks = [layer.name for layer in model.layers if layer.name.endswith("_block1_output")]
    return [*blocks, pooled(model)]


def kecam_real(folder: Path, name: str, shape, save: str = "model", **kwargs) -> live.KecamRun:
    """kecam's ``name`` (by its module, as ours registers it) live, at ``aot_probes``."""
    builder = f"{models.get_entry(name).family.module}.{name}"
    return live.kecam_run(builder, folder, input_shape=shape, save=save, probes=aot_probes,
                          classifier_activation=None, **kwargs)  # fmt: skip


REAL = [
    ("BotNet26T", (256, 256, 3), "model"),
    ("BotNet26T", (160, 224, 3), "weights"),
    ("HaloNet26T", (256, 256, 3), "model"),
    ("HaloNet26T", (97, 131, 3), "weights"),
    ("CotNet50", (224, 224, 3), "weights"),
    ("CotNet50", (131, 97, 3), "model"),
    ("ResNest50", (224, 224, 3), "model"),
    ("ResNest50", (97, 131, 3), "weights"),
]
LIVE_MODELS = [(name, shape) for name, shape, _ in REAL]  # docs/models.md's "live at"


@pytest.mark.reference
@pytest.mark.slow
@pytest.mark.parametrize("name, shape, save", REAL, ids=[f"{n}-{s[0]}x{s[1]}" for n, s, _ in REAL])
def test_real_model_matches_kecam(kecam_live, tmp_path, name, shape, save):
    run = kecam_real(tmp_path, name, shape, save)
    model = models.create_model(name, pretrained=str(run.path), input_shape=shape,
                                classifier_activation=None)  # fmt: skip
    live.assert_live(model, run, features=run.probes[-1])


@pytest.mark.reference
@pytest.mark.slow
def test_resize_on_load_matches_kecams(kecam_live, tmp_path):
    """A BotNet26T file of 128x128 into a 160x192 model: kecam's reload resizes the relative
    embeddings (RelativePositionalEmbedding.load_resized_weights, bilinear); ours with
    ``resize=True`` gives the same outputs."""
    source = kecam_real(tmp_path, "BotNet26T", (128, 128, 3)).path
    shape = (160, 192, 3)
    run = kecam_real(tmp_path, "BotNet26T", shape, pretrained=str(source))
    model = models.BotNet26T(input_shape=shape, pretrained=str(source), resize=True,
                             classifier_activation=None)  # fmt: skip
    assert model.load_report.resized
    live.assert_live(model, run, features=run.probes[-1])


# The template's options none of the registered constructors uses, live against kecam's own
# aotnet.AotNet: preact (ResNetV2: post_ BN, strides on the last block), the quad and deep2
# stems, the anti-alias shortcut, 3x3 deep convs, a 7x7 stem with its pool on odd sizes.
TEMPLATE = {
    "preact_quad_anti_alias": {
        "num_blocks": [2, 1], "out_channels": [16, 24], "strides": [2, 2], "stem_width": 16,
        "stem_type": "quad", "quad_stem_act": True, "preact": True, "strides_first": False,
        "shortcut_type": "anti_alias", "input_shape": (33, 41, 3),
    },
    "deep2_3x3_kernel": {
        "num_blocks": [1, 1], "out_channels": [16, 16], "strides": [1, 2], "stem_width": 8,
        "stem_type": "deep2", "use_3x3_kernel": True, "stem_last_strides": 2,
        "hidden_channel_ratio": 1,
        "activation": "swish", "input_shape": (37, 29, 3),
    },
    "resnet_7x7_odd": {
        "num_blocks": [1, 1], "out_channels": [16, 32], "stem_width": 8, "dropout": 0.1,
        "output_num_features": 12, "input_shape": (35, 45, 3),
    },
}  # fmt: skip


@pytest.mark.reference
@pytest.mark.parametrize("case", sorted(TEMPLATE))
def test_template_options_match_kecam(kecam_live, tmp_path, case):
    kwargs = {**TEMPLATE[case], "num_classes": 10, "classifier_activation": None}
    run = live.kecam_run("aotnet.AotNet", tmp_path, save="weights", probes=lambda m: [pooled(m)],
                         **kwargs)  # fmt: skip
    model = models.create_model("aotnet.AotNet", **kwargs, pretrained=str(run.path))
    live.assert_live(model, run, features=run.probes[-1], label=case)
