"""BEiT's blocks (kecam ``beit/beit.py``), which are not kecam ``attention_layers`` names: the
attention block (a bias-free ``qkv`` with separate query and value biases and a relative
positional table over the patch grid and a class token), its MLP and the patch stem that can
resample its kernel to another patch size (FlexiViT)."""

from __future__ import annotations

import mlx.core as mx
import mlx.nn as nn
import numpy as np

from .attention import (
    Dropout,
    attend,
    check_block,
    check_dense,
    head_key_dim,
    merge_heads,
    split_heads,
)
from .base import KerasLayer, KerasModule
from .common import Activation, BiasLayer
from .positional import MultiHeadRelativePositionalEmbedding, _check_method, tf_resize
from .utils import check_int, check_sizes


class BeitAttention(KerasModule):
    """kecam's ``beit.attention_block`` in BEiT's form.

    A Dense ``qkv`` gives ``[q | k | v]`` (head-major, ``num_heads * key_dim`` each); with
    ``qv_bias`` (and no ``qkv_bias``) ``BiasLayer``\\ s ``query_bias`` and ``value_bias`` are
    added to ``q`` and ``v``; ``softmax(q k^T / sqrt(key_dim) + pos) v`` with ``pos`` kecam's
    ``MultiHeadRelativePositionalEmbedding`` over the grid (and the class token) when
    ``use_pos_emb``; an optional Dense ``output`` of ``num_heads * key_dim`` channels.

    Args:
        dims: input channels.
        num_heads: heads.
        height, width: the patch grid (tokens: ``cls + height * width``).
        key_dim: per-head width; ``0`` means ``dims // num_heads``.
        qkv_bias: a bias in ``qkv`` (kecam then drops ``qv_bias``).
        qv_bias: the separate query and value biases.
        out_weight, out_bias: the Dense ``output`` and its bias.
        with_cls_token: a leading class token.
        use_pos_emb: the relative positional table (Keras layer ``name + "pos_emb"``).
        attn_dropout: dropout on the attention probabilities (training mode only).
        name: kecam's ``name=``; Keras layers ``name + "qkv"``, ``"query_bias"``,
            ``"value_bias"``, ``"pos_emb"``, ``"output"``.

    Shape:
        ``[B, cls + height * width, dims] -> [B, cls + height * width, num_heads * key_dim]``
    """

    def __init__(
        self, dims: int, num_heads: int = 4, *, height: int, width: int, key_dim: int = 0,
        qkv_bias: bool = False, qv_bias: bool = False, out_weight: bool = True,
        out_bias: bool = False, with_cls_token: bool = True, use_pos_emb: bool = False,
        attn_dropout: float = 0.0, name: str | None = None,
    ):  # fmt: skip
        super().__init__(name)
        what = "BeitAttention"
        dims = check_block(
            what, dims, qkv_bias=qkv_bias, qv_bias=qv_bias, out_weight=out_weight,
            out_bias=out_bias, with_cls_token=with_cls_token, use_pos_emb=use_pos_emb,
        )  # fmt: skip
        check_sizes(what, height=height, width=width)
        self.key_dim = head_key_dim(dims, num_heads, key_dim)
        self.num_heads = num_heads
        embed = num_heads * self.key_dim
        check_dense(what, dims, 3 * embed, "num_heads, key_dim")
        self.qkv = nn.Linear(dims, 3 * embed, bias=qkv_bias)
        qv_bias = qv_bias and not qkv_bias  # kecam: qkv_bias wins
        self.query_bias = BiasLayer((embed,), name=self.sub("query_bias")) if qv_bias else None
        self.value_bias = BiasLayer((embed,), name=self.sub("value_bias")) if qv_bias else None
        self.pos_emb = None
        if use_pos_emb:
            self.pos_emb = MultiHeadRelativePositionalEmbedding(
                num_heads, height, width, with_cls_token=with_cls_token, name=self.sub("pos_emb")
            )
        self.out_weight = out_weight
        if out_weight:
            self.output = nn.Linear(embed, embed, bias=out_bias)
        self.attn_drop = Dropout(attn_dropout, what="attn_dropout")

    def keras_layers(self):
        layers = [KerasLayer(self.sub("qkv"), "Dense", self.qkv)]
        if self.out_weight:
            layers.append(KerasLayer(self.sub("output"), "Dense", self.output))
        return layers

    def __call__(self, x: mx.array) -> mx.array:
        embed = self.num_heads * self.key_dim
        query, key, value = mx.split(self.qkv(x), [embed, 2 * embed], axis=-1)
        if self.query_bias is not None:
            query, value = self.query_bias(query), self.value_bias(value)
        bias = None
        if self.pos_emb is not None:  # the table alone, as the fused kernel's additive mask
            bias = self.pos_emb(mx.zeros((1, 1, 1, 1), dtype=x.dtype))
        out = attend(
            split_heads(query, self.num_heads), split_heads(key, self.num_heads),
            split_heads(value, self.num_heads), scale=self.key_dim**-0.5, bias=bias,
            dropout=self.attn_drop,
        )  # fmt: skip
        out = merge_heads(out)
        return self.output(out) if self.out_weight else out


