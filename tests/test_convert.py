"""The Keras ``.h5`` reader, the loader's strictness and atomicity, the rules, and export."""

from __future__ import annotations

import json
import shutil
import struct

import h5py
import mlx.core as mx
import mlx.nn as nn
import numpy as np
import pytest
from cases import FIXTURES, cases
from helpers import assert_matches
from mlx.utils import tree_flatten
from parity import build_module, load_arrays

from mlx_attention import attention_layers, layers
from mlx_attention.convert import (
    KerasFileError,
    KerasH5,
    LoadReport,
    WeightMismatchError,
    export_safetensors,
    load_keras_weights,
    load_safetensors,
    read_keras_h5,
    safetensors_header,
)
from mlx_attention.convert.rules import RULES, depthwise_conv2d

CONV = next(c for c in cases("common") if c.id == "conv_same_s2")  # conv2d_no_bias, name "c_"
BN = next(c for c in cases("common") if c.id == "bn_hswish_eps")  # batchnorm, name "b_"


def snapshot(module) -> dict[str, np.ndarray]:
    return {k: np.array(v) for k, v in tree_flatten(module.parameters())}


def assert_unchanged(module, before) -> None:
    after = snapshot(module)
    assert after.keys() == before.keys()
    for key in before:
        np.testing.assert_array_equal(after[key], before[key])


def copy_fixture(case, tmp_path):
    path = tmp_path / "weights.h5"
    shutil.copy(case.weights_path, path)
    return path


# --- reading ------------------------------------------------------------------------------------


def test_read_keras_h5_lists_layers_in_order_with_weight_names():
    stored = read_keras_h5(BN.weights_path)
    names = [layer.name for layer in stored]
    assert names[0].startswith("input")
    assert "b_bn" in names and "b_hard_swish" in names
    bn = next(layer for layer in stored if layer.name == "b_bn")
    assert bn.short_names == ("gamma", "beta", "moving_mean", "moving_variance")
    assert [a.shape for a in bn.arrays] == [(8,)] * 4


def test_full_model_save_loads_like_save_weights():
    module = build_module(CONV)
    load_keras_weights(module, FIXTURES / "formats" / "full_model.h5")
    with np.load(FIXTURES / "formats" / "full_model.npz") as data:
        assert_matches(module(mx.array(data["input_0"])), data["output_0"])


def test_keras3_file_gets_an_error_that_says_how_to_resave():
    with pytest.raises(KerasFileError, match="Keras-3.*save_weights"):
        load_keras_weights(build_module(CONV), FIXTURES / "formats" / "keras3.weights.h5")


@pytest.mark.parametrize("keep", [0, 200, 2000])
def test_truncated_file_is_a_clear_error(tmp_path, keep):
    path = tmp_path / "cut.h5"
    path.write_bytes(CONV.weights_path.read_bytes()[:keep])
    module = build_module(CONV)
    before = snapshot(module)
    with pytest.raises(KerasFileError, match="corrupt or truncated"):
        load_keras_weights(module, path)
    assert_unchanged(module, before)


def test_missing_file_and_non_keras_hdf5(tmp_path):
    with pytest.raises(KerasFileError, match="no such file"):
        read_keras_h5(tmp_path / "absent.h5")
    with h5py.File(tmp_path / "plain.h5", "w") as f:
        f["x"] = np.zeros(3)
    with pytest.raises(KerasFileError, match="not a Keras weight file"):
        read_keras_h5(tmp_path / "plain.h5")


# --- strictness and atomicity -------------------------------------------------------------------


def test_missing_weight_names_the_layer_and_leaves_module_unchanged(tmp_path):
    path = copy_fixture(BN, tmp_path)
    with h5py.File(path, "a") as f:
        group = f["b_bn"]
        group.attrs["weight_names"] = list(group.attrs["weight_names"])[:3]
    module = build_module(BN)
    before = snapshot(module)
    with pytest.raises(WeightMismatchError, match=r"'b_bn' has 3 weights .* expected 4"):
        load_keras_weights(module, path)
    assert_unchanged(module, before)


