"""Generate tests/fixtures/imagenet/imagenet.npz with TensorFlow and kecam 1.4.3, and (with
``--labels WHEEL``) the shipped ImageNet-1k label file.

Run: TF_USE_LEGACY_KERAS=1 TF_ENABLE_ONEDNN_OPTS=0 python tools/make_imagenet_fixtures.py
     python tools/make_imagenet_fixtures.py --labels keras_hub-0.32.0-py3-none-any.whl

Fixture cases, each ``<kind>/<case>/x`` (the input), ``<kind>/<case>/tf`` (the reference output)
and ``<kind>/<case>/args`` (JSON):
- ``bilinear``: ``tf.image.resize(x, size, method="bilinear", antialias=False)``;
- ``bicubic``: ``tf.image.resize(x, size, method="bicubic", antialias=True)``;
- ``preprocess``: kecam's ``PreprocessInput(input_shape, rescale_mode)(x)``;
- ``evaluation``: kecam's ``evaluation_process_crop_resize`` then ``(x - mean) / std`` with
  ``init_mean_std_by_rescale_mode``, as its ImageNet dataset does.

The label file: kecam's ``decode_predictions`` downloads Keras's ``imagenet_class_index.json``
(md5-checked); no wheel ships that file, but keras-hub (Apache-2.0) ships the same table as the
``IMAGENET_NAMES`` literal. It is written back in Keras's JSON layout and must hash to the md5
kecam checks, so the shipped file is kecam's, byte for byte.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import os
import sys
import zipfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "tests" / "fixtures" / "imagenet" / "imagenet.npz"
sys.path.insert(0, str(ROOT))

RNG = np.random.default_rng(13)

# (input height, width) x (output height, width): up, down, non-square, odd, size 1, same size
RESIZES = {
    "up_13x17_to_32x40": ((13, 17), (32, 40)),
    "down_40x31_to_9x7": ((40, 31), (9, 7)),
    "down_by_5_40x31_to_8x6": ((40, 31), (8, 6)),
    "mixed_13x17_to_26x5": ((13, 17), (26, 5)),
    "odd_40x31_to_13x17": ((40, 31), (13, 17)),
    "to_1x1_13x17": ((13, 17), (1, 1)),
    "from_1x1_to_5x3": ((1, 1), (5, 3)),
    "from_1x6_to_4x9": ((1, 6), (4, 9)),
    "same_13x17": ((13, 17), (13, 17)),
}
PREPROCESS = {  # image (height, width, batch, 0-1 floats?), kecam input_shape, rescale_mode
    "torch_13x17_to_24x20": ((13, 17, 0, False), (24, 20, 3), "torch"),
    "tf_40x31_batch2_to_16x16": ((40, 31, 2, False), (16, 16, 3), "tf"),
    "tf128_40x31_to_7x9": ((40, 31, 0, False), (7, 9, 3), "tf128"),
    "raw01_unit_floats_13x17_to_10x12": ((13, 17, 0, True), (10, 12, 3), "raw01"),
    "raw_13x17_to_13x17": ((13, 17, 0, False), (13, 17, 3), "raw"),
    "clip_40x31_to_12x8": ((40, 31, 0, False), (12, 8, 3), "clip"),
    "pair_40x31_channels_first_shape": ((40, 31, 0, False), (3, 11, 9), [[100.0, 110, 120], 50.0]),
    "batch_shape_13x17": ((13, 17, 2, True), (None, 9, 11, 3), "torch"),
}
EVALUATION = {  # image (height, width), target, central_crop, rescale_mode
    "crop1_40x31_to_24x24": ((40, 31), (24, 24), 1.0, "torch"),
    "crop1_13x17_to_32x32": ((13, 17), (32, 32), 1.0, "tf"),
    "crop0875_40x31_to_16x12": ((40, 31), (16, 12), 0.875, "torch"),
    "nocrop_40x31_to_20x16": ((40, 31), (20, 16), -1.0, "torch"),
}


def pixels(height: int, width: int, batch: int = 0, unit: bool = False) -> np.ndarray:
    """Random 0-255 integers as uint8 (or as float32 in [0, 1] when ``unit``)."""
    shape = (height, width, 3) if batch == 0 else (batch, height, width, 3)
    x = RNG.integers(0, 256, size=shape).astype(np.uint8)
    return (x / np.float32(255)).astype(np.float32) if unit else x


def fixtures() -> dict[str, np.ndarray]:
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    import tensorflow as tf
    from keras_cv_attention_models.common_layers import (
        PreprocessInput,
        init_mean_std_by_rescale_mode,
    )
    from keras_cv_attention_models.imagenet.tf_data import evaluation_process_crop_resize

    arrays = {}

    def put(key, x, out, args):
        arrays[f"{key}/x"], arrays[f"{key}/tf"] = np.asarray(x), np.asarray(out, np.float32)
        arrays[f"{key}/args"] = np.array(json.dumps(args))

    for case, (source, size) in RESIZES.items():
        # 0-255 integers and a few fractions (inside the model, CoaT resizes any float map)
        x = RNG.integers(0, 256, size=(1, *source, 3)).astype(np.float32)
        x[..., 0] += RNG.uniform(-0.5, 0.5, size=source).astype(np.float32)
        for kind, method, antialias in (
            ("bilinear", "bilinear", False),
            ("bicubic", "bicubic", True),
        ):
            out = tf.image.resize(x, size, method=method, antialias=antialias).numpy()
            put(f"{kind}/{case}", x, out, {"size": size})
    for case, (image, shape, mode) in PREPROCESS.items():
        x = pixels(*image)
        out = PreprocessInput(shape, rescale_mode=mode)(x).numpy()
        put(f"preprocess/{case}", x, out, {"input_shape": shape, "rescale_mode": mode})
    for case, (image, size, crop, mode) in EVALUATION.items():
        x = pixels(*image)
        mean, std = init_mean_std_by_rescale_mode(mode)
        out = evaluation_process_crop_resize(tf.constant(x), size, crop, "bicubic", True)
        out = ((out - mean) / std).numpy()[None]
        put(
            f"evaluation/{case}", x, out, {"size": size, "central_crop": crop, "rescale_mode": mode}
        )
    return arrays


def labels_from_keras_hub(wheel: Path) -> str:
    """Keras's imagenet_class_index.json, rebuilt from keras-hub's ``IMAGENET_NAMES``."""
    from mlx_attention.imagenet import CLASS_INDEX_MD5

    with zipfile.ZipFile(wheel) as archive:
        source = archive.read("keras_hub/src/utils/imagenet/imagenet_utils.py").decode()
    (table,) = [
        node.value
        for node in ast.parse(source).body
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "IMAGENET_NAMES"
    ]
    names = ast.literal_eval(table)
    text = json.dumps({str(i): list(names[i]) for i in sorted(names)})  # Keras's layout
    md5 = hashlib.md5(text.encode()).hexdigest()
    if md5 != CLASS_INDEX_MD5:
        raise SystemExit(f"{wheel}: rebuilt index has md5 {md5}, kecam's is {CLASS_INDEX_MD5}")
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--labels", type=Path, help="a keras-hub wheel: write the label file")
    args = parser.parse_args()
    if args.labels:
        from mlx_attention.imagenet import CLASS_INDEX_FILE

        CLASS_INDEX_FILE.parent.mkdir(parents=True, exist_ok=True)
        CLASS_INDEX_FILE.write_text(labels_from_keras_hub(args.labels), encoding="utf-8")
        print(f"wrote {CLASS_INDEX_FILE}")
        return
    arrays = fixtures()
    OUT.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(OUT, **arrays)
    print(f"wrote {len(arrays) // 3} cases to {OUT} ({OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
