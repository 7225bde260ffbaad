"""Where a model's weights come from: kecam ``.h5`` files, converted ``.safetensors`` files and
kecam's release tags; ``pretrained_cfg``; and ``convert``, the ``.safetensors`` writer.

A converted file's safetensors metadata holds (all strings): ``format``, ``format_version``,
``model`` (the registry name), ``kwargs`` (the constructor's arguments, JSON),
``pretrained_cfg`` (JSON), ``source_md5`` (of the ``.h5``), ``mlx_attention_version``,
``kecam_version`` and ``mlx_version``. ``create_model(name, pretrained=file)`` reads it with
neither h5py nor the original arguments.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import mlx.core as mx

from ..convert.loader import LoadReport, logger
from . import _download

if TYPE_CHECKING:
    from ._base import ImageClassifier
    from ._registry import ModelEntry

FORMAT = "mlx-attention-model"
FORMAT_VERSION = "1"
KECAM_VERSION = "1.4.3"  # the kecam whose models and names this library reproduces
LABELS = {1000: "imagenet", 21841: "imagenet21k", 21843: "imagenet21k"}
# Arguments that change no weight: a converted file's value is a default the caller may change
# (logits from a file converted with softmax, dropout for fine-tuning).
WEIGHTLESS_ARGS = frozenset({"classifier_activation", "dropout", "drop_connect_rate"})


def _json_equal(a: Any, b: Any) -> bool:
    return json.loads(json.dumps(a)) == json.loads(json.dumps(b))


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The metadata of a converted ``.safetensors`` file (JSON fields decoded), read from its
    header alone.

    Raises:
        KerasFileError: not a readable safetensors file.
        ValueError: not a model file written by ``models.convert``.
    """
    from ..convert import safetensors_header

    _, meta = safetensors_header(path)
    meta = dict(meta or {})
    if meta.get("format") != FORMAT:
        raise ValueError(
            f"{path}: not a model file written by mlx_attention.models.convert (its metadata has "
            f"format={meta.get('format')!r}, expected {FORMAT!r})"
        )
    if meta.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"{path}: format_version {meta.get('format_version')!r}; this library reads "
            f"{FORMAT_VERSION!r}"
        )
    for key in ("kwargs", "pretrained_cfg"):
        meta[key] = json.loads(meta[key])
    return meta


def _fetch(entry: ModelEntry, model_name: str, tag: str, width: int) -> tuple[Path, int | None]:
    """The local file of kecam's release for ``tag`` (cached or downloaded), and its classes."""
    release = _download.resolve(
        model_name, tag, width, entry.family.sub_release, entry.family.pretrained_dict
    )
    classes = entry.family.pretrained_classes.get((model_name, tag), 1000)
    return Path(_download.fetch(release)), classes


def resolve(
    entry: ModelEntry, pretrained: Any, given: dict[str, Any], *, strict: bool
) -> tuple[Path | None, dict[str, Any]]:
    """The weight file for ``pretrained``, and the constructor arguments it implies merged into
    the caller's (``given``).

    Raises:
        ValueError: a ``.safetensors`` file of another model or with other arguments than the
            caller's, or a tag whose head size contradicts an explicit ``num_classes``.
    """
    if pretrained is None:
        return None, given
    if isinstance(pretrained, Path) or (
        isinstance(pretrained, str) and ("/" in pretrained or "." in Path(pretrained).name)
    ):  # a path; tags ("imagenet", "imagenet21k-ft1k") have neither
        path = Path(pretrained)
        if path.suffix == ".safetensors":
            return path, _merge_metadata(entry, path, given)
        if path.suffix != ".h5":
            raise ValueError(
                f"pretrained={str(path)!r}: expected a kecam .h5 (legacy Keras HDF5) or a "
                ".safetensors written by mlx_attention.models.convert"
            )
        return path, given
    if not isinstance(pretrained, str):
        raise TypeError(
            f"pretrained must be None, a path or a tag, got {type(pretrained).__name__}"
        )
    from ._base import channels_last

    model_name = entry.spec.model_name if entry.spec else given.get("model_name", "nat")
    defaults = {p.name: p.default for p in entry.signature.parameters.values()}
    shape = channels_last(given.get("input_shape", defaults.get("input_shape")))
    path, classes = _fetch(entry, model_name, pretrained, shape[1])
    if "num_classes" not in given:
        given = {**given, "num_classes": classes}
    elif given["num_classes"] != classes and strict:
        raise ValueError(
            f"pretrained={pretrained!r}: the file's head has {classes} classes, num_classes="
            f"{given['num_classes']}; leave num_classes out (it follows the file) or pass "
            f"num_classes={classes}"
        )
    return path, given


def _merge_metadata(entry: ModelEntry, path: Path, given: dict[str, Any]) -> dict[str, Any]:
    from ._registry import get_entry

    meta = read_metadata(path)
    if get_entry(meta["model"]) is not entry:
        raise ValueError(f"{path}: holds {meta['model']!r}, not {entry.name!r}")
    stored = meta["kwargs"]
    clashes = [
        f"{k}={given[k]!r} (the file's: {stored[k]!r})"
        for k in given
        if k in stored and k not in WEIGHTLESS_ARGS and not _json_equal(given[k], stored[k])
    ]
    if clashes:
        raise ValueError(
            f"{path}: arguments contradict the file's metadata: {', '.join(clashes)}; "
            "leave them out (they come from the file; only "
            f"{', '.join(sorted(WEIGHTLESS_ARGS))} may differ)"
        )
    return {**stored, **given}


