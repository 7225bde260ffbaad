"""What a module tells the weight loader: the Keras layers whose weights fill it.

A module built from a kecam call keeps the kecam ``name=`` it was given and declares, in
``keras_layers()``, the Keras layers kecam would create under that name, each with the
Keras layer type whose conversion rule applies. ``convert`` knows modules only through
these declarations; it never guesses a layout from a shape.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import mlx.core as mx
import mlx.nn as nn
import numpy as np
from mlx.utils import tree_flatten, tree_map

from .utils import check_str

# Keras layer types with a conversion rule in ``mlx_attention.convert.rules``.
KERAS_KINDS = (
    "Dense",  # kernel [in, out] (+ bias) into nn.Linear
    "Conv1D",  # kernel [k, in, out] (+ bias) into nn.Conv1d
    "Conv2D",  # kernel [kh, kw, in/g, out] (+ bias) into nn.Conv2d, or a 1x1 kernel into nn.Linear
    "DepthwiseConv2D",  # depthwise_kernel [kh, kw, C, M] (+ bias) into nn.Conv2d(groups=C)
    "BatchNormalization",  # gamma, beta, moving_mean, moving_variance into nn.BatchNorm
    "LayerNormalization",  # gamma (+ beta) into nn.LayerNorm
    "GroupNormalization",  # gamma, beta into nn.GroupNorm
    "PReLU",  # alpha [1, 1, C] into nn.PReLU
    "MultiHeadAttention",  # Keras MHA: query/key/value/attention_output into four nn.Linear
    "Weights",  # kecam's own layers: variables stored as used, in `weights` order
    "Constant",  # stored variables fixed by construction: checked, never loaded
)


@dataclass(frozen=True)
class KerasLayer:
    """One Keras layer of a kecam weight file and the MLX module its weights fill.

    Args:
        name: the Keras layer name, as kecam builds it from the module's ``name=``.
        kind: the Keras layer type, one of ``KERAS_KINDS``.
        module: the module that holds the parameters (``None`` for ``"Constant"``).
        weights: for ``"Weights"``, the module's parameter names in the order of the layer's
            ``weight_names``; for ``"Constant"``, the arrays kecam stores.
        transform: applied to the file's arrays (in ``weight_names`` order) before the rule,
            for a layout that an older kecam version stored differently.
        resize: for a table that depends on the input size, ``resize(arrays, method)`` turns
            arrays saved at another size into this module's (kecam's ``load_resized_weights``);
            the loader calls it only when asked to resize and the shapes differ.
    """

    name: str
    kind: str
    module: nn.Module | None = None
    weights: tuple = ()
    transform: Callable[[list[np.ndarray]], list[np.ndarray]] | None = field(
        default=None, compare=False
    )
    resize: Callable[..., list[np.ndarray]] | None = field(default=None, compare=False)

    def __post_init__(self):
        if self.kind not in KERAS_KINDS:
            raise ValueError(
                f"unknown Keras layer kind {self.kind!r}; expected one of {KERAS_KINDS}"
            )


@dataclass(frozen=True)
class KerasLayouts:
    """Alternative sets of Keras layers for the same parameters (kecam 1.4.3 first, then 1.3.1).

    The loader uses the first layout whose layers are all in the file.
    """

    layouts: tuple[tuple[KerasLayer, ...], ...]
    labels: tuple[str, ...] = ()


# --- the module tree: each module once, its declarations -----------------------------------------


def _walk(module: nn.Module, prefix: str = "") -> Iterator[tuple[str, nn.Module]]:
    """Every (path, module) of the tree in definition order (a shared module at each path)."""
    yield prefix, module
    children = tree_flatten(module.children(), is_leaf=lambda m: isinstance(m, nn.Module))
    for key, child in children:
        yield from _walk(child, f"{prefix}.{key}" if prefix else key)


@dataclass(frozen=True)
class ModuleTree:
    """A module tree with each module once, at its first path (a stage-shared positional bias
    that several blocks hold is one module): its paths, declarations and parameters."""

    paths: dict[int, str]  # id(module) -> first path
    modules: tuple[nn.Module, ...]  # each module once, in definition order
    parameters: dict[str, mx.array]  # flattened, keys under a module's other paths left out

    @classmethod
    def of(cls, module: nn.Module) -> ModuleTree:
        paths: dict[int, str] = {}
        modules, aliases = [], []
        for path, sub in _walk(module):
            if id(sub) in paths:
                aliases.append(path + ".")
            else:
                paths[id(sub)] = path
                modules.append(sub)
        parameters = {
            key: value
            for key, value in tree_flatten(module.parameters())
            if not any(key.startswith(alias) for alias in aliases)
        }
        return cls(paths, tuple(modules), parameters)

    def key(self, module: nn.Module, name: str) -> str:
        base = self.paths[id(module)]
        return f"{base}.{name}" if base else name

    def declarations(self) -> list[KerasLayer | KerasLayouts]:
        """Every Keras-layer declaration in the tree, in definition order (a shared module's
        once): what the loader fills and ``KerasModule.summary`` lists."""
        return [
            decl
            for sub in self.modules
            if isinstance(sub, KerasModule)
            for decl in sub.keras_layers()
        ]


def _summary_rows(tree: ModuleTree, decl: KerasLayer | KerasLayouts) -> list[tuple[str, ...]]:
    """``(Keras name, Keras type, MLX module path, parameter shapes, count)`` per Keras layer;
    an alternative layout's rows (another kecam version's names) repeat no count."""
    if isinstance(decl, KerasLayer):
        layouts, labels = ((decl,),), ("",)
    else:
        layouts, labels = decl.layouts, [f" [kecam {label} file]" for label in decl.labels]
    rows = []
    for i, (layout, label) in enumerate(zip(layouts, labels or [""] * len(layouts))):
        for layer in layout:
            if layer.kind == "Constant":
                shapes = ", ".join(str(tuple(np.shape(w))) for w in layer.weights)
                rows.append((layer.name, "Constant" + label, "-", shapes, "constant"))
                continue
            params = dict(tree_flatten(layer.module.parameters()))
            names = layer.weights if layer.kind == "Weights" else tuple(params)
            shapes = ", ".join(f"{name} {tuple(params[name].shape)}" for name in names)
            count = f"{sum(params[name].size for name in names):,}" if i == 0 else ""
            path = tree.paths[id(layer.module)] or "(self)"
            rows.append((layer.name, layer.kind + label, path, shapes, count))
    return rows


def _as_float(value):
    """kecam's inputs are float32 tensors: integer and bool arrays are computed in float32."""
    if not isinstance(value, mx.array) or mx.issubdtype(value.dtype, mx.floating):
        return value
    if mx.issubdtype(value.dtype, mx.complexfloating):
        raise TypeError(f"inputs must be real arrays, got one of dtype {value.dtype}")
    return value.astype(mx.float32)


