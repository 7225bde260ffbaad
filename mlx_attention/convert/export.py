"""Export of a loaded module to ``.safetensors``, which ``module.load_weights`` reads back."""

from __future__ import annotations

from pathlib import Path

import mlx.core as mx
import mlx.nn as nn
from mlx.utils import tree_flatten


def export_safetensors(module: nn.Module, path: str | Path) -> Path:
    """Save the module's parameters (constant tables excluded) as ``.safetensors``."""
    path = Path(path)
    if path.suffix != ".safetensors":
        raise ValueError(f"{path}: the file name must end in .safetensors")
    mx.save_safetensors(str(path), dict(tree_flatten(module.parameters())))
    return path