def test_missing_layer_is_named(tmp_path):
    path = copy_fixture(CONV, tmp_path)
    with h5py.File(path, "a") as f:
        f.attrs["layer_names"] = [n for n in f.attrs["layer_names"] if n != "c_conv"]
    module = build_module(CONV)
    before = snapshot(module)
    with pytest.raises(WeightMismatchError, match=r"missing Keras layer 'c_conv' \(Conv2D\)"):
        load_keras_weights(module, path)
    assert_unchanged(module, before)


def test_unexpected_weight_is_named_unless_not_strict(tmp_path):
    path = copy_fixture(CONV, tmp_path)
    with h5py.File(path, "a") as f:
        # bytes, as older Keras versions wrote these attributes
        f.attrs["layer_names"] = [n.encode() for n in f.attrs["layer_names"]] + [b"c_extra"]
        group = f.create_group("c_extra")
        group["c_extra/kernel:0"] = np.ones(3, np.float32)
        group.attrs["weight_names"] = [b"c_extra/kernel:0"]
    module = build_module(CONV)
    before = snapshot(module)
    with pytest.raises(WeightMismatchError, match=r"unexpected Keras layer 'c_extra'"):
        load_keras_weights(module, path)
    assert_unchanged(module, before)
    load_keras_weights(module, path, strict=False)
    inputs, outputs = load_arrays(CONV)
    assert_matches(module(mx.array(inputs[0])), outputs[0])


def test_in_a_whole_model_file_the_models_own_layers_under_the_prefix_are_not_extras(tmp_path):
    """kecam models name some of their layers with a block's prefix (NAT's
    ``stack1_block1_attn_ln`` beside the attention block ``stack1_block1_attn_``)."""
    path = copy_fixture(CONV, tmp_path)
    with h5py.File(path, "a") as f:
        names = [n.encode() for n in f.attrs["layer_names"]] + [b"c_ln", b"stem_conv"]
        f.attrs["layer_names"] = names
        for layer in ("c_ln", "stem_conv"):
            group = f.create_group(layer)
            group[f"{layer}/gamma:0"] = np.ones(3, np.float32)
            group.attrs["weight_names"] = [f"{layer}/gamma:0".encode()]
    module = build_module(CONV)
    load_keras_weights(module, path)
    inputs, outputs = load_arrays(CONV)
    assert_matches(module(mx.array(inputs[0])), outputs[0])


def test_wrong_shape_names_weight_and_parameter(tmp_path):
    path = copy_fixture(BN, tmp_path)
    with h5py.File(path, "a") as f:
        del f["b_bn/b_bn/beta:0"]
        f["b_bn/b_bn/beta:0"] = np.zeros(5, np.float32)
    module = build_module(BN)
    before = snapshot(module)
    with pytest.raises(
        WeightMismatchError, match=r"'b_bn'/bias: shape \(5,\).*'bn.bias' has \(8,\)"
    ):
        load_keras_weights(module, path)
    assert_unchanged(module, before)


def test_constant_that_differs_from_kecams_is_rejected(tmp_path):
    case = next(c for c in cases("common") if c.id == "anti_alias_even")
    path = copy_fixture(case, tmp_path)
    with h5py.File(path, "a") as f:
        f["aa_anti_alias_down/aa_anti_alias_down/depthwise_kernel:0"][0, 0, 0, 0] = 9.0
    with pytest.raises(WeightMismatchError, match="constant that differs"):
        load_keras_weights(build_module(case), path)


def test_module_built_without_name_needs_a_prefix():
    module = attention_layers.conv2d_no_bias((8, 8, 4), 6, 3, 2, "same")
    with pytest.raises(ValueError, match="without name=.*prefix="):
        load_keras_weights(module, CONV.weights_path)
    load_keras_weights(module, CONV.weights_path, prefix="c_")
    inputs, outputs = load_arrays(CONV)
    assert_matches(module(mx.array(inputs[0])), outputs[0])


