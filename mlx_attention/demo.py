"""The usage examples of kecam's ``attention_layers`` README, run on kecam weights shipped in
the package.

Each example's weights and kecam's input and output were made by kecam itself
(``tools/make_fixtures.py --demo``) and live in ``mlx_attention/demo_weights/<id>.h5`` and
``<id>.npz`` (``input_0``, ``output_0``).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import mlx.core as mx
import numpy as np

from . import attention_layers
from .convert import load_keras_weights

DEMO_WEIGHTS = Path(__file__).parent / "demo_weights"


@dataclass(frozen=True)
class Example:
    """One usage example of kecam's ``attention_layers`` README, the kecam call a user ports.

    Args:
        id: the file stem under ``demo_weights``.
        kecam: the name in kecam's (and our) ``attention_layers``.
        input_shape: kecam's input without the batch axis.
        args: positional arguments after the input, in kecam's order.
        kwargs: keyword arguments (a non-empty ``name=``, which kecam blocks need).
        call: the ported call, as README and the demo print it.
        inputs: ``"ones"`` (the README's ``tf.ones``) or ``"normal"``.
    """

    id: str
    kecam: str
    input_shape: tuple[int, ...]
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)
    call: str = ""
    inputs: str = "normal"

    @property
    def is_class(self) -> bool:
        return self.kecam[0].isupper()

    def build(self):
        target = getattr(attention_layers, self.kecam)
        if self.is_class:
            return target(*self.args, input_shape=self.input_shape, **self.kwargs)
        return target(self.input_shape, *self.args, **self.kwargs)


EXAMPLES = [
    Example(
        "relative_positional_embedding",
        "RelativePositionalEmbedding",
        (4, 14, 16, 256),
        kwargs={"name": "pos_emb"},
        call="attention_layers.RelativePositionalEmbedding(input_shape=(4, 14, 16, 256))",
        inputs="ones",
    ),
    Example(
        # kecam's README writes outlook_attention(inputs, 4, 192); kecam's order: embed_dim, heads.
        "outlook_attention",
        "outlook_attention",
        (28, 28, 192),
        args=(192, 4),
        kwargs={"name": "outlook_"},
        call="attention_layers.outlook_attention((28, 28, 192), 192, 4, name='outlook_')",
    ),
    Example(
        "split_attention_conv2d",
        "split_attention_conv2d",
        (28, 28, 192),
        args=(384,),
        kwargs={"name": "split_"},
        call="attention_layers.split_attention_conv2d((28, 28, 192), 384, name='split_')",
    ),
    Example(
        "cot_attention",
        "cot_attention",
        (28, 28, 192),
        kwargs={"kernel_size": 3, "name": "cot_"},
        call="attention_layers.cot_attention((28, 28, 192), kernel_size=3, name='cot_')",
    ),
]


@dataclass
class DemoResult:
    example: Example
    status: str  # "ok" or why it did not run
    module: str = ""
    input_shape: tuple = ()
    output_shape: tuple = ()
    max_diff: float = float("nan")
    kecam_scale: float = float("nan")  # max(1, max|kecam|): "exact" is max_diff <= 1e-4 * this
    time_ms: float = float("nan")


def _time_ms(fn: Callable[[], mx.array], repeats: int = 5) -> float:
    mx.eval(fn())  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        mx.eval(fn())
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def run_example(example: Example, folder: Path = DEMO_WEIGHTS) -> DemoResult:
    """Build the example's module, load kecam's weights, run it and compare with kecam."""
    if not hasattr(attention_layers, example.kecam):
        return DemoResult(example, f"pending: {example.kecam} is not implemented yet")
    weights, arrays = folder / f"{example.id}.h5", folder / f"{example.id}.npz"
    if not weights.exists() or not arrays.exists():
        return DemoResult(example, f"pending: no shipped weights ({weights.name})")
    module = example.build()
    load_keras_weights(module, weights)
    with np.load(arrays) as data:
        x, expected = mx.array(data["input_0"]), data["output_0"]
    out = module(x)
    diff = float(np.max(np.abs(np.asarray(out, dtype=np.float64) - expected)))
    scale = max(1.0, float(np.max(np.abs(expected))))
    return DemoResult(
        example, "ok", type(module).__name__, tuple(x.shape), tuple(out.shape), diff, scale,
        _time_ms(lambda: module(x)),
    )  # fmt: skip


def run_all(folder: Path = DEMO_WEIGHTS) -> list[DemoResult]:
    return [run_example(example, folder) for example in EXAMPLES]
