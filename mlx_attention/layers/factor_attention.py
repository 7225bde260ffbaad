"""kecam's CoaT attention (``coat.factor_attention_conv_relative_positional_encoding``) and the
CoaT stage's positional encodings under the Keras names of both kecam versions.

Factorised attention: per head ``q @ (softmax_tokens(k)^T @ v)``, whose ``key_dim x key_dim``
middle makes it linear in the tokens, plus ``ConvRelativePositionalEncoding(q, v)``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import mlx.core as mx
import mlx.nn as nn

from .attention import check_block, check_dense, head_key_dim
from .base import KerasLayer, KerasLayouts, KerasModule
from .positional import ConvPositionalEncoding, ConvRelativePositionalEncoding
from .utils import check_sizes, check_str


def _renamed_131(declarations, legacy_name: str) -> tuple:
    """The declarations with the 1.3.1 layout's one Keras layer under ``legacy_name``."""
    out = []
    for decl in declarations:
        if isinstance(decl, KerasLayouts):
            decl = KerasLayouts(
                tuple(
                    tuple(dataclasses.replace(layer, name=legacy_name) for layer in layout)
                    if label == "1.3.1"
                    else layout
                    for layout, label in zip(decl.layouts, decl.labels)
                ),
                decl.labels,
            )
        out.append(decl)
    return tuple(out)


class CoaTConvPositionalEncoding(ConvPositionalEncoding):
    """``ConvPositionalEncoding`` as CoaT names it: kecam 1.4.3 prefixes the depthwise conv with
    ``name`` (``"cpe1_"`` -> ``cpe1_depth_conv``), 1.3.1 stored it in a Keras layer of its own
    name (``legacy_name``: ``"cpe_1"``). Both load.

    Args:
        dims, height, width, kernel_size: as ``ConvPositionalEncoding``.
        name: kecam 1.4.3's prefix.
        legacy_name: kecam 1.3.1's layer name.

    Shape:
        ``[B, 1 + H*W, C] -> same``
    """

    def __init__(
        self, dims: int, height: int, width: int, *, kernel_size: int = 3, name: str,
        legacy_name: str,
    ):  # fmt: skip
        super().__init__(dims, height, width, kernel_size=kernel_size, name=name)
        self.legacy_name = check_str(legacy_name, "legacy_name", what="CoaTConvPositionalEncoding")

    def keras_layers(self):
        return _renamed_131(super().keras_layers(), self.legacy_name)


class CoaTConvRelativePositionalEncoding(ConvRelativePositionalEncoding):
    """``ConvRelativePositionalEncoding`` as CoaT names it: kecam 1.4.3's depthwise convs
    ``name + "depth_conv_{i}"`` (``"crpe1_"``), 1.3.1's one layer ``legacy_name``
    (``"crpe_1"``). Both load.

    Args:
        num_heads, key_dim, height, width, head_splits, head_kernel_size: as
            ``ConvRelativePositionalEncoding``.
        name: kecam 1.4.3's prefix.
        legacy_name: kecam 1.3.1's layer name.

    Shape:
        ``([B, heads, N, d], [B, heads, N, d]) -> [B, heads, N, d]``
    """

    def __init__(
        self, num_heads: int, key_dim: int, height: int, width: int, *,
        head_splits: Sequence[int] = (2, 3, 3), head_kernel_size: Sequence[int] = (3, 5, 7),
        name: str, legacy_name: str,
    ):  # fmt: skip
        super().__init__(
            num_heads, key_dim, height, width, head_splits=head_splits,
            head_kernel_size=head_kernel_size, name=name,
        )  # fmt: skip
        self.legacy_name = check_str(
            legacy_name, "legacy_name", what="CoaTConvRelativePositionalEncoding"
        )

    def keras_layers(self):
        return _renamed_131(super().keras_layers(), self.legacy_name)


