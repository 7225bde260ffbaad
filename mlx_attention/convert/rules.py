"""One conversion rule per Keras layer type: Keras arrays -> the module's parameters.

Each rule takes the declared module and the file's arrays in ``weight_names`` order and returns
``{parameter path inside the module: array}``. The layout comes from the declared Keras type and
the module's type, never from a shape.
"""

from __future__ import annotations

from collections.abc import Callable

import mlx.nn as nn
import numpy as np

from ..layers.base import KerasLayer

Rule = Callable[[KerasLayer, list[np.ndarray]], dict[str, np.ndarray]]


def _has(module: nn.Module, key: str) -> bool:
    return key in module and module[key] is not None


def _with_bias(module: nn.Module, first: tuple[str, np.ndarray], arrays) -> dict:
    names = [first[0]] + (["bias"] if _has(module, "bias") else [])
    return dict(zip(names, [first[1], *arrays[1:]]))


def dense(decl: KerasLayer, arrays: list[np.ndarray]) -> dict[str, np.ndarray]:
    kernel = arrays[0]
    return _with_bias(decl.module, ("weight", kernel.T), arrays)


def conv2d(decl: KerasLayer, arrays: list[np.ndarray]) -> dict[str, np.ndarray]:
    kernel = arrays[0]
    if isinstance(decl.module, nn.Linear):  # a 1x1 Conv2D used as a linear layer
        if kernel.shape[:2] != (1, 1):
            raise ValueError(f"a Conv2D declared as linear needs a 1x1 kernel, got {kernel.shape}")
        return _with_bias(decl.module, ("weight", kernel[0, 0].T), arrays)
    return _with_bias(decl.module, ("weight", kernel.transpose(3, 0, 1, 2)), arrays)


def conv1d(decl: KerasLayer, arrays: list[np.ndarray]) -> dict[str, np.ndarray]:
    # Keras [k, C_in, C_out] -> MLX nn.Conv1d [C_out, k, C_in]
    return _with_bias(decl.module, ("weight", arrays[0].transpose(2, 0, 1)), arrays)


def depthwise_conv2d(decl: KerasLayer, arrays: list[np.ndarray]) -> dict[str, np.ndarray]:
    kh, kw, channels, multiplier = arrays[0].shape
    # Keras output channel c * M + m is MLX's grouped-conv output of group c.
    weight = arrays[0].reshape(kh, kw, channels * multiplier).transpose(2, 0, 1)[..., None]
    return _with_bias(decl.module, ("weight", weight), arrays)


def batch_norm(decl: KerasLayer, arrays: list[np.ndarray]) -> dict[str, np.ndarray]:
    return dict(zip(("weight", "bias", "running_mean", "running_var"), arrays))


def layer_norm(decl: KerasLayer, arrays: list[np.ndarray]) -> dict[str, np.ndarray]:
    return dict(zip(("weight", "bias"), arrays))


def prelu(decl: KerasLayer, arrays: list[np.ndarray]) -> dict[str, np.ndarray]:
    return {"weight": arrays[0].reshape(-1)}


def weights(decl: KerasLayer, arrays: list[np.ndarray]) -> dict[str, np.ndarray]:
    return dict(zip(decl.weights, arrays))


RULES: dict[str, Rule] = {
    "Dense": dense,
    "Conv1D": conv1d,
    "Conv2D": conv2d,
    "DepthwiseConv2D": depthwise_conv2d,
    "BatchNormalization": batch_norm,
    "LayerNormalization": layer_norm,
    "GroupNormalization": layer_norm,
    "PReLU": prelu,
    "Weights": weights,
}


# The rank of the first stored variable (the kernel) of the layer types that have one: a
# kernel of another rank is refused from the file's metadata, naming the layer and weight.
KERNEL_RANKS: dict[str, int] = {"Dense": 2, "Conv1D": 3, "Conv2D": 4, "DepthwiseConv2D": 4}


def expected_count(decl: KerasLayer) -> int:
    """How many variables the Keras layer stores for this module."""
    module = decl.module
    if decl.kind in ("Dense", "Conv1D", "Conv2D", "DepthwiseConv2D"):
        return 1 + _has(module, "bias")
    if decl.kind == "BatchNormalization":
        return 4
    if decl.kind in ("LayerNormalization", "GroupNormalization"):
        return _has(module, "weight") + _has(module, "bias")
    if decl.kind == "PReLU":
        return 1
    return len(decl.weights)
