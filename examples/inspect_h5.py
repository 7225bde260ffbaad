"""Inspect a Keras .h5 weight file: its layers in order, their weights, shapes and sizes.

    python examples/inspect_h5.py [WEIGHTS.h5]

This is what `mlx-attention inspect FILE` prints; use it to find the `name=` prefix of a block
before loading it with `convert.load_keras_weights`.
"""

import sys
from pathlib import Path

from mlx_attention import convert
from mlx_attention.demo import DEMO_WEIGHTS

path = Path(sys.argv[1]) if len(sys.argv) > 1 else DEMO_WEIGHTS / "outlook_attention.h5"

with convert.KerasH5(path) as f:  # metadata only: no weight is read
    for layer in f.layers:
        if not layer.weights:
            print(f"{layer.name}  (no weights)")
            continue
        for weight in layer.weights:
            print(f"{layer.name}  {weight.name}  {weight.shape}  {weight.size:,} values")
