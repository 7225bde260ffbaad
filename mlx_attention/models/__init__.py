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

Every public module of this package is a family: importing it registers its constructors,
which are then exported here under their kecam names.
"""

import importlib
import pkgutil

from ._base import ImageClassifier
from ._pretrained import convert, read_metadata
from ._registry import create_model, get_entry, list_models

FAMILIES = tuple(sorted(m.name for m in pkgutil.iter_modules(__path__) if m.name[0] != "_"))
globals().update({name: importlib.import_module(f".{name}", __name__) for name in FAMILIES})
_listed = set(list_models())
globals().update(
    {
        name: getattr(globals()[family], name)
        for family in FAMILIES
        for name in getattr(globals()[family], "__all__", ())
        if name in _listed
    }
)

__all__ = [
    "FAMILIES", "ImageClassifier", "convert", "create_model", "get_entry", "list_models",
    "read_metadata",
]  # fmt: skip
__all__ += [*FAMILIES, *sorted(_listed)]
