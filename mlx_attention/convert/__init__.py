"""Keras ``.h5`` reading, per-layer-type weight rules, loading into modules, export."""

from .export import export_safetensors
from .h5 import H5Layer, KerasFileError, read_keras_h5
from .loader import WeightMismatchError, declared_layers, load_keras_weights

__all__ = [
    "H5Layer",
    "KerasFileError",
    "WeightMismatchError",
    "declared_layers",
    "export_safetensors",
    "load_keras_weights",
    "read_keras_h5",
]
