"""The model registry: kecam's constructors as data, generated constructors, lookups.

A family module (e.g. ``models/nat.py``) describes kecam's family builder (``Family``) and its
named constructors (``ModelSpec`` rows: the constructor's locals and ``kwargs.pop`` defaults),
and ``register_family`` turns them into functions with kecam's signatures (``pretrained``
defaulting to ``None``, plus keyword-only ``strict``, ``resize`` and ``dtype``).
"""

from __future__ import annotations

import difflib
import fnmatch
import inspect
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import mlx.core as mx

from . import _pretrained
from ._base import ImageClassifier

# Arguments every constructor adds to kecam's: how to load, and the parameters' dtype.
LOAD_ARGS = (("strict", True), ("resize", False), ("dtype", mx.float32))


@dataclass(frozen=True)
class Family:
    """A kecam family builder (``nat.NAT``) and what its models share.

    Args:
        module: kecam's module under ``keras_cv_attention_models`` (and ours under ``models``).
        builder_name: the builder's kecam name.
        build: builds the model from the builder's architecture arguments (kecam's names,
            order and defaults, without ``pretrained``/``model_name``).
        pretrained_dict: kecam's ``PRETRAINED_DICT`` of the family.
        pretrained_classes: ``{(model.name, tag): classes}`` for files whose head is not 1000.
        sub_release: kecam's release tag of the family's files.
        rescale_mode: kecam's ``add_pre_post_process`` mode.
        builder_tail: the builder's arguments after the architecture ones (kecam's order).
    """

    module: str
    builder_name: str
    build: Callable[..., ImageClassifier]
    pretrained_dict: Mapping[str, Mapping]
    pretrained_classes: Mapping[tuple[str, str], int]
    sub_release: str
    rescale_mode: str
    builder_tail: tuple[tuple[str, Any], ...] = ()


@dataclass(frozen=True)
class ModelSpec:
    """One kecam constructor: ``Name(input_shape, ..., pretrained, **kwargs)``.

    Args:
        name: kecam's constructor name (``"NAT_Mini"``).
        model_name: kecam's ``model.name`` (``"nat_mini"``).
        fixed: the constructor's own settings passed to the builder (``kwargs`` may not repeat
            them: kecam raises a TypeError).
        popped: settings ``kwargs`` may override (kecam's ``kwargs.pop(name, default)``).
        input_shape: the default ``input_shape``.
        kecam_pretrained: kecam's default ``pretrained`` (ours is ``None``).
        arg_defaults: the constructor's explicit arguments whose defaults differ from the
            family's (LeViT256's ``use_distillation=True``).
        tag_popped: ``kwargs.pop`` defaults that kecam sets for one ``pretrained`` tag
            (``{tag: {name: default}}``: swin v2's 22k files fine-tuned from window 12 take
            ``pos_scale=[12, 12, 12, 6]``); recorded in the model's config.
        pretrained_arg: whether kecam's constructor has a ``pretrained`` argument; ``False``:
            ``pretrained`` reaches the builder through ``**kwargs`` (CoAtNetT, CoAtNet1-7).
    """

    name: str
    model_name: str
    fixed: Mapping[str, Any] = field(default_factory=dict)
    popped: Mapping[str, Any] = field(default_factory=dict)
    input_shape: tuple[int, int, int] = (224, 224, 3)
    kecam_pretrained: str | None = "imagenet"
    arg_defaults: Mapping[str, Any] = field(default_factory=dict)
    tag_popped: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    pretrained_arg: bool = True


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value))


