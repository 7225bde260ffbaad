"""``ops.conv2d``: the CPU forms of grouped and depthwise convolution equal ``mx.conv2d``."""

from __future__ import annotations

import mlx.core as mx
import numpy as np
import pytest
from helpers import assert_matches

from mlx_attention import ops

# (in, out, kernel, groups, stride, padding, dilation) on a 9x11 map
CONVS = {
    "dense": (6, 4, 3, 1, 1, 1, 1),
    "groups2_s2": (8, 12, 3, 2, 2, 1, 1),
    "groups4_rect_kernel": (8, 8, (3, 5), 4, 1, (1, 2), 1),
    "groups2_dilated": (4, 6, 3, 2, 1, 2, 2),
    "depthwise": (6, 6, 3, 6, 1, 1, 1),
    "depthwise_s2_even_kernel": (5, 5, 2, 5, 2, 0, 1),
    "depthwise_multiplier": (3, 6, 3, 3, 1, 1, 1),
    "depthwise_dilated_pair": (4, 4, 3, 4, 1, 0, (2, 3)),
    "depthwise_k7": (4, 4, 7, 4, 1, 3, 1),
}  # fmt: skip


@pytest.mark.parametrize("dtype", [mx.float32, mx.float16], ids=str)
@pytest.mark.parametrize("name", sorted(CONVS))
def test_matches_mx_conv2d(name, dtype):
    cin, cout, kernel, groups, stride, padding, dilation = CONVS[name]
    kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
    rng = np.random.default_rng(0)
    x = mx.array(rng.standard_normal((2, 9, 11, cin)).astype(np.float32))
    weight = mx.array(rng.standard_normal((cout, kh, kw, cin // groups)).astype(np.float32))
    bias = mx.array(rng.standard_normal(cout).astype(np.float32))
    expected = mx.conv2d(x, weight, stride, padding, dilation, groups) + bias
    ours = ops.conv2d(
        x.astype(dtype), weight.astype(dtype), bias.astype(dtype), stride=stride,
        padding=padding, dilation=dilation, groups=groups,
    )  # fmt: skip
    assert ours.dtype == dtype
    assert_matches(ours, np.asarray(expected), dtype)


@pytest.mark.parametrize("groups", [2, 6])
def test_gradients_match_mx_conv2d(groups):
    rng = np.random.default_rng(1)
    x = mx.array(rng.standard_normal((1, 7, 8, 6)).astype(np.float32))
    weight = mx.array(rng.standard_normal((6, 3, 3, 6 // groups)).astype(np.float32))

    def loss(conv):
        return lambda x, w: (conv(x, w) ** 2).sum()

    ours = mx.grad(loss(lambda x, w: ops.conv2d(x, w, stride=2, padding=1, groups=groups)), (0, 1))
    reference = mx.grad(loss(lambda x, w: mx.conv2d(x, w, 2, 1, 1, groups)), (0, 1))
    for a, b in zip(ours(x, weight), reference(x, weight)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-4)
