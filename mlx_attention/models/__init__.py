"""Whole kecam models as MLX modules, loading kecam's weight files.

::

    from mlx_attention import models
    models.list_models("*nat*")                      # ['DiNAT_Base', ..., 'NAT_Tiny']
    model = models.create_model("NAT_Mini", pretrained="nat_mini_imagenet.h5")
    probs = model(x)                                 # x: [B, 224, 224, 3], preprocessed
    features = model.forward_features(x)             # kecam's num_classes=0 output
    models.convert("NAT_Mini", "nat_mini_imagenet.h5", "nat_mini.safetensors")

``create_model(name, ...)`` and ``models.NAT_Mini(...)`` are the same call, with kecam 1.4.3's
arguments and defaults except ``pretrained=None``. Family builders are reachable under their
module (``models.nat.NAT(...)``) for reduced configurations and are not listed.
"""

from . import aotnet, beit, davit, efficientvit_m, levit, nat, swin_transformer_v2
from ._base import ImageClassifier
from ._pretrained import convert, read_metadata
from ._registry import create_model, get_entry, list_models
from .beit import (
    BeitBasePatch16,
    BeitLargePatch16,
    BeitV2BasePatch16,
    BeitV2LargePatch16,
)
from .davit import DaViT_B, DaViT_G, DaViT_H, DaViT_L, DaViT_S, DaViT_T
from .efficientvit_m import (
    EfficientViT_M0,
    EfficientViT_M1,
    EfficientViT_M2,
    EfficientViT_M3,
    EfficientViT_M4,
    EfficientViT_M5,
)
from .levit import LeViT128, LeViT128S, LeViT192, LeViT256, LeViT384
from .nat import (
    DiNAT_Base,
    DiNAT_Large,
    DiNAT_Large_K11,
    DiNAT_Mini,
    DiNAT_Small,
    DiNAT_Tiny,
    NAT_Base,
    NAT_Mini,
    NAT_Small,
    NAT_Tiny,
)

__all__ = [
    "BeitBasePatch16",
    "BeitLargePatch16",
    "BeitV2BasePatch16",
    "BeitV2LargePatch16",
    "DaViT_B",
    "DaViT_G",
    "DaViT_H",
    "DaViT_L",
    "DaViT_S",
    "DaViT_T",
    "DiNAT_Base",
    "DiNAT_Large",
    "DiNAT_Large_K11",
    "DiNAT_Mini",
    "DiNAT_Small",
    "DiNAT_Tiny",
    "EfficientViT_M0",
    "EfficientViT_M1",
    "EfficientViT_M2",
    "EfficientViT_M3",
    "EfficientViT_M4",
    "EfficientViT_M5",
    "ImageClassifier",
    "LeViT128",
    "LeViT128S",
    "LeViT192",
    "LeViT256",
    "LeViT384",
    "NAT_Base",
    "NAT_Mini",
    "NAT_Small",
    "NAT_Tiny",
    "beit",
    "convert",
    "create_model",
    "davit",
    "efficientvit_m",
    "get_entry",
    "levit",
    "list_models",
    "nat",
    "read_metadata",
]

# Swin v2's 13 constructors (kecam's main file and its timm layout), by their kecam names
globals().update(
    {name: getattr(swin_transformer_v2, name) for name in swin_transformer_v2.CONSTRUCTORS}
)
__all__ += [*swin_transformer_v2.CONSTRUCTORS, "swin_transformer_v2"]

# the AotNet template's 29 constructors (BoTNet, HaloNet, CotNet, ResNeSt), by their kecam names
globals().update({name: getattr(aotnet, name) for name in aotnet.CONSTRUCTORS})
__all__ += [*aotnet.CONSTRUCTORS, "aotnet"]
