"""Filling a module from a kecam Keras ``.h5`` file: strict, atomic, by declared Keras names.

Loading streams: every shape is checked against the module from the file's metadata first;
then the datasets the module uses are read one layer at a time and converted into MLX arrays,
so the peak memory is the module's weights plus one layer, and a dataset the module does not
use (or one of the wrong shape: a memory bomb declaring a 60000 x 60000 table) is never read.
"""

from __future__ import annotations

import difflib
import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import mlx.core as mx
import mlx.nn as nn
import numpy as np
from mlx.utils import tree_flatten, tree_unflatten

from ..layers.base import KerasLayer, KerasLayouts, ModuleTree
from ..layers.positional import RESIZE_METHODS
from .h5 import KerasFileError, KerasH5, LayerInfo
from .rules import KERNEL_RANKS, RULES, expected_count

logger = logging.getLogger("mlx_attention.convert")

# A table resized on loading is read before resizing; one saved for a grid this many times
# larger (in elements) than the module's is refused unread rather than read (kecam resizes
# 7x7 <-> 12x12 windows, 14 <-> 24 patch grids: factors of a few).
_RESIZE_SOURCE_LIMIT = 64


# Missing layers that get a "did you mean" (each is a fuzzy search over the file's names).
_HINTS = 20


RESIZE_HINT = "a table of another input size: resize=True loads it"


class WeightMismatchError(ValueError):
    """The file's weights do not fit the module; the message lists every problem.

    ``report`` is the ``LoadReport`` of the attempt (nothing was loaded).
    """

    def __init__(self, message: str, report: LoadReport | None = None):
        super().__init__(message)
        self.report = report


@dataclass(frozen=True)
class LoadReport:
    """What a load did: Keras layer names (parameter names for ``.safetensors``).

    Attributes:
        path: the file.
        loaded: layers whose weights filled the module (constants checked included).
        missing: layers the module declares that the file lacks, and module parameters that
            no weight fills.
        unexpected: weighted layers of the file that the module does not use (reported only
            for a file whose weighted layers all lie under the module's scope).
        mismatched: ``(name, reason)`` for layers whose weights do not fit.
        resized: loaded layers whose tables were resized to the module's input size.
    """

    path: str
    loaded: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()
    unexpected: tuple[str, ...] = ()
    mismatched: tuple[tuple[str, str], ...] = ()
    resized: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """Nothing missing, unexpected or mis-shaped."""
        return not (self.missing or self.unexpected or self.mismatched)

    def __str__(self) -> str:
        head = f"{self.path}: loaded {len(self.loaded)}"
        if self.resized:
            head += f" ({len(self.resized)} resized: {', '.join(self.resized)})"
        skipped = len(self.missing) + len(self.unexpected) + len(self.mismatched)
        problems = f"{skipped} problem" + ("s" if skipped > 1 else "")
        lines = [head + (f", {problems}" if skipped else ", no problems")]
        lines += [f"  missing: {name}" for name in self.missing]
        lines += [f"  unexpected: {name}" for name in self.unexpected]
        lines += [f"  mismatched: {name}: {why}" for name, why in self.mismatched]
        return "\n".join(lines)


# --- the module's side: declarations and parameter paths, shared modules once ---------------


def declared_layers(module: nn.Module) -> list[KerasLayer | KerasLayouts]:
    """Every Keras-layer declaration in the module tree (a shared module's once)."""
    return ModuleTree.of(module).declarations()


def _covered(layer: KerasLayer, tree: ModuleTree) -> list[str]:
    """The module parameters a declared Keras layer fills."""
    if layer.kind == "Constant":
        return []
    if layer.kind == "Weights":
        return [tree.key(layer.module, name) for name in layer.weights]
    return [tree.key(layer.module, name) for name, _ in tree_flatten(layer.module.parameters())]


# --- the file's side ---------------------------------------------------------------------------


def _choose(decl: KerasLayer | KerasLayouts, prefix: str, f: KerasH5) -> tuple[KerasLayer, ...]:
    if isinstance(decl, KerasLayer):
        return (decl,)
    for layout in decl.layouts:
        if all(_holds(f.get(prefix + layer.name), layer) for layer in layout):
            return layout
    return decl.layouts[0]


