"""Pure functions on ``mx.array`` (channels-last): the reference semantics and the portable path.

The gathers take ``backend=`` (``None`` reads ``MLX_ATTENTION_KERNELS``): ``"ops"`` runs the pure
MLX code here; ``"metal"``, ``"cuda"`` and ``"emulated"`` run :mod:`mlx_attention.kernels`.
"""

from .conv import conv2d
from .geometry import AxisMap
from .halo import halo_attention
from .neighborhood import neighborhood_attention
from .patches import (
    extract_patches,
    fold,
    fold_axis_maps,
    halo_blocks,
    neighborhood_axis_maps,
    neighborhood_patches,
    unfold_axis_maps,
)
from .pooling import avg_pool2d, max_pool2d, same_pads, zero_pad2d
from .resize import resize_bicubic_antialias, resize_bilinear
from .windows import (
    SHIFTED_WINDOW_MASK_VALUE,
    shifted_window_mask,
    window_axis_maps,
    window_grid,
    window_partition,
    window_reverse,
)

__all__ = [
    "SHIFTED_WINDOW_MASK_VALUE",
    "AxisMap",
    "avg_pool2d",
    "conv2d",
    "extract_patches",
    "fold",
    "fold_axis_maps",
    "halo_attention",
    "halo_blocks",
    "max_pool2d",
    "neighborhood_attention",
    "neighborhood_axis_maps",
    "neighborhood_patches",
    "resize_bicubic_antialias",
    "resize_bilinear",
    "same_pads",
    "shifted_window_mask",
    "unfold_axis_maps",
    "window_axis_maps",
    "window_grid",
    "window_partition",
    "window_reverse",
    "zero_pad2d",
]