def test_a_block_loads_from_a_larger_model_under_its_prefix():
    """A file with other layers outside the module's name is fine: only its scope is strict."""
    module = attention_layers.activation_by_name((5, 7, 6), "prelu", name="act_")
    load_keras_weights(module, next(c for c in cases() if c.id == "act_prelu").weights_path)
    module = attention_layers.conv2d_no_bias((8, 8, 4), 6, 3, 2, "same", name="c_")
    load_keras_weights(module, FIXTURES / "formats" / "full_model.h5")


# --- rules: layouts from the declared type, never from a shape ----------------------------------


def test_rules_cover_every_loadable_kind():
    assert set(RULES) == set(layers.base.KERAS_KINDS) - {"Constant"}


def test_depthwise_rule_puts_multiplier_channels_in_grouped_order():
    conv = nn.Conv2d(2, 6, 1, groups=2, bias=False)
    kernel = np.arange(6, dtype=np.float32).reshape(1, 1, 2, 3)  # [kh, kw, C, M]
    weight = depthwise_conv2d(layers.KerasLayer("dw", "DepthwiseConv2D", conv), [kernel])["weight"]
    # Keras output channel c * M + m reads input channel c: MLX group c's outputs c*M .. c*M+M-1.
    np.testing.assert_array_equal(weight[:, 0, 0, 0], kernel[0, 0].reshape(-1))


def test_dense_rule_transposes_a_square_kernel():
    linear = nn.Linear(3, 3, bias=False)
    kernel = np.arange(9, dtype=np.float32).reshape(3, 3)
    weight = RULES["Dense"](layers.KerasLayer("d", "Dense", linear), [kernel])["weight"]
    np.testing.assert_array_equal(weight, kernel.T)


def test_conv1d_rule_puts_taps_second():
    conv = nn.Conv1d(2, 3, 4, bias=False)
    kernel = np.arange(24, dtype=np.float32).reshape(4, 2, 3)  # [k, C_in, C_out]
    weight = RULES["Conv1D"](layers.KerasLayer("c", "Conv1D", conv), [kernel])["weight"]
    np.testing.assert_array_equal(weight, kernel.transpose(2, 0, 1))  # [C_out, k, C_in]
    x = np.random.default_rng(0).standard_normal((1, 6, 2)).astype(np.float32)
    conv.weight = mx.array(weight)
    expected = sum(x[:, i : i + 3] @ kernel[i] for i in range(4))  # Keras VALID Conv1D
    np.testing.assert_allclose(np.asarray(conv(mx.array(x))), expected, rtol=1e-5, atol=1e-5)


def _keras_mha(query, value, kernels, biases, key_dim):
    """tf-keras MultiHeadAttention's own einsums (attention_axes=None, rank-3 inputs)."""

    def project(x, part, spec="abc,cde->abde"):
        return np.einsum(spec, x, kernels[part]) + biases.get(part, 0)

    q = project(query, "query") / np.sqrt(key_dim)  # Keras scales the query first
    k, v = project(value, "key"), project(value, "value")
    scores = np.einsum("aecd,abcd->acbe", k, q)
    scores = np.exp(scores - scores.max(-1, keepdims=True))
    scores /= scores.sum(-1, keepdims=True)
    mixed = np.einsum("acbe,aecd->abcd", scores, v)
    return project(mixed, "attention_output", "abcd,cde->abe")


