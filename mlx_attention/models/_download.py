"""kecam's release files: which file a tag means (:func:`resolve`), and getting it (:func:`fetch`).

A tag resolves as kecam's ``download_and_load.reload_model_weights`` does: the
``pretrained_dict[model_name][tag]`` entry is an md5, or ``{resolution: md5}`` from which the
resolution nearest the input width wins (ties to the first listed). The file is
``{model_name}_{tag}.h5`` or ``{model_name}_{resolution}_{tag}.h5`` under
``{RELEASE_URL}/{sub_release}/``.

:func:`fetch` looks in this library's cache (``MLX_ATTENTION_CACHE``; default
``$XDG_CACHE_HOME/mlx-attention`` or ``~/.cache/mlx-attention``), then in kecam's own
(``$KERAS_HOME/models``, default ``~/.keras/models``), each file checked against kecam's md5.
Otherwise it downloads into ours (base URL overridable by ``MLX_ATTENTION_WEIGHTS_URL``) under a
file lock, so that concurrent processes download once, to a temporary file in the same folder,
then checks the md5 and renames atomically. A cached file with a wrong md5 is downloaded again;
a download that fails or has a wrong md5 raises :class:`WeightsDownloadError` and leaves
nothing behind.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

RELEASE_URL = "https://github.com/leondgarse/keras_cv_attention_models/releases/download"
DEFAULT_RESOLUTION = 224  # kecam's file resolution for an entry without resolutions
CHUNK = 1 << 20
TIMEOUT_S = 60


class PretrainedUnavailable(ValueError):
    """kecam has no release file for this model and tag."""


class WeightsDownloadError(RuntimeError):
    """A release file could not be had: offline, HTTP error, or a wrong md5."""


@dataclass(frozen=True)
class ReleaseFile:
    """One kecam release file.

    Attributes:
        model_name: kecam's ``model.name`` (``"nat_mini"``).
        tag: kecam's tag (``"imagenet"``).
        file_name: ``"nat_mini_imagenet.h5"``, ``"coatnet0_160_imagenet.h5"``.
        md5: kecam's hash of the file.
        url: where it is downloaded from.
        resolution: the input size the file was trained at (kecam's ``request_resolution``;
            224 where kecam's entry lists no resolutions, as kecam assumes).
    """

    model_name: str
    tag: str
    file_name: str
    md5: str
    url: str
    resolution: int


def resolve(
    model_name: str,
    tag: str,
    width: int | None,
    sub_release: str,
    pretrained_dict: Mapping[str, Mapping],
) -> ReleaseFile:
    """kecam's release file for ``model_name`` and ``tag`` at an input ``width``.

    Args:
        model_name: kecam's ``model.name``, the key of ``pretrained_dict``.
        tag: ``"imagenet"``, ``"imagenet21k-ft1k"``, ...
        width: the model's input width (kecam reads ``model.input_shape[2]``); ``None`` (a
            dynamic shape) takes the largest resolution, as kecam does.
        sub_release: the family's release folder (kecam's ``sub_release``, e.g. ``"nat"``).
        pretrained_dict: the family's ``PRETRAINED_DICT``.

    Raises:
        PretrainedUnavailable: no file for the tag (naming the tags that exist), or a file that
            kecam splits into parts (not supported here).
    """
    tags = pretrained_dict.get(model_name, {})
    if tag not in tags:
        have = f"its tags are {sorted(tags)}" if tags else "kecam has no pretrained file for it"
        raise PretrainedUnavailable(
            f"model {model_name!r} has no pretrained weights tagged {tag!r}: {have}"
        )
    entry = tags[tag]
    if isinstance(entry, Mapping):
        if width is None:
            resolution = max(entry)
        else:  # min() keeps the first of equally near resolutions, kecam's tie rule
            resolution = min(entry, key=lambda r: abs(r - width))
        md5, file_tag = entry[resolution], f"{resolution}_{tag}"
    else:
        md5, resolution, file_tag = entry, DEFAULT_RESOLUTION, tag
    if not isinstance(md5, str):
        raise PretrainedUnavailable(
            f"model {model_name!r} tag {tag!r}: kecam splits this file into {len(md5)} parts "
            f"({model_name}_{file_tag}.1.h5, ...), which this library does not load"
        )
    file_name = f"{model_name}_{file_tag}.h5"
    base = os.environ.get("MLX_ATTENTION_WEIGHTS_URL", RELEASE_URL).rstrip("/")
    return ReleaseFile(
        model_name=model_name,
        tag=tag,
        file_name=file_name,
        md5=md5,
        url=f"{base}/{sub_release}/{file_name}",
        resolution=int(resolution),
    )


def cache_dir() -> Path:
    """This library's weight cache: ``MLX_ATTENTION_CACHE``, else ``$XDG_CACHE_HOME/mlx-attention``,
    else ``~/.cache/mlx-attention``."""
    if os.environ.get("MLX_ATTENTION_CACHE"):
        return Path(os.environ["MLX_ATTENTION_CACHE"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or "~/.cache"
    return Path(xdg).expanduser() / "mlx-attention"


def keras_cache_dir() -> Path:
    """kecam's download cache: Keras's ``get_file(cache_subdir="models")``, ``$KERAS_HOME/models``
    (default ``~/.keras/models``)."""
    return Path(os.environ.get("KERAS_HOME") or "~/.keras").expanduser() / "models"


def file_md5(path: str | Path) -> str:
    """The md5 of a file, read in chunks."""
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _cached(release: ReleaseFile) -> Path | None:
    for folder in (cache_dir(), keras_cache_dir()):
        path = folder / release.file_name
        if path.is_file() and file_md5(path) == release.md5:
            return path
    return None


def fetch(release: ReleaseFile, *, progress: bool = True) -> Path:
    """The local path of ``release``: from a cache, or downloaded into this library's.

    Args:
        release: from :func:`resolve`.
        progress: show a progress bar (tqdm, on a terminal only). Default: ``True``.

    Raises:
        WeightsDownloadError: offline, an HTTP error, or a download with another md5 (removed);
            the message names the file, the URL and where to put the file by hand.
    """
    import fcntl  # here, not at the top: POSIX only, and only a download needs it

    found = _cached(release)
    if found is not None:
        return found
    folder = cache_dir()
    target = folder / release.file_name
    try:
        folder.mkdir(parents=True, exist_ok=True)
        lock = open(folder / f"{release.file_name}.lock", "a")
    except OSError as error:
        raise _error(release, target, f"cannot write to the cache folder: {error}") from error
    with lock:  # closing the lock file releases the lock
        fcntl.flock(lock, fcntl.LOCK_EX)
        # another process may have finished the download while this one waited for the lock
        found = _cached(release)
        if found is not None:
            return found
        _download(release, target, progress)
    return target


def _download(release: ReleaseFile, target: Path, progress: bool) -> None:
    from tqdm import tqdm

    part = tempfile.NamedTemporaryFile(
        dir=target.parent, prefix=f".{release.file_name}.", suffix=".part", delete=False
    )
    try:
        digest = hashlib.md5()
        with part, urllib.request.urlopen(release.url, timeout=TIMEOUT_S) as response:
            total = response.headers.get("Content-Length")
            with tqdm(
                total=int(total) if total else None, unit="B", unit_scale=True,
                unit_divisor=1024, desc=release.file_name, disable=None if progress else True,
            ) as bar:  # fmt: skip
                for chunk in iter(lambda: response.read(CHUNK), b""):
                    part.write(chunk)
                    digest.update(chunk)
                    bar.update(len(chunk))
        if digest.hexdigest() != release.md5:
            raise _error(
                release, target, f"md5 {digest.hexdigest()}, kecam's is {release.md5}; removed"
            )
        os.replace(part.name, target)
    except urllib.error.HTTPError as error:
        raise _error(release, target, f"HTTP {error.code} {error.reason}") from error
    except urllib.error.URLError as error:
        raise _error(release, target, f"unreachable ({error.reason})") from error
    except OSError as error:  # a connection dropped mid-file, a full disk
        raise _error(release, target, str(error)) from error
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(part.name)


def _error(release: ReleaseFile, target: Path, why: str) -> WeightsDownloadError:
    return WeightsDownloadError(
        f"could not get {release.file_name} (model {release.model_name!r}, tag {release.tag!r}) "
        f"from {release.url}: {why}. Download it by hand and put it at {target} "
        f"(or in {keras_cache_dir()}); its md5 must be {release.md5}"
    )
