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


def multi_head_attention(decl: KerasLayer, arrays: list[np.ndarray]) -> dict[str, np.ndarray]:
    """tf-keras ``MultiHeadAttention`` into ``layers.KerasMultiHeadAttention``: ``query``,
    ``key``, ``value`` kernels ``[C, heads, width]`` -> ``[heads * width, C]``,
    ``attention_output`` ``[heads, width, C]`` -> ``[C, heads * width]``, each kernel followed by
    its bias with ``use_bias`` (``[heads, width]`` flattened, and ``[C]``)."""
    module = decl.module
    per = 1 + module.use_bias
    out = {}
    for index, part in enumerate(("query", "key", "value", "attention_output")):
        kernel, *bias = arrays[index * per : (index + 1) * per]
        width = module.value_dim if part in ("value", "attention_output") else module.key_dim
        heads = (module.num_heads, width)
        found = kernel.shape[:2] if part == "attention_output" else kernel.shape[1:]
        if kernel.ndim != 3 or tuple(found) != heads:  # h * w alone would hide a heads mix-up
            raise ValueError(f"{part} kernel {kernel.shape} is not for (heads, width) {heads}")
        if part == "attention_output":
            out[f"{part}.weight"] = kernel.reshape(-1, kernel.shape[-1]).T
        else:
            out[f"{part}.weight"] = kernel.reshape(kernel.shape[0], -1).T
        if bias:
            out[f"{part}.bias"] = bias[0].reshape(-1)
    return out


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
    "MultiHeadAttention": multi_head_attention,
    "Weights": weights,
}


# The rank of the first stored variable (the kernel) of the layer types that have one: a
# kernel of another rank is refused from the file's metadata, naming the layer and weight.
KERNEL_RANKS: dict[str, int] = {
    "Dense": 2, "Conv1D": 3, "Conv2D": 4, "DepthwiseConv2D": 4, "MultiHeadAttention": 3,
}  # fmt: skip


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
    if decl.kind == "MultiHeadAttention":
        return 4 * (1 + module.use_bias)
    return len(decl.weights)
