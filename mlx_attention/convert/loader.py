"""Filling a module from a kecam Keras ``.h5`` file: strict, atomic, by declared Keras names."""

from __future__ import annotations

from pathlib import Path

import mlx.core as mx
import mlx.nn as nn
import numpy as np
from mlx.utils import tree_flatten, tree_unflatten

from ..layers.base import KerasLayer, KerasLayouts, KerasModule
from .h5 import H5Layer, KerasFileError, read_keras_h5
from .rules import RULES, expected_count


class WeightMismatchError(ValueError):
    """The file's weights do not fit the module; the message lists every problem."""


def declared_layers(module: nn.Module) -> list[KerasLayer | KerasLayouts]:
    """Every Keras-layer declaration in the module tree."""
    return [
        decl
        for _, sub in module.named_modules()
        if isinstance(sub, KerasModule)
        for decl in sub.keras_layers()
    ]


def _module_paths(module: nn.Module) -> dict[int, str]:
    return {id(sub): path for path, sub in module.named_modules()}


def _choose(decl: KerasLayer | KerasLayouts, prefix: str, by_name: dict) -> tuple[KerasLayer, ...]:
    if isinstance(decl, KerasLayer):
        return (decl,)
    for layout in decl.layouts:
        if all(_holds(by_name.get(prefix + layer.name), layer) for layer in layout):
            return layout
    return decl.layouts[0]


def _holds(stored: H5Layer | None, layer: KerasLayer) -> bool:
    """Whether the file has the layer with weights: a kecam 1.3.1 swin v2 file has a weightless
    ``pos_emb`` layer where 1.4.3 stores the MLP, so the name alone does not pick a layout."""
    return stored is not None and (bool(stored.arrays) or layer.kind == "Constant")


def load_keras_weights(
    module: nn.Module,
    path: str | Path,
    *,
    prefix: str | None = None,
    strict: bool = True,
    resize: bool | str = False,
) -> nn.Module:
    """Load kecam Keras weights into ``module`` by the Keras names it was built with.

    Args:
        module: a module built through ``mlx_attention.attention_layers`` (or any tree of
            ``KerasModule``s) with kecam's ``name=``.
        path: a legacy Keras-2 ``.h5`` file (``save_weights`` or ``model.save``), kecam 1.3.1 or
            1.4.3 layer names.
        prefix: prepended to every declared Keras name, e.g. the stage prefix of a whole model.
            Required when the module was built without ``name=``.
        strict: every parameter of the module must be filled and, in a file that holds only
            this module's layers, every weight must be used; ``False`` skips what is missing or
            unexpected (shapes are still checked). In a whole-model file, layers of the model
            that kecam names with the block's prefix (e.g. NAT's ``stack1_block1_attn_ln``
            beside ``neighborhood_attention(name="stack1_block1_attn_")``) are not the block's.
        resize: for tables that depend on the input size (the positional layers that kecam's
            ``load_resized_weights`` serves), a table saved at another size is resized into the
            module: ``True`` with each layer's default method (kecam 1.4.3: ``"bilinear"``), or
            a ``tf.image.resize`` method name (``"nearest"`` is kecam 1.3.1's). Tables of the
            module's own size load unchanged.

    Returns:
        the module. On any error it is left unchanged.

    Raises:
        KerasFileError: the file cannot be read (missing, corrupt, truncated, Keras-3).
        WeightMismatchError: weights missing, unexpected or of the wrong shape, each named.
    """
    root_name = getattr(module, "name", None)
    if prefix is None and not root_name:
        raise ValueError(
            f"{type(module).__name__} was built without name=, so it has no Keras names to look "
            "for: build it with kecam's name= or pass prefix= (the Keras name prefix in the file)"
        )
    prefix = prefix or ""
    by_name: dict[str, H5Layer] = {layer.name: layer for layer in read_keras_h5(path)}
    paths = _module_paths(module)
    current = dict(tree_flatten(module.parameters()))

    problems: list[str] = []
    updates: dict[str, mx.array] = {}
    used: set[str] = set()
    for decl in declared_layers(module):
        for layer in _choose(decl, prefix, by_name):
            full = prefix + layer.name
            stored = by_name.get(full)
            if stored is None:
                if layer.kind != "Constant" and strict:
                    problems.append(f"missing Keras layer {full!r} ({layer.kind})")
                continue
            used.add(full)
            problems.extend(_convert(layer, stored, paths, current, updates, resize))

    if strict:
        problems.extend(_unexpected(by_name, used, prefix + (root_name or "")))
        for key in current:
            if key not in updates:
                problems.append(f"module parameter {key!r} is not filled by any Keras weight")
    if problems:
        raise WeightMismatchError(f"{path}: " + "; ".join(problems))
    module.update(tree_unflatten(list(updates.items())))
    return module


def _unexpected(by_name: dict[str, H5Layer], used: set[str], scope: str) -> list[str]:
    """The unused weights of a file that holds only the module's layers (all under ``scope``).

    A whole-model file has layers outside the module's scope; kecam models also name some of
    their own layers with a block's prefix, so there the unused ones under it are not extras.
    """
    weighted = [name for name, stored in by_name.items() if stored.arrays]
    if not all(name.startswith(scope) for name in weighted):
        return []
    return [
        f"unexpected Keras layer {name!r} with {list(by_name[name].short_names)}"
        for name in weighted
        if name not in used
    ]


def _convert(
    layer: KerasLayer,
    stored: H5Layer,
    paths: dict[int, str],
    current: dict[str, mx.array],
    updates: dict[str, mx.array],
    resize: bool | str = False,
) -> list[str]:
    """Convert one Keras layer into ``updates``; returns the problems found."""
    arrays = list(stored.arrays)
    if layer.kind == "Constant":
        expected = [np.asarray(a) for a in layer.weights]
        if len(arrays) != len(expected) or any(
            a.shape != e.shape or not np.allclose(a, e, atol=1e-6) for a, e in zip(arrays, expected)
        ):
            return [f"Keras layer {stored.name!r} holds a constant that differs from kecam's"]
        return []
    count = expected_count(layer)
    if len(arrays) != count:
        return [
            f"Keras layer {stored.name!r} has {len(arrays)} weights {list(stored.short_names)}, "
            f"expected {count} for a {layer.kind} into {type(layer.module).__name__}"
        ]
    if layer.transform is not None:
        arrays = layer.transform(arrays)
    problems = []
    base = paths[id(layer.module)]
    if resize is not False and layer.resize is not None and layer.kind == "Weights":
        wanted = [current.get(f"{base}.{k}" if base else k) for k in layer.weights]
        if any(w is not None and tuple(a.shape) != tuple(w.shape) for a, w in zip(arrays, wanted)):
            method = {} if resize is True else {"method": resize}
            try:
                arrays = layer.resize(arrays, **method)
            except ValueError as err:
                return [f"Keras layer {stored.name!r} cannot be resized: {err}"]
    for key, value in RULES[layer.kind](layer, arrays).items():
        full_key = f"{base}.{key}" if base else key
        if full_key not in current:
            problems.append(f"{stored.name!r}: the module has no parameter {full_key!r}")
            continue
        target = current[full_key]
        if tuple(value.shape) != tuple(target.shape):
            problems.append(
                f"Keras weight {stored.name!r}/{key}: shape {tuple(value.shape)} after conversion, "
                f"module parameter {full_key!r} has {tuple(target.shape)}"
            )
            continue
        updates[full_key] = mx.array(value).astype(target.dtype)
    return problems


__all__ = ["KerasFileError", "WeightMismatchError", "declared_layers", "load_keras_weights"]
