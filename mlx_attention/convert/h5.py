"""Reading kecam's Keras ``.h5`` files: legacy Keras-2 HDF5, ``save_weights`` and ``model.save``.

The file is a door: every weight a user downloads comes through it. ``KerasH5`` reads the
layer names, weight names, shapes and dtypes from the file's metadata when it opens, reads data
only when asked, one dataset at a time, and reads nothing but the file itself: it refuses
anything that is not a regular file (a FIFO would block the open), HDF5 links (external links
open other files; a Keras file has only hard links), external storage (a dataset whose bytes
live in another file, ``/etc/hostname`` or ``/proc/self/environ``) and virtual datasets. Every
failure of h5py or HDF5 on a damaged file becomes a ``KerasFileError`` naming the file, and the
layer and weight where known.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import numpy as np

if TYPE_CHECKING:  # imported where a .h5 is read: a converted .safetensors loads without h5py
    import h5py


class KerasFileError(ValueError):
    """A weight file that cannot be read as kecam weights (missing, damaged or hostile)."""


# What h5py and HDF5 raise on a damaged file (HDF5 errors surface as OSError, RuntimeError,
# KeyError or ValueError depending on the call; odd attribute types give TypeError).
_H5_ERRORS = (
    OSError,
    RuntimeError,
    LookupError,
    ValueError,
    TypeError,
    AttributeError,
    ArithmeticError,
    SystemError,
)

_KERAS3_HINT = (
    "it is a Keras-3 '.weights.h5' file, which stores no Keras layer names, so its weights "
    "cannot be matched to kecam's names. Re-save it in the legacy format: with "
    "TF_USE_LEGACY_KERAS=1 and tf-keras, build the kecam model, load these weights and call "
    "model.save_weights('model.h5') (a file name not ending in '.weights.h5')"
)
_KERAS_ARCHIVE_HINT = (
    "it is a Keras-3 '.keras' archive (a zip file), not an HDF5 weight file. Re-save it in the "
    "legacy format: with TF_USE_LEGACY_KERAS=1 and tf-keras, build the kecam model, load the "
    "archive's weights and call model.save_weights('model.h5')"
)
_ZIP_MAGIC = b"PK\x03\x04"


@dataclass(frozen=True)
class WeightInfo:
    """One stored variable, from the file's metadata: ``weight_names`` entry, shape, dtype."""

    name: str
    shape: tuple[int, ...]
    dtype: np.dtype

    @property
    def short_name(self) -> str:
        """``'blk_qkv/kernel:0'`` -> ``'kernel'``: for messages, never for matching."""
        return self.name.rsplit("/", 1)[-1].split(":")[0]

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))


@dataclass(frozen=True)
class LayerInfo:
    """One Keras layer of a weight file, from metadata only: its variables in order."""

    name: str
    weights: tuple[WeightInfo, ...]

    @property
    def weight_names(self) -> tuple[str, ...]:
        return tuple(w.name for w in self.weights)

    @property
    def short_names(self) -> tuple[str, ...]:
        return tuple(w.short_name for w in self.weights)

    @property
    def shapes(self) -> tuple[tuple[int, ...], ...]:
        return tuple(w.shape for w in self.weights)

    @property
    def dtypes(self) -> tuple[np.dtype, ...]:
        return tuple(w.dtype for w in self.weights)


@dataclass(frozen=True, repr=False)
class H5Layer:
    """One Keras layer of a weight file: its variables in ``weight_names`` order, read."""

    name: str
    weight_names: tuple[str, ...]
    arrays: tuple[np.ndarray, ...]

    @property
    def short_names(self) -> tuple[str, ...]:
        """``'blk_qkv/kernel:0'`` -> ``'kernel'``: for messages, never for matching."""
        return tuple(n.rsplit("/", 1)[-1].split(":")[0] for n in self.weight_names)

    def __repr__(self) -> str:  # names and shapes, never the numbers
        weights = ", ".join(
            f"{name}: {tuple(a.shape)}" for name, a in zip(self.short_names, self.arrays)
        )
        return f"H5Layer({self.name!r}, {{{weights}}})"