def _holds(stored: LayerInfo | None, layer: KerasLayer) -> bool:
    """Whether the file has the layer with weights: a kecam 1.3.1 swin v2 file has a weightless
    ``pos_emb`` layer where 1.4.3 stores the MLP, so the name alone does not pick a layout."""
    return stored is not None and (bool(stored.weights) or layer.kind == "Constant")


def _placeholder(shape: tuple[int, ...]) -> np.ndarray:
    """An array of ``shape`` that takes no memory (every stride 0): rules on it give the
    converted shapes without reading the file."""
    return np.broadcast_to(np.zeros((), np.float32), shape)


def _to_mx(value: np.ndarray, like: mx.array) -> mx.array:
    """``value`` in the parameter's dtype, evaluated (so no float64 copy stays in the graph)."""
    as_numpy = {mx.float16: np.float16, mx.float64: np.float64}.get(like.dtype, np.float32)
    # Row-major, whatever the rule's transposes left: MLX keeps a strided view's layout, and a
    # transposed weight rounds its products differently from the same values exported and read
    # back (the round trip through .safetensors must be bit-identical). A copy, not
    # ascontiguousarray: numpy calls a transposed [N, 1] kernel contiguous and keeps its
    # strides (4, 4), which MLX keeps too (swin v2's one-head positional MLP rounded differently).
    array = mx.array(np.array(value, dtype=as_numpy, order="C", copy=True))
    if array.dtype != like.dtype:
        array = array.astype(like.dtype)
    mx.eval(array)
    return array


@dataclass
class _Plan:
    """One Keras layer that fits the module: where its converted arrays go."""

    layer: KerasLayer
    stored: LayerInfo
    arrays: list[np.ndarray] | None = None  # read already (resized tables, constants)
    resized: bool = False