@pytest.mark.parametrize("use_bias", [False, True])
def test_multi_head_attention_rule_loads_kerass_nested_group(tmp_path, use_bias):
    """Keras stores the four projections in one layer group (``mha/query/kernel:0``, ...):
    kernels [C, heads, width] and [heads, width, C]; every size distinct, so a swapped axis
    shows."""
    rng = np.random.default_rng(0)
    heads, key_dim, value_dim, out_dims, q_dims, v_dims = 2, 3, 4, 5, 6, 7
    kernels = {
        "query": rng.normal(size=(q_dims, heads, key_dim)),
        "key": rng.normal(size=(v_dims, heads, key_dim)),
        "value": rng.normal(size=(v_dims, heads, value_dim)),
        "attention_output": rng.normal(size=(heads, value_dim, out_dims)),
    }
    biases = {p: rng.normal(size=k.shape[1:] if p != "attention_output" else (out_dims,))
              for p, k in kernels.items()} if use_bias else {}  # fmt: skip
    weights = {}
    for part, kernel in kernels.items():  # tf-keras's order: each kernel, then its bias
        weights[f"{part}/kernel:0"] = kernel.astype(np.float32)
        if use_bias:
            weights[f"{part}/bias:0"] = biases[part].astype(np.float32)
    _write_keras(tmp_path / "mha.h5", {"mha": weights})
    module = layers.KerasMultiHeadAttention(
        q_dims, heads, key_dim, value_dim=value_dim, output_shape=out_dims, use_bias=use_bias,
        value_dims=v_dims, name="mha",
    )  # fmt: skip
    assert load_keras_weights(module, tmp_path / "mha.h5").ok
    query, value = rng.normal(size=(2, 3, q_dims)), rng.normal(size=(2, 4, v_dims))
    ours = module(mx.array(query.astype(np.float32)), mx.array(value.astype(np.float32)))
    expected = _keras_mha(query, value, kernels, biases, key_dim)
    np.testing.assert_allclose(np.asarray(ours), expected, rtol=1e-4, atol=1e-4)


def test_multi_head_attention_rule_refuses_other_heads_of_the_same_width(tmp_path):
    """[C, 3, 2] holds as many values as [C, 2, 3]: the heads decide, not the size."""
    kernels = {
        "query": (4, 3, 2),
        "key": (4, 3, 2),
        "value": (4, 3, 2),
        "attention_output": (3, 2, 4),
    }
    weights = {f"{p}/kernel:0": np.zeros(s, np.float32) for p, s in kernels.items()}
    _write_keras(tmp_path / "mha.h5", {"mha": weights})
    module = layers.KerasMultiHeadAttention(4, 2, 3, use_bias=False, name="mha")
    with pytest.raises(WeightMismatchError, match=r"query kernel \(4, 3, 2\).*\(2, 3\)"):
        load_keras_weights(module, tmp_path / "mha.h5")


def test_unknown_kind_is_refused():
    with pytest.raises(ValueError, match="unknown Keras layer kind"):
        layers.KerasLayer("x", "Conv3D", nn.Linear(2, 2))


# --- export -------------------------------------------------------------------------------------


def test_export_safetensors_round_trips_through_load_weights(tmp_path):
    module = build_module(BN)
    load_keras_weights(module, BN.weights_path)
    path = export_safetensors(module, tmp_path / "bn.safetensors")
    fresh = build_module(BN)
    fresh.load_weights(str(path))
    inputs, outputs = load_arrays(BN)
    assert_matches(fresh(mx.array(inputs[0])), outputs[0])
    with pytest.raises(ValueError, match="safetensors"):
        export_safetensors(module, tmp_path / "bn.npz")


def test_constant_buffers_are_not_exported(tmp_path):
    module = attention_layers.anti_alias_downsample((8, 8, 4), name="aa_")
    assert tree_flatten(module.parameters()) == []
    trainable = attention_layers.anti_alias_downsample((8, 8, 4), trainable=True, name="aa_")
    assert [k for k, _ in tree_flatten(trainable.parameters())] == ["weight"]


# --- the load report, strict=False, arguments ----------------------------------------------------

