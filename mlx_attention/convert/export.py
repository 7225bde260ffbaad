"""Export of a loaded module to ``.safetensors``, and loading it back through the same door.

``load_safetensors`` reads the file's JSON header itself (8 bytes of little-endian length, then
JSON), checks every name, shape, dtype and byte range against the module and the file size
before allocating anything, and reads only the tensors the module takes, one at a time.
"""

from __future__ import annotations

import json
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import mlx.core as mx
import mlx.nn as nn
import numpy as np
from mlx.utils import tree_unflatten

from .h5 import KerasFileError, open_regular_file
from .loader import LoadReport, ModuleTree, WeightMismatchError, logger

# safetensors dtypes of weights: name -> (bytes per value, numpy dtype the bytes are read as)
_FLOAT_DTYPES = {
    "F16": (2, np.dtype("<f2")),
    "BF16": (2, np.dtype("<u2")),  # numpy has no bfloat16: the raw bits, viewed in MLX
    "F32": (4, np.dtype("<f4")),
    "F64": (8, np.dtype("<f8")),
}
_OTHER_DTYPES = ("BOOL", "U8", "I8", "U16", "I16", "U32", "I32", "U64", "I64", "C64")
_HEADER_LIMIT = 100 * 2**20  # the safetensors format's own bound on the JSON header


def _check_destination(path: Path) -> None:
    if path.suffix != ".safetensors":
        raise ValueError(f"{path}: the file name must end in .safetensors")
    folder = path.parent
    if not folder.is_dir():
        what = "is not a directory" if folder.exists() else "does not exist"
        raise ValueError(f"{path}: the directory {str(folder)!r} {what}; create it first")


def export_safetensors(
    module: nn.Module, path: str | Path, metadata: dict[str, str] | None = None
) -> Path:
    """Save the module's parameters (constant tables excluded) as ``.safetensors``.

    A module shared by several paths of the tree is saved once, at its first path (as
    ``load_safetensors`` expects; ``module.load_weights`` would ask for every path).

    Args:
        module: the module.
        path: the file, ending in ``.safetensors``, in an existing directory.
        metadata: string pairs stored in the file's header (e.g. a model's config).

    Returns:
        the path written.
    """
    path = Path(path)
    _check_destination(path)
    if metadata is not None and not (
        isinstance(metadata, dict)
        and all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items())
    ):
        raise TypeError(f"metadata must be a dict of str to str, got {metadata!r}")
    mx.save_safetensors(str(path), ModuleTree.of(module).parameters, metadata=metadata)
    return path


@dataclass(frozen=True)
class SafetensorsEntry:
    """One tensor of a ``.safetensors`` header."""

    dtype: str
    shape: tuple[int, ...]
    begin: int  # byte offset from the start of the file
    end: int


def _is_count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def safetensors_header(path: str | Path) -> tuple[dict[str, SafetensorsEntry], dict[str, str]]:
    """The tensors and metadata of a ``.safetensors`` file, from its header alone.

    Every entry is checked: a known dtype, a shape of non-negative integers, a byte range
    inside the file whose length is the shape's.

    Raises:
        KerasFileError: the file is missing, not a regular file, or its header is malformed.
    """
    path = Path(path)
    with open_regular_file(path) as handle:
        size = os.fstat(handle.fileno()).st_size
        return _parse_header(path, handle.read(8), handle, size)