def open_regular_file(path: Path) -> BinaryIO:
    """Open ``path`` for reading if it is a regular file (symlinks followed), else raise.

    The open is non-blocking, so a FIFO (which would block until a writer comes) is refused
    instead of hanging; the check is made on the open descriptor, so nothing can swap the file
    between the check and the read.
    """
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise KerasFileError(f"{path}: no such file") from None
    except PermissionError:
        raise KerasFileError(f"{path}: permission denied") from None
    except IsADirectoryError:
        raise KerasFileError(f"{path}: is a directory, not a weight file") from None
    except OSError as err:
        raise KerasFileError(f"{path}: cannot open: {err.strerror or err}") from None
    mode = os.fstat(fd).st_mode
    if stat.S_ISDIR(mode):
        os.close(fd)
        raise KerasFileError(f"{path}: is a directory, not a weight file")
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise KerasFileError(
            f"{path}: not a regular file (a FIFO, socket or device): refusing to read it"
        )
    if hasattr(os, "O_NONBLOCK"):
        os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


def _check_global_heaps(handle: BinaryIO, path: Path) -> None:
    """Refuse a global heap (where HDF5 keeps variable-length strings: Keras's ``layer_names``)
    with a zeroed object header, before HDF5 reads it: HDF5 1.14 loops forever on one.

    Walks each collection (``GCOL``, version 1, 8-byte lengths) as HDF5's decoder does, in its
    64-bit arithmetic: an object whose size does not move the walk forward (index 0 and size 0,
    or a size that wraps around) would loop forever.
    """
    wrap = 2**64 - 1
    fd = handle.fileno()
    size = os.fstat(fd).st_size
    # pread, not a mapping of the whole file: the scan's pages must not stay in the process
    for start in _occurrences(fd, size, b"GCOL\x01"):
        length = int.from_bytes(os.pread(fd, 16, start)[8:16], "little")
        end = start + length
        if 16 < length and end <= size:
            at = start + 16
            while at + 16 <= end:
                header = os.pread(fd, 16, at)
                index = int.from_bytes(header[0:2], "little")
                object_size = int.from_bytes(header[8:16], "little")
                aligned = ((object_size + 7) & wrap) // 8 * 8
                step = object_size if index == 0 else (16 + aligned) & wrap
                if (at + step) & wrap <= at:
                    raise KerasFileError(
                        f"{path}: cannot read as HDF5 (corrupt or truncated?): a damaged "
                        f"global heap at byte {start} (object header at byte {at})"
                    )
                at += step


def _occurrences(fd: int, size: int, needle: bytes, chunk: int = 1 << 23) -> Iterator[int]:
    """Every offset of ``needle`` in the file, read ``chunk`` bytes at a time."""
    for offset in range(0, size, chunk):
        block = os.pread(fd, chunk + len(needle) - 1, offset)
        found = block.find(needle)
        while 0 <= found < chunk:  # one that starts in the overlap is the next block's
            yield offset + found
            found = block.find(needle, found + 1)


def _read_attr_list(group: h5py.Group, key: str) -> list[str]:
    """An attribute list, joined from tf-keras's ``key0, key1, ...`` chunks when it is large."""
    if key in group.attrs:
        values = list(np.atleast_1d(group.attrs[key]))
    else:
        chunks = sorted(
            (int(m.group(1)), k) for k in group.attrs if (m := re.fullmatch(rf"{key}(\d+)", k))
        )
        values = [v for _, k in chunks for v in np.atleast_1d(group.attrs[k])]
    return [v.decode("utf8") if isinstance(v, bytes) else str(v) for v in values]


def _has_attr_list(group: h5py.Group, key: str) -> bool:
    return any(k == key or re.fullmatch(rf"{key}\d+", k) for k in group.attrs)