MHSA = next(c for c in cases("global") if c.id == "mhsa_square_bias")  # mhsa_qkv, mhsa_output
RESIZE = next(c for c in cases("positional") if c.id == "resize_rel")  # saved at 4x4, built 6x7


def rename_layer(path, old: str, new: str) -> None:
    with h5py.File(path, "a") as f:
        f.attrs["layer_names"] = [new if n == old else n for n in f.attrs["layer_names"]]
        f.move(old, new)


def test_report_lists_what_loaded(tmp_path):
    report = load_keras_weights(build_module(MHSA), MHSA.weights_path)
    assert isinstance(report, LoadReport) and report.ok
    assert report.loaded == ("mhsa_qkv", "mhsa_output")
    assert report.missing == report.unexpected == report.mismatched == report.resized == ()
    assert "loaded 2, no problems" in str(report)


def test_not_strict_skips_every_problem_kind_reports_and_logs_it(tmp_path, caplog):
    path = copy_fixture(MHSA, tmp_path)
    rename_layer(path, "mhsa_qkv", "mhsa_qkv_old")  # missing + unexpected
    with h5py.File(path, "a") as f:
        del f["mhsa_output/mhsa_output/bias:0"]
        f["mhsa_output/mhsa_output/bias:0"] = np.zeros(5, np.float32)  # mismatched
    module = build_module(MHSA)
    before = snapshot(module)
    with pytest.raises(WeightMismatchError) as err:
        load_keras_weights(module, path)
    assert err.value.report.missing == ("mhsa_qkv",)
    assert_unchanged(module, before)
    with caplog.at_level("WARNING", logger="mlx_attention.convert"):
        report = load_keras_weights(module, path, strict=False)
    assert not report.ok and report.loaded == ()
    assert report.missing == ("mhsa_qkv",)
    assert report.unexpected == ("mhsa_qkv_old",)
    assert [name for name, _ in report.mismatched] == ["mhsa_output"]
    assert "(5,)" in report.mismatched[0][1]
    assert_unchanged(module, before)  # the mis-shaped layer is skipped whole
    assert "missing: mhsa_qkv" in caplog.text and "mismatched: mhsa_output" in caplog.text


def test_strict_error_loads_nothing_when_one_layer_of_several_is_wrong(tmp_path):
    path = copy_fixture(MHSA, tmp_path)
    with h5py.File(path, "a") as f:
        del f["mhsa_output/mhsa_output/kernel:0"]
        f["mhsa_output/mhsa_output/kernel:0"] = np.zeros((16, 15), np.float32)
    module = build_module(MHSA)
    before = snapshot(module)
    with pytest.raises(WeightMismatchError, match=r"'mhsa_output'/weight: shape \(15, 16\)") as err:
        load_keras_weights(module, path)
    assert "not filled" not in str(err.value)  # the shape error says it all
    assert_unchanged(module, before)


def test_missing_layer_suggests_the_close_name(tmp_path):
    path = copy_fixture(MHSA, tmp_path)
    rename_layer(path, "mhsa_qkv", "mhsa_qkv_")
    with pytest.raises(
        WeightMismatchError, match=r"missing .*'mhsa_qkv'.*did you mean 'mhsa_qkv_'"
    ):
        load_keras_weights(build_module(MHSA), path)


def test_wrong_name_is_an_error_even_when_not_strict():
    module = attention_layers.multi_head_self_attention((4, 4, 16), num_heads=2, name="attn_")
    for strict in (True, False):
        with pytest.raises(
            WeightMismatchError, match="no Keras layer of the module.*prefix 'mhsa_'"
        ):
            load_keras_weights(module, MHSA.weights_path, strict=strict)


