"""The global and channel attention blocks beyond the kecam fixtures: invalid arguments,
``mx.compile`` and ``mx.grad``, dropout, the ``pos_emb`` / ``global_query`` arguments and
half precision."""

from __future__ import annotations

import mlx.core as mx
import mlx.nn as nn
import numpy as np
import pytest
from cases import GLOBAL
from helpers import assert_matches
from mlx.utils import tree_flatten, tree_unflatten
from parity import build_module, load_arrays

from mlx_attention import attention_layers as al
from mlx_attention import layers
from mlx_attention.convert import load_keras_weights

# One fixture case per kecam block: the first of each name.
BLOCK_CASES = list({c.kecam: c for c in reversed(GLOBAL) if c.version == "1.4.3"}.values())


def _loaded(case):
    module = build_module(case)
    load_keras_weights(module, case.weights_path)
    inputs, outputs = load_arrays(case)
    return module, mx.array(inputs[0]), outputs[0]


# --- invalid combinations: kecam raises, crashes or returns a broken shape -------------------

INVALID = [
    # kecam: reshape error (the value has out_shape channels split into num_heads heads)
    (al.multi_head_self_attention, (4, 4, 30), {"num_heads": 4}, "out_shape=30"),
    (al.multi_head_self_attention, (4, 4, 16), {"num_heads": 4, "out_shape": 18}, "out_shape=18"),
    (al.mhsa_with_relative_position_embedding, (4, 4, 30), {"num_heads": 4}, "out_shape=30"),
    (
        al.mhsa_with_relative_position_embedding,
        (4, 4, 30),
        {"num_heads": 4, "out_weight": False},
        "out_shape=30",
    ),  # fmt: skip
    # kecam: ZeroDivisionError (a key width of 0)
    (al.multi_head_self_attention, (4, 4, 2), {"num_heads": 4}, "num_heads=4"),
    (al.multi_head_self_attention_channel, (4, 4, 2), {"num_heads": 4}, "num_heads=4"),
    # kecam: negative size in the sr x sr depthwise conv
    (
        al.light_mhsa_with_multi_head_relative_position_embedding,
        (7, 7, 16),
        {"sr_ratio": 8},
        "sr_ratio=8",
    ),  # fmt: skip
    (
        al.light_mhsa_with_multi_head_relative_position_embedding,
        (4, 9, 16),
        {"sr_ratio": 5},
        "sr_ratio=5",
    ),  # fmt: skip
    # kecam: TypeError (float reshape size); attn_ratio=0 returns a corrupted batch axis
    (al.mhsa_with_multi_head_position, (4, 4, 16), {"num_heads": 4, "attn_ratio": 2.0}, "attn"),
    (al.mhsa_with_multi_head_position, (4, 4, 16), {"num_heads": 4, "attn_ratio": 0}, "attn"),
    (
        al.mhsa_with_multi_head_position_and_strides,
        (4, 4, 16),
        {"num_heads": 4, "attn_ratio": 1.5, "strides": 2},
        "attn_ratio",
    ),  # fmt: skip
    # kecam: the positional index does not fit 15 tokens in rows of 4
    (al.mhsa_with_multi_head_position, (15, 16), {"num_heads": 2, "attn_height": 4}, "attn_h"),
    # kecam: split into unequal groups; even kernels grow the query grid
    (al.cascaded_mhsa_with_multi_head_position, (4, 4, 30), {"num_heads": 4}, "num_heads=4"),
    (al.cascaded_mhsa_with_multi_head_position, (4, 4, 16), {"kernel_sizes": 4}, "kernel_sizes"),
    (
        al.cascaded_mhsa_with_multi_head_position,
        (4, 4, 16),
        {"num_heads": 2, "kernel_sizes": [3, 2]},
        "kernel_sizes",
    ),  # fmt: skip
    # kecam: the kv projection cannot split into [heads * key_dim, out_shape]
    (
        al.mhsa_with_multi_head_relative_position_embedding,
        (4, 4, 16),
        {"num_heads": 2, "key_dim": 4, "global_query": True},
        "global_query",
    ),  # fmt: skip
    # arguments outside what the blocks accept
    (al.multi_head_self_attention, (4, 4, 16), {"attn_dropout": 1.0}, "attn_dropout"),
    (al.cross_covariance_attention, (4, 4, 16), {"out_dropout": -0.1}, "out_dropout"),
    (al.multi_head_self_attention, (4, 4, 16), {"pos_emb": 3}, "pos_emb"),
    (
        al.mhsa_with_relative_position_embedding,
        (4, 4, 16),
        {"data_format": "channels_first"},
        "data_format",
    ),  # fmt: skip
    (al.mhsa_with_multi_head_relative_position_embedding, (16, 16), {}, "input_shape"),
    (al.cross_covariance_attention, (4, 4, 2), {"num_heads": 4}, "num_heads=4"),
]


