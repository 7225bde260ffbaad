"""ImageNet-1k preprocessing, labels and decoding with kecam's rules.

- :func:`preprocess_input`: kecam's ``model.preprocess_input`` (``common_layers.PreprocessInput``):
  float32, x255 when the batch's max is under 2, a bilinear resize of the whole image to the
  model's size (TF's, no crop, aspect ratio not kept), ``(x - mean) / std``.
- :func:`evaluation_input`: kecam's ImageNet evaluation (``imagenet.eval_func.evaluation``'s
  defaults, ``tf_data.evaluation_process_crop_resize``): the central square crop of
  ``central_crop`` times the shorter side, a bicubic antialiased resize, ``(x - mean) / std``.
- :func:`decode_predictions`: kecam's ``[(wnid, name, score), ...]`` per row.
- :func:`labels` / :func:`wnids`: the ImageNet-1k classes in kecam's index order (sorted wnids),
  from the file shipped in ``mlx_attention/data`` (its provenance is in the README there).

Example::

    x = imagenet.preprocess_input(pixels, model.pretrained_cfg)   # pixels: [H, W, 3] uint8
    print(imagenet.decode_predictions(model(x), top=3))
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import mlx.core as mx
import numpy as np

from .ops.resize import resize_bicubic_antialias, resize_bilinear

CLASS_INDEX_FILE = Path(__file__).parent / "data" / "imagenet_class_index.json"
# the md5 kecam checks when it downloads its imagenet_class_index.json (eval_func.py): the
# shipped file is that file, byte for byte
CLASS_INDEX_MD5 = "c2c37ea517e94d9795004a39431a14cb"

# kecam's init_mean_std_by_rescale_mode, values in float32 as kecam builds them
_TORCH = (np.float32([0.485, 0.456, 0.406]) * 255.0, np.float32([0.229, 0.224, 0.225]) * 255.0)
_CLIP = (
    np.float32([0.48145466, 0.4578275, 0.40821073]) * 255.0,
    np.float32([0.26862954, 0.26130258, 0.27577711]) * 255.0,
)
RESCALE_MODES: dict[str, tuple[Any, Any]] = {
    "torch": _TORCH,
    "tf": (127.5, 127.5),  # [0, 255] -> [-1, 1]
    "tf128": (128.0, 128.0),
    "raw01": (0.0, 255.0),  # [0, 255] -> [0, 1]
    "clip": _CLIP,  # OpenAI CLIP's
    "raw": (0.0, 1.0),
}


def rescale_mean_std(rescale_mode) -> tuple[np.ndarray, np.ndarray]:
    """kecam's ``init_mean_std_by_rescale_mode`` (channels-last) as float32 arrays.

    Args:
        rescale_mode: ``"torch"``, ``"tf"``, ``"tf128"``, ``"raw01"``, ``"clip"``, ``"raw"``, or
            a ``(mean, std)`` pair (scalars or per-channel sequences). kecam treats any other
            string as ``"raw"``; here it is a ``ValueError`` (a typo would silently skip the
            normalisation).

    Returns:
        ``(mean, std)``, each of shape ``()`` or ``(C,)``.
    """
    if isinstance(rescale_mode, (list, tuple)):
        if len(rescale_mode) != 2:
            raise ValueError(f"rescale_mode: a (mean, std) pair, got {rescale_mode!r}")
        mean, std = rescale_mode
    elif isinstance(rescale_mode, str) and rescale_mode in RESCALE_MODES:
        mean, std = RESCALE_MODES[rescale_mode]
    else:
        raise ValueError(
            f"rescale_mode must be one of {sorted(RESCALE_MODES)} or a (mean, std) pair, "
            f"got {rescale_mode!r}"
        )
    return np.asarray(mean, np.float32), np.asarray(std, np.float32)


def _target(pretrained_cfg_or_input_shape, rescale_mode) -> tuple[tuple[int, int], Any]:
    """The ``(height, width)`` to resize to and the rescale mode, as kecam's ``PreprocessInput``
    takes them from the model: a 4-d shape drops its batch axis, a 3-d shape its smallest axis
    (the channels, kecam's guess), a 2-d shape is the size; the mode defaults to the
    ``pretrained_cfg``'s, else to ``"torch"`` (``PreprocessInput``'s default)."""
    source = pretrained_cfg_or_input_shape
    if isinstance(source, Mapping):
        shape = source["input_shape"]
        rescale_mode = source.get("rescale_mode", "torch") if rescale_mode is None else rescale_mode
    else:
        shape = source
        rescale_mode = "torch" if rescale_mode is None else rescale_mode
    shape = list(shape)
    shape = shape[1:] if len(shape) == 4 else shape
    if None in shape:
        # kecam's tf.image.resize raises on it too ("'size' must be a 1-D int32 Tensor")
        raise ValueError(f"input_shape {tuple(shape)}: a dynamic size has no size to resize to")
    if len(shape) == 3:
        channel_axis = min(range(3), key=lambda i: shape[i])
        shape = [d for i, d in enumerate(shape) if i != channel_axis]
    if len(shape) != 2:
        raise ValueError(f"input_shape: expected (H, W), (H, W, C) or (B, H, W, C), got {shape}")
    return (int(shape[0]), int(shape[1])), rescale_mode


def _as_images(image) -> mx.array:
    """``image`` (an array, a PIL image, a sequence of same-sized ones) as ``[B, H, W, C]``
    float32."""
    if isinstance(image, mx.array):
        x = image.astype(mx.float32)
    else:
        x = mx.array(np.asarray(image, dtype=np.float32))
    if x.ndim not in (3, 4):
        raise ValueError(f"image: expected [H, W, C] or [B, H, W, C], got shape {x.shape}")
    return x[None] if x.ndim == 3 else x


def _normalize(x: mx.array, rescale_mode) -> mx.array:
    mean, std = rescale_mean_std(rescale_mode)
    return (x - mx.array(mean)) / mx.array(std)


def preprocess_input(image, pretrained_cfg_or_input_shape, rescale_mode=None) -> mx.array:
    """kecam's ``model.preprocess_input`` (``PreprocessInput.__call__`` with its defaults).

    float32; x255 when the max over the whole batch is under 2 (kecam's heuristic for ``[0, 1]``
    images); ``tf.image.resize(method="bilinear", antialias=False)`` of the whole image to the
    model's size; ``(x - mean) / std``.

    Args:
        image: ``[H, W, C]`` or ``[B, H, W, C]`` (NumPy, MLX, a PIL image, or a sequence of
            same-sized images), any real dtype.
        pretrained_cfg_or_input_shape: a model's ``pretrained_cfg`` (its ``input_shape`` and
            ``rescale_mode``) or an input shape, read as kecam does: ``(B, H, W, C)`` drops the
            batch, ``(H, W, C)`` its smallest axis (kecam's guess of the channels), ``(H, W)``
            is the size; a dynamic (``None``) size raises, as in kecam.
        rescale_mode: overrides the ``pretrained_cfg``'s; see :func:`rescale_mean_std`.
            Default: the cfg's, else ``"torch"``.

    Shape:
        ``[H, W, C]`` or ``[B, H, W, C]`` -> ``[B, height, width, C]`` float32.
    """
    size, rescale_mode = _target(pretrained_cfg_or_input_shape, rescale_mode)
    x = _as_images(image)
    if x.size and mx.max(x).item() < 2:
        x = x * 255
    return _normalize(resize_bilinear(x, size), rescale_mode)


def evaluation_input(
    image, pretrained_cfg_or_input_shape, rescale_mode=None, central_crop: float = 1.0
) -> mx.array:
    """kecam's ImageNet evaluation input: ``evaluation(model)``'s defaults, ``central_crop=1.0,
    resize_method="bicubic", antialias=True``.

    As kecam's ``evaluation_process_crop_resize`` then ``(x - mean) / std``: with
    ``central_crop > 0``, the centred square of side ``int(central_crop * min(H, W))`` (offsets
    ``(H - side) // 2``, ``(W - side) // 2``); with ``central_crop <= 0`` the whole image; then
    ``tf.image.resize(method="bicubic", antialias=True)`` to the model's size. Pixels are taken
    as they come (0-255: no x255 rule here, kecam evaluates uint8 images).

    Args:
        image: ``[H, W, C]``, ``[B, H, W, C]``, or a sequence of ``[H, W, C]`` images of any
            sizes (each cropped and resized alone, as kecam's dataset does).
        pretrained_cfg_or_input_shape: as :func:`preprocess_input`.
        rescale_mode: as :func:`preprocess_input`.
        central_crop: fraction of the shorter side, in ``(0, 1]``, or ``<= 0`` for no crop.
            Default: ``1.0``.

    Shape:
        ``[H, W, C]`` or ``[B, H, W, C]`` -> ``[B, height, width, C]`` float32.
    """
    size, rescale_mode = _target(pretrained_cfg_or_input_shape, rescale_mode)
    if isinstance(image, Sequence) and not isinstance(image, (str, bytes)):
        parts = [evaluation_input(i, size, rescale_mode, central_crop) for i in image]
        return mx.concatenate(parts, axis=0)
    x = _as_images(image)
    if central_crop > 0:
        height, width = x.shape[1:3]
        side = int(np.float32(central_crop) * np.float32(min(height, width)))
        if not 0 < side <= min(height, width):
            raise ValueError(
                f"central_crop {central_crop} of a {height}x{width} image: a {side}-pixel "
                f"square (need 0 < central_crop <= 1 and a crop of at least one pixel)"
            )
        top, left = (height - side) // 2, (width - side) // 2
        x = x[:, top : top + side, left : left + side]
    return _normalize(resize_bicubic_antialias(x, size), rescale_mode)


@functools.lru_cache(maxsize=1)
def labels() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The ImageNet-1k classes in kecam's index order: ``(wnids, names)``, 1000 each.

    ``names`` are Keras's short class names (``"great_white_shark"``), the ones kecam's
    ``decode_predictions`` returns.
    """
    with open(CLASS_INDEX_FILE, encoding="utf-8") as f:
        index = json.load(f)
    rows = [index[str(i)] for i in range(len(index))]
    return tuple(r[0] for r in rows), tuple(r[1] for r in rows)


def wnids() -> tuple[str, ...]:
    """The ImageNet-1k WordNet ids in index order (sorted): ``("n01440764", ...)``."""
    return labels()[0]


def decode_predictions(preds, top: int = 5) -> list[list[tuple[str, str, float]]]:
    """kecam's ``decode_predictions`` for ImageNet-1k heads.

    Per row, the ``top`` classes by score, highest first: ``(wnid, name, score)``, with kecam's
    order for ties (``argsort()[-top:][::-1]`` then a stable sort by score). Scores come back as
    Python floats. kecam also decodes 21841/21843-class heads from a file it downloads; that
    label set is not shipped here, and such predictions raise.

    Args:
        preds: ``[N, 1000]`` scores (NumPy or MLX, any float dtype).
        top: classes per row, ``1 <= top <= 1000``. Default: ``5``.
    """
    if isinstance(preds, mx.array):
        preds = preds.astype(mx.float32)
    preds = np.asarray(preds)
    if preds.ndim != 2 or preds.shape[-1] != 1000:
        raise ValueError(
            f"preds: expected [N, 1000] ImageNet-1k scores, got shape {preds.shape} (only the "
            "ImageNet-1k labels are shipped)"
        )
    if not 1 <= top <= preds.shape[-1]:
        raise ValueError(f"top must be in [1, {preds.shape[-1]}], got {top}")
    ids, names = labels()
    results = []
    for row in preds:
        best = row.argsort()[-top:][::-1]
        result = [(ids[i], names[i], float(row[i])) for i in best]
        result.sort(key=lambda r: r[2], reverse=True)
        results.append(result)
    return results