class _Loader:
    """One load: validation from metadata, then reading layer by layer."""

    def __init__(self, module, f: KerasH5, prefix: str, resize: bool | str):
        self.f, self.prefix, self.resize = f, prefix, resize
        self.tree = ModuleTree.of(module)
        self.problems: list[str] = []  # the error message's lines
        self.missing: list[str] = []
        self.mismatched: list[tuple[str, str]] = []
        self.explained: set[str] = set()  # parameters of reported layers: not repeated
        self.used: set[str] = set()
        self.plans: list[_Plan] = []

    def where(self, stored: LayerInfo, index: int) -> str:
        return f"{stored.name!r}/{stored.weights[index].short_name}"

    def mismatch(self, layer: KerasLayer, stored: LayerInfo, reason: str, message: str) -> None:
        self.mismatched.append((stored.name, reason))
        self.problems.append(message)
        self.explained.update(_covered(layer, self.tree))

    def validate(self, declarations) -> None:
        names = list(self.f.layer_names)
        for decl in declarations:
            for layer in _choose(decl, self.prefix, self.f):
                full = self.prefix + layer.name
                stored = self.f.get(full)
                if stored is None:
                    if layer.kind != "Constant":
                        hint = ""
                        if len(self.missing) < _HINTS:
                            close = difflib.get_close_matches(full, names, n=1, cutoff=0.75)
                            hint = f"; did you mean {close[0]!r}?" if close else ""
                        self.missing.append(full)
                        self.problems.append(f"missing Keras layer {full!r} ({layer.kind}){hint}")
                        self.explained.update(_covered(layer, self.tree))
                    continue
                self.used.add(full)
                self.check(layer, stored)

    def check(self, layer: KerasLayer, stored: LayerInfo) -> None:
        """Check one layer against the module from metadata; plan it if it fits."""
        for weight in stored.weights:
            if weight.dtype.kind != "f":
                raise KerasFileError(
                    f"{self.f.path}: layer {stored.name!r}, weight {weight.name!r} holds "
                    f"{weight.dtype} data; weights must be floating-point"
                )
        if layer.kind == "Constant":
            return self.check_constant(layer, stored)
        count = expected_count(layer)
        if len(stored.weights) != count:
            return self.mismatch(
                layer,
                stored,
                f"{len(stored.weights)} weights, expected {count}",
                f"Keras layer {stored.name!r} has {len(stored.weights)} weights "
                f"{list(stored.short_names)}, expected {count} for a {layer.kind} into "
                f"{type(layer.module).__name__}",
            )
        rank = KERNEL_RANKS.get(layer.kind)
        if rank is not None and len(stored.shapes[0]) != rank:
            return self.mismatch(
                layer,
                stored,
                f"{stored.weights[0].short_name} of rank {len(stored.shapes[0])}",
                f"Keras weight {self.where(stored, 0)}: shape {stored.shapes[0]} is not a "
                f"{layer.kind} kernel (rank {rank} expected)",
            )
        covered = _covered(layer, self.tree)
        wanted = [self.tree.parameters.get(key) for key in covered]
        plan = _Plan(layer, stored)
        if self.resize is not False and layer.resize is not None and layer.kind == "Weights":
            if any(w is not None and tuple(w.shape) != s for w, s in zip(wanted, stored.shapes)):
                arrays = self.resized(layer, stored, wanted)
                if arrays is None:
                    return
                plan.arrays, plan.resized = arrays, True
        target = sum(int(np.prod(w.shape)) for w in wanted if w is not None)
        if plan.arrays is None and sum(w.size for w in stored.weights) > target:
            # refused unconverted: a rule's reshape of a huge placeholder would allocate it
            module_shapes = ", ".join(
                f"{key.rsplit('.', 1)[-1]}: {tuple(w.shape)}"
                for key, w in zip(covered, wanted)
                if w is not None
            )
            why = f"more values than the module's parameters {{{module_shapes}}}"
            if layer.resize is not None and self.resize is False:
                why += f"; {RESIZE_HINT}"
            return self.shape_mismatch(layer, stored, why)
        arrays = plan.arrays
        if arrays is None:
            arrays = [_placeholder(w.shape) for w in stored.weights]
        try:
            converted = self.convert(plan, arrays)
        except (ValueError, IndexError, TypeError) as err:
            return self.shape_mismatch(layer, stored, f"they do not fit: {err}")
        reasons, messages = [], []
        for key, value in converted.items():
            full_key = self.tree.key(layer.module, key)
            target = self.tree.parameters.get(full_key)
            if target is None:
                reasons.append(f"no module parameter {full_key!r}")
                messages.append(f"{stored.name!r}: the module has no parameter {full_key!r}")
            elif tuple(value.shape) != tuple(target.shape):
                reasons.append(f"{key}: {tuple(value.shape)} for {tuple(target.shape)}")
                messages.append(
                    f"Keras weight {stored.name!r}/{key}: shape {tuple(value.shape)} after "
                    f"conversion, module parameter {full_key!r} has {tuple(target.shape)}"
                )
        if not reasons:
            return self.plans.append(plan)
        if layer.resize is not None and self.resize is False:
            reasons.append(RESIZE_HINT)
            messages.append(RESIZE_HINT)
        self.mismatch(layer, stored, "; ".join(reasons), "; ".join(messages))

    def shape_mismatch(self, layer: KerasLayer, stored: LayerInfo, why: str) -> None:
        shapes = ", ".join(f"{n}: {s}" for n, s in zip(stored.short_names, stored.shapes))
        self.mismatch(
            layer,
            stored,
            f"shapes {{{shapes}}}: {why}",
            f"Keras layer {stored.name!r}: weights {{{shapes}}} do not fit a {layer.kind} into "
            f"{type(layer.module).__name__}: {why}",
        )

    def check_constant(self, layer: KerasLayer, stored: LayerInfo) -> None:
        expected = [np.asarray(a) for a in layer.weights]
        fits = len(stored.weights) == len(expected) and all(
            s == e.shape for s, e in zip(stored.shapes, expected)
        )
        if fits:  # shapes match kecam's constants: small, read now
            arrays = [self.f.read(stored.name, i) for i in range(len(expected))]
            fits = all(np.allclose(a, e, atol=1e-6) for a, e in zip(arrays, expected))
        if not fits:
            return self.mismatch(
                layer,
                stored,
                "a constant that differs from kecam's",
                f"Keras layer {stored.name!r} holds a constant that differs from kecam's",
            )
        self.plans.append(_Plan(layer, stored, arrays=[]))

    def resized(self, layer: KerasLayer, stored: LayerInfo, wanted) -> list[np.ndarray] | None:
        """Read and resize a table saved at another size (tables are small; absurd sizes are
        refused unread)."""
        target = sum(int(np.prod(w.shape)) for w in wanted if w is not None)
        if sum(w.size for w in stored.weights) > _RESIZE_SOURCE_LIMIT * max(target, 1):
            self.shape_mismatch(
                layer, stored, f"over {_RESIZE_SOURCE_LIMIT}x the module's table: not resized"
            )
            return None
        arrays = [self.f.read(stored.name, i) for i in range(len(stored.weights))]
        if layer.transform is not None:
            arrays = layer.transform(arrays)
        method = {} if self.resize is True else {"method": self.resize}
        try:
            return list(layer.resize(arrays, **method))
        except ValueError as err:
            self.mismatch(
                layer,
                stored,
                f"cannot be resized: {err}",
                f"Keras layer {stored.name!r} cannot be resized: {err}",
            )
            return None

    @staticmethod
    def convert(plan: _Plan, arrays: list[np.ndarray]) -> dict[str, np.ndarray]:
        """The module's arrays from the file's: the layout transform first (done before
        resizing for a resized table), then the layer type's rule."""
        layer = plan.layer
        if layer.transform is not None and not plan.resized:
            arrays = layer.transform(list(arrays))
        return RULES[layer.kind](layer, list(arrays))

    def unexpected(self, scope: str) -> list[str]:
        """The unused weighted layers of a file that holds only the module's layers (all under
        ``scope``). A whole-model file has layers outside the module's scope; kecam models also
        name some of their own layers with a block's prefix, so there the unused ones under it
        are not extras."""
        weighted = [layer for layer in self.f.layers if layer.weights]
        if not all(layer.name.startswith(scope) for layer in weighted):
            return []
        return [layer.name for layer in weighted if layer.name not in self.used]

    def read(self) -> tuple[dict[str, mx.array], list[str], list[str]]:
        """Read and convert every planned layer, one at a time."""
        updates: dict[str, mx.array] = {}
        loaded, resized = [], []
        for plan in self.plans:
            layer, stored = plan.layer, plan.stored
            loaded.append(stored.name)
            if layer.kind == "Constant":
                continue
            if plan.arrays is None:
                arrays = [self.f.read(stored.name, i) for i in range(len(stored.weights))]
            else:
                arrays, plan.arrays = plan.arrays, None
                resized.append(stored.name)
            converted = self.convert(plan, arrays)
            del arrays
            for key, value in converted.items():
                full_key = self.tree.key(layer.module, key)
                updates[full_key] = _to_mx(value, self.tree.parameters[full_key])
        return updates, loaded, resized