def _empty_batch(args: tuple) -> bool:
    return (
        bool(args) and isinstance(args[0], mx.array) and args[0].ndim > 0 and not args[0].shape[0]
    )


def _empty_batch_result(module: nn.Module, call: Callable, args: tuple, kwargs: dict):
    """kecam's result for an empty batch: empty arrays of the shape a batch would give.

    Many MLX ops (``reshape`` with a ``-1``, ``nn.GroupNorm``) cannot infer a size from an empty
    array, so the call is traced, without evaluation (MLX knows shapes before it computes), on
    batches of one and two zero inputs: an output whose leading axis grows with the batch is
    returned with that axis 0, a constant one (an index table) as it is. The module's state
    (batch-norm statistics in training mode) is restored afterwards.
    """
    state = module.parameters()

    def traced(batch: int):
        def grow(value):
            if isinstance(value, mx.array) and value.ndim and not value.shape[0]:
                return mx.zeros((batch, *value.shape[1:]), value.dtype)
            return value

        return call(module, *map(grow, args), **{key: grow(v) for key, v in kwargs.items()})

    one, two = traced(1), traced(2)
    module.update(state)

    def empty(out_one, out_two):
        if isinstance(out_one, mx.array) and out_one.ndim and out_two.shape[0] != out_one.shape[0]:
            return mx.zeros((0, *out_one.shape[1:]), out_one.dtype)
        return out_one

    return tree_map(empty, one, two)


