"""Load a kecam Keras .h5 into a block and export it as .safetensors.

    python examples/load_and_export.py [WEIGHTS.h5] [OUT.safetensors]

Without arguments it uses the kecam weights the package ships for its demo (kecam's README
RelativePositionalEmbedding example, saved by kecam under the layer name "pos_emb").
"""

import sys
import tempfile
from pathlib import Path

import mlx.core as mx

from mlx_attention import attention_layers, convert
from mlx_attention.demo import DEMO_WEIGHTS

weights = (
    Path(sys.argv[1]) if len(sys.argv) > 1 else DEMO_WEIGHTS / "relative_positional_embedding.h5"
)
out = Path(sys.argv[2]) if len(sys.argv) > 2 else Path(tempfile.mkdtemp()) / "pos_emb.safetensors"

# Build the module as kecam would, with the same name=, so the loader finds its Keras layers.
block = attention_layers.RelativePositionalEmbedding(input_shape=(4, 14, 16, 256), name="pos_emb")
convert.load_keras_weights(block, weights)  # strict: names anything missing or mis-shaped
convert.export_safetensors(block, out)

# The exported file loads with MLX alone, into a module built the same way.
fresh = attention_layers.RelativePositionalEmbedding(input_shape=(4, 14, 16, 256), name="pos_emb")
fresh.load_weights(str(out))
x = mx.ones([1, 4, 14, 16, 256])
print(f"loaded {weights.name}, exported {out}")
print("same output after the round trip:", mx.array_equal(block(x), fresh(x)).item())
