"""Metal and CUDA kernels for the gathers of :mod:`mlx_attention.ops`, and their dispatch.

Two kernels serve every gather: ``unfold`` (window partition with pad and shift, patches with
stride/dilation/padding, halo blocks, NAT/DiNAT neighbourhoods) and ``fold`` (window reverse and
col2im as a gather; the VJP of ``unfold``). Their bodies are written once (:mod:`.bodies`).
"""

from .bodies import BODIES, KERNELS, PRELUDES, kernel_source
from .dispatch import (
    ENV_VAR,
    backend_report,
    build_kernel,
    fold,
    kernel_list,
    launch,
    launch_params,
    resolve_backend,
    set_emulator,
    unfold,
)

__all__ = [
    "BODIES",
    "ENV_VAR",
    "KERNELS",
    "PRELUDES",
    "backend_report",
    "build_kernel",
    "fold",
    "kernel_list",
    "kernel_source",
    "launch",
    "launch_params",
    "resolve_backend",
    "set_emulator",
    "unfold",
]
