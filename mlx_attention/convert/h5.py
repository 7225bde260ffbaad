"""Reading kecam's Keras ``.h5`` files: legacy Keras-2 HDF5, ``save_weights`` and ``model.save``."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np


class KerasFileError(ValueError):
    """A Keras weight file that cannot be read as kecam weights."""


@dataclass(frozen=True)
class H5Layer:
    """One Keras layer of a weight file: its variables in ``weight_names`` order."""

    name: str
    weight_names: tuple[str, ...]
    arrays: tuple[np.ndarray, ...]

    @property
    def short_names(self) -> tuple[str, ...]:
        """``'blk_qkv/kernel:0'`` -> ``'kernel'``: for messages, never for matching."""
        return tuple(n.rsplit("/", 1)[-1].split(":")[0] for n in self.weight_names)


_KERAS3_HINT = (
    "it is a Keras-3 '.weights.h5' file, which stores no Keras layer names, so its weights "
    "cannot be matched to kecam's names. Re-save it in the legacy format: with "
    "TF_USE_LEGACY_KERAS=1 and tf-keras, build the kecam model, load these weights and call "
    "model.save_weights('model.h5') (a file name not ending in '.weights.h5')"
)


def _read_attr_list(group: h5py.Group, key: str) -> list[str]:
    """An attribute list, joined from tf-keras's ``key0, key1, ...`` chunks when it is large."""
    if key in group.attrs:
        values = list(group.attrs[key])
    else:
        chunks = sorted(
            (int(m.group(1)), k) for k in group.attrs if (m := re.fullmatch(rf"{key}(\d+)", k))
        )
        values = [v for _, k in chunks for v in group.attrs[k]]
    return [v.decode("utf8") if isinstance(v, bytes) else str(v) for v in values]


def read_keras_h5(path: str | Path) -> list[H5Layer]:
    """The layers of a legacy Keras HDF5 file, in ``layer_names`` order, with their arrays.

    Reads both ``model.save_weights('x.h5')`` files and full ``model.save('x.h5')`` files (the
    layout of kecam's released weights). Weightless layers are included with no arrays.

    Raises:
        KerasFileError: the file is missing, not HDF5, truncated, a Keras-3 file, or lacks
            the ``layer_names`` / ``weight_names`` a legacy Keras file has.
    """
    path = Path(path)
    if not path.is_file():
        raise KerasFileError(f"{path}: no such file")
    try:
        with h5py.File(path, "r") as f:
            root = f["model_weights"] if "model_weights" in f else f
            if not any(
                k == "layer_names" or re.fullmatch(r"layer_names\d+", k) for k in root.attrs
            ):
                if "layers" in f or "vars" in f:
                    raise KerasFileError(f"{path}: {_KERAS3_HINT}")
                raise KerasFileError(f"{path}: no 'layer_names' attribute: not a Keras weight file")
            layers = []
            for name in _read_attr_list(root, "layer_names"):
                if name not in root:
                    raise KerasFileError(f"{path}: layer {name!r} is listed but has no group")
                group = root[name]
                weight_names = _read_attr_list(group, "weight_names")
                arrays = []
                for weight_name in weight_names:
                    if weight_name not in group:
                        raise KerasFileError(
                            f"{path}: layer {name!r} lists weight {weight_name!r} but has no data"
                        )
                    arrays.append(np.asarray(group[weight_name][()]))
                layers.append(H5Layer(name, tuple(weight_names), tuple(arrays)))
            return layers
    except KerasFileError:
        raise
    except (OSError, KeyError, ValueError, TypeError) as err:
        raise KerasFileError(f"{path}: cannot read as HDF5 (corrupt or truncated?): {err}") from err
