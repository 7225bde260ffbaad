"""Generate tests/fixtures/ops/kecam_ops.npz with kecam 1.4.3's own helpers (needs TensorFlow).

Run: TF_USE_LEGACY_KERAS=1 TF_ENABLE_ONEDNN_OPTS=0 python tools/make_op_fixtures.py
Each case stores its input (``<case>/x``), kecam's output (``<case>/kecam``) and its arguments
(``<case>/args``, a JSON string). Inputs are small integers so every dtype holds them exactly.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
import tensorflow as tf  # noqa: E402
from keras_cv_attention_models import attention_layers as kecam  # noqa: E402
from keras_cv_attention_models.nat.nat import replicate_padding  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "ops" / "kecam_ops.npz"
RNG = np.random.default_rng(0)


def image(height: int, width: int, channels: int = 3, batch: int = 2) -> np.ndarray:
    return RNG.integers(-50, 50, size=(batch, height, width, channels)).astype(np.float32)


def windows(x, window, shift):
    """Swin v2 steps 3-5 and the reverse of 7, with kecam's helpers and its concat roll."""
    padded, wh, ww, ph, pw = kecam.pad_to_divisible_by_window_size(tf.constant(x), window)
    sh, sw = shift
    rolled = tf.concat([padded[:, sh:], padded[:, :sh]], axis=1)
    rolled = tf.concat([rolled[:, :, sw:], rolled[:, :, :sw]], axis=2)
    parts = kecam.window_partition(rolled, wh, ww)
    grid_h, grid_w = padded.shape[1] // wh, padded.shape[2] // ww
    back = kecam.window_reverse(parts, grid_h, grid_w, wh, ww)
    back = tf.roll(back, (sh, sw), axis=(1, 2))
    back = kecam.reverse_padded_for_window_size(back, ph, pw)
    return parts.numpy(), back.numpy()


def unfold(x, kernel, stride, rates, padding):
    layer = kecam.CompatibleExtractPatches(kernel, stride, rates, padding, compressed=False)
    return layer(tf.constant(x)).numpy()


def halo(x, block, halo_size):
    padded = tf.pad(tf.constant(x), [[0, 0], [halo_size] * 2, [halo_size] * 2, [0, 0]])
    return unfold(padded.numpy(), block + 2 * halo_size, block, 1, "valid")


def nat(x, kernel, dilation):
    dilation = tuple(dilation)
    patches = kecam.CompatibleExtractPatches(kernel, 1, dilation, "valid", compressed=False)
    patches = patches(tf.constant(x))
    return replicate_padding(patches, kernel, dilation).numpy()


def fold(patches, output_shape, kernel, stride):
    out = kecam.fold_by_conv2d_transpose(tf.constant(patches), output_shape, kernel, stride)
    return out.numpy()


def mask(height, width, wh, ww, sh, sw):
    layer = kecam.WindowAttentionMask(height, width, wh, ww, sh, sw)
    layer.build([None, 1, wh * ww, wh * ww])
    return np.asarray(layer.attn_mask)[0, :, 0]


def main() -> None:
    arrays: dict[str, np.ndarray] = {}

    def add(case: str, x: np.ndarray, out: np.ndarray, **args) -> None:
        arrays[f"{case}/x"], arrays[f"{case}/kecam"] = x, out
        arrays[f"{case}/args"] = np.array(json.dumps(args))

    for name, (h, w), window, shift in [
        ("square", (8, 8), (4, 4), (0, 0)),
        ("nonsquare_padded", (6, 10), (4, 4), (0, 0)),
        ("shifted_padded", (5, 9), (3, 4), (1, 2)),
        ("nonsquare_window_shifted", (8, 8), (2, 4), (1, 2)),
    ]:
        x = image(h, w)
        parts, back = windows(x, list(window), shift)
        add(f"window_partition/{name}", x, parts, window=window, shift=shift)
        add(f"window_reverse/{name}", parts, back, size=(h, w), window=window, shift=shift)
    for name, (h, w), kernel, stride, rates, padding in [
        ("k3s2_same", (8, 8), 3, 2, 1, "same"),
        ("k3s2_same_odd_nonsquare", (7, 9), 3, 2, 1, "same"),
        ("k3s1_dilated_same", (8, 6), 3, 1, 2, "same"),
        ("k5s2_same", (9, 8), 5, 2, 1, "same"),
        ("k4s2_same_even", (8, 6), 4, 2, 1, "same"),
        ("k3s1_valid_dilated_pair", (9, 11), 3, 1, (2, 3), "valid"),
    ]:
        x = image(h, w)
        pad = kernel // 2 if padding == "same" else 0
        add(
            f"extract_patches/{name}", x, unfold(x, kernel, stride, rates, padding),
            kernel=kernel, stride=stride, dilation=rates, padding=pad,
        )  # fmt: skip
    for name, (h, w), block, halo_size in [("b4h1", (8, 12), 4, 1), ("b2h2", (6, 4), 2, 2)]:
        x = image(h, w)
        add(f"halo_blocks/{name}", x, halo(x, block, halo_size), block=block, halo=halo_size)
    for name, (h, w), kernel, dilation in [
        ("k3", (8, 8), 3, (1, 1)),
        ("k5_nonsquare", (7, 9), 5, (1, 1)),
        ("k3_dilated", (8, 10), 3, (2, 2)),
        ("k3_dilated_pair", (9, 12), 3, (2, 3)),
        ("k7_exact", (7, 8), 7, (1, 1)),
    ]:
        x = image(h, w)
        add(f"neighborhood/{name}", x, nat(x, kernel, dilation), kernel=kernel, dilation=dilation)
    for name, (h, w), kernel, stride in [
        ("8x8_k3s2", (8, 8), 3, 2),
        ("7x7_k3s2", (7, 7), 3, 2),
        ("6x8_k5s3", (6, 8), 5, 3),
    ]:
        patches = unfold(image(h, w), kernel, stride, 1, "same")
        out = fold(patches, (h, w), kernel, stride)
        add(f"fold/{name}", patches, out, size=(h, w), kernel=kernel, stride=stride)
    for name, args in [("8x8_w4_s2", (8, 8, 4, 4, 2, 2)), ("6x12_w3x4_s1x2", (6, 12, 3, 4, 1, 2))]:
        arrays[f"mask/{name}/kecam"] = mask(*args)
        arrays[f"mask/{name}/args"] = np.array(json.dumps(args))
    OUT.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(OUT, **arrays)
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes, {len(arrays)} arrays)", file=sys.stderr)


if __name__ == "__main__":
    main()
