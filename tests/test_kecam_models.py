"""Blocks cut out of real kecam models: built with the layer names the models give them, loaded
from the whole model's weight file, and compared with the model's own intermediate tensors.

The weights are kecam's initial ones (``pretrained=None``: nothing is downloaded). Marked
``reference``: needs TensorFlow and kecam 1.4.3.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field

import mlx.core as mx
import numpy as np
import pytest
from helpers import assert_matches

from mlx_attention import attention_layers
from mlx_attention.convert import load_keras_weights

pytestmark = pytest.mark.reference


@dataclass(frozen=True)
class ModelBlock:
    """One attention block of a kecam model.

    Args:
        model: ``"module.Constructor"`` under ``keras_cv_attention_models``.
        image: the model's input shape.
        before: the layer whose output is the block's input.
        after: the layer whose output is the block's output, or ``(name, i)``: the layer that
            takes it, as its ``i``-th input.
        kecam: our kecam name; ``shape`` and ``kwargs`` as the model calls it.
        shared: builds the arguments that are layers the model shares between blocks.
    """

    model: str
    image: tuple[int, int, int]
    before: str
    after: str | tuple[str, int]
    kecam: str
    shape: tuple[int, ...]
    kwargs: dict = field(default_factory=dict)
    full_save: bool = False
    shared: Callable[[], dict] = dict


BLOCKS = {
    "nat_mini": ModelBlock(
        "nat.NAT_Mini", (112, 112, 3), "stack1_block1_attn_ln", "stack1_block1_attn_output",
        "neighborhood_attention", (28, 28, 64),
        {"kernel_size": 7, "num_heads": 2, "name": "stack1_block1_attn_"}, full_save=True,
    ),
    "botnet26t": ModelBlock(
        "botnet.BotNet26T", (256, 256, 3), "stack4_block2_deep_1_relu",
        ("stack4_block2_deep_2_bn", 0), "mhsa_with_relative_position_embedding",
        (8, 8, 512), {"num_heads": 4, "out_weight": False, "name": "stack4_block2_deep_2_mhsa_"},
    ),
    "swin_v2_tiny_shifted": ModelBlock(
        "swin_transformer_v2.SwinTransformerV2Tiny_window8", (256, 256, 3),
        "stack1_block1_output", ("stack1_block2_attn_ln", 0), "shifted_window_attention",
        (64, 64, 96), {"window_size": 8, "num_heads": 3, "shift_size": 0.5,
                       "name": "stack1_block2_attn_"},
    ),
    "levit128s": ModelBlock(
        "levit.LeViT128S", (224, 224, 3), "stem_4_bn", "stack1_block1_out_bn",
        "mhsa_with_multi_head_position", (14, 14, 128),
        {"num_heads": 4, "key_dim": 16, "attn_ratio": 2, "use_bn": True,
         "activation": "hard_swish", "name": "stack1_block1_"},
    ),
    "coatnet0": ModelBlock(
        "coatnet.CoAtNet0", (224, 224, 3), "stack_3_block_1_pool", "stack_3_block_1_mhsa_output",
        "mhsa_with_multi_head_relative_position_embedding", (14, 14, 192),
        {"num_heads": 6, "key_dim": 32, "out_shape": 384, "name": "stack_3_block_1_mhsa_"},
    ),
    "cmt_tiny_torch": ModelBlock(  # one positional bias per stage, shared by its blocks
        "cmt.CMTTiny_torch", (160, 160, 3), "stack1_block1_attn_ln",
        "stack1_block1_light_mhsa_output", "light_mhsa_with_multi_head_relative_position_embedding",
        (40, 40, 46), {"num_heads": 1, "sr_ratio": 8, "qkv_bias": True, "use_bn": True,
                       "out_bias": True, "name": "stack1_block1_light_mhsa_"},
        shared=lambda: {"pos_emb": attention_layers.BiasPositionalEmbedding(
            axis=[1, 2, 3], attn_height=40, input_shape=(1, 1600, 25), name="stack1_pos_emb"
        )},
    ),
    "davit_t_window": ModelBlock(
        "davit.DaViT_T", (224, 224, 3), "stack1_block1_attn_ln", ("stack1_block1_1_output", 1),
        "window_attention", (56, 56, 96),
        {"window_size": 7, "num_heads": 3, "name": "stack1_block1_attn_"},
    ),
    "halonet26t": ModelBlock(
        "halonet.HaloNet26T", (256, 256, 3), "stack3_block2_deep_1_relu",
        ("stack3_block2_deep_2_bn", 0), "halo_attention", (16, 16, 256),
        {"num_heads": 8, "block_size": 8, "halo_size": 2, "out_weight": False,
         "name": "stack3_block2_deep_2_halo"},
    ),
    "edgenext_small_xca": ModelBlock(  # on tokens: [B, H*W, C]
        "edgenext.EdgeNeXt_Small", (256, 256, 3), "stack2_block3_stda_xca_ln",
        "stack2_block3_stda_xca_output", "cross_covariance_attention", (1024, 96),
        {"num_heads": 8, "name": "stack2_block3_stda_xca_"},
    ),
    "cotnet50": ModelBlock(
        "cotnet.CotNet50", (224, 224, 3), "stack1_block1_deep_1_relu",
        ("stack1_block1_deep_3_conv", 0), "cot_attention", (56, 56, 64),
        {"kernel_size": 3, "name": "stack1_block1_deep_2_cot_"},
    ),
    "volo_d1_outlook": ModelBlock(
        "volo.VOLO_d1", (224, 224, 3), "outlook_block0_LN", "outlook_block0_attn_out",
        "outlook_attention", (28, 28, 192),
        {"embed_dim": 192, "num_heads": 6, "name": "outlook_block0_attn_"},
    ),
}  # fmt: skip


@pytest.mark.parametrize("key", sorted(BLOCKS))
def test_block_of_a_kecam_model(key, kecam_live, tmp_path):
    tf, _, _ = kecam_live
    spec = BLOCKS[key]
    module_name, constructor = spec.model.rsplit(".", 1)
    family = importlib.import_module(f"keras_cv_attention_models.{module_name}")
    model = getattr(family, constructor)(pretrained=None, input_shape=spec.image)
    path = tmp_path / "model.h5"
    (model.save if spec.full_save else model.save_weights)(str(path))

    if isinstance(spec.after, str):
        out = model.get_layer(spec.after).output
    else:
        name, index = spec.after
        out = model.get_layer(name).input
        out = out[index] if isinstance(out, list) else out
    block_model = tf.keras.Model(model.get_layer(spec.before).output, out)
    x = np.random.default_rng(0).standard_normal((2, *spec.shape)).astype(np.float32)
    expected = np.asarray(block_model(x))

    block = getattr(attention_layers, spec.kecam)(spec.shape, **spec.kwargs, **spec.shared())
    load_keras_weights(block, path)  # strict: every weight under the block's name is used
    assert_matches(block(mx.array(x)), expected)
