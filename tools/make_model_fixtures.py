"""Generate the whole-model fixtures of ``tests/test_models.py`` with kecam itself.

Each case is kecam's family builder (``nat.NAT``) in a reduced configuration, with EVERY
variable re-randomised before kecam saves it (kecam's initial weights switch residual branches
off: layer scales, zero gammas), saved as kecam releases its files (``model.save``) or with
``save_weights``; the inputs (two U(-2, 2) samples and a low-contrast one) and kecam's outputs
(logits, softmax, and stage probes: ``stem_ln``, each stage's last block, ``pre_output_ln``,
which is ``forward_features``) go to an
``.npz``. ``index.json`` lists the cases; ``kecam_models.json`` records kecam's constructor
signatures and parameter counts for the registry tests.

Needs the reference extra (TensorFlow, tf-keras, kecam 1.4.3). The kecam 1.3.1 case is made by
kecam 1.3.1 itself: this script runs itself under ``.venv131/bin/python --kecam131``::

    python tools/make_model_fixtures.py            # every case, both kecam versions, the JSON
    python tools/make_model_fixtures.py --only nat_1000
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import subprocess
import zlib
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import make_fixtures  # noqa: E402  (this folder: kecam's version and import, the test helpers)
import numpy as np  # noqa: E402
from cases import signature_rows  # noqa: E402
from make_fixtures import kecam_version  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "models"
VENV131 = ROOT / ".venv131" / "bin" / "python"

_SMALL = {"out_channels": [8, 16, 24, 32], "num_heads": [1, 2, 2, 4], "num_classes": 10}
# id -> (kecam version, how it is saved, nat.NAT arguments). At most 3 MB in all: a small
# kecam file is mostly HDF5 overhead (about 4 kB per variable), so few blocks and few cases.
CASES = {
    # NAT, non-square odd size (padding of the strided convs, maps under the kernel), layer
    # scale on, save_weights
    "nat_45x59_scaled": ("1.4.3", "weights", {
        **_SMALL, "num_blocks": [1, 1, 1, 1], "input_shape": [45, 59, 3], "layer_scale": 0.5,
        "mlp_ratio": 2, "stem_width": 12,
    }),
    # DiNAT: stage 1 at 14x24 dilates by (2, 3); model.save (kecam's release layout)
    "dinat_56x96": ("1.4.3", "model", {
        **_SMALL, "num_blocks": [2, 1, 1, 1], "input_shape": [56, 96, 3],
        "use_every_other_dilations": True,
    }),
    # DiNAT, kernel 5: stages at 20x12 and 10x6 dilate by (4, 2) and (2, 1); save_weights
    "dinat_77x45_k5": ("1.4.3", "weights", {
        **_SMALL, "num_blocks": [2, 2, 1, 1], "input_shape": [77, 45, 3],
        "use_every_other_dilations": True, "attn_kernel_size": 5, "layer_scale": 0.3,
    }),
    # NAT, square, ImageNet's 1000 classes on a very small network (for `predict`); model.save
    "nat_1000": ("1.4.3", "model", {
        "out_channels": [8, 8, 8, 8], "num_heads": [1, 1, 1, 1], "num_blocks": [1, 1, 1, 1],
        "input_shape": [32, 32, 3], "num_classes": 1000, "model_name": "nat_tiny_1000",
    }),
    # a kecam 1.3.1 file (1.3.1's NAT has no DiNAT and no `activation`); model.save
    "nat131_48": ("1.3.1", "model", {
        **_SMALL, "num_blocks": [1, 1, 1, 1], "input_shape": [48, 48, 3],
    }),
}  # fmt: skip
# case id -> kecam's family builder ("module.Builder") of the cases that are not nat.NAT's
CASE_BUILDERS: dict[str, str] = {}
# case id -> its probes (kwargs -> kecam layer names) where they are not NAT's `probe_names`
CASE_PROBES: dict = {}

# --- Swin Transformer v2 (swin_transformer_v2.SwinTransformerV2): two stages of two blocks (the
# odd block shifts); probes are `stem_ln`, each stage's last `..._output` and `pre_output_ln`.
SWIN_CASES = {
    # 44x62: maps 11x15 (window [6, 9], padded to 12x18, shifted by (3, 4)) and 6x8 (merging
    # pads 15; the window clamped to the map: no shift); pos_scale per stage, an extra LN after
    # every block; model.save
    "swin_44x62": ("1.4.3", "model", {
        "num_blocks": [2, 2], "num_heads": [1, 2], "embed_dim": 8, "window_size": [6, 9],
        "pos_scale": [8, 3], "extra_norm_period": 1, "input_shape": [44, 62, 3],
        "num_classes": 10,
    }),
}  # fmt: skip
SWIN_TIMM_CASES = {
    # the timm layout (_ns models): 40x36, maps 10x9 (window [4, 3], padded to 12x9, shifted by
    # (2, 1): a non-square window, where kecam's xy-meshgrid coordinates are transposed) and 5x5
    # (merging pads 9); stack norm, layer scale; save_weights
    "swin_ns_40x36": ("1.4.3", "weights", {
        "num_blocks": [2, 1], "num_heads": [1, 2], "embed_dim": 8, "window_size": [4, 3],
        "use_stack_norm": True, "layer_scale": 0.5, "input_shape": [40, 36, 3],
        "num_classes": 10,
    }),
}  # fmt: skip
SWIN_CASES.update({
    # a kecam 1.3.1 file (ExpLogitScale's `weight`, the positional MLP as meta_dense_1/2): one
    # stage at 7x11, window 4 padded to 8x12 and shifted by 2; save_weights
    "swin131_28x44": ("1.3.1", "weights", {
        "num_blocks": [2], "num_heads": [2], "embed_dim": 8, "window_size": 4,
        "input_shape": [28, 44, 3], "num_classes": 10,
    }),
})  # fmt: skip
CASES.update(SWIN_CASES)
CASE_BUILDERS.update(dict.fromkeys(SWIN_CASES, "swin_transformer_v2.SwinTransformerV2"))
CASES.update(SWIN_TIMM_CASES)
CASE_BUILDERS.update(
    dict.fromkeys(SWIN_TIMM_CASES, "swin_transformer_v2.swin_transformer_v2_timm.SwinTransformerV2")
)


def swin_probes(kwargs: dict) -> list[str]:
    names = ["stem_ln"]
    names += [f"stack{i + 1}_block{n}_output" for i, n in enumerate(kwargs["num_blocks"])]
    return names + ["pre_output_ln"]


CASE_PROBES.update(dict.fromkeys([*SWIN_CASES, *SWIN_TIMM_CASES], swin_probes))

# --- LeViT (levit.LeViT): probes are the stem's last BN and each stack's output (the last is
# forward_features); a distilled case stores its two outputs stacked ([2, B, classes]).
_LEVIT = {
    "patch_channel": 16, "out_channels": [24, 24], "num_heads": [2, 3], "depthes": [1, 1],
    "key_dims": [8, 8], "attn_ratios": [2, 2], "strides": [2, 0], "num_classes": 10,
}  # fmt: skip
LEVIT_CASES = {
    # 32x48: grids 2x3 and 1x2 (the strided attention's table on non-square maps), the
    # distillation head; save_weights
    "levit_32x48_distill": ("1.4.3", "weights", {
        **_LEVIT, "input_shape": [32, 48, 3], "mlp_ratios": [2, 0], "use_distillation": True,
    }),
    # 45x47: odd sizes through the stem to a square 3x3 grid (a table that resizes), then 2x2;
    # attention ratio 3, MLP ratio 3; save_weights
    "levit_45x47": ("1.4.3", "weights", {
        **_LEVIT, "input_shape": [45, 47, 3], "attn_ratios": [1, 3], "mlp_ratios": [3, 1],
    }),
}  # fmt: skip
CASES.update(LEVIT_CASES)
CASE_BUILDERS.update(dict.fromkeys(LEVIT_CASES, "levit.LeViT"))


def levit_probes(kwargs: dict) -> list[str]:
    return ["stem_4_bn"] + [f"stack{i + 1}_output" for i in range(len(kwargs["depthes"]))]


CASE_PROBES.update(dict.fromkeys(LEVIT_CASES, levit_probes))

# --- AotNet template (aotnet.AotNet: BoTNet, HaloNet, CotNet, ResNeSt): a few blocks each, odd
# sizes; probes are the stem's output, each stack's last block and, with output_num_features,
# the features_ BN (forward_features).
AOTNET_CASES = {
    # BotNextECA-like: tiered stem, swish, zero-padded stem max pool (15x23 -> 8x12), ECA and a
    # grouped conv (group_size), SE, a strided bot block (AvgPool2D after it: 4x6 -> 2x3);
    # model.save
    "aotnet_bot_29x45": ("1.4.3", "model", {
        "num_blocks": [1, 1, 1], "out_channels": [16, 24, 32], "strides": [1, 2, 2],
        "stem_width": 16, "stem_type": "tiered", "activation": "swish", "use_eca": True,
        "group_size": [0, 4, 0], "se_ratio": [0.25, 0, 0], "attn_types": [None, None, "bot"],
        "attn_params": {"num_heads": 2, "out_weight": False}, "input_shape": [29, 45, 3],
        "num_classes": 10,
    }),
    # HaloRegNetZB-like: 3x3 stem without pool (8x11), the halo block strided after a gap_pad
    # that pads a whole block on the axis that divides (8x11 -> 12x12), float key_dim, per
    # block hidden ratios, no output activation, a features_ head; save_weights
    "aotnet_halo_15x21": ("1.4.3", "weights", {
        "num_blocks": [1, 1], "out_channels": [16, 24], "strides": [1, 2], "stem_width": 8,
        "stem_type": "kernel_3x3", "stem_downsample": False, "activation": "swish",
        "hidden_channel_ratio": [[1.5], 1 / 3], "use_block_output_activation": False,
        "attn_types": [None, "halo"], "se_ratio": 0.25,
        "attn_params": {"block_size": 4, "halo_size": 1, "num_heads": 2, "key_dim": 0.5,
                        "out_weight": False, "activation": "relu"},
        "output_num_features": 20, "input_shape": [15, 21, 3], "num_classes": 10,
    }),
    # CotNetSE / ResNeSt-like: deep stem, no BN after the attention, avg shortcuts (TF SAME on
    # odd maps), sa (downsample first, 1 group), cot, then sa with 2 groups pooled after;
    # save_weights
    "aotnet_cot_sa_29x37": ("1.4.3", "weights", {
        "num_blocks": [1, 1, 1], "out_channels": [16, 32, 32], "strides": [2, 2, 2],
        "stem_width": 16, "stem_type": "deep", "stem_downsample": False,
        "bn_after_attn": False, "shortcut_type": "avg", "attn_types": ["sa", "cot", "sa"],
        "attn_params": [{"downsample_first": True, "groups": 1, "activation": "swish"}, {}, {}],
        "input_shape": [29, 37, 3], "num_classes": 10,
    }),
}  # fmt: skip
CASES.update(AOTNET_CASES)
CASE_BUILDERS.update(dict.fromkeys(AOTNET_CASES, "aotnet.AotNet"))


def aotnet_probes(kwargs: dict) -> list[str]:
    act = kwargs.get("activation", "relu")
    names = ["stem_pool" if kwargs.get("stem_downsample", True) else f"stem_{act}"]
    names += [f"stack{i + 1}_block{n}_output" for i, n in enumerate(kwargs["num_blocks"])]
    return names + ([f"features_{act}"] if kwargs.get("output_num_features", 0) > 0 else [])


CASE_PROBES.update(dict.fromkeys(AOTNET_CASES, aotnet_probes))

# --- EfficientViT-M (efficientvit_m.EfficientViT_M): probes are the stem's last BN, each
# stage's last block and the transitions' downsample; the last block is forward_features.
EFFICIENTVIT_M_CASES = {
    # 40x56: a 3x4 map under the window (direct attention), a stage transition to 2x2, one and
    # two cascaded heads, the distillation head; save_weights
    "efficientvit_m_40x56_distill": ("1.4.3", "weights", {
        "num_blocks": [1, 1], "out_channels": [8, 16], "num_heads": [1, 2], "key_dim": 4,
        "kernel_sizes": 3, "input_shape": [40, 56, 3], "use_distillation": True,
        "num_classes": 10,
    }),
    # 77x45: a 5x3 map in 3x3 windows (padded to 6x3), two heads with query kernels 5 and 3;
    # save_weights
    "efficientvit_m_77x45_w3": ("1.4.3", "weights", {
        "num_blocks": [1], "out_channels": [16], "num_heads": [2], "key_dim": 4,
        "kernel_sizes": [5, 3], "window_size": 3, "input_shape": [77, 45, 3],
        "num_classes": 10,
    }),
}  # fmt: skip
CASES.update(EFFICIENTVIT_M_CASES)
CASE_BUILDERS.update(
    dict.fromkeys(EFFICIENTVIT_M_CASES, "efficientvit.efficientvit_m.EfficientViT_M")
)


def efficientvit_m_probes(kwargs: dict) -> list[str]:
    names = ["stem_4_bn"]
    for i, n in enumerate(kwargs["num_blocks"]):
        names += [f"stack{i + 1}_downsample_out_bn"] if i else []
        names.append(f"stack{i + 1}_block{n}_post_output")
    return names


CASE_PROBES.update(dict.fromkeys(EFFICIENTVIT_M_CASES, efficientvit_m_probes))


# --- DaViT (davit.DaViT): window attention on even blocks, channel attention on odd ones -------
DAVIT_CASES = {
    # three stages at 12x15, 6x8 and 3x4 with 2x2 windows (12x15 padded to 12x16; the TF-SAME
    # downsample pads the odd width right), layer scale on, save_weights
    "davit_45x59_scaled": ("1.4.3", "weights", {
        "out_channels": [8, 16, 24], "num_heads": [1, 2, 2], "num_blocks": [2, 1, 1],
        "input_shape": [45, 59, 3], "layer_scale": 0.5, "mlp_ratio": 2, "num_classes": 10,
    }),
    # two stages, window_ratio 16: 3x5 windows on maps of 10x18 and 5x9 (both padded); model.save
    "davit_40x72": ("1.4.3", "model", {
        "out_channels": [8, 16], "num_heads": [2, 2], "num_blocks": [1, 1],
        "input_shape": [40, 72, 3], "window_ratio": 16, "num_classes": 10,
    }),
}  # fmt: skip
CASES.update(DAVIT_CASES)
CASE_BUILDERS.update(dict.fromkeys(DAVIT_CASES, "davit.DaViT"))

# --- BEiT (beit.Beit, BEiT's form): probes are `cls_token`, every block's output and `out_ln`
# (forward_features: the mean of the patch tokens, normalised)
_BEIT = {"embed_dim": 16, "num_heads": 2, "patch_size": 8, "num_classes": 10}
BEIT_CASES = {
    # a 5x7 patch grid (the relative table's non-square index), layer scale 0.5; model.save
    "beit_40x56": ("1.4.3", "model", {
        **_BEIT, "depth": 2, "input_shape": [40, 56, 3], "layer_scale": 0.5,
    }),
    # 45x59 in 6x6 patches: a 7x9 grid (VALID: the last 3 rows and 5 columns dropped), no
    # layer scale, mlp_ratio 2; save_weights
    "beit_45x59_p6": ("1.4.3", "weights", {
        **_BEIT, "depth": 1, "patch_size": 6, "input_shape": [45, 59, 3], "layer_scale": 0,
        "mlp_ratio": 2,
    }),
}  # fmt: skip
CASES.update(BEIT_CASES)
CASE_BUILDERS.update(dict.fromkeys(BEIT_CASES, "beit.Beit"))


def beit_probes(kwargs: dict) -> list[str]:
    return ["cls_token", *(f"block{i}_mlp_output" for i in range(kwargs["depth"])), "out_ln"]


CASE_PROBES.update(dict.fromkeys(BEIT_CASES, beit_probes))

# --- CoAtNet (coatnet.CoAtNet): MBConv stages ("c...") and transformer stages (MHSA + FFN);
# probes are each stage's last block output (the last is forward_features).
COATNET_CASES = {
    # 25x37: stem 13x19, an MBConv strided on the depthwise conv (the shortcut's TF-SAME max
    # pool pads the bottom and the right), a strided transformer at 7x10 -> 4x5 (the
    # attention's and the shortcut's max pools pad the bottom; a non-square table);
    # save_weights
    "coatnet_25x37": ("1.4.3", "weights", {
        "num_blocks": [1, 1], "out_channels": [16, 24], "stem_width": 8,
        "block_types": ["conv", "transform"], "expansion": 2, "se_ratio": 0,
        "head_dimension": 8, "input_shape": [25, 37, 3], "num_classes": 10,
    }),
    # 33x27: bn_act_first (conv biases, activation before each BN), the stride on the expand
    # conv (use_dw_strides=False), a per-block se_ratio, a stride-3 transformer stage
    # (MaxPool2D(2, 3) before the attention, 9x7 -> 3x3), swish; model.save
    "coatnet_33x27_act_first": ("1.4.3", "model", {
        "num_blocks": [1, 1], "out_channels": [16, 16], "stem_width": 8,
        "block_types": ["conv", "t"], "strides": [2, 3], "se_ratio": [[0.5], 0],
        "expansion": 2, "head_dimension": 8, "use_dw_strides": False, "bn_act_first": True,
        "activation": "swish", "input_shape": [33, 27, 3], "num_classes": 10,
    }),
}  # fmt: skip
CASES.update(COATNET_CASES)
CASE_BUILDERS.update(dict.fromkeys(COATNET_CASES, "coatnet.CoAtNet"))


def coatnet_probes(kwargs: dict) -> list[str]:
    names = []
    for i, (n, kind) in enumerate(zip(kwargs["num_blocks"], kwargs["block_types"])):
        names.append(f"stack_{i + 1}_block_{n}_" + ("output" if kind[0] == "c" else "ffn_output"))
    return names


CASE_PROBES.update(dict.fromkeys(COATNET_CASES, coatnet_probes))

# --- EdgeNeXt (edgenext.EdgeNeXt): conv encoders, then STDA blocks at the end of a stage; probes
# are `stem_ln` and each stage's last block (the last is forward_features: kecam's num_classes=0
# map, before the head's avg_pool and pre_output_ln).
EDGENEXT_CASES = {
    # 29x43: the VALID stem and downsample floor to 7x10 and 3x5; an STDA block with the
    # Fourier positional encoding, split 3 (two cascaded 6-channel convs and a 4-channel
    # remainder), 2 heads; kecam's layer scales (re-randomised); model.save
    "edgenext_29x43": ("1.4.3", "model", {
        "num_blocks": [1, 1], "out_channels": [8, 16], "num_heads": 2,
        "num_stda_layers": [0, 1], "stda_split": [2, 3], "stda_use_pos_emb": [False, True],
        "conv_kernel_size": [3, 5], "input_shape": [29, 43, 3], "num_classes": 10,
    }),
    # 25x29 in 3x3 stem patches: 8x9, then 4x4; stage 1 at stem_width 9 (kecam leaves
    # out_channels[0] unused) is one STDA block splitting the 9 channels into 3 of 3 (no
    # remainder) with per-stage heads (3), stage 2 a 7x7 conv encoder over the 4x4 map; no
    # layer scale, mlp_ratio 3; save_weights
    "edgenext_25x29_split4": ("1.4.3", "weights", {
        "num_blocks": [1, 1], "out_channels": [6, 12], "num_heads": [3, 5], "stem_width": 9,
        "num_stda_layers": [1, 0], "stda_split": [4, 2], "stda_use_pos_emb": [False, False],
        "conv_kernel_size": [3, 7], "stem_patch_size": 3, "layer_scale": -1, "mlp_ratio": 3,
        "input_shape": [25, 29, 3], "num_classes": 10,
    }),
}  # fmt: skip
CASES.update(EDGENEXT_CASES)
CASE_BUILDERS.update(dict.fromkeys(EDGENEXT_CASES, "edgenext.EdgeNeXt"))


def edgenext_probes(kwargs: dict) -> list[str]:
    names = ["stem_ln"]
    for i, (n, stda) in enumerate(zip(kwargs["num_blocks"], kwargs["num_stda_layers"])):
        names.append(f"stack{i + 1}_block{n}_{'stda' if stda > 0 else 'conv'}_output")
    return names


CASE_PROBES.update(dict.fromkeys(EDGENEXT_CASES, edgenext_probes))


# --- UniFormer (uniformer.Uniformer): a convolutional and a self-attention stage; probes are
# the stem's output, each stage's last block (an attention block's `..._2_output` is kecam's
# [B, H * W, C] token form) and `post_bn` (forward_features). kecam's two-output token-label
# model is checked live (tests/test_models_uniformer.py).
UNIFORMER_CASES = {
    # 35x45: the VALID 4x4 stem floors to 8x11, the 2x2 downsample to 4x5; a conv stage, then
    # an attention stage of 2 heads over 20 tokens; model.save (kecam's release layout)
    "uniformer_35x45": ("1.4.3", "model", {
        "num_blocks": [1, 1], "out_channels": [8, 16], "head_dimension": 8,
        "block_types": ["conv", "transform"], "input_shape": [35, 45, 3], "num_classes": 10,
    }),
    # the conv stem of the SmallPlus models at 29x39: two padded 3x3 stride-2 convs to 8x10,
    # an attention stage first (3 heads, no qkv bias, layer scale, mlp_ratio 3), then a stage
    # of only its 3x3 stride-2 conv + BN downsample (4x5); save_weights
    "uniformer_conv_stem_29x39": ("1.4.3", "weights", {
        "num_blocks": [1, 0], "out_channels": [12, 16], "head_dimension": 4,
        "block_types": ["transform", "conv"], "use_conv_stem": True, "qkv_bias": False,
        "layer_scale": 0.5, "mlp_ratio": 3, "input_shape": [29, 39, 3], "num_classes": 10,
    }),
}  # fmt: skip
CASES.update(UNIFORMER_CASES)
CASE_BUILDERS.update(dict.fromkeys(UNIFORMER_CASES, "uniformer.Uniformer"))


def uniformer_probes(kwargs: dict) -> list[str]:
    norm = "bn" if kwargs.get("use_conv_stem") else "ln"
    names = ["stem_2_bn" if norm == "bn" else "stem_ln"]
    for i, blocks in enumerate(kwargs["num_blocks"]):  # a stage without blocks: its downsample
        names.append(
            f"stack{i + 1}_block{blocks}_2_output" if blocks else f"stack{i + 1}_downsample_{norm}"
        )
    return names + ["post_bn"]


CASE_PROBES.update(dict.fromkeys(UNIFORMER_CASES, uniformer_probes))

# --- CMT (cmt.CMT, cmt.CMT_torch): one stage each (a kecam file costs ~2.5 kB per variable, a
# CMT block has ~35). Probes: CMT's stem, its last block and its features_ BN (act-first: the
# last layer, forward_features); CMT_torch's every block (they share the stage's table).
CMT_CASES = {
    # plain CMT at 33x27: stem 17x14, a 2x2 stride-2 downsample that floors to 8x7, keys
    # reduced by 2 to 4x3 (the relative table keeps its last 12 columns), the act-first GELU
    # features_ head; model.save
    "cmt_33x27": ("1.4.3", "model", {
        "num_blocks": [1], "out_channels": [8], "num_heads": [2], "sr_ratios": [2],
        "stem_width": 8, "ffn_expansion": 2.5, "output_num_features": 12,
        "input_shape": [33, 27, 3], "num_classes": 10,
    }),
}  # fmt: skip
CMT_TORCH_CASES = {
    # a kecam 1.3.1 CMT_torch file (Dense query and key_value, K and V interleaved): 29x37,
    # stem 15x19, one stage at 7x9 of two blocks that add the stage's one positional table
    # (63 queries x 12 keys: reduced by 2, flooring, with BatchNorm), no features_ head;
    # save_weights
    "cmt131_29x37": ("1.3.1", "weights", {
        "num_blocks": [2], "out_channels": [8], "num_heads": [2], "sr_ratios": [2],
        "stem_width": 8, "ffn_expansion": 2, "output_num_features": 0,
        "input_shape": [29, 37, 3], "num_classes": 10,
    }),
}  # fmt: skip
CASES.update(CMT_CASES)
CASES.update(CMT_TORCH_CASES)
CASE_BUILDERS.update(dict.fromkeys(CMT_CASES, "cmt.CMT"))
CASE_BUILDERS.update(dict.fromkeys(CMT_TORCH_CASES, "cmt.CMT_torch"))


def cmt_probes(kwargs: dict) -> list[str]:
    names = ["stem_3_bn"]
    names += [f"stack{i + 1}_block{n}_ffn_output" for i, n in enumerate(kwargs["num_blocks"])]
    return names + (["features_bn"] if kwargs["output_num_features"] > 0 else [])


def cmt_torch_probes(kwargs: dict) -> list[str]:
    names = [
        f"stack{i + 1}_block{j + 1}_ffn_output"
        for i, n in enumerate(kwargs["num_blocks"])
        for j in range(n)
    ]
    return names + (["features_swish"] if kwargs["output_num_features"] > 0 else [])


CASE_PROBES.update(dict.fromkeys(CMT_CASES, cmt_probes))
CASE_PROBES.update(dict.fromkeys(CMT_TORCH_CASES, cmt_torch_probes))

# --- CoaT (coat.CoaT): probes are stage 1's patch_ln, each stage's last block (or class token),
# the last parallel block's branches, the head's norms (and `aggregate`) and `features` (what
# `predictions` reads: kecam's num_classes=0 output, an unnamed slice there). A kecam file costs
# ~8 kB per Keras layer, a parallel block alone has 18: two cases.
COAT_CASES = {
    # parallel: four stages without serial blocks at 9x11, 4x5, 2x2 and 1x1 (36x44 in 4x4
    # patches, then 2x2 VALID patches that floor); one parallel block resamples 4x5 <-> 2x2 <->
    # 1x1 both ways (TF's bilinear); one head group of kernel 3; save_weights
    "coat_parallel_36x44": ("1.4.3", "weights", {
        "serial_depths": [0, 0, 0, 0], "embed_dims": [8, 16, 16, 16], "mlp_ratios": [2, 2, 2, 1],
        "parallel_depth": 1, "head_splits": [8], "head_kernel_size": [3],
        "input_shape": [36, 44, 3], "num_classes": 10,
    }),
    # a kecam 1.3.1 file (cpe_1, crpe_1: the positional encodings as kecam layers), Lite: one
    # stage at 27x39, whose 4x4 VALID patches drop 3 rows and 3 columns (6x9), two blocks
    # sharing the stage's encodings (head splits [2, 3, 3], kernels [3, 5, 7]); model.save
    "coat131_27x39": ("1.3.1", "model", {
        "serial_depths": [2], "embed_dims": [16], "mlp_ratios": [2], "input_shape": [27, 39, 3],
        "num_classes": 10,
    }),
}  # fmt: skip
CASES.update(COAT_CASES)
CASE_BUILDERS.update(dict.fromkeys(COAT_CASES, "coat.CoaT"))


def coat_probes(kwargs: dict) -> list[str]:
    names = ["serial1_patch_ln"]
    for i, depth in enumerate(kwargs["serial_depths"]):
        names.append(f"serial{i + 1}_" + (f"block{depth}_output" if depth else "class_token"))
    parallel = kwargs.get("parallel_depth", 0)
    if parallel:
        names += [f"parallel{parallel}_{k}_output" for k in (2, 3, 4)]
        names += ["out_1_ln", "out_2_ln", "out_3_ln", "aggregate"]
    else:
        names.append("out_ln")
    return names + ["features"]


CASE_PROBES.update(dict.fromkeys(COAT_CASES, coat_probes))


def probe_output(model, name: str):
    """A probe's Keras tensor: the layer's output; ``"features"`` is what ``predictions``
    reads (kecam's ``num_classes=0`` output, where an unnamed slice makes it)."""
    if name == "features":
        return model.get_layer("predictions").input
    return model.get_layer(name).output


# --- EfficientViT-B / -L (efficientvit.efficientvit_b.EfficientViT_B, also in L's form): probes
# are `stem_MB_output`, each stage's last block (a transform stage's also its last lite_mhsa,
# `..._attn_out_bn`) and the features_ activation where there is one (the last probe is
# forward_features).
EFFICIENTVIT_B_CASES = {
    # L's form (fused first stages, GELU) at 21x29: the fused stem MBConv (two 3x3 convs) at
    # 11x15, a fused stride-2 stage (2x expand) to 6x8, an empty second stage, a transform
    # third stage (biased convs, no BatchNorm: kecam's fewer_norm) at 3x4 with lite_mhsa (2
    # heads of 8, sr_ratio 5 over 3 rows), features_ and pre_predictions; save_weights. (The
    # tool gives kecam's EfficientViT_L no classifier_activation: it takes it by **kwargs.)
    "efficientvit_b_21x29_fused": ("1.4.3", "weights", {
        "num_blocks": [1, 0, 2, 0], "out_channels": [8, 8, 16, 16], "stem_width": 8,
        "block_types": ["conv", "conv", "transform", "transform"],
        "expansions": [2, 1, [2, 1.5], 1], "is_fused": [True, True, False, False],
        "head_dimension": 8, "output_filters": [24, 16], "activation": "gelu",
        "input_shape": [21, 29, 3], "num_classes": 10,
    }),
    # B (unfused, hard_swish) at 20x20: the depthwise stem MBConv, a stride-2 stage with a
    # 3x expand and BatchNorms, no features_ (output_filters 0: forward_features is the last
    # block, no pre_predictions); model.save
    "efficientvit_b_20": ("1.4.3", "model", {
        "num_blocks": [1], "out_channels": [12], "stem_width": 8, "block_types": ["conv"],
        "expansions": 3, "output_filters": 0, "activation": "hard_swish",
        "input_shape": [20, 20, 3], "num_classes": 10,
    }),
}  # fmt: skip
CASES.update(EFFICIENTVIT_B_CASES)
CASE_BUILDERS.update(
    dict.fromkeys(EFFICIENTVIT_B_CASES, "efficientvit.efficientvit_b.EfficientViT_B")
)


def efficientvit_b_probes(kwargs: dict) -> list[str]:
    names = ["stem_MB_output"]
    for i, (n, kind) in enumerate(zip(kwargs["num_blocks"], kwargs["block_types"])):
        if n:
            names += [f"stack_{i + 1}_block_{n}_attn_out_bn"] if kind[0] != "c" and n > 1 else []
            names.append(f"stack_{i + 1}_block_{n}_{'downsample_' if n == 1 else ''}output")
    filters = kwargs["output_filters"]
    if (filters[0] if isinstance(filters, (list, tuple)) else filters) > 0:
        names.append(f"features_{kwargs['activation']}")
    return names


CASE_PROBES.update(dict.fromkeys(EFFICIENTVIT_B_CASES, efficientvit_b_probes))

# --- VOLO (volo.VOLO): kecam's VOLO returns logits and takes no classifier_activation (so the
# case has no "probs"); probes are the stem's patch conv, each stage's last block, the positional
# embedding and the MHSA stage's last block (forward_features: before the class token). One case
# (a kecam file is ~4 kB a variable; save_weights and the options are checked live).
VOLO_CASES = {
    # 31x55: stem 16x28, 4x4 patches -> 4x7 (outlook: grid 2x4, its pool SAME on the odd width),
    # downsample to 2x3 (MHSA over 6 positions), one class block over 7 tokens; model.save
    "volo_31x55": ("1.4.3", "model", {
        "num_blocks": [1, 1], "embed_dims": [16, 32], "num_heads": [2, 4], "mlp_ratios": [2, 2],
        "stem_hidden_dim": 8, "classfiers": 1, "input_shape": [31, 55, 3], "num_classes": 10,
    }),
}  # fmt: skip
CASES.update(VOLO_CASES)
CASE_BUILDERS.update(dict.fromkeys(VOLO_CASES, "volo.VOLO"))


def volo_probes(kwargs: dict) -> list[str]:
    outlook, mhsa = kwargs["num_blocks"][:2]
    names = ["stem_patch_conv"] + ([f"outlook_block{outlook - 1}_output"] if outlook else [])
    return names + ["positional_embedding"] + ([f"MHSA_block{mhsa - 1}_output"] if mhsa else [])


CASE_PROBES.update(dict.fromkeys(VOLO_CASES, volo_probes))


def kecam_builder(builder: str):
    """kecam's function ``"module.Builder"`` (kecam imported already)."""
    import importlib

    module, name = builder.rsplit(".", 1)
    return getattr(importlib.import_module(f"keras_cv_attention_models.{module}"), name)


def takes_activation(build) -> bool:
    """Whether kecam's builder takes ``classifier_activation`` (VOLO's returns logits)."""
    import inspect

    return "classifier_activation" in inspect.signature(build).parameters


def import_kecam():
    tf, _ = make_fixtures.import_kecam(kecam_version())
    from keras_cv_attention_models import nat

    return tf, nat


def randomize(model, rng: np.random.Generator) -> None:
    """Every variable but the kernels (which keep kecam's fan-in initialisation) redrawn:
    BN statistics, LN gammas and betas, biases, layer scales, positional tables."""
    for weight in model.weights:
        name, shape = weight.name, tuple(weight.shape)
        short = name.rsplit("/", 1)[-1].split(":")[0]
        if short in ("kernel", "depthwise_kernel"):
            continue
        if short == "moving_variance" or short == "gamma":
            value = rng.uniform(0.5, 1.5, shape)
        elif short in ("moving_mean", "beta", "bias"):
            value = rng.normal(0.0, 0.1, shape)
        else:  # positional tables, ChannelAffine layer scales, ...
            value = rng.normal(0.0, 0.5, shape)
        weight.assign(value.astype(np.float32))


def make_inputs(shape, rng: np.random.Generator) -> np.ndarray:
    """Two U(-2, 2) samples and a low-contrast one (x 0.01): the LN epsilon shows there.
    Values are float16-exact, so the fixture stores them in half the space."""
    x = rng.uniform(-2, 2, (3, *shape))
    x[2] *= 0.01
    return x.astype(np.float16).astype(np.float32)


def probe_names(kwargs: dict, version: str = "1.4.3") -> list[str]:
    """kecam's layers probed: ``stem_ln``, each stage's last block output, ``pre_output_ln``
    (1.3.1 names a block's output ``..._output``, 1.4.3 ``..._2_output``)."""
    block = "output" if version.startswith("1.3.") else "2_output"
    names = ["stem_ln"]
    names += [f"stack{i + 1}_block{n}_{block}" for i, n in enumerate(kwargs["num_blocks"])]
    return names + ["pre_output_ln"]


def run_case(tf, nat, case_id: str, save: str, kwargs: dict, folder: Path) -> dict:
    """Build, randomise, save, and record kecam's outputs; returns the index entry."""
    seed = zlib.crc32(case_id.encode())
    tf.keras.utils.set_random_seed(seed)  # kecam's kernel initialisers draw from it
    rng = np.random.default_rng(seed)
    builder = CASE_BUILDERS.get(case_id, "nat.NAT")
    build = kecam_builder(builder)
    # a builder without classifier_activation (VOLO) returns logits only: no "probs" then
    head = {"classifier_activation": None} if takes_activation(build) else {}
    model = build(**kwargs, **head, pretrained=None)
    randomize(model, rng)
    weights = folder / f"{case_id}.h5"
    (model.save if save == "model" else model.save_weights)(str(weights))
    x = make_inputs(kwargs["input_shape"], rng)
    probes_of = CASE_PROBES.get(case_id)
    names = probes_of(kwargs) if probes_of else probe_names(kwargs, kecam_version())
    probes = tf.keras.Model(model.inputs, [probe_output(model, n) for n in names])
    arrays = {"input": x.astype(np.float16), "logits": np.asarray(model(x, training=False))}
    if head:
        softmax = build(**kwargs, classifier_activation="softmax", pretrained=None)  # LeViT: None
        softmax.set_weights(model.get_weights())
        arrays["probs"] = np.asarray(softmax(x, training=False))
    # stored under 1.4.3's names (the names of our model's intermediates)
    stored = probes_of(kwargs) if probes_of else probe_names(kwargs)
    values = probes(x, training=False)  # a bare tensor for one probe
    for name, value in zip(stored, values if isinstance(values, list) else [values]):
        arrays[f"probe/{name}"] = np.asarray(value)
    np.savez_compressed(folder / f"{case_id}.npz", **arrays)
    return {
        "kecam": kecam_version(), "save": save, "builder": builder, "kwargs": kwargs,
        "weights": weights.name, "arrays": f"{case_id}.npz", "probes": stored,
        "count_params": int(model.count_params()),
    }  # fmt: skip


def write_models_json(tf, names: list[str]) -> None:
    """kecam's signature of the named constructors and of their family builders, with each
    model's ``count_params()`` and weighted layers (built at 64x64: no weight of these families
    depends on the input size), merged into ``kecam_models.json``."""
    from mlx_attention import models

    record = {"builders": {}, "models": {}}
    for name in names:
        family = models.get_entry(name).family
        builder = f"{family.module}.{family.builder_name}"
        record["builders"][builder] = {"params": signature_rows(kecam_builder(builder))}
        fn = kecam_builder(f"{family.module}.{name}")
        model = fn(input_shape=(64, 64, 3), pretrained=None)
        record["models"][name] = {
            "model_name": model.name,
            "params": signature_rows(fn),
            "count_params": int(model.count_params()),
            "weighted_layers": sum(1 for layer in model.layers if layer.weights),
        }
        tf.keras.backend.clear_session()
        print(f"{name}: {record['models'][name]['count_params']:,} parameters")

    def update(old: dict) -> dict:
        old.update(kecam=kecam_version(), built_at=[64, 64, 3])
        for key in ("builders", "models"):
            old[key] = dict(sorted({**old.get(key, {}), **record[key]}.items()))
        return old

    merge_json(FIXTURES / "kecam_models.json", update)


def merge_json(path: Path, update) -> None:
    """Re-read ``path`` and write back ``update(its dict)``, under a lock: several runs of
    this tool (one per family) may finish at the same time."""
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        record = json.loads(path.read_text()) if path.exists() else {}
        path.write_text(json.dumps(update(record), indent=1) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--only", nargs="+", help="only these case ids")
    parser.add_argument("--kecam131", action="store_true", help="(internal) the 1.3.1 cases")
    parser.add_argument("--no-json", action="store_true", help="skip kecam_models.json")
    parser.add_argument(
        "--json", nargs="+", metavar="PATTERN",
        help="only update kecam_models.json for the registered models matching these patterns",
    )  # fmt: skip
    args = parser.parse_args()
    version = kecam_version()
    tf, nat = import_kecam()
    if args.json:
        from mlx_attention import models

        names = sorted({n for pattern in args.json for n in models.list_models(pattern)})
        write_models_json(tf, names)
        return
    wanted = [c for c in CASES if not args.only or c in args.only]
    FIXTURES.mkdir(parents=True, exist_ok=True)
    made = {}
    for case_id in wanted:
        case_version, save, kwargs = CASES[case_id]
        if case_version != version:
            continue
        made[case_id] = run_case(tf, nat, case_id, save, kwargs, FIXTURES)
        print(f"{case_id}: kecam {version}, {made[case_id]['count_params']:,} parameters")
    merge_json(FIXTURES / "index.json", lambda index: dict(sorted({**index, **made}.items())))
    if args.kecam131:
        return
    if any(CASES[c][0] == "1.3.1" for c in wanted):
        if not VENV131.exists():
            raise SystemExit(f"{VENV131} not found: the 1.3.1 cases need kecam 1.3.1 (README)")
        only = [c for c in wanted if CASES[c][0] == "1.3.1"]
        subprocess.run([str(VENV131), __file__, "--kecam131", "--only", *only], check=True)
    if not args.only and not args.no_json:
        from mlx_attention import models

        write_models_json(tf, models.list_models())


if __name__ == "__main__":
    main()