@pytest.mark.parametrize(
    "fn, shape, kwargs, match", INVALID, ids=lambda v: getattr(v, "__name__", None)
)
def test_invalid_arguments_raise(fn, shape, kwargs, match):
    with pytest.raises(ValueError, match=match):
        fn(shape, **kwargs, name="blk_")


def test_xca_output_channels_follow_heads_not_input():
    # kecam's XCA has no projection back to C: 30 channels in 4 heads give 28.
    block = al.cross_covariance_attention((3, 5, 30), num_heads=4, name="x_")
    assert block(mx.zeros((1, 3, 5, 30))).shape == (1, 3, 5, 28)


# --- mx.compile and mx.grad -------------------------------------------------------------------


@pytest.mark.parametrize("case", BLOCK_CASES, ids=lambda c: c.kecam)
def test_compiles_and_matches(case):
    module, x, expected = _loaded(case)
    compiled = mx.compile(module)
    assert_matches(compiled(x), expected)
    assert_matches(compiled(x * 1.0), expected)


@pytest.mark.parametrize("case", BLOCK_CASES, ids=lambda c: c.kecam)
def test_gradient_flows_through_the_block(case):
    module, x, _ = _loaded(case)
    module.train()  # BatchNorm in training mode too: a gradient through batch statistics

    def loss(params, inputs):
        module.update(params)
        return mx.sum(mx.square(module(inputs)))

    grads_params, grad_x = mx.grad(loss, argnums=(0, 1))(module.trainable_parameters(), x)
    assert grad_x.shape == x.shape and bool(mx.all(mx.isfinite(grad_x)))
    assert float(mx.max(mx.abs(grad_x))) > 0
    for key, grad in tree_flatten(grads_params):
        assert bool(mx.all(mx.isfinite(grad))), key
    # a zero-gamma BatchNorm has zero gradients behind it, so test the total only
    total = sum(float(mx.sum(mx.abs(g))) for _, g in tree_flatten(grads_params))
    assert total > 0


# --- dropout: training mode only --------------------------------------------------------------

DROPOUT = [
    (al.multi_head_self_attention, (4, 5, 16), {"attn_dropout": 0.5, "output_dropout": 0.5}),
    (al.multi_head_self_attention_channel, (4, 5, 16), {"attn_dropout": 0.5}),
    (al.multi_head_self_attention_channel, (4, 5, 16), {"output_dropout": 0.5}),
    (al.cross_covariance_attention, (4, 5, 16), {"attn_dropout": 0.5}),
    (al.cross_covariance_attention, (4, 5, 16), {"out_dropout": 0.5}),
    (al.mhsa_with_relative_position_embedding, (4, 5, 16), {"attn_dropout": 0.5}),
    (al.mhsa_with_multi_head_relative_position_embedding, (4, 5, 16), {"attn_dropout": 0.5}),
    (
        al.light_mhsa_with_multi_head_relative_position_embedding,
        (4, 6, 16),
        {"sr_ratio": 2, "dropout": 0.5},
    ),  # fmt: skip
]


@pytest.mark.parametrize("fn, shape, kwargs", DROPOUT, ids=lambda v: getattr(v, "__name__", None))
def test_dropout_only_in_training(fn, shape, kwargs):
    mx.random.seed(3)
    block = fn(shape, **kwargs, name="d_")
    plain = fn(shape, **{k: v for k, v in kwargs.items() if "drop" not in k}, name="d_")
    plain.update(block.parameters())
    x = mx.random.normal((2, *shape))
    reference = plain(x)
    assert np.array_equal(np.asarray(block(x)), np.asarray(reference))  # eval by default
    block.train()
    assert not np.allclose(np.asarray(block(x)), np.asarray(reference), atol=1e-3)
    block.eval()
    assert np.array_equal(np.asarray(block(x)), np.asarray(reference))


# --- pos_emb and global_query -----------------------------------------------------------------