class KerasH5:
    """A legacy Keras HDF5 weight file, open for lazy reading.

    Opening reads the metadata only: ``layers`` (in ``layer_names`` order) with each layer's
    weight names, shapes and dtypes; ``read(layer, weight)`` reads one dataset. Reads both
    ``model.save_weights('x.h5')`` and full ``model.save('x.h5')`` files (the layout of kecam's
    released weights). Weightless layers are listed with no weights. Use as a context manager::

        with KerasH5("model.h5") as f:
            for layer in f.layers:
                print(layer.name, layer.shapes)
            kernel = f.read("stack1_block1_attn_qkv", 0)

    Raises:
        KerasFileError: the path is missing, unreadable, not a regular file, not HDF5,
            truncated or damaged, a Keras-3 file, lacks the ``layer_names`` / ``weight_names``
            of a legacy Keras file, or holds an HDF5 link, external storage or a virtual
            dataset (data from outside the file).
    """

    def __init__(self, path: str | Path):
        import h5py

        self.path = Path(path)
        self._handle = open_regular_file(self.path)
        self._file: h5py.File | None = None
        try:
            if self._handle.read(4) == _ZIP_MAGIC:
                raise KerasFileError(f"{self.path}: {_KERAS_ARCHIVE_HINT}")
            _check_global_heaps(self._handle, self.path)
            self._handle.seek(0)
            with self._errors():
                self._file = h5py.File(self._handle, "r")
                self.layers, self._datasets = self._read_metadata(self._file)
        except BaseException:
            self.close()
            raise
        self._by_name = {layer.name: layer for layer in self.layers}

    # --- metadata ---------------------------------------------------------------------------

    def _read_metadata(self, f: h5py.File):
        import h5py

        root = self._child(f, "model_weights") if self._link(f, "model_weights") else f
        if not _has_attr_list(root, "layer_names"):
            if self._link(f, "layers") or self._link(f, "vars"):
                raise KerasFileError(f"{self.path}: {_KERAS3_HINT}")
            raise KerasFileError(
                f"{self.path}: no 'layer_names' attribute: not a Keras weight file"
            )
        layers, datasets, seen = [], {}, set()
        for name in _read_attr_list(root, "layer_names"):
            if name in seen:
                raise KerasFileError(f"{self.path}: layer {name!r} is listed twice")
            seen.add(name)
            group = self._child(root, name, what=f"layer {name!r}")
            if not isinstance(group, h5py.Group):
                raise KerasFileError(f"{self.path}: layer {name!r} is not an HDF5 group")
            weights = []
            with self._errors(f"layer {name!r}"):
                weight_names = _read_attr_list(group, "weight_names")
            for weight_name in weight_names:
                where = f"layer {name!r}, weight {weight_name!r}"
                with self._errors(where):
                    dataset = self._child(group, weight_name, what=where)
                    weights.append(self._weight_info(dataset, weight_name, where))
                # a reference, not the open dataset: HDF5 holds ~20 kB per open dataset
                datasets[(name, weight_name)] = dataset.ref
            layers.append(LayerInfo(name, tuple(weights)))
        return tuple(layers), datasets

    def _link(self, group: h5py.Group, name: str) -> bool:
        """Whether ``group`` has the member ``name`` (as a hard link; other links are refused)."""
        import h5py

        link = group.get(name, getlink=True)
        if link is None:
            return False
        if not isinstance(link, h5py.HardLink):
            kind = "an external link" if isinstance(link, h5py.ExternalLink) else "a soft link"
            raise KerasFileError(
                f"{self.path}: {group.name}/{name} is {kind}; a Keras weight file has only hard "
                "links, and the loader reads nothing outside its file"
            )
        return True

    def _child(self, group: h5py.Group, path: str, what: str = ""):
        """The member at ``path`` (names with ``/`` nest groups), every step a hard link."""
        import h5py

        node = group
        for part in path.split("/"):
            if part in ("", "."):
                continue
            if not isinstance(node, h5py.Group) or not self._link(node, part):
                detail = f" ({what})" if what else ""
                raise KerasFileError(f"{self.path}: {path!r} is listed but missing{detail}")
            node = node[part]
        return node

    def _weight_info(self, dataset, weight_name: str, where: str) -> WeightInfo:
        import h5py

        if not isinstance(dataset, h5py.Dataset):
            raise KerasFileError(f"{self.path}: {where} is not a dataset")
        if dataset.is_virtual:
            raise KerasFileError(
                f"{self.path}: {where} is a virtual dataset (its data comes from other files)"
            )
        if dataset.external:
            raise KerasFileError(
                f"{self.path}: {where} has HDF5 external storage (its bytes live in "
                f"{dataset.external[0][0]!r}); the loader reads nothing outside its file"
            )
        if dataset.shape is None:
            raise KerasFileError(f"{self.path}: {where} has no shape (an empty dataspace)")
        return WeightInfo(weight_name, tuple(int(n) for n in dataset.shape), dataset.dtype)

    @contextlib.contextmanager
    def _errors(self, where: str = "") -> Iterator[None]:
        try:
            yield
        except KerasFileError:
            raise
        except _H5_ERRORS as err:
            at = f" ({where})" if where else ""
            raise KerasFileError(
                f"{self.path}: cannot read as HDF5 (corrupt or truncated?){at}: "
                f"{type(err).__name__}: {err}"
            ) from err

    # --- access -----------------------------------------------------------------------------

    @property
    def layer_names(self) -> tuple[str, ...]:
        return tuple(layer.name for layer in self.layers)

    def __contains__(self, name: str) -> bool:
        return name in self._by_name

    def get(self, name: str) -> LayerInfo | None:
        """The layer named ``name``, or ``None``."""
        return self._by_name.get(name)

    def __getitem__(self, name: str) -> LayerInfo:
        if name not in self._by_name:
            raise KeyError(f"{self.path}: no Keras layer {name!r}")
        return self._by_name[name]

    def read(self, layer: str, weight: str | int) -> np.ndarray:
        """One stored variable as a floating-point array in native byte order.

        Args:
            layer: the Keras layer name.
            weight: an entry of the layer's ``weight_names``, or its position.

        Returns:
            the data, of the stored width (float16, float32 or float64; other widths as
            float64), converted to native byte order while HDF5 reads it.

        Raises:
            KerasFileError: the dataset is not floating-point (integer, complex, string,
                compound), or its data cannot be read.
        """
        info = self[layer]
        entry = info.weights[weight] if isinstance(weight, int) else None
        if entry is None:
            entry = next((w for w in info.weights if w.name == weight), None)
            if entry is None:
                raise KeyError(f"{self.path}: layer {layer!r} has no weight {weight!r}")
        where = f"layer {layer!r}, weight {entry.name!r}"
        if entry.dtype.kind != "f":
            raise KerasFileError(
                f"{self.path}: {where} holds {entry.dtype} data; weights must be floating-point"
            )
        width = entry.dtype.itemsize if entry.dtype.itemsize in (2, 4, 8) else 8
        with self._errors(where):
            dataset = self._file[self._datasets[(layer, entry.name)]]
            data = dataset.astype(np.dtype(f"=f{width}"))[()]
        return np.asarray(data)

    def close(self) -> None:
        if self._file is not None:
            with contextlib.suppress(*_H5_ERRORS):
                self._file.close()
            self._file = None
        self._handle.close()

    def __enter__(self) -> KerasH5:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"KerasH5({str(self.path)!r}, {len(self.layers)} layers)"


def read_keras_h5(path: str | Path) -> list[H5Layer]:
    """The layers of a legacy Keras HDF5 file, in ``layer_names`` order, with their arrays.

    Reads every dataset (see ``KerasH5`` to read metadata first and data on demand).
    Weightless layers are included with no arrays.

    Raises:
        KerasFileError: as ``KerasH5`` and ``KerasH5.read``.
    """
    with KerasH5(path) as f:
        return [
            H5Layer(
                layer.name,
                layer.weight_names,
                tuple(f.read(layer.name, i) for i in range(len(layer.weights))),
            )
            for layer in f.layers
        ]