@dataclass(frozen=True)
class ModelEntry:
    """A registered constructor (``spec`` set) or a family builder (``spec`` None)."""

    name: str
    family: Family
    spec: ModelSpec | None
    signature: inspect.Signature

    @property
    def kecam(self) -> str:
        return f"{self.family.module}.{self.spec.name if self.spec else self.family.builder_name}"

    @property
    def listed(self) -> bool:
        return self.spec is not None

    def create(self, *args, **kwargs) -> ImageClassifier:
        """Build (and load) the model; the arguments are those of ``self.signature``."""
        # partial: a converted .safetensors supplies the builder's required arguments
        given = dict(self.signature.bind_partial(*args, **kwargs).arguments)
        if self.spec is not None:
            extra = dict(given.pop("kwargs", {}))
            if not self.spec.pretrained_arg and "pretrained" in extra:
                given["pretrained"] = extra.pop("pretrained")
            given.update(self._check_extra(extra))
        load = {k: given.pop(k, default) for k, default in LOAD_ARGS}
        pretrained = given.pop("pretrained", None)
        if self.spec is not None and isinstance(pretrained, str):
            given = {**self.spec.tag_popped.get(pretrained, {}), **given}
        given = {k: v for k, v in given.items() if k != "kwargs"}  # kecam's NAT(kwargs=None)
        source, given = _pretrained.resolve(self, pretrained, given, strict=load["strict"])
        arguments = {**self._defaults(), **given}
        missing = [
            n for n, p in self.signature.parameters.items()
            if p.default is p.empty and p.kind is p.POSITIONAL_OR_KEYWORD and n not in arguments
        ]  # fmt: skip
        if missing:
            raise TypeError(f"{self.name}() missing required arguments: {missing}")
        model_name = self.spec.model_name if self.spec else arguments.pop("model_name")
        build_args = dict(arguments)
        if self.spec is not None:
            build_args = {**self.spec.popped, **build_args, **self.spec.fixed}
        model = self.family.build(**build_args)
        if load["dtype"] != mx.float32:
            model.set_dtype(load["dtype"])
        kwargs_record = {**arguments, **({} if self.spec else {"model_name": model_name})}
        object.__setattr__(
            model, "config", {"model": self.name, "kwargs": _jsonable(kwargs_record)}
        )
        object.__setattr__(
            model, "pretrained_cfg", _pretrained.make_cfg(self, model_name, model, arguments)
        )
        if source is not None:
            _pretrained.load_file(model, source, strict=load["strict"], resize=load["resize"])
        return model

    def _defaults(self) -> dict[str, Any]:
        skip = {"pretrained", "kwargs", *dict(LOAD_ARGS)}
        return {
            p.name: p.default
            for p in self.signature.parameters.values()
            if p.name not in skip and p.default is not inspect.Parameter.empty
        }

    def _check_extra(self, extra: Mapping[str, Any]) -> dict[str, Any]:
        """kecam's ``**kwargs`` go to the family builder: the builder's architecture arguments
        that the constructor does not set itself."""
        build_params = inspect.signature(self.family.build).parameters
        for key in extra:
            if key in self.spec.fixed:
                raise TypeError(f"{self.name}() got multiple values for keyword argument {key!r}")
            if key not in build_params or key in self.signature.parameters:
                allowed = sorted(
                    set(build_params) - set(self.spec.fixed) - set(self.signature.parameters)
                )
                raise TypeError(
                    f"{self.name}() got an unexpected keyword argument {key!r}; kecam's "
                    f"{self.family.builder_name} also takes {allowed}"
                )
        return dict(extra)


_ENTRIES: dict[str, ModelEntry] = {}  # by entry name
_LOOKUP: dict[str, ModelEntry] = {}  # lower-cased constructor names, model names, "nat.NAT"


def _add_lookup(key: str, entry: ModelEntry) -> None:
    key = key.lower()
    if key in _LOOKUP and _LOOKUP[key] is not entry:
        raise ValueError(
            f"model name {key!r} is registered twice ({_LOOKUP[key].kecam}, {entry.kecam})"
        )
    _LOOKUP[key] = entry


def _parameter(name: str, default: Any, kind=inspect.Parameter.POSITIONAL_OR_KEYWORD):
    return inspect.Parameter(name, kind, default=default)


def _constructor(entry: ModelEntry) -> Callable[..., ImageClassifier]:
    def constructor(*args, **kwargs):
        return entry.create(*args, **kwargs)

    short = entry.name.rsplit(".", 1)[-1]
    constructor.__name__ = constructor.__qualname__ = short
    constructor.__module__ = f"mlx_attention.models.{entry.family.module}"
    constructor.__signature__ = entry.signature
    what = (
        f"kecam's ``{entry.kecam}`` (``model.name`` ``{entry.spec.model_name}``)"
        if entry.spec
        else f"kecam's family builder ``{entry.kecam}``, for reduced configurations"
    )
    constructor.__doc__ = (
        f"{what} as an MLX model.\n\nArguments and defaults are kecam 1.4.3's, except "
        "``pretrained=None`` (None, a kecam ``.h5``, a converted ``.safetensors`` or a tag such "
        'as ``"imagenet"``), plus ``strict`` (every weight of the file used and every '
        "parameter filled), ``resize`` (input-size dependent tables from another size) and "
        "``dtype`` (the parameters' dtype). See ``mlx_attention.models.create_model``."
    )
    return constructor