def _naive_mhsa(x, block, bias):
    """softmax(q k^T / sqrt(d) + bias) v in numpy, from the block's own qkv projection."""
    b, n = x.shape[0], x.shape[1] * x.shape[2]
    heads, kd = block.num_heads, block.key_dim
    qkv = np.asarray(block.qkv(mx.array(x.reshape(b, n, -1))), np.float64)
    q, k, v = np.split(qkv, [heads * kd, 2 * heads * kd], axis=-1)
    q, k, v = (t.reshape(b, n, heads, -1).transpose(0, 2, 1, 3) for t in (q, k, v))
    scores = q @ k.transpose(0, 1, 3, 2) / np.sqrt(kd) + bias
    probs = np.exp(scores - scores.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    out = (probs @ v).transpose(0, 2, 1, 3).reshape(*x.shape[:3], -1)
    return np.asarray(block.output(mx.array(out.astype(np.float32))))


def test_mhsa_pos_emb_callable_is_added_to_the_scaled_scores():
    rng = np.random.default_rng(0)
    bias = rng.normal(size=(2, 12, 12)).astype(np.float32)
    block = al.multi_head_self_attention(
        (3, 4, 8), num_heads=2, pos_emb=lambda s: s + mx.array(bias), name="p_"
    )
    x = rng.normal(size=(2, 3, 4, 8)).astype(np.float32)
    assert_matches(block(mx.array(x)), _naive_mhsa(x, block, bias))


def test_mhsa_pos_emb_module_is_a_child_with_its_weights():
    pos = layers.BiasPositionalEmbedding(2, 12, 12, name="stack1_pos_emb")
    block = al.multi_head_self_attention((3, 4, 8), num_heads=2, pos_emb=pos, name="p_")
    assert "pos_emb.positional_embedding" in dict(tree_flatten(block.parameters()))


def test_cmt_with_a_shared_bias_layer_equals_its_own_relative_bias():
    case = next(c for c in GLOBAL if c.id == "cmt_sr2_rect_bias")
    own, x, expected = _loaded(case)
    bias = own.pos_emb(mx.zeros((1, 1, 1, 1)))[0]  # [heads, N, M]
    shared = layers.BiasPositionalEmbedding(*bias.shape, name="stack1_pos_emb")
    block = al.light_mhsa_with_multi_head_relative_position_embedding(
        case.input_shapes[0], **{**case.kwargs, "pos_emb": shared}
    )
    params = dict(tree_flatten(own.parameters()))
    params["pos_emb.positional_embedding"] = bias
    block.update(tree_unflatten(list(params.items())))
    assert_matches(block(x), expected)


def test_coatnet_global_query_equals_the_own_query():
    mx.random.seed(5)
    shape, heads, kd = (3, 5, 8), 2, 4
    standard = al.mhsa_with_multi_head_relative_position_embedding(
        shape, num_heads=heads, key_dim=kd, name="s_"
    )
    table = standard.pos_emb.positional_embedding
    standard.pos_emb.positional_embedding = mx.random.normal(table.shape)
    block = al.mhsa_with_multi_head_relative_position_embedding(
        shape, num_heads=heads, key_dim=kd, global_query=True, name="g_"
    )
    block.kv.conv.weight = standard.qkv.conv.weight[heads * kd :]
    block.pos_emb.update(standard.pos_emb.parameters())
    block.output.update(standard.output.parameters())
    x = mx.random.normal((2, *shape))
    query = standard.qkv(x).reshape(2, -1, 3 * heads * kd)[..., : heads * kd]
    query = query.reshape(2, -1, heads, kd).transpose(0, 2, 1, 3)
    expected = np.asarray(standard(x))
    assert_matches(block(x, global_query=query), expected)
    fixed = al.mhsa_with_multi_head_relative_position_embedding(
        shape, num_heads=heads, key_dim=kd, global_query=query, name="g_"
    )
    fixed.update(block.parameters())
    assert_matches(fixed(x), expected)
    with pytest.raises(ValueError, match="global_query"):
        block(x)
    with pytest.raises(ValueError, match="global_query"):
        block(x, global_query=query[:, :1])


# --- half precision ---------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [mx.float16, mx.bfloat16], ids=str)
@pytest.mark.parametrize("case", BLOCK_CASES, ids=lambda c: c.kecam)
def test_half_precision_close_to_kecam(case, dtype):
    module, x, expected = _loaded(case)
    module.set_dtype(dtype)
    out = module(x.astype(dtype))
    assert out.dtype == dtype
    assert_matches(out, expected, dtype=dtype)


def test_every_block_is_a_keras_module_with_its_name():
    for case in BLOCK_CASES:
        module = build_module(case)
        assert isinstance(module, nn.Module) and module.name == case.kwargs["name"]


def test_cascaded_attention_refuses_other_channels_natively():
    """Its heads slice the channels: extra ones would otherwise be dropped silently."""
    block = layers.CascadedGroupAttention(16, 4, height=7, width=7)
    assert block(mx.zeros([1, 7, 7, 16])).shape == (1, 7, 7, 16)
    with pytest.raises(ValueError, match="takes 16 channels"):
        block(mx.zeros([1, 7, 7, 17]))