def _prefix_hint(loader: _Loader, declarations, root_name: str) -> str:
    """A prefix under which the file has the module's layers, found by their suffixes."""
    scope = loader.prefix + root_name
    candidates: Counter[str] = Counter()
    names = loader.f.layer_names
    for decl in declarations:
        layouts = decl.layouts if isinstance(decl, KerasLayouts) else ((decl,),)
        for layer in (layer for layout in layouts for layer in layout):
            full = loader.prefix + layer.name
            suffix = full[len(scope) :] if full.startswith(scope) else full
            if len(suffix) < 2:
                continue
            candidates.update({n[: -len(suffix)] for n in names if n.endswith(suffix)})
    if not candidates:
        return ""
    best = candidates.most_common(1)[0][0]
    return (
        f"; did you mean the prefix {best!r} (build the module with name={best!r}, or pass "
        "prefix= so that prefix + name is that)?"
    )


def _check_arguments(prefix, strict, resize) -> None:
    if prefix is not None and not isinstance(prefix, str):
        raise TypeError(f"prefix must be a string or None, got {type(prefix).__name__} {prefix!r}")
    if not isinstance(strict, bool):
        raise TypeError(f"strict must be True or False, got {strict!r}")
    if not (isinstance(resize, bool) or (isinstance(resize, str) and resize in RESIZE_METHODS)):
        raise ValueError(f"resize={resize!r}: expected False, True or one of {RESIZE_METHODS}")