@dataclass(frozen=True)
class ModelLoadReport(LoadReport):
    """A whole model's ``LoadReport``, plus ``skipped``: the model's optional Keras layers
    that the file carries and the model, as built, does not use (UniFormer's token-label
    ``aux_head`` without ``token_label_top``); never a problem, even under ``strict``."""

    skipped: tuple[str, ...] = ()

    def __str__(self) -> str:
        return "\n".join(
            [LoadReport.__str__(self), *(f"  skipped (optional): {n}" for n in self.skipped)]
        )


class _Quiet(logging.Filter):
    """Holds back the loader's warning for a load whose only "problems" are optional layers."""

    def filter(self, record: logging.LogRecord) -> bool:
        return False


def _load_h5(model: ImageClassifier, path: Path, *, strict: bool, resize: bool | str):
    """``convert.load_keras_weights`` for a whole model, with the model's ``optional_layers``
    (Keras names a release file of the model may carry unused) reported as ``skipped``: a
    strict load that fails on them alone loads again without them (the failed attempt read
    no data: validation runs on the file's metadata)."""
    from .. import convert

    def load(strict_load: bool):
        return convert.load_keras_weights(model, path, prefix="", strict=strict_load, resize=resize)

    optional = frozenset(getattr(model, "optional_layers", ()))
    if not optional:
        return load(strict)
    try:
        report = load(True)
    except convert.WeightMismatchError as err:
        failed = err.report
        only_optional = (
            failed is not None
            and not failed.missing
            and not failed.mismatched
            and set(failed.unexpected) <= optional
        )
        if strict and not only_optional:
            raise
        quiet = _Quiet()
        if only_optional:
            logger.addFilter(quiet)
        try:
            report = load(False)
        finally:
            logger.removeFilter(quiet)
    skipped = tuple(n for n in report.unexpected if n in optional)
    if not skipped:
        return report
    kept = {f.name: getattr(report, f.name) for f in fields(LoadReport)}
    kept["unexpected"] = tuple(n for n in report.unexpected if n not in optional)
    return ModelLoadReport(**kept, skipped=skipped)


def load_file(model: ImageClassifier, path: Path, *, strict: bool, resize: bool | str) -> None:
    """Fill ``model`` from a kecam ``.h5`` or a converted ``.safetensors`` (strict, atomic)."""
    from .. import convert

    if path.suffix == ".safetensors":
        report = convert.load_safetensors(model, path, strict=strict)
    else:
        report = _load_h5(model, path, strict=strict, resize=resize)
    if report is not model:
        object.__setattr__(model, "load_report", report)


def tags(entry: ModelEntry, model_name: str) -> dict[str, dict[str, Any]]:
    """kecam's release files of ``model_name``: ``{tag: resolutions, files, md5, classes}``."""
    out = {}
    for tag, hashes in entry.family.pretrained_dict.get(model_name, {}).items():
        by_res = hashes if isinstance(hashes, Mapping) else {None: hashes}
        files = [
            f"{model_name}_{tag}.h5" if res is None else f"{model_name}_{res}_{tag}.h5"
            for res in by_res
        ]
        out[tag] = {
            "resolutions": [r for r in by_res if r is not None] or None,
            "files": files,
            "md5": list(by_res.values()),
            "num_classes": entry.family.pretrained_classes.get((model_name, tag), 1000),
        }
    return out


def make_cfg(
    entry: ModelEntry, model_name: str, model: ImageClassifier, arguments: Mapping[str, Any]
) -> dict[str, Any]:
    """``model.pretrained_cfg``: what preprocessing, decoding and loading need to know."""
    from ..imagenet import rescale_mean_std

    mode = entry.family.rescale_mode
    mean, std = (v.tolist() for v in rescale_mean_std(mode))
    num_classes = model.head.num_classes
    return {
        "name": model_name,
        "kecam": entry.kecam,
        "input_shape": list(model.input_shape),
        "num_classes": num_classes,
        "classifier_activation": arguments.get("classifier_activation"),
        "rescale_mode": mode,
        "mean": mean,
        "std": std,
        "resize": "bilinear",
        "antialias": False,
        "labels": LABELS.get(num_classes),
        "kecam_pretrained": entry.spec.kecam_pretrained if entry.spec else None,
        "sub_release": entry.family.sub_release,
        "url": f"{_download.RELEASE_URL}/{entry.family.sub_release}/",
        "tags": tags(entry, model_name),
    }


def convert(name: str, h5_path: str | Path, out_path: str | Path, **kwargs) -> Path:
    """Convert a kecam ``.h5`` into a ``.safetensors`` that ``create_model(name,
    pretrained=out_path)`` loads without h5py and without the original arguments.

    Args:
        name: the model (as for ``create_model``).
        h5_path: kecam's weight file.
        out_path: the ``.safetensors`` to write.
        **kwargs: the constructor's arguments the file was made with (``input_shape``,
            ``num_classes``, ...), plus ``strict``/``resize`` for reading the ``.h5``.

    Returns:
        ``out_path``.
    """
    from .. import __version__
    from .. import convert as _convert
    from ._registry import create_model

    out_path = Path(out_path)
    if out_path.suffix != ".safetensors":
        raise ValueError(f"out_path={str(out_path)!r} must end in .safetensors")
    model = create_model(name, pretrained=str(h5_path), **kwargs)
    metadata = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model": model.config["model"],
        "kwargs": json.dumps(model.config["kwargs"]),
        "pretrained_cfg": json.dumps(model.pretrained_cfg),
        "source_md5": _download.file_md5(h5_path),
        "mlx_attention_version": __version__,
        "kecam_version": KECAM_VERSION,
        "mlx_version": mx.__version__,
    }
    _convert.export_safetensors(model, out_path, metadata=metadata)
    return out_path