def test_table_of_another_size_says_resize_loads_it():
    with pytest.raises(WeightMismatchError, match="resize=True loads it"):
        load_keras_weights(build_module(RESIZE), RESIZE.weights_path)
    report = load_keras_weights(build_module(RESIZE), RESIZE.weights_path, resize=True)
    assert report.resized == ("pe",) and report.ok
    # a table larger than the module's (saved at 4x4, built at 3x3) is refused unconverted: the
    # message says the same
    smaller = attention_layers.RelativePositionalEmbedding(input_shape=(2, 3, 3, 8), name="pe")
    with pytest.raises(WeightMismatchError, match="more values.*resize=True loads it"):
        load_keras_weights(smaller, RESIZE.weights_path)
    assert load_keras_weights(smaller, RESIZE.weights_path, resize=True).resized == ("pe",)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(prefix=123), TypeError, "prefix"),
        (dict(resize="bogus"), ValueError, "resize='bogus'"),
        (dict(resize=1), ValueError, "resize=1"),
        (dict(strict="yes"), TypeError, "strict"),
    ],
)
def test_bad_arguments_are_refused_at_once(kwargs, error, match):
    with pytest.raises(error, match=match):
        load_keras_weights(build_module(CONV), CONV.weights_path, **kwargs)


def test_h5layer_repr_shows_names_and_shapes_not_numbers():
    layer = next(x for x in read_keras_h5(BN.weights_path) if x.name == "b_bn")
    assert repr(layer) == "H5Layer('b_bn', {gamma: (8,), beta: (8,), moving_mean: (8,), " + (
        "moving_variance: (8,)})"
    )


def test_keras_h5_reads_metadata_then_data_on_demand():
    with KerasH5(BN.weights_path) as f:
        bn = f["b_bn"]
        assert "b_bn" in f.layer_names and bn.shapes == ((8,),) * 4
        assert bn.short_names == ("gamma", "beta", "moving_mean", "moving_variance")
        eager = next(x for x in read_keras_h5(BN.weights_path) if x.name == "b_bn")
        np.testing.assert_array_equal(f.read("b_bn", "b_bn/beta:0"), eager.arrays[1])


# --- modules shared by identity -------------------------------------------------------------------


class _Block(layers.KerasModule):
    def __init__(self, shared, name):
        super().__init__(name)
        self.bias = shared
        self.proj = nn.Linear(4, 4)

    def keras_layers(self):
        return (layers.KerasLayer(self.sub("proj"), "Dense", self.proj),)


class _Stage(layers.KerasModule):
    def __init__(self):
        super().__init__(None)
        shared = attention_layers.BiasLayer(input_shape=(3, 4), name="stage1_bias")
        self.blocks = [_Block(shared, "b1_"), _Block(shared, "b2_")]


def _write_keras(path, layers_: dict[str, dict[str, np.ndarray]]) -> None:
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = [name.encode() for name in layers_]
        for name, weights in layers_.items():
            group = f.create_group(name)
            group.attrs["weight_names"] = [f"{name}/{w}".encode() for w in weights]
            for w, value in weights.items():
                group[f"{name}/{w}"] = value


def test_a_shared_module_loads_and_exports_once(tmp_path):
    rng = np.random.default_rng(0)
    stored = {
        "b1_proj": {"kernel:0": rng.normal(size=(4, 4)), "bias:0": rng.normal(size=4)},
        "b2_proj": {"kernel:0": rng.normal(size=(4, 4)), "bias:0": rng.normal(size=4)},
        "stage1_bias": {"bias:0": rng.normal(size=4)},
    }
    _write_keras(tmp_path / "stage.h5", stored)
    stage = _Stage()
    report = load_keras_weights(stage, tmp_path / "stage.h5", prefix="")
    assert report.ok and sorted(report.loaded) == sorted(stored)
    assert stage.blocks[0].bias is stage.blocks[1].bias
    np.testing.assert_allclose(np.array(stage.blocks[1].bias.bias), stored["stage1_bias"]["bias:0"])
    path = export_safetensors(stage, tmp_path / "stage.safetensors", metadata={"model": "toy"})
    tensors, metadata = safetensors_header(path)
    assert metadata == {"model": "toy"}
    assert "blocks.0.bias.bias" in tensors and "blocks.1.bias.bias" not in tensors
    fresh = _Stage()
    assert load_safetensors(fresh, path).ok
    for key, value in snapshot(stage).items():
        np.testing.assert_array_equal(snapshot(fresh)[key], value)


