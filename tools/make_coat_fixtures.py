"""Generate ``tests/fixtures/models/coat_factor_attention.npz`` with kecam 1.4.3 itself.

kecam's ``coat.factor_attention_conv_relative_positional_encoding`` in a Keras model on tokens
``[B, 1 + h * w, C]`` (its own ``crpe_`` on a square grid, or a shared
``ConvRelativePositionalEncoding`` with ``input_height`` on non-square and odd grids), every
variable re-randomised (``make_model_fixtures.randomize``); the inputs, kecam's outputs and
every weight (by Keras layer and weight name, in ``weights`` order) go to one ``.npz``: a Keras
file costs ~8 kB per layer, the arrays here a few hundred bytes. ``tests/test_models_coat.py``
writes them back into a Keras ``.h5`` and loads that through the library's loader::

    python tools/make_coat_fixtures.py
"""

from __future__ import annotations

import json
import zlib

import make_model_fixtures as tool
import numpy as np

OUT = tool.FIXTURES / "coat_factor_attention.npz"

# id -> (tokens grid (h, w), channels, block kwargs, shared crpe kwargs or None for its own)
CASES = {
    # square 4x4, the block's own crpe (kecam's floor(sqrt) grid), default heads and splits
    "square_own_crpe": ((4, 4), 16, {"num_heads": 8}, None),
    # non-square 3x5 with a shared crpe (input_height=3), key_dim 3
    "rect_shared": ((3, 5), 24, {"num_heads": 8}, {"input_height": 3}),
    # odd 5x7, 4 heads split [1, 3] with kernels [5, 3], no qkv bias
    "odd_splits_no_bias": (
        (5, 7),
        12,
        {"num_heads": 4, "qkv_bias": False},
        {"head_splits": [1, 3], "head_kernel_size": [5, 3], "input_height": 5},
    ),  # fmt: skip
}


def main() -> None:
    tf, _ = tool.import_kecam()
    from keras_cv_attention_models.coat import coat

    arrays, index = {}, {}
    for case, (grid, channels, kwargs, crpe_kwargs) in CASES.items():
        seed = zlib.crc32(case.encode())
        tf.keras.utils.set_random_seed(seed)
        rng = np.random.default_rng(seed)
        tokens = 1 + grid[0] * grid[1]
        inputs = tf.keras.layers.Input((tokens, channels))
        crpe = None
        if crpe_kwargs is not None:
            crpe = coat.ConvRelativePositionalEncoding(**crpe_kwargs, name="crpe1_")
        out = coat.factor_attention_conv_relative_positional_encoding(
            inputs, shared_crpe=crpe, name="attn_", **kwargs
        )
        model = tf.keras.Model(inputs, out)
        tool.randomize(model, rng)
        x = rng.uniform(-2, 2, (2, tokens, channels)).astype(np.float32)
        arrays[f"{case}/input"] = x
        arrays[f"{case}/output"] = np.asarray(model(x, training=False))
        layers = []
        for layer in model.layers:
            if not layer.weights:
                continue
            names = [w.name for w in layer.weights]
            for i, weight in enumerate(layer.weights):
                arrays[f"{case}/weights/{layer.name}/{i}"] = weight.numpy()
            layers.append([layer.name, type(layer).__name__, names])
        index[case] = {"grid": grid, "channels": channels, "kwargs": kwargs,
                       "crpe": crpe_kwargs, "layers": layers}  # fmt: skip
        tf.keras.backend.clear_session()
        print(f"{case}: {sum(a.size for k, a in arrays.items() if k.startswith(case))} values")
    arrays["index"] = np.frombuffer(json.dumps(index).encode(), np.uint8)
    np.savez_compressed(OUT, **arrays)
    print(f"{OUT.name}: {OUT.stat().st_size} bytes")


if __name__ == "__main__":
    main()
