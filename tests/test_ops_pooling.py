"""``ops.pooling``: Keras max/average pooling with TF "SAME" padding, and ZeroPadding2D.

Default run: against a naive numpy reference written from TF's definition (the window of output
cell ``i`` starts at ``i * s - pad_before``; max ignores the cells outside the map, the average
divides by the cells inside it). ``reference``: against TensorFlow's own pooling, live.
"""

from __future__ import annotations

import mlx.core as mx
import numpy as np
import pytest
from helpers import assert_matches

from mlx_attention.ops import pooling

# (H, W, pool_size, strides, padding): square, non-square, odd sizes that pad, even ones that do
# not, a window larger than its stride, and rectangular pools
POOLS = {
    "s2_even_same": (8, 10, 2, 2, "same"),
    "s2_odd_same": (7, 9, 2, 2, "same"),
    "k3_s2_odd_same": (7, 11, 3, 2, "same"),
    "k3_s1_same": (5, 6, 3, 1, "same"),
    "k3_s2_valid": (9, 8, 3, 2, "valid"),
    "rect_same": (7, 6, (3, 2), (2, 1), "same"),
    "s3_odd_same": (8, 7, 3, 3, "same"),
    "k2_s2_valid_odd": (7, 5, 2, 2, "valid"),
}  # fmt: skip


def naive_pool(x: np.ndarray, pool, strides, padding: str, how: str) -> np.ndarray:
    (kh, kw), (sh, sw) = pool, strides
    batch, height, width, channels = x.shape
    if padding == "same":
        out_h, out_w = -(-height // sh), -(-width // sw)
        top = max((out_h - 1) * sh + kh - height, 0) // 2
        left = max((out_w - 1) * sw + kw - width, 0) // 2
    else:
        out_h, out_w, top, left = (height - kh) // sh + 1, (width - kw) // sw + 1, 0, 0
    out = np.zeros((batch, out_h, out_w, channels), x.dtype)
    for i in range(out_h):
        for j in range(out_w):
            r0, c0 = i * sh - top, j * sw - left
            window = x[:, max(r0, 0) : r0 + kh, max(c0, 0) : c0 + kw]
            reduce = np.max if how == "max" else np.mean
            out[:, i, j] = reduce(window, axis=(1, 2))
    return out


def _pairs(pool, strides):
    as_pair = lambda v: (v, v) if isinstance(v, int) else tuple(v)  # noqa: E731
    return as_pair(pool), as_pair(strides)


@pytest.mark.parametrize("how", ["max", "avg"])
@pytest.mark.parametrize("name", sorted(POOLS))
def test_matches_naive(name, how):
    height, width, pool, strides, padding = POOLS[name]
    x = np.random.default_rng(0).standard_normal((2, height, width, 3)).astype(np.float32)
    fn = pooling.max_pool2d if how == "max" else pooling.avg_pool2d
    ours = fn(mx.array(x), pool, strides, padding)
    expected = naive_pool(x, *_pairs(pool, strides), padding, how)
    assert ours.shape == expected.shape
    assert ours.shape[1:3] == pooling.pool_output_size(height, width, pool, strides, padding)
    assert_matches(ours, expected)


def test_same_pads_after_more():
    # TF SAME: 7 rows, pool 2, stride 2 -> 4 rows, one padded row at the bottom
    assert pooling.same_pads(7, 2, 2) == (0, 1)
    assert pooling.same_pads(8, 2, 2) == (0, 0)
    assert pooling.same_pads(7, 3, 2) == (1, 1)
    assert pooling.same_pads(8, 3, 2) == (0, 1)
    assert pooling.same_pads(6, 5, 1) == (2, 2)
    assert pooling.same_pads(6, 4, 1) == (1, 2)


def test_same_average_leaves_padding_out_of_divisor():
    x = mx.ones((1, 3, 3, 1))
    out = pooling.avg_pool2d(x, 2, 2, "same")  # the last row/column average one or two cells
    np.testing.assert_array_equal(np.asarray(out), np.ones((1, 2, 2, 1), np.float32))


def test_zero_pad_then_max_differs_from_same_max():
    # after a swish the map is negative near zero: kecam's stem zero-pads, so 0 wins at the edge
    x = -mx.ones((1, 4, 4, 1))
    padded = pooling.max_pool2d(pooling.zero_pad2d(x, 1), 3, 2, "valid")
    same = pooling.max_pool2d(x, 3, 2, "same")
    assert padded.shape == same.shape == (1, 2, 2, 1)
    assert float(padded.max()) == 0.0 and float(same.max()) == -1.0


@pytest.mark.parametrize(
    "padding, shape",
    [(1, (1, 6, 7, 2)), ((1, 2), (1, 6, 9, 2)), (((0, 1), (2, 0)), (1, 5, 7, 2))],
)
def test_zero_pad2d(padding, shape):
    out = pooling.zero_pad2d(mx.ones((1, 4, 5, 2)), padding)
    assert out.shape == shape
    assert float(out.sum()) == 40.0


@pytest.mark.parametrize("dtype", [mx.float16, mx.bfloat16], ids=str)
def test_half_precision(dtype):
    x = np.random.default_rng(1).standard_normal((1, 7, 9, 4)).astype(np.float32)
    for fn, how in ((pooling.max_pool2d, "max"), (pooling.avg_pool2d, "avg")):
        out = fn(mx.array(x).astype(dtype), 3, 2, "same")
        assert out.dtype == dtype
        assert_matches(out, naive_pool(x, (3, 3), (2, 2), "same", how), dtype)


def test_errors():
    x = mx.zeros((1, 2, 2, 1))
    with pytest.raises(ValueError, match="padding='full'"):
        pooling.max_pool2d(x, 2, 2, "full")
    with pytest.raises(ValueError, match=r"pool_size=\(3, 3\) is larger than the 2x2"):
        pooling.avg_pool2d(x, 3, 1, "valid")
    with pytest.raises(ValueError, match="must be positive"):
        pooling.max_pool2d(x, 0)


@pytest.mark.reference
@pytest.mark.parametrize("how", ["max", "avg"])
@pytest.mark.parametrize("name", sorted(POOLS))
def test_matches_tensorflow(kecam_live, name, how):
    tf, _, _ = kecam_live
    height, width, pool, strides, padding = POOLS[name]
    x = np.random.default_rng(2).standard_normal((2, height, width, 3)).astype(np.float32)
    layer = tf.keras.layers.MaxPool2D if how == "max" else tf.keras.layers.AveragePooling2D
    expected = np.asarray(layer(pool, strides, padding)(x))
    fn = pooling.max_pool2d if how == "max" else pooling.avg_pool2d
    assert_matches(fn(mx.array(x), pool, strides, padding), expected)