def load_keras_weights(
    module: nn.Module,
    path: str | Path,
    *,
    prefix: str | None = None,
    strict: bool = True,
    resize: bool | str = False,
) -> LoadReport:
    """Load kecam Keras weights into ``module`` by the Keras names it was built with.

    Every shape is checked from the file's metadata before any data is read; then the layers
    the module uses are read and converted one at a time (peak memory: the module's weights
    plus one layer). A module that appears at several paths of the tree (shared by identity)
    loads once, at its first path.

    Args:
        module: a module built through ``mlx_attention.attention_layers`` (or any tree of
            ``KerasModule``s) with kecam's ``name=``.
        path: a legacy Keras-2 ``.h5`` file (``save_weights`` or ``model.save``), kecam 1.3.1 or
            1.4.3 layer names, floats of any width and byte order.
        prefix: prepended to every declared Keras name, e.g. the stage prefix of a whole model
            (``""`` for a whole model whose root has no name). Required when the module was
            built without ``name=``.
        strict: every parameter of the module must be filled, every weight must have the
            module's shape and, in a file that holds only this module's layers, every weight
            must be used. ``False`` skips what is missing, unexpected or mis-shaped, loads the
            rest and logs the report as a warning (logger ``"mlx_attention.convert"``); a file
            in which none of the module's layers is found is still an error. In a whole-model
            file, layers of the model that kecam names with the block's prefix (e.g. NAT's
            ``stack1_block1_attn_ln`` beside ``neighborhood_attention(name="stack1_block1_attn_")``)
            are not the block's.
        resize: for tables that depend on the input size (the positional layers that kecam's
            ``load_resized_weights`` serves), a table saved at another size is resized into the
            module: ``True`` with each layer's default method (kecam 1.4.3: ``"bilinear"``), or
            a ``tf.image.resize`` method name (``"nearest"`` is kecam 1.3.1's, ``"bicubic"``).
            Tables of the module's own size load unchanged.

    Returns:
        a ``LoadReport``: what was loaded, resized, and (under ``strict=False``) skipped. On
        any error the module is left unchanged.

    Raises:
        KerasFileError: the file cannot be read (missing, not a regular file, corrupt,
            truncated, Keras-3, data from outside the file, non-float weights).
        WeightMismatchError: weights missing, unexpected or of the wrong shape, each named
            (``strict``), or none of the module's layers in the file.
        TypeError, ValueError: a bad ``prefix``, ``strict`` or ``resize``.
    """
    _check_arguments(prefix, strict, resize)
    root_name = getattr(module, "name", None) or ""
    if prefix is None and not root_name:
        raise ValueError(
            f"{type(module).__name__} was built without name=, so it has no Keras names to look "
            "for: build it with kecam's name= or pass prefix= (the Keras name prefix in the file)"
        )
    prefix = prefix or ""
    with KerasH5(path) as f:
        loader = _Loader(module, f, prefix, resize)
        declarations = declared_layers(module)
        loader.validate(declarations)
        unexpected = loader.unexpected(prefix + root_name)
        filled = {k for p in loader.plans for k in _covered(p.layer, loader.tree)}
        for key in loader.tree.parameters:
            if key not in filled and key not in loader.explained:
                loader.missing.append(key)
                loader.problems.append(
                    f"module parameter {key!r} is not filled by any Keras weight"
                )
        report = LoadReport(
            str(path),
            missing=tuple(loader.missing),
            unexpected=tuple(unexpected),
            mismatched=tuple(loader.mismatched),
        )
        nothing = not loader.used and any(
            layer.kind != "Constant" for decl in declarations for layer in _choose(decl, prefix, f)
        )
        problems = loader.problems + [
            f"unexpected Keras layer {name!r} with {list(f[name].short_names)}"
            for name in unexpected
        ]
        if nothing:
            hint = _prefix_hint(loader, declarations, root_name)
            found = f"no Keras layer of the module was found in the file{hint}"
            raise WeightMismatchError("; ".join([f"{path}: {found}", *problems]), report)
        if strict and not report.ok:
            raise WeightMismatchError(f"{path}: " + "; ".join(problems), report)
        updates, loaded, resized = loader.read()
    module.update(tree_unflatten(list(updates.items())))
    report = LoadReport(
        str(path),
        loaded=tuple(loaded),
        missing=report.missing,
        unexpected=report.unexpected,
        mismatched=report.mismatched,
        resized=tuple(resized),
    )
    if not report.ok:
        logger.warning("loaded with problems skipped (strict=False):\n%s", report)
    return report


__all__ = [
    "KerasFileError",
    "LoadReport",
    "ModuleTree",
    "WeightMismatchError",
    "declared_layers",
    "load_keras_weights",
]
