"""kecam's ``lite_mhsa`` (EfficientViT-B and -L): multi-scale ReLU linear attention.

Not to be confused with ``LightMHSA`` (CMT's softmax attention over a reduced key grid).
"""

from __future__ import annotations

import mlx.core as mx

from .attention import check_block, check_dense, head_key_dim, output_dims
from .base import KerasModule
from .common import Activation, BatchNormActivation, Conv2dNoBias, DepthwiseConv2dNoBias
from .utils import check_int, check_str

# kecam's denominator guard: ``... / (scale + 1e-7)``, "for also working on float16"
_EPSILON = 1e-7
# activations whose weights kecam creates under automatic Keras names (its activation_by_name
# gets no name here), which no file can be matched to
_WEIGHTED_ACTIVATIONS = ("prelu", "starrelu", "star_relu")


class LiteMHSA(KerasModule):
    """kecam's ``efficientvit.efficientvit_b.lite_mhsa``.

    A 1x1 conv ``qkv_conv`` gives ``num_heads * 3 * key_dim`` channels, laid out per head as
    ``[q | k | v]``; a multi-scale branch of the same channels (a ``sr_ratio x sr_ratio``
    depthwise conv ``qkv_dw_conv``, then a 1x1 conv ``qkv_pw_conv`` with ``3 * num_heads``
    groups) is concatenated to it, so ``2 * num_heads`` heads attend. Queries and keys go
    through ``activation`` (ReLU); each head computes kecam's
    ``(q k^T) v / (sum_j (q k^T)_j + 1e-7)``, here as the equal linear form
    ``q (k^T v) / (q sum_j k_j + 1e-7)`` (``O(N)`` instead of kecam's ``N x N`` scores; the
    terms are non-negative, so the two agree to float32 rounding). A 1x1 conv ``out_conv``
    and BatchNorm ``out_bn`` (epsilon 1e-5) close it. Half-precision inputs attend in float32.

    Args:
        dims: input channels.
        num_heads: heads of each scale (``2 * num_heads`` attend).
        key_dim: per-head width of q, k and v; ``<= 0`` means ``dims // num_heads``.
        sr_ratio: the multi-scale depthwise kernel, odd (kecam pads it ``"same"``, torch style:
            an even kernel grows the map and kecam's concatenation fails).
        qkv_bias: biases of the three ``qkv`` convs.
        out_dims: kecam's ``out_shape`` (``None``: ``dims``).
        out_bias: bias of ``out_conv``.
        activation: a kecam activation name for queries and keys (without weights).
        name: kecam's ``name=``; Keras layers ``name + "qkv_conv"``, ``"qkv_dw_conv"``,
            ``"qkv_pw_conv"``, ``"out_conv"`` and ``"out_bn"``.

    Shape:
        ``[B, H, W, dims] -> [B, H, W, out_dims]``
    """

    def __init__(
        self, dims: int, num_heads: int = 8, *, key_dim: int = 16, sr_ratio: int = 5,
        qkv_bias: bool = False, out_dims: int | None = None, out_bias: bool = False,
        activation: str | None = "relu", name: str | None = None,
    ):  # fmt: skip
        super().__init__(name)
        what = "LiteMHSA"
        dims = check_block(what, dims, qkv_bias=qkv_bias, out_bias=out_bias)
        self.key_dim = head_key_dim(dims, num_heads, key_dim)
        self.num_heads = num_heads
        sr_ratio = check_int(sr_ratio, "sr_ratio", minimum=1, what=what)
        if sr_ratio % 2 == 0:
            raise ValueError(
                f"{what}: sr_ratio={sr_ratio} must be odd: kecam's 'same' depthwise conv pads "
                f"{sr_ratio // 2} on each side, the map grows by one and the concatenation fails"
            )
        if activation is not None:
            lower = check_str(activation, "activation", what=what).lower()
            if lower in _WEIGHTED_ACTIVATIONS:
                raise ValueError(
                    f"{what}: activation={activation!r} has weights, which kecam creates under "
                    "automatic Keras names here: no file could load them"
                )
        emb = 3 * num_heads * self.key_dim
        out = output_dims(dims, out_dims, True)
        check_dense(what, dims, emb, "num_heads, key_dim")
        check_dense(what, 2 * emb // 3, out, "num_heads, key_dim, out_shape")
        self.qkv = Conv2dNoBias(dims, emb, use_bias=qkv_bias, name=self.sub("qkv_"))
        self.qkv_dw = DepthwiseConv2dNoBias(
            emb, sr_ratio, padding="same", use_bias=qkv_bias, name=self.sub("qkv_")
        )
        self.qkv_pw = Conv2dNoBias(
            emb, emb, use_bias=qkv_bias, groups=3 * num_heads, name=self.sub("qkv_pw_")
        )
        # two Keras layers in kecam (query, key): no weights, so one module serves both
        self.act = Activation(activation)
        self.out = Conv2dNoBias(2 * emb // 3, out, use_bias=out_bias, name=self.sub("out_"))
        self.out_bn = BatchNormActivation(out, name=self.sub("out_"))

    def __call__(self, x: mx.array) -> mx.array:
        batch, height, width, _ = x.shape
        qkv = self.qkv(x)
        qkv = mx.concatenate([qkv, self.qkv_pw(self.qkv_dw(qkv))], axis=-1)
        # [B, H, W, 2 heads * 3 kd] -> [B, 2 heads, N, 3 kd]: head-major, [q | k | v] each
        qkv = qkv.reshape(batch, height * width, 2 * self.num_heads, 3 * self.key_dim)
        query, key, value = mx.split(qkv.transpose(0, 2, 1, 3), 3, axis=-1)
        query, key = self.act(query), self.act(key)
        dtype = x.dtype
        if dtype in (mx.float16, mx.bfloat16):
            query, key, value = (t.astype(mx.float32) for t in (query, key, value))
        numerator = query @ (key.swapaxes(-1, -2) @ value)
        denominator = query @ mx.sum(key, axis=-2, keepdims=True).swapaxes(-1, -2)
        out = (numerator / (denominator + _EPSILON)).astype(dtype)
        out = out.transpose(0, 2, 1, 3).reshape(batch, height, width, -1)
        return self.out_bn(self.out(out))


__all__ = ["LiteMHSA"]
