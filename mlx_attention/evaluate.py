"""Evaluate a model on a labelled image set: top-1/top-5 accuracy, on one process or
data-parallel over ``mx.distributed`` (kecam's ``imagenet.eval_func.evaluation``, timm's
``validate.py``).

::

    from mlx_attention import evaluate, models
    model = models.create_model("NAT_Mini", pretrained="nat_mini_imagenet.h5")
    samples = evaluate.label_samples(evaluate.scan("val/"), model)
    result = evaluate.evaluate(model, samples, batch_size=64)
    result.top1, result.top5, result.images_per_s

Data: an ImageFolder-style directory whose subfolders are wnids (looked up in the model's label
set, not numbered by sorting the folders present) or integer class indices, or a text file of
``path label`` lines with the same label forms (paths relative to the file's folder). Samples
are sorted by path; each rank of the group takes ``samples[rank::size]``. Every batch is padded
to ``batch_size`` (padded rows are masked out of the counts), so a result never depends on how
the images fall into batches or ranks; the counts are reduced with ``mx.distributed.all_sum``.
Decoding and preprocessing run in a small thread pool ahead of the model; an image that does
not decode is reported by path on stderr and counted in ``skipped``.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import mlx.core as mx
import numpy as np

# Pillow's usual still-image formats; other files in a class folder are not images
IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm"}
)
RESIZE_MODES = ("eval", "kecam")
TOP_K = (1, 5)
# batches in the decoding pool while the one before them is assembled and run by the model
PREFETCH_BATCHES = 2


class Sample(NamedTuple):
    """An image file and its class index in the model's label set."""

    path: str
    label: int


# --- data ---------------------------------------------------------------------------------------


def _is_hidden(path: Path, root: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(root).parts)