class KerasModule(nn.Module):
    """Base of every module that kecam builds under a ``name=``.

    Its call computes integer and bool inputs in float32 (kecam's inputs are float32 tensors)
    and returns, for an empty batch, empty results of the shape a batch would give.

    Args:
        name: kecam's ``name=``: for a block, the prefix of the Keras layers it creates; for a
            layer class, the Keras layer's own name. ``None`` loads only with an explicit
            ``prefix=`` in ``convert.load_keras_weights``.
    """

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        init, call = cls.__dict__.get("__init__"), cls.__dict__.get("__call__")
        if init is not None:
            # Modules start in inference mode: once the most-derived __init__ has built every
            # sub-module, switch them all to eval (``module.train()`` turns dropout back on).
            @functools.wraps(init)
            def init_then_eval(self, *args, **kwargs):
                init(self, *args, **kwargs)
                if type(self).__init__ is init_then_eval:
                    self.eval()

            cls.__init__ = init_then_eval
        if call is not None:

            @functools.wraps(call)
            def check_then_call(self, *args, **kwargs):
                args = tuple(map(_as_float, args))
                kwargs = {key: _as_float(value) for key, value in kwargs.items()}
                if args:
                    self.check_input(args[0])
                if _empty_batch(args):
                    return _empty_batch_result(self, call, args, kwargs)
                return call(self, *args, **kwargs)

            cls.__call__ = check_then_call

    def __init__(self, name: str | None = None):
        super().__init__()
        if name is not None:
            check_str(name, "name", what=type(self).__name__)
        self.name = name
        self._input_shape: tuple[int, ...] | None = None

    def expect_input_shape(self, input_shape: Sequence[int]) -> None:
        """Take ``[B, *input_shape]`` only, as kecam's layers built for that shape do (the
        kecam face sets it; a module built natively takes what its sizes allow)."""
        # a plain attribute, not a tuple in the module's tree of parameters
        object.__setattr__(self, "_input_shape", tuple(input_shape))

    def check_input(self, x: mx.array) -> None:
        expected = self._input_shape
        if expected is not None and tuple(x.shape[1:]) != expected:
            raise ValueError(
                f"{type(self).__name__} {self.name or ''} was built for inputs of shape "
                f"[B, {', '.join(map(str, expected))}], got {tuple(x.shape)}"
            )

    def sub(self, suffix: str) -> str:
        """The Keras name kecam gives a sub-layer: ``name + suffix``."""
        return (self.name or "") + suffix

    def keras_layers(self) -> Sequence[KerasLayer | KerasLayouts]:
        """The Keras layers whose weights live directly in this module (not in sub-blocks)."""
        return ()

    def summary(self, print_fn: Callable[[str], object] | None = print) -> str:
        """The Keras layers the module tree declares: each layer's Keras name (what
        ``convert.load_keras_weights`` looks for), Keras type, the MLX module it fills, that
        module's parameter shapes (MLX layout) and count; then the total parameter count.

        Printed with ``print_fn`` (``None``: not printed) and returned. Where a block has two
        layouts (kecam 1.4.3 and 1.3.1 names), each row is marked with its kecam version and
        the second layout's rows (the same parameters) repeat no count. A module built without
        ``name=`` lists its names after ``<prefix>``, the loader's ``prefix=``.

        Args:
            print_fn: called with the text (kecam's ``model.summary(print_fn=...)``).
        """
        tree = ModuleTree.of(self)
        rows = [row for decl in tree.declarations() for row in _summary_rows(tree, decl)]
        head = f"{type(self).__name__}(name={self.name!r}): the Keras layers it loads"
        if not self.name:  # the declared names are suffixes of the file's names
            rows = [("<prefix>" + row[0], *row[1:]) for row in rows]
            head += ", <prefix> given as load_keras_weights(module, path, prefix=...)"
        rows.insert(
            0, ("Keras layer", "Keras type", "MLX module", "parameters (MLX shapes)", "count")
        )
        widths = [max(len(row[i]) for row in rows) for i in range(5)]
        table = [
            "  ".join(f"{v:<{w}}" for v, w in zip(row[:4], widths)) + f"  {row[4]:>{widths[4]}}"
            for row in rows
        ]
        total = sum(v.size for v in tree.parameters.values())
        rule = "-" * len(table[0])
        text = "\n".join([head, rule, table[0], rule, *table[1:], rule, f"Total params: {total:,}"])
        if print_fn is not None:
            print_fn(text)
        return text
