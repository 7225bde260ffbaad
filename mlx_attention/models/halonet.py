"""HaloNet (kecam ``halonet``): constructors of the AotNet template, declared as data in
:mod:`mlx_attention.models.aotnet`; this module is where their ``__module__`` points."""

from .aotnet import FAMILY_CONSTRUCTORS

globals().update(FAMILY_CONSTRUCTORS["halonet"])
__all__ = sorted(FAMILY_CONSTRUCTORS["halonet"])
