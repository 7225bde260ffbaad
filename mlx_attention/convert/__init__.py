"""Keras ``.h5`` reading, per-layer-type weight rules, loading into modules, export."""

from .export import export_safetensors, load_safetensors, safetensors_header
from .h5 import H5Layer, KerasFileError, KerasH5, LayerInfo, WeightInfo, read_keras_h5
from .loader import (
    LoadReport,
    ModuleTree,
    WeightMismatchError,
    declared_layers,
    load_keras_weights,
)

__all__ = [
    "H5Layer",
    "KerasFileError",
    "KerasH5",
    "LayerInfo",
    "LoadReport",
    "ModuleTree",
    "WeightInfo",
    "WeightMismatchError",
    "declared_layers",
    "export_safetensors",
    "load_keras_weights",
    "load_safetensors",
    "read_keras_h5",
    "safetensors_header",
]