def scan(data: str | Path) -> list[tuple[str, str]]:
    """The ``(path, label text)`` pairs of a data set, sorted by path.

    Args:
        data: a directory with one subfolder per class (images anywhere below it; hidden files
            and files that are not images by their suffix are left out), or a text file of
            ``path label`` lines (``#`` comments and blank lines allowed; a relative path is
            relative to the file's folder; the label is the last word after a space or tab, so
            paths may hold spaces).

    Raises:
        ValueError: no such file or directory, a malformed line, or no image at all.
    """
    root = Path(data)
    if root.is_dir():
        pairs = [
            (str(path), folder.name)
            for folder in root.iterdir()
            if folder.is_dir() and not folder.name.startswith(".")
            for path in folder.rglob("*")
            if path.suffix.lower() in IMAGE_SUFFIXES
            and path.is_file()
            and not _is_hidden(path, root)
        ]
        where = f"{root}: no image in class subfolders (expected DIR/<wnid or index>/<image>)"
    elif root.is_file():
        pairs = []
        for number, line in enumerate(root.read_text().splitlines(), 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            words = line.rsplit(maxsplit=1)
            if len(words) != 2:
                raise ValueError(f"{root}:{number}: expected 'path label', got {line!r}")
            pairs.append((str(root.parent / words[0]), words[1]))
        where = f"{root}: no 'path label' line"
    else:
        raise ValueError(f"data {str(root)!r}: no such directory or list file")
    if not pairs:
        raise ValueError(where)
    return sorted(pairs)


def label_set(model: Any) -> list[str] | None:
    """The wnids of the model's classes in index order (kecam's: ImageNet-1k's sorted wnids),
    or None for a head without a known label set."""
    from . import imagenet

    if model.pretrained_cfg.get("labels") != "imagenet":
        return None
    return list(imagenet.wnids())


def label_samples(pairs: Sequence[tuple[str, str]], model: Any) -> list[Sample]:
    """``scan``'s pairs with their labels as class indices of ``model``.

    A label is an integer class index (``0 <= index < num_classes``) or a wnid of the model's
    label set (``model.pretrained_cfg["labels"]``); folders are never numbered by sorting.

    Raises:
        ValueError: a label that is neither, quoting it and the first path that has it.
    """
    num_classes = model.pretrained_cfg["num_classes"]
    wnids = label_set(model)
    index = {wnid: i for i, wnid in enumerate(wnids or ())}
    resolved: dict[str, int] = {}
    samples = []
    for path, text in pairs:
        if text not in resolved:
            resolved[text] = _class_index(text, index, num_classes, path)
        samples.append(Sample(path, resolved[text]))
    return samples


def _class_index(text: str, wnids: dict[str, int], num_classes: int, path: str) -> int:
    if text.isascii() and text.isdigit():
        if int(text) >= num_classes:
            raise ValueError(
                f"{path}: class index {text} is out of range for a model of {num_classes} classes"
            )
        return int(text)
    if text in wnids:
        return wnids[text]
    known = (
        f"nor one of the model's {len(wnids)} wnids (e.g. {next(iter(wnids))})"
        if wnids
        else f"and the model's {num_classes} classes have no wnid label set"
    )
    raise ValueError(
        f"{path}: label {text!r} is neither a class index (0 to {num_classes - 1}) {known}"
    )


def shard(samples: Sequence[Sample], rank: int, size: int) -> list[Sample]:
    """Rank ``rank``'s images of ``size``: ``samples[rank::size]`` (disjoint, and within one
    image of the same length on every rank)."""
    return list(samples[rank::size])


# --- images -------------------------------------------------------------------------------------


def preprocessor(model: Any, resize: str = "eval") -> Callable[[np.ndarray], np.ndarray]:
    """The function from an image's RGB pixels (``[H, W, 3]`` uint8) to the model's input
    (``[height, width, 3]`` float32).

    Args:
        model: its ``pretrained_cfg`` gives the input size and the rescale mode.
        resize: ``"eval"``, kecam's ImageNet evaluation rule (central crop 1.0, bicubic with
            antialias), or ``"kecam"``, ``model.preprocess_input``'s (bilinear, no crop).
    """
    from . import imagenet

    if resize not in RESIZE_MODES:
        raise ValueError(f"resize must be one of {RESIZE_MODES}, got {resize!r}")
    cfg = model.pretrained_cfg
    rule = imagenet.evaluation_input if resize == "eval" else imagenet.preprocess_input

    def prepare(pixels: np.ndarray) -> np.ndarray:
        # on MLX's CPU stream: the pool's threads must not queue work behind the model's
        with mx.stream(mx.cpu):
            x = rule(mx.array(pixels), cfg)
            return np.array(x.astype(mx.float32)).reshape(cfg["input_shape"])

    return prepare


def decode(path: str) -> np.ndarray:
    """An image file's RGB pixels, ``[H, W, 3]`` uint8 (Pillow; grey, palette and alpha images
    converted to RGB as TensorFlow's ``decode_image(channels=3)`` does).

    PNGs decode to kecam's (TensorFlow's) pixels exactly. JPEGs decode with libjpeg's accurate
    integer DCT, TensorFlow's ``dct_method="INTEGER_ACCURATE"``; kecam's pipeline uses
    TensorFlow's default, the fast one, which differs by a few levels (up to 5 of 255 on
    generated images), so an accuracy on JPEGs may differ slightly from kecam's.
    Pillow cannot select the fast DCT without also turning off libjpeg's fancy upsampling.
    """
    from PIL import Image

    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def _load(path: str, prepare: Callable[[np.ndarray], np.ndarray]) -> np.ndarray | str:
    """The model input of one image, or why it could not be read (never raises: a corrupt
    file must not stop a run of 50,000)."""
    try:
        return prepare(decode(path))
    except Exception as err:  # Pillow raises OSError, SyntaxError, ValueError, ... on bad data
        return f"{type(err).__name__}: {err}"


class Batch(NamedTuple):
    """A padded batch: ``images`` ``[batch_size, H, W, 3]`` (zeros in padded and skipped rows),
    ``labels`` ``[batch_size]`` and ``valid`` (rows that count), and the skipped images with the
    reason."""

    images: np.ndarray
    labels: np.ndarray
    valid: np.ndarray
    skipped: list[tuple[str, str]]


def batches(
    samples: Sequence[Sample],
    batch_size: int,
    prepare: Callable[[np.ndarray], np.ndarray],
    input_shape: Sequence[int],
    workers: int | None = None,
) -> Iterator[Batch]:
    """``samples`` in padded batches, decoded and preprocessed by a thread pool that keeps
    ``PREFETCH_BATCHES`` batches ahead of the consumer.

    Args:
        samples: the images, in the order they are batched.
        batch_size: rows of every batch (the last one padded).
        prepare: pixels to model input (``preprocessor``).
        input_shape: the model input of one image, ``(H, W, 3)``.
        workers: threads of the pool (default: ``min(4, cores)``).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    workers = workers or min(4, os.cpu_count() or 1)
    chunks = [samples[i : i + batch_size] for i in range(0, len(samples), batch_size)]
    with concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="evaluate") as pool:
        pending: deque = deque()
        try:
            for chunk in chunks:
                pending.append((chunk, [pool.submit(_load, s.path, prepare) for s in chunk]))
                if len(pending) > PREFETCH_BATCHES:
                    yield _assemble(*pending.popleft(), batch_size, input_shape)
            while pending:
                yield _assemble(*pending.popleft(), batch_size, input_shape)
        finally:  # the consumer stopped early: drop what was not started
            pool.shutdown(wait=True, cancel_futures=True)


def _assemble(chunk, futures, batch_size: int, input_shape: Sequence[int]) -> Batch:
    images = np.zeros((batch_size, *input_shape), np.float32)
    labels = np.zeros(batch_size, np.int32)
    valid = np.zeros(batch_size, bool)
    skipped = []
    for row, (sample, future) in enumerate(zip(chunk, futures)):
        result = future.result()
        if isinstance(result, str):
            skipped.append((sample.path, result))
            continue
        images[row], labels[row], valid[row] = result, sample.label, True
    return Batch(images, labels, valid, skipped)


# --- metrics ------------------------------------------------------------------------------------


def correct_counts(scores: mx.array, labels: mx.array, valid: mx.array) -> mx.array:
    """``[valid rows, top-1 hits, top-5 hits]`` (int32) of a batch.

    A label's rank is its place in the scores sorted high to low, ties broken by the lower
    class index (a stable sort; NaN scores rank last), so the counts depend on the scores alone.

    Args:
        scores: ``[B, classes]`` probabilities or logits.
        labels: ``[B]`` class indices.
        valid: ``[B]`` bool, the rows that count.
    """
    scores = scores.astype(mx.float32)
    classes = scores.shape[-1]
    own = mx.take_along_axis(scores, labels[:, None], axis=-1)
    before = (scores > own) | ((scores == own) & (mx.arange(classes)[None] < labels[:, None]))
    rank = mx.where(mx.isnan(own[:, 0]), classes, before.sum(axis=-1))
    hits = [(valid & (rank < k)).sum() for k in TOP_K]
    return mx.stack([valid.sum(), *hits]).astype(mx.int32)


@dataclass(frozen=True)
class Result:
    """Counts over every rank.

    Attributes:
        images: images evaluated (skipped ones excluded).
        top1_hits, top5_hits: images whose label ranks first / among the first five.
        skipped: images that could not be decoded or preprocessed.
        seconds: wall time from the first batch to the reduced counts.
        processes: ranks of the group.
    """

    images: int
    top1_hits: int
    top5_hits: int
    skipped: int
    seconds: float
    processes: int

    @property
    def top1(self) -> float | None:
        return self.top1_hits / self.images if self.images else None

    @property
    def top5(self) -> float | None:
        return self.top5_hits / self.images if self.images else None

    @property
    def images_per_s(self) -> float:
        return self.images / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "images": self.images,
            "top1": self.top1,
            "top5": self.top5,
            "skipped": self.skipped,
            "images_per_s": self.images_per_s,
            "top1_hits": self.top1_hits,
            "top5_hits": self.top5_hits,
            "seconds": self.seconds,
            "processes": self.processes,
        }


def _log(message: str) -> None:
    from tqdm import tqdm

    tqdm.write(message, file=sys.stderr)  # above rank 0's progress bar, not through it


def barrier(group: mx.distributed.Group, failed: bool = False) -> bool:
    """Wait for every rank; True when some rank arrives with ``failed``."""
    flag = mx.distributed.all_sum(mx.array([int(failed)]), group=group, stream=mx.cpu)
    return flag.item() > 0


def evaluate(
    model: Any,
    samples: Sequence[Sample],
    *,
    batch_size: int = 64,
    resize: str = "eval",
    group: mx.distributed.Group | None = None,
    workers: int | None = None,
    progress: bool = True,
) -> Result:
    """Top-1/top-5 of ``model`` on ``samples``, this rank taking ``samples[rank::size]``.

    Every rank of ``group`` must call it with the same samples; each returns the counts of all.

    Args:
        model: a classifier (``models.create_model``) in inference mode.
        samples: every rank's images, sorted (``label_samples``; ``--limit`` already applied).
        batch_size: rows of every batch (padded: counts never depend on it).
        resize: ``"eval"`` or ``"kecam"`` (``preprocessor``).
        group: ``mx.distributed.init()``'s group (default: that of this process).
        workers: decoding threads.
        progress: a progress bar on rank 0.

    Returns:
        the counts of every rank, reduced with ``mx.distributed.all_sum``.
    """
    from .models._glue import single_output

    model = single_output(model)  # a distillation model: kecam's deployed one (one head)
    group = mx.distributed.init() if group is None else group
    rank, size = group.rank(), group.size()
    mine = shard(samples, rank, size)
    input_shape = tuple(model.pretrained_cfg["input_shape"])
    prepare = preprocessor(model, resize)
    totals = mx.zeros(3, mx.int32)
    skipped = 0
    barrier(group)  # time the ranks from a common start
    start = time.perf_counter()
    bar = None
    if progress and rank == 0:
        from tqdm import tqdm

        bar = tqdm(total=len(mine), unit="img", desc=f"evaluate (rank 0 of {size})")
    try:
        for batch in batches(mine, batch_size, prepare, input_shape, workers):
            scores = model(mx.array(batch.images))
            totals = totals + correct_counts(scores, mx.array(batch.labels), mx.array(batch.valid))
            mx.async_eval(totals)  # the model runs while the pool fills the next batch
            for path, reason in batch.skipped:
                _log(f"skipped {path}: {reason}")
            skipped += len(batch.skipped)
            if bar is not None:
                bar.update(int(batch.valid.sum()) + len(batch.skipped))
    finally:
        if bar is not None:
            bar.close()
    counts = mx.concatenate([totals, mx.array([skipped], mx.int32)])
    counts = mx.distributed.all_sum(counts, group=group, stream=mx.cpu).tolist()
    seconds = time.perf_counter() - start
    return Result(*counts, seconds=seconds, processes=size)


# --- the command --------------------------------------------------------------------------------


def build_model(name: str, weights: str, group: mx.distributed.Group, **kwargs) -> Any:
    """``models.create_model(name, pretrained=weights, **kwargs)`` on every rank; rank 0 first
    when ``weights`` is not a file (a tag it may download once into the cache the others then
    read).

    Raises:
        ValueError: on ranks other than 0, when rank 0 failed to build it (rank 0 raises its
            own error).
    """
    from . import models

    if Path(weights).is_file() or group.size() == 1:
        return models.create_model(name, pretrained=weights, **kwargs)
    model = None
    if group.rank() == 0:
        try:
            model = models.create_model(name, pretrained=weights, **kwargs)
        except BaseException:
            barrier(group, failed=True)  # release the others before raising
            raise
    if barrier(group):
        raise ValueError(f"rank 0 could not build {name} with weights {weights!r}")
    return model if model is not None else models.create_model(name, pretrained=weights, **kwargs)


def summary(result: Result) -> str:
    """One line: accuracies with their counts, skipped images, speed."""
    if not result.images:
        return f"no image evaluated ({result.skipped} skipped)"
    return (
        f"top-1 {result.top1:.4f} ({result.top1_hits}/{result.images})  top-5 {result.top5:.4f} "
        f"({result.top5_hits}/{result.images})  skipped {result.skipped}  "
        f"{result.images_per_s:.1f} images/s on {result.processes} process"
        f"{'es' if result.processes > 1 else ''}"
    )


def write_json(path: str | Path, result: Result, **settings: Any) -> None:
    """The result's fields and the run's settings as a JSON object."""
    Path(path).write_text(json.dumps({**result.as_dict(), **settings}, indent=2) + "\n")
