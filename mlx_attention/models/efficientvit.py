"""kecam's package ``efficientvit``: its two modules (``efficientvit.efficientvit_m``,
``efficientvit.efficientvit_b``) and the names its ``__init__`` re-exports, plus
``lite_mhsa`` (kecam defines it in ``efficientvit_b`` without re-exporting it). The families
live in :mod:`.efficientvit_m` and :mod:`.efficientvit_b`; nothing is defined here."""

from ..attention_layers import cascaded_mhsa_with_multi_head_position
from . import efficientvit_b, efficientvit_m
from .efficientvit_b import (
    EfficientViT_B,
    EfficientViT_B0,
    EfficientViT_B1,
    EfficientViT_B2,
    EfficientViT_B3,
    EfficientViT_L,
    EfficientViT_L0,
    EfficientViT_L1,
    EfficientViT_L2,
    EfficientViT_L3,
    lite_mhsa,
)
from .efficientvit_m import (
    EfficientViT_M,
    EfficientViT_M0,
    EfficientViT_M1,
    EfficientViT_M2,
    EfficientViT_M3,
    EfficientViT_M4,
    EfficientViT_M5,
)

__all__ = [
    "EfficientViT_B", "EfficientViT_B0", "EfficientViT_B1", "EfficientViT_B2",
    "EfficientViT_B3", "EfficientViT_L", "EfficientViT_L0", "EfficientViT_L1",
    "EfficientViT_L2", "EfficientViT_L3", "EfficientViT_M", "EfficientViT_M0",
    "EfficientViT_M1", "EfficientViT_M2", "EfficientViT_M3", "EfficientViT_M4",
    "EfficientViT_M5", "cascaded_mhsa_with_multi_head_position", "efficientvit_b",
    "efficientvit_m", "lite_mhsa",
]  # fmt: skip
