"""Positional layers beyond the parity fixtures: the seed example, constant buffers, resizing
through the native API, kecam 1.3.1 swin v2 names, invalid shapes, compile and grad."""

from __future__ import annotations

import h5py
import mlx.core as mx
import numpy as np
import pytest
from cases import POSITIONAL, POSITIONAL_131
from helpers import assert_matches
from mlx.utils import tree_flatten
from parity import build_module, load_arrays

from mlx_attention import attention_layers
from mlx_attention.convert import WeightMismatchError, load_keras_weights, read_keras_h5
from mlx_attention.layers import positional

ALL = POSITIONAL + POSITIONAL_131
RESIZE = [c for c in POSITIONAL if c.resize_from]
PLAIN = [c for c in ALL if not c.resize_from]


def test_seed_example():
    pos = attention_layers.RelativePositionalEmbedding(input_shape=(4, 14, 16, 256))
    assert pos(mx.ones([1, 4, 14, 16, 256])).shape == (1, 4, 14, 16, 14, 16)


@pytest.mark.parametrize("case", PLAIN, ids=lambda c: c.id)
def test_parameters_are_exactly_the_saved_weights(case):
    """Index tables and sin/cos buffers exist at construction and are not parameters."""
    module = build_module(case)
    params = dict(tree_flatten(module.parameters()))
    assert not any(k.startswith("_") or "._" in k for k in params)
    stored = sum(a.size for layer in read_keras_h5(case.weights_path) for a in layer.arrays)
    assert sum(v.size for v in params.values()) == stored
    buffers = [k for k, v in module.items() if k.startswith("_") and isinstance(v, mx.array)]
    plain = ("BiasPositionalEmbedding", "PositionalEmbedding", "ConvPositionalEncoding")
    if case.kecam not in plain and "Conv" not in case.kecam and case.id != "rel_absolute":
        assert buffers, f"{case.kecam} should hold its constant tables as _ attributes"


def _h5_arrays(path, name) -> dict[str, np.ndarray]:
    """kecam's ``load_weights_with_mismatch`` dict: ``{variable name: array}`` of one layer."""
    with h5py.File(path, "r") as f:
        group = f[name]
        return {
            (w.decode() if isinstance(w, bytes) else w).split("/")[-1]: np.array(group[w])
            for w in group.attrs["weight_names"]
        }


@pytest.mark.parametrize("case", RESIZE, ids=lambda c: c.id)
def test_native_load_resized_weights(case):
    inputs, expected = load_arrays(case)
    module = build_module(case)
    source = _h5_arrays(case.weights_path, case.kwargs["name"])
    method = {"method": case.resize_method} if case.resize_method else {}
    module.load_resized_weights(source, **method)
    assert_matches(module(mx.array(inputs[0])), expected[0])


def test_resized_table_needs_resize_flag():
    case = next(c for c in RESIZE if c.id == "resize_rel")
    with pytest.raises(WeightMismatchError, match="shape"):
        load_keras_weights(build_module(case), case.weights_path)


def test_resize_from_a_module_and_bad_method():
    small = positional.MultiHeadPositionalEmbedding(2, 16, 16)
    small.positional_embedding = mx.random.normal((16, 2))
    big = positional.MultiHeadPositionalEmbedding(2, 36, 36)
    big.load_resized_weights(small, method="nearest")
    grid = np.asarray(small.positional_embedding).reshape(4, 4, 2)
    # TF's half-pixel nearest in float32: source rows floor((i + 0.5) * 4 / 6).
    expected = grid[[0, 1, 1, 2, 3, 3]][:, [0, 1, 1, 2, 3, 3]]
    assert np.array_equal(np.asarray(big.positional_embedding).reshape(6, 6, 2), expected)
    with pytest.raises(ValueError, match="method"):
        big.load_resized_weights(small, method="area")
    with pytest.raises(ValueError, match="no table"):
        positional.MultiHeadRelativePositionalKernelBias(2, 5, 5, 3).load_resized_weights([])


def test_swin_v2_131_meta_dense_names(tmp_path):
    """A kecam 1.3.1 swin v2 file keeps the MLP in ``<blk>meta_dense_1`` / ``_2``."""
    case = next(c for c in POSITIONAL if c.id == "swin_mlp_square")
    weight, bias, out = _h5_arrays(case.weights_path, "sw_attn_pos_emb").values()
    path = tmp_path / "swin_131.h5"
    layers = {
        "sw_attn_pos_emb": {},
        "sw_attn_meta_dense_1": {"kernel:0": weight, "bias:0": bias},
        "sw_attn_meta_dense_2": {"kernel:0": out},
    }
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = [n.encode() for n in layers]
        for name, arrays in layers.items():
            group = f.create_group(name)
            group.attrs["weight_names"] = [f"{name}/{k}".encode() for k in arrays]
            for k, v in arrays.items():
                group[f"{name}/{k}"] = v
    module = build_module(case)
    load_keras_weights(module, path)
    inputs, expected = load_arrays(case)
    assert_matches(module(mx.array(inputs[0])), expected[0])