class BeitMlp(KerasModule):
    """kecam's ``beit.mlp_block`` (not gated, no norm): Dense ``dense_1`` of
    ``int(dims * mlp_ratio)``, the activation, Dense ``dense_2`` back to ``dims``.

    Args:
        dims: channels.
        mlp_ratio: the hidden width over ``dims``.
        activation: a kecam activation name (``"gelu"`` is the exact, erf form).
        name: kecam's prefix (``"block0_mlp_"``).

    Shape:
        ``[B, N, dims] -> [B, N, dims]``
    """

    def __init__(
        self, dims: int, mlp_ratio: float = 4, *, activation: str = "gelu", name: str | None = None
    ):
        super().__init__(name)
        dims = check_int(dims, "dims", minimum=1, what="BeitMlp")
        hidden = int(dims * mlp_ratio)
        if hidden < 1:
            raise ValueError(f"mlp_ratio={mlp_ratio} on {dims} channels gives {hidden} units")
        check_dense("BeitMlp", dims, hidden, "mlp_ratio")
        self.dense_1 = nn.Linear(dims, hidden)
        self.act = Activation(activation, dims=hidden, name=name)
        self.dense_2 = nn.Linear(hidden, dims)

    def keras_layers(self):
        return (
            KerasLayer(self.sub("dense_1"), "Dense", self.dense_1),
            KerasLayer(self.sub("dense_2"), "Dense", self.dense_2),
        )

    def __call__(self, x: mx.array) -> mx.array:
        return self.dense_2(self.act(self.dense_1(x)))


def _resample_matrix(source: tuple[int, int], target: tuple[int, int], method: str) -> np.ndarray:
    """FlexiViT's ``pinv`` of the resize of every source basis kernel: ``[S, T]`` maps a
    flattened source kernel to the target's (kecam's ``get_resize_mat``)."""
    count = source[0] * source[1]
    basis = np.eye(count, dtype=np.float32).reshape(count, *source, 1)
    resized = tf_resize(basis, target, method).reshape(count, -1)  # [S, T]
    return np.linalg.pinv(resized.astype(np.float64))  # [T, S]


class PatchConv2D(KerasModule):
    """kecam's ``PatchConv2DWithResampleWeights``: a ``patch_size`` x ``patch_size`` Conv2D of
    stride ``patch_size`` (VALID), whose kernel, loaded with ``resize=``, is resampled from
    another patch size by FlexiViT's pseudo-inverse of the bilinear resize (kecam's
    ``load_resized_weights``).

    The kernel is kept in Keras's layout ``[k, k, in, out]``, as kecam's weight files store it.

    Args:
        in_dims, out_dims: channels.
        patch_size: kernel size and stride.
        use_bias: a bias.
        name: the Keras layer name (``"stem_conv"``).

    Shape:
        ``[B, H, W, in_dims] -> [B, H // patch_size, W // patch_size, out_dims]``
    """

    def __init__(
        self, in_dims: int, out_dims: int, patch_size: int, *, use_bias: bool = True,
        name: str | None = None,
    ):  # fmt: skip
        super().__init__(name)
        what = "PatchConv2D"
        in_dims, out_dims, patch_size = check_sizes(
            what, in_dims=in_dims, out_dims=out_dims, patch_size=patch_size
        )
        check_dense(what, in_dims * patch_size**2, out_dims, "patch_size, embed_dim")
        self.patch_size = patch_size
        bound = 1 / patch_size**0.5  # kecam's RandomUniform initialiser
        self.kernel = mx.random.uniform(-bound, bound, (patch_size, patch_size, in_dims, out_dims))
        self.use_bias = use_bias
        if use_bias:
            self.bias = mx.zeros((out_dims,))

    def keras_layers(self):
        names = ("kernel", "bias") if self.use_bias else ("kernel",)
        return (KerasLayer(self.sub(""), "Weights", self, names, resize=self.resized_weights),)

    def resized_weights(self, arrays, method="bilinear"):
        _check_method(method)
        kernel = np.asarray(arrays[0], np.float32)
        if kernel.ndim != 4 or kernel.shape[2:] != tuple(self.kernel.shape[2:]):
            raise ValueError(
                f"a kernel of shape {kernel.shape} is not [k, k, {self.kernel.shape[2]}, "
                f"{self.kernel.shape[3]}]"
            )
        target = (self.patch_size, self.patch_size)
        pinv = _resample_matrix(kernel.shape[:2], target, method)  # [T, S]
        flat = kernel.reshape(-1, kernel.shape[2] * kernel.shape[3])  # [S, in * out]
        resampled = (pinv @ flat).astype(np.float32).reshape(*target, *kernel.shape[2:])
        return [resampled, *arrays[1:]]

    def __call__(self, x: mx.array) -> mx.array:
        weight = self.kernel.transpose(3, 0, 1, 2).astype(x.dtype)  # [out, k, k, in]
        out = mx.conv2d(x, weight, stride=self.patch_size)
        return out + self.bias.astype(x.dtype) if self.use_bias else out


__all__ = ["BeitAttention", "BeitMlp", "PatchConv2D"]