class FactorAttention(KerasModule):
    """kecam's ``coat.factor_attention_conv_relative_positional_encoding``.

    A Dense ``qkv`` gives ``q | k | v`` (each ``num_heads`` heads of ``dims // num_heads``);
    ``k`` is soft-maxed over the tokens; per head
    ``q @ (k^T @ v) / sqrt(key_dim) + crpe(q, v)``, the heads merged, then a Dense ``out``.

    Args:
        dims: channels (``num_heads`` must divide them: kecam reshapes ``q``, ``k``, ``v``
            into heads).
        height, width: the patch grid of the tokens (``N = 1 + height * width``).
        num_heads: heads.
        qkv_bias: the ``qkv`` projection's bias.
        crpe: a ``ConvRelativePositionalEncoding`` shared with other blocks (a CoaT stage's
            ``crpe{i}_``), or ``None`` for the block's own, ``name + "crpe_"`` (kecam 1.3.1:
            ``name + "crpe"``), with ``head_splits`` and ``head_kernel_size``.
        head_splits, head_kernel_size: the own ``crpe``'s head groups and kernels.
        name: kecam's ``name=``; Keras layers ``name + "qkv"``, ``name + "out"``.

    Shape:
        ``[B, 1 + H*W, dims] -> [B, 1 + H*W, dims]``
    """

    def __init__(
        self, dims: int, height: int, width: int, *, num_heads: int = 8, qkv_bias: bool = True,
        crpe: ConvRelativePositionalEncoding | None = None,
        head_splits: Sequence[int] = (2, 3, 3), head_kernel_size: Sequence[int] = (3, 5, 7),
        name: str | None = None,
    ):  # fmt: skip
        super().__init__(name)
        what = "FactorAttention"
        dims = check_block(what, dims, qkv_bias=qkv_bias)
        height, width = check_sizes(what, height=height, width=width)
        key_dim = head_key_dim(dims, num_heads, 0)
        if key_dim * num_heads != dims:
            raise ValueError(
                f"{what}: num_heads={num_heads} must divide dims={dims} (kecam reshapes the "
                f"{dims} query channels into {num_heads} heads of {key_dim})"
            )
        check_dense(what, dims, 3 * dims, "dims")
        if crpe is None:
            crpe = CoaTConvRelativePositionalEncoding(
                num_heads, key_dim, height, width, head_splits=head_splits,
                head_kernel_size=head_kernel_size, name=self.sub("crpe_"),
                legacy_name=self.sub("crpe"),
            )  # fmt: skip
        elif not isinstance(crpe, ConvRelativePositionalEncoding):
            raise TypeError(
                f"{what}: crpe must be a ConvRelativePositionalEncoding or None, got "
                f"{type(crpe).__name__}"
            )
        got = (crpe.num_heads, crpe.key_dim, crpe.height, crpe.width)
        if got != (num_heads, key_dim, height, width):
            raise ValueError(
                f"{what}: crpe is for (num_heads, key_dim, height, width) = {got}, the block "
                f"for {(num_heads, key_dim, height, width)}"
            )
        self.num_heads, self.key_dim = num_heads, key_dim
        self.qkv = nn.Linear(dims, 3 * dims, bias=qkv_bias)
        self.crpe = crpe
        self.out = nn.Linear(dims, dims)

    def keras_layers(self):
        return (
            KerasLayer(self.sub("qkv"), "Dense", self.qkv),
            KerasLayer(self.sub("out"), "Dense", self.out),
        )

    def __call__(self, x: mx.array) -> mx.array:
        batch, tokens, dims = x.shape
        heads = (
            t.reshape(batch, tokens, self.num_heads, self.key_dim).transpose(0, 2, 1, 3)
            for t in mx.split(self.qkv(x), 3, axis=-1)
        )
        query, key, value = heads  # [B, heads, N, d]
        key = mx.softmax(key, axis=-2, precise=True)  # over the tokens
        factor = query @ (key.swapaxes(-1, -2) @ value)
        out = factor * (1.0 / float(self.key_dim) ** 0.5) + self.crpe(query, value)
        return self.out(out.transpose(0, 2, 1, 3).reshape(batch, tokens, dims))


__all__ = ["CoaTConvPositionalEncoding", "CoaTConvRelativePositionalEncoding", "FactorAttention"]
