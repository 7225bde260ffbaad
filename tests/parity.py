"""Building a case's module through our kecam namespace and checking it on its fixture."""

from __future__ import annotations

import importlib

import mlx.core as mx
import numpy as np
from cases import Case, with_layers
from helpers import assert_matches
from mlx.utils import tree_map

from mlx_attention import attention_layers
from mlx_attention.convert import load_keras_weights
from mlx_attention.convert.loader import declared_layers


def build_module(case: Case):
    """Ours of ``case``: ``attention_layers.<name>`` or, for a model-level kecam function,
    ``mlx_attention.models.<module>.<name>`` (``Case.our_module``)."""
    target = getattr(importlib.import_module(case.our_module), case.name)
    kwargs = with_layers(
        case.kwargs,
        lambda layer: getattr(attention_layers, layer.kecam)(
            input_shape=layer.input_shape, **layer.kwargs
        ),
    )
    if case.is_class:
        return target(*case.args, input_shape=case.input_shapes[0], **kwargs)
    return target(case.input_shapes[0], *case.args, **kwargs)


def load_arrays(case: Case) -> tuple[list[np.ndarray], list[np.ndarray]]:
    with np.load(case.arrays_path) as data:
        inputs = [data[f"input_{i}"] for i in range(len(case.input_shapes))]
        outputs = [data[k] for k in sorted(data.files) if k.startswith("output_")]
    return inputs, outputs


def run_case(
    case: Case, weights_path=None, inputs=None, expected=None, dtype: mx.Dtype = mx.float32
) -> None:
    """Build, load kecam's weights, run in ``dtype``, and compare with kecam's outputs."""
    if inputs is None:
        inputs, expected = load_arrays(case)
    module = build_module(case)
    if declared_layers(module):  # a weightless kecam function (e.g. rsoftmax) has no name=
        resize = (case.resize_method or True) if case.resize_from else False
        load_keras_weights(module, weights_path or case.weights_path, resize=resize)
    if dtype != mx.float32:
        module.update(tree_map(lambda p: p.astype(dtype), module.parameters()))
    result = module(*[mx.array(x).astype(dtype) for x in inputs])
    results = result if isinstance(result, (list, tuple)) else [result]
    assert len(results) == len(expected)
    for ours, theirs in zip(results, expected):
        if mx.issubdtype(ours.dtype, mx.floating):  # (index tables stay integers)
            assert ours.dtype == dtype, f"the output is {ours.dtype}, not {dtype}"
        assert_matches(ours, theirs, dtype)