# --- safetensors --------------------------------------------------------------------------------


def test_load_safetensors_checks_names_and_shapes_first(tmp_path):
    module = build_module(BN)
    load_keras_weights(module, BN.weights_path)
    good = export_safetensors(module, tmp_path / "bn.safetensors")
    fresh = build_module(BN)
    report = load_safetensors(fresh, good)
    assert report.ok and set(report.loaded) == set(snapshot(module))
    inputs, outputs = load_arrays(BN)
    assert_matches(fresh(mx.array(inputs[0])), outputs[0])

    arrays = dict(tree_flatten(module.parameters()))
    arrays["bn.bias"] = mx.zeros(5)  # mis-shaped
    arrays["extra"] = mx.zeros(2)  # unexpected
    del arrays["bn.weight"]  # missing
    bad = tmp_path / "bad.safetensors"
    mx.save_safetensors(str(bad), arrays)
    target = build_module(BN)
    before = snapshot(target)
    with pytest.raises(WeightMismatchError, match="missing tensor 'bn.weight'.*'extra'.*bn.bias"):
        load_safetensors(target, bad)
    assert_unchanged(target, before)
    report = load_safetensors(target, bad, strict=False)
    assert report.missing == ("bn.weight",) and report.unexpected == ("extra",)
    assert [name for name, _ in report.mismatched] == ["bn.bias"]
    assert "bn.running_mean" in report.loaded


def test_load_safetensors_refuses_malformed_headers(tmp_path):
    path = tmp_path / "x.safetensors"
    for content, match in [
        (b"\x01", "shorter than"),
        (struct.pack("<Q", 10**12) + b"{}", "claims"),
        (struct.pack("<Q", 2) + b"[]", "not a JSON object"),
    ]:
        path.write_bytes(content)
        with pytest.raises(KerasFileError, match=match):
            load_safetensors(build_module(BN), path)
    header = json.dumps({"bn.bias": {"dtype": "I32", "shape": [8], "data_offsets": [0, 32]}})
    path.write_bytes(struct.pack("<Q", len(header)) + header.encode() + bytes(32))
    with pytest.raises(KerasFileError, match="I32 data"):
        load_safetensors(build_module(BN), path)


def test_export_into_a_missing_directory_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="directory .*absent.* does not exist"):
        export_safetensors(build_module(BN), tmp_path / "absent" / "bn.safetensors")
    with pytest.raises(TypeError, match="metadata"):
        export_safetensors(build_module(BN), tmp_path / "bn.safetensors", metadata={"a": 1})


def test_find_blocks_groups_layer_names_by_declared_suffixes():
    from mlx_attention.convert.blocks import find_blocks

    suffixes = {
        "neighborhood_attention": {"qkv": "Dense", "output": "Dense", "pos": "Weights"},
        "multi_head_self_attention": {"qkv": "Dense", "output": "Dense"},
    }
    names = [
        "stem_conv",
        "stack1_block1_attn_qkv",
        "stack1_block1_attn_pos",
        "stack1_block1_attn_output",
        "stack1_block1_attn_ln",
        "stack2_block1_mhsa_qkv",
        "stack2_block1_mhsa_output",
        "stack3_only_qkv",  # one suffix is not a block
    ]
    found = find_blocks(names, suffixes)
    assert [(b.prefix, b.blocks) for b in found] == [
        ("stack1_block1_attn_", ("neighborhood_attention",)),
        ("stack2_block1_mhsa_", ("multi_head_self_attention",)),  # all of its suffixes
    ]
    assert found[0].layers == (("output", "Dense"), ("pos", "Weights"), ("qkv", "Dense"))
