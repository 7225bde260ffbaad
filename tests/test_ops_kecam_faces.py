"""kecam's helper names in attention_layers, against the committed kecam fixtures (and live)."""

from __future__ import annotations

import mlx.core as mx
import numpy as np
import pytest

from mlx_attention import attention_layers as al
from tests.helpers import assert_matches, require_reference
from tests.test_ops import FIXTURES, cases, load


@pytest.mark.parametrize("case", cases("extract_patches"))
@pytest.mark.parametrize("compressed", [True, False])
def test_compatible_extract_patches(case, compressed):
    x, expected, args = load(case)
    padding = "same" if args["padding"] else "valid"
    layer = al.CompatibleExtractPatches(
        args["kernel"], args["stride"], args["dilation"], padding, compressed,
        input_shape=x.shape[1:],
    )  # fmt: skip
    expected = expected.reshape(*expected.shape[:3], -1) if compressed else expected
    np.testing.assert_array_equal(np.asarray(layer(x)), expected)


@pytest.mark.parametrize("case", cases("fold"))
def test_fold_by_conv2d_transpose(case):
    patches, expected, args = load(case)
    compressed = patches.reshape(*patches.shape[:3], -1)
    fold = al.fold_by_conv2d_transpose(
        compressed.shape[1:], args["size"], args["kernel"], args["stride"], name="attn_"
    )
    assert_matches(fold(compressed), expected)


def test_fold_by_conv2d_transpose_raises_where_keras_does():
    with pytest.raises(ValueError, match="padding 1, which must be < strides 1"):
        al.fold_by_conv2d_transpose((4, 4, 9), None, 3, 1)


@pytest.mark.parametrize("case", ["window_partition/square", "window_partition/nonsquare_padded"])
def test_window_helpers_round_trip(case):
    x, expected, args = load(case)
    pad = al.pad_to_divisible_by_window_size(x.shape[1:], args["window"])
    padded, wh, ww, pad_h, pad_w = pad(x)
    parts = al.window_partition(padded.shape[1:], wh, ww)(padded)
    np.testing.assert_array_equal(np.asarray(parts), expected)
    grid = (padded.shape[1] // wh, padded.shape[2] // ww)
    merged = al.window_reverse(parts.shape[1:], *grid, wh, ww)(parts)
    crop = al.reverse_padded_for_window_size(merged.shape[1:], pad_h, pad_w)
    assert mx.array_equal(crop(merged), x)


@pytest.mark.parametrize("case", cases("mask"))
def test_window_attention_mask(case):
    import json

    height, width, wh, ww, sh, sw = json.loads(str(FIXTURES[f"{case}/args"]))
    n, blocks = wh * ww, (height // wh) * (width // ww)
    layer = al.WindowAttentionMask(height, width, wh, ww, sh, sw, input_shape=(2, n, n))
    out = layer(mx.zeros((3 * blocks, 2, n, n)))
    expected = np.broadcast_to(FIXTURES[f"{case}/kecam"][None, :, None], (3, blocks, 2, n, n))
    np.testing.assert_array_equal(np.asarray(out), expected.reshape(out.shape))


@pytest.mark.reference
def test_compatible_extract_patches_live_against_kecam():
    kecam = require_reference("keras_cv_attention_models.attention_layers")
    x = np.random.default_rng(0).normal(size=(2, 7, 10, 3)).astype(np.float32)
    expected = kecam.CompatibleExtractPatches(3, 2, (1, 2), "same")(x).numpy()
    ours = al.CompatibleExtractPatches(3, 2, (1, 2), "same", input_shape=(7, 10, 3))(mx.array(x))
    np.testing.assert_array_equal(np.asarray(ours), expected)
