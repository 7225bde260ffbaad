"""mlx-attention: kecam's vision attention layers as MLX modules.

- ``mlx_attention.layers``: native MLX modules (channels-last).
- ``mlx_attention.attention_layers``: kecam's names and arguments over those modules.
- ``mlx_attention.ops``: pure functions on ``mx.array`` (the reference semantics).
- ``mlx_attention.convert``: kecam Keras ``.h5`` reading, loading and export.
"""

from . import attention_layers, convert, layers, models
from .convert import export_safetensors, load_keras_weights, read_keras_h5

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "attention_layers",
    "convert",
    "export_safetensors",
    "layers",
    "load_keras_weights",
    "models",
    "read_keras_h5",
]