BAD = [
    ("MultiHeadRelativePositionalKernelBias", (25, 2, 1, 8), {}, "square number"),
    ("MultiHeadRelativePositionalKernelBias", (9, 2, 1, 25), {}, "kernel span"),
    ("MultiHeadRelativePositionalKernelBias", (36, 2, 1, 9), {"dilation_rate": 4}, "kernel span"),
    ("MultiHeadRelativePositionalKernelBias", (35, 2, 1, 9), {"input_height": 4}, "input_height"),
    ("MultiHeadRelativePositionalEmbedding", (2, 18, 18), {}, "attn_height"),
    (
        "MultiHeadRelativePositionalEmbedding",
        (2, 16, 16),
        {"with_cls_token": False, "num_heads": 3},
        "num_heads",
    ),
    ("MultiHeadRelativePositionalEmbedding", (2, 9, 12), {"with_cls_token": False}, "key_blocks"),
    ("MultiHeadPositionalEmbedding", (2, 15, 15), {}, "query_height"),
    ("BiasPositionalEmbedding", (2, 4, 16), {}, "reduction ratio"),
    ("BiasPositionalEmbedding", (16, 4), {}, "input_shape"),
    ("ConvPositionalEncoding", (17, 8), {"kernel_size": 4}, "odd"),
    ("ConvPositionalEncoding", (18, 8), {}, "input_height"),
    ("ConvRelativePositionalEncoding", (8, 17, 2), {"head_splits": [2, 2, 2]}, "sum"),
    ("ConvRelativePositionalEncoding", (8, 17, 2), {"head_kernel_size": [3, 5]}, "length"),
    ("PairWiseRelativePositionalEmbedding", (1, 8, 4), {}, "pos_scale"),
    ("PairWiseRelativePositionalEmbedding", (4, 4, 4), {"pos_scale": 1}, "pos_scale"),
    ("MlpPairwisePositionalEmbedding", (2, 16, 16), {"attn_height": 5, "attn_width": 4}, "window"),
    ("MlpPairwisePositionalEmbedding", (1, 4, 8), {"use_absolute_pos": True}, "size // 2"),
    ("PositionalEncodingFourier", (4, 4, 8), {"filters": 7}, "even"),
    ("PositionalEncodingFourierRot", (17, 15), {}, "even"),
    ("PositionalEncodingFourierRot", (17, 12), {"num_heads": 2}, "rotary table"),
    ("PositionalEncodingFourierRot", (19, 8), {"num_reg_tokens": 2}, "square"),
    ("RelativePositionalEmbedding", (4, 14, 16), {}, "input_shape"),
]


@pytest.mark.parametrize("name,shape,kwargs,match", BAD, ids=[f"{b[0]}-{b[3]}" for b in BAD])
def test_invalid_shapes_raise(name, shape, kwargs, match):
    with pytest.raises(ValueError, match=match):
        getattr(attention_layers, name)(input_shape=shape, **kwargs)


def _inputs(case):
    inputs, _ = load_arrays(case)
    return [mx.array(x) for x in inputs]


COMPILE_IDS = (
    "rel_rect", "beit_cls_rect", "levit_strided", "dinat_d2", "cmt_bias", "cpe_rect_k5",
    "crpe_rect", "swin_mlp_extra_token", "volo_tokens", "fourier", "rot_heads_reg",
)  # fmt: skip
COMPILE = [c for c in POSITIONAL if c.id in COMPILE_IDS]


@pytest.mark.parametrize("case", COMPILE, ids=lambda c: c.id)
def test_compile_and_grad(case):
    module = build_module(case)
    load_keras_weights(module, case.weights_path)
    inputs = _inputs(case)
    eager = module(*inputs)
    compiled = mx.compile(lambda *xs: module(*xs))(*inputs)
    assert np.allclose(np.asarray(eager), np.asarray(compiled), atol=1e-5)

    def loss(x):
        return mx.sum(module(x, *inputs[1:]) ** 2)

    grad = mx.grad(loss)(inputs[0])
    assert grad.shape == inputs[0].shape and bool(mx.all(mx.isfinite(grad)))


@pytest.mark.parametrize("dtype", [mx.float16, mx.bfloat16])
def test_half_precision(dtype):
    case = next(c for c in POSITIONAL if c.id == "beit_cls_rect")
    module = build_module(case)
    load_keras_weights(module, case.weights_path)
    inputs, expected = load_arrays(case)
    out = module(mx.array(inputs[0]).astype(dtype))
    assert out.dtype == dtype
    assert_matches(out, expected[0], dtype)


def test_tf_resize_identity_and_shapes():
    x = np.random.default_rng(0).normal(size=(2, 3, 4, 5)).astype(np.float32)
    for method in positional.RESIZE_METHODS:
        assert np.array_equal(positional.tf_resize(x, (3, 4), method), x)
        assert positional.tf_resize(x, (7, 2), method).shape == (2, 7, 2, 5)