def register_family(
    family: Family, specs: tuple[ModelSpec, ...], constructor_args: tuple[tuple[str, Any], ...]
) -> tuple[Callable[..., ImageClassifier], dict[str, Callable[..., ImageClassifier]]]:
    """Register a family builder (unlisted, as ``"module.Builder"``) and its constructors.

    Returns:
        the builder's function and ``{constructor name: function}``.
    """
    load = [_parameter(k, v, inspect.Parameter.KEYWORD_ONLY) for k, v in LOAD_ARGS]
    arch = [
        _parameter(p.name, p.default) for p in inspect.signature(family.build).parameters.values()
    ]
    tail = [_parameter(k, v) for k, v in family.builder_tail]
    builder_entry = ModelEntry(
        f"{family.module}.{family.builder_name}", family, None,
        inspect.Signature(arch + tail + load),
    )  # fmt: skip
    _add_lookup(builder_entry.name, builder_entry)
    _ENTRIES[builder_entry.name] = builder_entry
    constructors = {}
    for spec in specs:
        # `pretrained` follows the explicit arguments unless they place it (kecam's BotNet50
        # and ResNest50 take `strides` / `groups` after it)
        args = constructor_args
        if spec.pretrained_arg and all(k != "pretrained" for k, _ in args):
            args = (*args, ("pretrained", None))
        params = [
            _parameter(k, spec.input_shape if k == "input_shape" else spec.arg_defaults.get(k, v))
            for k, v in args
        ]
        params += load
        params.append(inspect.Parameter("kwargs", inspect.Parameter.VAR_KEYWORD))
        entry = ModelEntry(spec.name, family, spec, inspect.Signature(params))
        for key in (spec.name, spec.model_name):
            _add_lookup(key, entry)
        _ENTRIES[spec.name] = entry
        constructors[spec.name] = _constructor(entry)
    return _constructor(builder_entry), constructors


def get_entry(name: str) -> ModelEntry:
    """The entry of a constructor name, a ``model.name`` or ``"module.Builder"``
    (case-insensitive).

    Raises:
        ValueError: unknown name, with the close matches.
    """
    if not isinstance(name, str):
        raise TypeError(f"model name must be a string, got {type(name).__name__}")
    entry = _LOOKUP.get(name.lower())
    if entry is None:
        close = difflib.get_close_matches(name.lower(), list(_LOOKUP), n=5, cutoff=0.5)
        names = list(dict.fromkeys(_LOOKUP[c].name for c in close))
        raise ValueError(
            f"unknown model {name!r}; close matches: {names or 'none'} "
            "(mlx_attention.models.list_models() lists them all)"
        )
    return entry


def create_model(name: str, pretrained: str | None = None, **kwargs) -> ImageClassifier:
    """Build a kecam model by name: ``create_model("NAT_Mini")`` is ``models.NAT_Mini()``.

    Args:
        name: kecam's constructor name (``"NAT_Mini"``), its ``model.name`` (``"nat_mini"``),
            or a family builder (``"nat.NAT"``); case-insensitive.
        pretrained: ``None`` (random initialisation), a kecam ``.h5`` file (``model.save`` or
            ``save_weights``), a ``.safetensors`` written by ``models.convert`` (its arguments
            come from the file), or a kecam tag (``"imagenet"``, ...) resolved to kecam's
            release file for the input width (cached or downloaded with kecam's md5).
        **kwargs: the constructor's keyword arguments with kecam's defaults (``input_shape``,
            ``num_classes``, ``classifier_activation``, ``drop_connect_rate``, ``dropout``,
            ``layer_scale``, ...), plus ``strict=True``, ``resize=False``, ``dtype=mx.float32``.

    Returns:
        the model in inference mode.

    Raises:
        ValueError: unknown name (with close matches), arguments that contradict a
            ``.safetensors`` file's (except those that change no weight:
            ``classifier_activation``, ``dropout``, ``drop_connect_rate``), or a tag's head size
            that contradicts ``num_classes``.
        TypeError: an argument the constructor does not take.
    """
    return get_entry(name).create(pretrained=pretrained, **kwargs)


def list_models(pattern: str | None = None) -> list[str]:
    """Registered constructor names, sorted; ``pattern`` is an fnmatch pattern, matched
    case-insensitively (``"*nat_m*"``). Family builders (``nat.NAT``) are not listed."""
    names = sorted(e.name for e in _ENTRIES.values() if e.listed)
    if pattern is None:
        return names
    return [n for n in names if fnmatch.fnmatchcase(n.lower(), pattern.lower())]


__all__ = [
    "Family", "ModelEntry", "ModelSpec", "create_model", "get_entry", "list_models",
    "register_family",
]  # fmt: skip
