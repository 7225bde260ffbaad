"""The Keras ``.h5`` reader, the loader's strictness and atomicity, the rules, and export."""

from __future__ import annotations

import shutil

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
    WeightMismatchError,
    export_safetensors,
    load_keras_weights,
    read_keras_h5,
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