def _parse_header(path: Path, start: bytes, handle, size: int):
    def bad(why: str) -> KerasFileError:
        return KerasFileError(f"{path}: not a valid .safetensors file: {why}")

    if len(start) < 8:
        raise bad(f"{size} bytes, shorter than the 8-byte header length")
    (length,) = struct.unpack("<Q", start)
    if length > min(size - 8, _HEADER_LIMIT):
        raise bad(f"the header claims {length} bytes in a file of {size}")
    try:
        header = json.loads(handle.read(length).decode("utf8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise bad(f"the header is not JSON: {err}") from None
    if not isinstance(header, dict):
        raise bad("the header is not a JSON object")
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
    ):
        raise bad("__metadata__ is not an object of strings")
    data_start, entries = 8 + length, {}
    for name, entry in header.items():
        if not isinstance(entry, dict):
            raise bad(f"tensor {name!r} is not an object")
        dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
        if dtype not in _FLOAT_DTYPES:
            if dtype in _OTHER_DTYPES:
                raise KerasFileError(
                    f"{path}: tensor {name!r} holds {dtype} data; weights must be floating-point"
                )
            raise bad(f"tensor {name!r} has an unknown dtype {dtype!r}")
        if not isinstance(shape, list) or not all(_is_count(n) for n in shape):
            raise bad(f"tensor {name!r} has the shape {shape!r}")
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(map(_is_count, offsets))):
            raise bad(f"tensor {name!r} has the data_offsets {offsets!r}")
        begin, end = offsets
        nbytes = _FLOAT_DTYPES[dtype][0] * int(np.prod(shape, dtype=object))
        if end - begin != nbytes or data_start + end > size:
            raise bad(
                f"tensor {name!r} of shape {tuple(shape)} ({nbytes} bytes) has the byte range "
                f"{offsets} in a file of {size - data_start} data bytes"
            )
        entries[name] = SafetensorsEntry(dtype, tuple(shape), data_start + begin, data_start + end)
    return entries, metadata


def load_safetensors(module: nn.Module, path: str | Path, *, strict: bool = True) -> LoadReport:
    """Load a ``.safetensors`` file (``export_safetensors``'s) into ``module``, checked first.

    The header is read and checked against the module (names, shapes, dtypes, byte ranges)
    before anything is allocated; the tensors the module takes are then read one at a time
    and cast to each parameter's dtype. A module shared by several paths loads at its first.

    Args:
        module: the module (the same tree that was exported).
        path: the ``.safetensors`` file.
        strict: every parameter filled, no extra tensor, every shape the module's; ``False``
            skips the rest, loads what fits and logs the report as a warning.

    Returns:
        a ``LoadReport`` of parameter names. On any error the module is left unchanged.

    Raises:
        KerasFileError: the file is missing, malformed or holds non-float tensors.
        WeightMismatchError: missing, extra or mis-shaped tensors (``strict``), or none of the
            module's parameters in the file.
    """
    if not isinstance(strict, bool):
        raise TypeError(f"strict must be True or False, got {strict!r}")
    path = Path(path)
    parameters = ModuleTree.of(module).parameters
    with open_regular_file(path) as handle:
        size = os.fstat(handle.fileno()).st_size
        entries, _ = _parse_header(path, handle.read(8), handle, size)
        missing = tuple(key for key in parameters if key not in entries)
        unexpected = tuple(name for name in entries if name not in parameters)
        mismatched = tuple(
            (name, f"shape {entry.shape}, module parameter has {tuple(parameters[name].shape)}")
            for name, entry in entries.items()
            if name in parameters and entry.shape != tuple(parameters[name].shape)
        )
        report = LoadReport(
            str(path), missing=missing, unexpected=unexpected, mismatched=mismatched
        )
        fitting = [n for n in entries if n in parameters and n not in dict(mismatched)]
        if (strict and not report.ok) or (parameters and not fitting):
            problems = [f"missing tensor {k!r}" for k in missing]
            problems += [f"unexpected tensor {k!r}" for k in unexpected]
            problems += [f"tensor {k!r}: {why}" for k, why in mismatched]
            if not fitting:
                problems.insert(0, "none of the module's parameters is in the file")
            raise WeightMismatchError(f"{path}: " + "; ".join(problems), report)
        updates = {}
        for name in fitting:
            updates[name] = _read_tensor(path, handle, entries[name], parameters[name])
    module.update(tree_unflatten(list(updates.items())))
    report = LoadReport(
        str(path), tuple(fitting), missing=missing, unexpected=unexpected, mismatched=mismatched
    )
    if not report.ok:
        logger.warning("loaded with problems skipped (strict=False):\n%s", report)
    return report


def _read_tensor(path: Path, handle, entry: SafetensorsEntry, like: mx.array) -> mx.array:
    handle.seek(entry.begin)
    data = handle.read(entry.end - entry.begin)
    if len(data) != entry.end - entry.begin:
        raise KerasFileError(f"{path}: truncated while reading a tensor")
    values = np.frombuffer(data, _FLOAT_DTYPES[entry.dtype][1]).reshape(entry.shape)
    array = mx.array(values)
    if entry.dtype == "BF16":
        array = mx.view(array, mx.bfloat16)
    array = array.astype(like.dtype)
    mx.eval(array)
    return array
