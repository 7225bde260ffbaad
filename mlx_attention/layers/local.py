"""Local attention blocks: attention over a pixel's own patch, block or neighbourhood.

Every patch, halo, neighbourhood, unfold and fold step runs through :mod:`mlx_attention.ops`
(and so through the kernels where a back-end has them). All modules are channels-last and
compute what the kecam block of the same name computes in inference.
"""

from __future__ import annotations

import mlx.core as mx
import mlx.nn as nn
import numpy as np

from .. import ops
from .attention import Dropout, check_block, check_dense
from .base import KerasLayer, KerasModule
from .common import BatchNormActivation, Conv2dNoBias, GroupNorm
from .positional import MultiHeadRelativePositionalKernelBias, RelativePositionalEmbedding
from .utils import check_float, check_int, check_pair, check_size, check_sizes, make_divisible


def _check_positive(**values: int) -> None:
    check_sizes("", **values)


def _avg_pool_3x3_s2(x: mx.array) -> mx.array:
    # kecam: ZeroPadding2D(1) + AveragePooling2D(3, 2): the padded zeros count (always / 9).
    return nn.AvgPool2d(3, 2, padding=1)(x)


def _avg_pool_tf(x: mx.array, pool: int, same: bool) -> mx.array:
    """Keras ``AveragePooling2D(pool, pool)``: VALID floors; SAME ceils, pads top/left by half
    the total (the rest bottom/right) and leaves the padded cells out of the divisor."""
    batch, height, width, channels = x.shape
    if not same:
        rows, cols = height // pool, width // pool
        x = x[:, : rows * pool, : cols * pool]
        return x.reshape(batch, rows, pool, cols, pool, channels).mean(axis=(2, 4))
    rows, cols = -(-height // pool), -(-width // pool)
    pad_h, pad_w = rows * pool - height, cols * pool - width
    pads = [(0, 0), (pad_h // 2, pad_h - pad_h // 2), (pad_w // 2, pad_w - pad_w // 2), (0, 0)]
    summed = mx.pad(x, pads).reshape(batch, rows, pool, cols, pool, channels).sum(axis=(2, 4))
    ones = mx.pad(mx.ones((1, height, width, 1), x.dtype), pads)
    count = ones.reshape(1, rows, pool, cols, pool, 1).sum(axis=(2, 4))
    return summed / count


class RSoftmax(KerasModule):
    """kecam's ``rsoftmax`` (resnest): softmax across the ``groups`` (radix) splits of the
    channels, separately for every other position; a sigmoid when ``groups == 1``.

    kecam reshapes to ``[B, groups, size / groups]`` over everything but the batch, so split
    ``r`` is the ``r``-th contiguous chunk of the flattened features.

    Args:
        groups: the radix ``R``; must divide the number of features.

    Shape:
        ``[B, ...] -> [B, ...]``
    """

    def __init__(self, groups: int, *, name: str | None = None):
        super().__init__(name)
        _check_positive(groups=groups)
        self.groups = groups

    def __call__(self, x: mx.array) -> mx.array:
        if self.groups == 1:
            return mx.sigmoid(x)
        split = x.reshape(x.shape[0], self.groups, -1)
        return mx.softmax(split, axis=1, precise=True).reshape(x.shape)


class SplitAttentionConv2d(KerasModule):
    """ResNeSt split attention (kecam ``split_attention_conv2d``).

    The input channels are split into ``groups`` (the radix) contiguous parts, each through its
    own ``k x k`` conv; BN + activation; a squeeze-excite over the sum of the splits gives
    per-split channel weights (``rsoftmax`` across splits), and the output is the weighted sum of
    the splits. With ``strides > 1`` the convs are strided (``downsample_first``) or a 3x3/2
    average pool (zeros counted) runs at the end.

    Args:
        in_dims: input channels; ``groups`` must divide them.
        filters: output channels.
        kernel_size: conv kernel. Default: ``3``.
        strides: down-sampling. Default: ``1``.
        downsample_first: stride the convs rather than pool the output. Default: ``False``.
        groups: the radix ``R``. Default: ``2``.
        activation: kecam activation name. Default: ``"relu"``.
        name: kecam's ``name=`` (layers ``1_g{r}_conv``, ``1_bn``, ``2_conv``, ``2_bn``,
            ``3_conv``; ``1_conv`` when ``groups == 1``).

    Shape:
        ``[B, H, W, in_dims] -> [B, H', W', filters]``; ``H' = H`` for ``strides == 1``, else
        ``ceil(H / 2)`` (pool) or ``(H + 2 (k // 2) - k) // strides + 1`` (downsample_first).
    """

    def __init__(
        self, in_dims: int, filters: int, *, kernel_size: int = 3, strides: int = 1,
        downsample_first: bool = False, groups: int = 2, activation: str | None = "relu",
        name: str | None = None,
    ):  # fmt: skip
        super().__init__(name)
        what = "SplitAttentionConv2d"
        _check_positive(filters=filters, kernel_size=kernel_size, strides=strides, groups=groups)
        in_dims = check_block(what, in_dims, downsample_first=downsample_first)
        check_size(groups * filters * kernel_size**2 * in_dims, f"{what}: filters, kernel_size")
        check_size(filters * groups * max(in_dims * groups // 4, 32), f"{what}: filters, groups")
        if in_dims % groups:
            raise ValueError(
                f"groups={groups} must divide the {in_dims} input channels (kecam splits them)"
            )
        self.groups, self.filters = groups, filters
        self.pool_output = not downsample_first and strides > 1
        conv_strides = strides if downsample_first else 1
        prefixes = ["1_"] if groups == 1 else [f"1_g{r + 1}_" for r in range(groups)]
        self.convs = [
            Conv2dNoBias(
                in_dims // groups,
                filters,
                kernel_size,
                strides=conv_strides,
                padding="same",
                name=self.sub(prefix),
            )  # fmt: skip
            for prefix in prefixes
        ]
        self.bn1 = BatchNormActivation(groups * filters, activation=activation, name=self.sub("1_"))
        inter = max(in_dims * groups // 4, 32)
        self.fc2 = Conv2dNoBias(filters, inter, 1, use_bias=True, name=self.sub("2_"))
        self.bn2 = BatchNormActivation(inter, activation=activation, name=self.sub("2_"))
        self.fc3 = Conv2dNoBias(inter, filters * groups, 1, use_bias=True, name=self.sub("3_"))
        self.rsoftmax = RSoftmax(groups)

    def __call__(self, x: mx.array) -> mx.array:
        parts = mx.split(x, self.groups, axis=-1) if self.groups > 1 else [x]
        logits = self.bn1(mx.concatenate([conv(p) for conv, p in zip(self.convs, parts)], -1))
        splits = logits.reshape(*logits.shape[:3], self.groups, self.filters)
        gap = splits.sum(axis=3).mean(axis=(1, 2), keepdims=True)
        attn = self.rsoftmax(self.fc3(self.bn2(self.fc2(gap))))
        out = (splits * attn.reshape(attn.shape[0], 1, 1, self.groups, self.filters)).sum(axis=3)
        return _avg_pool_3x3_s2(out) if self.pool_output else out


class CotAttention(KerasModule):
    """Contextual Transformer attention (kecam ``cot_attention``, CoTNet).

    A grouped ``k x k`` conv gives the static key; from ``[x, key]`` two 1x1 convs and a
    GroupNorm give, per pixel, one ``k x k`` kernel for each of ``C / 8`` channel groups (channel
    ``c`` uses kernel ``c mod C/8``), applied to a 1x1 embedding of ``x`` over its unfolded
    ``k x k`` patches (:func:`ops.extract_patches`, zero padding ``k // 2``). A radix-2 SE-style
    softmax mixes that dynamic output with the key.

    Args:
        dims: input (and output) channels; a multiple of 8.
        kernel_size: odd kernel. Default: ``3``.
        strides: ``> 1`` adds one 3x3/2 average pool (zeros counted). Default: ``1``.
        downsample_first: pool the input rather than the output. Default: ``True``.
        activation: kecam activation name. Default: ``"relu"``.
        name: kecam's ``name=``.

    Shape:
        ``[B, H, W, C] -> [B, H', W', C]``, ``H' = H`` or ``ceil(H / 2)`` when ``strides > 1``.
    """

    def __init__(
        self, dims: int, *, kernel_size: int = 3, strides: int = 1, downsample_first: bool = True,
        activation: str | None = "relu", name: str | None = None,
    ):  # fmt: skip
        super().__init__(name)
        _check_positive(kernel_size=kernel_size, strides=strides)
        dims = check_block("CotAttention", dims, downsample_first=downsample_first)
        check_size(dims * dims * kernel_size**2, f"CotAttention: kernel_size={kernel_size}")
        if dims % 8:
            raise ValueError(
                f"CotAttention: the input_shape's channels dims={dims} must be divisible by 8 "
                "(kecam's reduction)"
            )
        if kernel_size % 2 == 0:
            raise ValueError(
                f"kernel_size={kernel_size} must be odd: kecam's key branch grows an even kernel's "
                "map by one pixel and the concat fails"
            )
        self.kernel_size = kernel_size
        self.pool_input = downsample_first and strides > 1
        self.pool_output = not downsample_first and strides > 1
        groups = dims // 8
        self.key_conv = Conv2dNoBias(
            dims, dims, kernel_size, padding=kernel_size // 2, groups=4, name=self.sub("key_")
        )
        self.key_bn = BatchNormActivation(dims, activation=activation, name=self.sub("key_"))
        self.ww1_conv = Conv2dNoBias(2 * dims, dims // 2, 1, name=self.sub("embed_ww_1_"))
        self.ww1_bn = BatchNormActivation(
            dims // 2, activation=activation, name=self.sub("embed_ww_1_")
        )
        taps = kernel_size * kernel_size
        self.ww2_conv = Conv2dNoBias(
            dims // 2, taps * groups, 1, use_bias=True, name=self.sub("embed_ww_2_")
        )
        self.ww_norm = GroupNorm(taps * groups, groups, name=self.sub("embed_ww_"))
        self.embed1_conv = Conv2dNoBias(dims, dims, 1, name=self.sub("embed_1_"))
        self.embed1_bn = BatchNormActivation(dims, name=self.sub("embed_1_"))
        self.embed2_bn = BatchNormActivation(dims, activation="swish", name=self.sub("embed_2_"))
        se_dims = max(dims * 2 // 4, 32)
        self.se1_conv = Conv2dNoBias(dims, se_dims, 1, use_bias=True, name=self.sub("attn_se_1_"))
        self.se_bn = BatchNormActivation(se_dims, activation=activation, name=self.sub("attn_se_"))
        self.se2_conv = Conv2dNoBias(
            se_dims, dims * 2, 1, use_bias=True, name=self.sub("attn_se_2_")
        )

    def __call__(self, x: mx.array) -> mx.array:
        if self.pool_input:
            x = _avg_pool_3x3_s2(x)
        batch, height, width, dims = x.shape
        k = self.kernel_size
        key = self.key_bn(self.key_conv(x))
        ww = self.ww1_bn(self.ww1_conv(mx.concatenate([x, key], axis=-1)))
        ww = self.ww_norm(self.ww2_conv(ww))  # channel g*k*k + s: tap s of group g
        ww = ww.reshape(batch, height, width, 1, dims // 8, k * k)
        embed = self.embed1_bn(self.embed1_conv(x))
        patches = ops.extract_patches(embed, k, padding=k // 2)  # [B, H, W, k, k, C]
        # channel c = r * (C/8) + g shares group g's kernel
        patches = patches.reshape(batch, height, width, k * k, 8, dims // 8)
        local = (patches.transpose(0, 1, 2, 4, 5, 3) * ww).sum(axis=-1)
        local = self.embed2_bn(local.reshape(batch, height, width, dims))
        attn = (local + key).mean(axis=(1, 2), keepdims=True)
        attn = self.se2_conv(self.se_bn(self.se1_conv(attn)))
        attn = mx.softmax(attn.reshape(batch, 1, 1, dims, 2), axis=-1, precise=True)
        out = local * attn[..., 0] + key * attn[..., 1]
        return _avg_pool_3x3_s2(out) if self.pool_output else out


def _outlook_heads(embed_dim: int, num_heads: int) -> int:
    _check_positive(embed_dim=embed_dim, num_heads=num_heads)
    if embed_dim % num_heads:
        raise ValueError(
            f"num_heads={num_heads} must divide embed_dim={embed_dim} (kecam's reshape fails; "
            "note kecam's order outlook_attention(inputs, embed_dim, num_heads))"
        )
    return embed_dim // num_heads


class OutlookAttention(KerasModule):
    """VOLO outlook attention (kecam ``outlook_attention``).

    Every position of the ``ceil(H/s) x ceil(W/s)`` grid predicts, from the average-pooled input,
    a ``k*k x k*k`` attention per head among the ``k x k`` values around it; the values are the
    unfolded patches of ``x @ Wv`` (:func:`ops.extract_patches`, stride ``s``, zero padding
    ``k // 2``) and the results are summed back onto the map (:func:`ops.fold`).

    kecam rejects ``k // 2 >= strides`` (its Conv2DTranspose fold needs ``output_padding <
    strides``: strides 1, or k=5 with strides 2) and a grid that does not match ``ceil(H/s)``
    (even kernels on divisible maps); we raise for both. ``kernel_size=1`` works in kecam but
    returns a smaller map (``(ceil(H/s) - 1) * s + 1``), and so does this module. kecam's
    ``padding`` argument is unused (the pad is always ``k // 2``).

    Args:
        in_dims: input channels.
        embed_dim: output channels ``E``.
        num_heads: heads; must divide ``embed_dim``. Default: ``8``.
        kernel_size: ``k``. Default: ``3``.
        strides: ``s``. Default: ``2``.
        attn_dropout: dropout on the attention weights (training). Default: ``0``.
        output_dropout: dropout after the output projection (training). Default: ``0``.
        scale: logit scale. Default: ``(E / heads) ** -0.5`` (kecam 1.4.3 and PyTorch VOLO;
            kecam 1.3.1 multiplied by ``sqrt(E / heads)``).
        name: kecam's ``name=`` (layers ``v``, ``attn``, ``out``; the constant
            ``fold_convtrans`` identity kernel is checked, not loaded).

    Shape:
        ``[B, H, W, in_dims] -> [B, H, W, embed_dim]`` (smaller for ``kernel_size=1``).
    """

    def __init__(
        self, in_dims: int, embed_dim: int, *, num_heads: int = 8, kernel_size: int = 3,
        strides: int = 2, attn_dropout: float = 0, output_dropout: float = 0,
        scale: float | None = None, input_size: tuple[int, int] | None = None,
        name: str | None = None,
    ):  # fmt: skip
        super().__init__(name)
        what = "OutlookAttention"
        in_dims = check_block(what, in_dims)
        head_dim = _outlook_heads(embed_dim, num_heads)
        _check_positive(kernel_size=kernel_size, strides=strides)
        check_dense(what, in_dims, kernel_size**4 * num_heads, "kernel_size, num_heads")
        check_dense(what, max(in_dims, embed_dim), embed_dim, "embed_dim")
        if scale is not None:
            scale = check_float(scale, "scale", what=what)
        if kernel_size // 2 >= strides:
            raise ValueError(
                f"kernel_size={kernel_size} needs strides > kernel_size // 2 = {kernel_size // 2}, "
                f"got strides={strides} (kecam's fold: output padding must be < strides)"
            )
        if input_size is not None:
            grid = tuple(-(-n // strides) for n in input_size)
            # the SAME average pool pads the map to whole strides: grid * strides per axis
            check_size(
                grid[0] * grid[1] * strides**2 * in_dims,
                f"{what}: strides={strides} on {tuple(input_size)} (its padded average pool)",
            )
            rows, cols = ops.unfold_axis_maps(input_size, kernel_size, strides, 1, kernel_size // 2)
            if (rows.grid, cols.grid) != grid:
                raise ValueError(
                    f"kernel_size={kernel_size} with strides={strides} on {tuple(input_size)}: "
                    f"the unfold gives a {rows.grid}x{cols.grid} grid, the pooled attention "
                    f"{grid[0]}x{grid[1]} (kecam's reshape fails)"
                )
        self.num_heads, self.head_dim = num_heads, head_dim
        self.kernel_size, self.strides = kernel_size, strides
        self.scale = head_dim**-0.5 if scale is None else scale
        self.v = nn.Linear(in_dims, embed_dim, bias=False)
        self.attn = nn.Linear(in_dims, kernel_size**4 * num_heads)
        self.out = nn.Linear(embed_dim, embed_dim)
        self.attn_drop = Dropout(attn_dropout, what="attn_dropout")
        self.out_drop = Dropout(output_dropout, what="output_dropout")
        taps = kernel_size * kernel_size
        # kecam stores its fold's identity Conv2DTranspose kernel; the loader checks it
        identity = np.eye(taps, dtype=np.float32)
        self._fold_kernel = identity.reshape(kernel_size, kernel_size, 1, taps)

    def keras_layers(self):
        return (
            KerasLayer(self.sub("v"), "Dense", self.v),
            KerasLayer(self.sub("attn"), "Dense", self.attn),
            KerasLayer(self.sub("out"), "Dense", self.out),
            KerasLayer(self.sub("fold_convtrans"), "Constant", weights=(self._fold_kernel,)),
        )

    def __call__(self, x: mx.array) -> mx.array:
        batch, height, width, _ = x.shape
        k, s, heads = self.kernel_size, self.strides, self.num_heads
        rows, cols = -(-height // s), -(-width // s)
        pooled = _avg_pool_tf(x, s, same=bool(height % s or width % s))
        attn = (self.attn(pooled) * self.scale).reshape(batch, rows, cols, heads, k * k, k * k)
        attn = self.attn_drop(mx.softmax(attn, axis=-1, precise=True))
        patches = ops.extract_patches(self.v(x), k, stride=s, padding=k // 2)
        patches = patches.reshape(batch, rows, cols, k * k, heads, self.head_dim)
        mixed = attn @ patches.transpose(0, 1, 2, 4, 3, 5)
        mixed = mixed.transpose(0, 1, 2, 4, 3, 5).reshape(batch, rows, cols, k, k, -1)
        # kecam's canvas is (rows-1)*s + k (+ zero output padding), cropped at k//2
        out_h, out_w = min(height, (rows - 1) * s + k), min(width, (cols - 1) * s + k)
        fold_h = min(out_h, (rows - 1) * s + k - k // 2)
        fold_w = min(out_w, (cols - 1) * s + k - k // 2)
        out = ops.fold(mixed, (fold_h, fold_w), stride=s, padding=k // 2)
        if (fold_h, fold_w) != (out_h, out_w):
            out = mx.pad(out, [(0, 0), (0, out_h - fold_h), (0, out_w - fold_w), (0, 0)])
        return self.out_drop(self.out(out))


class OutlookAttentionSimple(KerasModule):
    """VOLO outlook attention on non-overlapping ``k x k`` windows (kecam
    ``outlook_attention_simple``): no unfold or fold, the windows are a partition
    (:func:`ops.window_partition`, zero padding bottom/right).

    kecam computes the pad from the height only and applies it to both axes, so it needs
    ``ceil(H/k)*k - H == ceil(W/k)*k - W`` (we raise otherwise, as its reshape fails). The
    attention logits come from each window's mean, zero padding counted.

    Args:
        in_dims: input channels.
        embed_dim: output channels ``E``.
        num_heads: heads; must divide ``embed_dim``. Default: ``6``.
        kernel_size: window ``k``. Default: ``3``.
        attn_dropout: dropout on the attention weights (training). Default: ``0``.
        scale: logit scale. Default: ``(E / heads) ** -0.5`` (kecam 1.4.3).
        input_size: ``(H, W)`` to validate the padding rule at construction.
        name: kecam's ``name=`` (layers ``v``, ``attn``, ``out``).

    Shape:
        ``[B, H, W, in_dims] -> [B, H, W, embed_dim]``
    """

    def __init__(
        self, in_dims: int, embed_dim: int, *, num_heads: int = 6, kernel_size: int = 3,
        attn_dropout: float = 0, scale: float | None = None,
        input_size: tuple[int, int] | None = None, name: str | None = None,
    ):  # fmt: skip
        super().__init__(name)
        what = "OutlookAttentionSimple"
        in_dims = check_block(what, in_dims)
        head_dim = _outlook_heads(embed_dim, num_heads)
        _check_positive(kernel_size=kernel_size)
        check_dense(what, in_dims, kernel_size**4 * num_heads, "kernel_size, num_heads")
        check_dense(what, max(in_dims, embed_dim), embed_dim, "embed_dim")
        if scale is not None:
            scale = check_float(scale, "scale", what=what)
        if input_size is not None:
            pads = [-(-n // kernel_size) * kernel_size - n for n in input_size]
            if pads[0] != pads[1]:
                raise ValueError(
                    f"kernel_size={kernel_size} on {tuple(input_size)}: kecam pads both axes by "
                    f"the height's {pads[0]}, the width needs {pads[1]} (its reshape fails)"
                )
        self.num_heads, self.head_dim, self.kernel_size = num_heads, head_dim, kernel_size
        self.scale = head_dim**-0.5 if scale is None else scale
        self.v = nn.Linear(in_dims, embed_dim, bias=False)
        self.attn = nn.Linear(in_dims, kernel_size**4 * num_heads)
        self.out = nn.Linear(embed_dim, embed_dim)
        self.attn_drop = Dropout(attn_dropout, what="attn_dropout")

    def keras_layers(self):
        return (
            KerasLayer(self.sub("v"), "Dense", self.v),
            KerasLayer(self.sub("attn"), "Dense", self.attn),
            KerasLayer(self.sub("out"), "Dense", self.out),
        )

    def __call__(self, x: mx.array) -> mx.array:
        height, width = x.shape[1:3]
        k, heads, taps = self.kernel_size, self.num_heads, self.kernel_size**2
        windows = ops.window_partition(x, k)  # [B*nW, k, k, C]
        count = windows.shape[0]
        attn = self.attn(windows.mean(axis=(1, 2))) * self.scale
        attn = mx.softmax(attn.reshape(count, heads, taps, taps), axis=-1, precise=True)
        values = self.v(windows).reshape(count, taps, heads, self.head_dim).transpose(0, 2, 1, 3)
        out = (self.attn_drop(attn) @ values).transpose(0, 2, 1, 3).reshape(count, k, k, -1)
        return self.out(ops.window_reverse(out, (height, width), k))


class NeighborhoodAttention(KerasModule):
    """NAT / DiNAT neighbourhood attention (kecam ``neighborhood_attention``).

    Every query attends to the ``k x k`` (dilated) neighbourhood whose start is clamped inside
    the map (kecam's VALID extraction plus replicate padding of the window grid), with a
    per-head relative-position bias. A map smaller than ``k * dilation`` is zero-padded at the
    bottom/right first (padded tokens carry the ``qkv`` bias and take part as keys), and the
    output is cropped back. The attention runs on :func:`ops.neighborhood_attention`, which never
    holds the ``k*k`` copies of keys and values. ``C % num_heads != 0`` works as in kecam
    (``E < C``, the output Dense maps back to ``C``).

    Args:
        dims: input channels ``C``.
        input_size: ``(H, W)``.
        kernel_size: odd ``k``. Default: ``7``.
        num_heads: heads. Default: ``4``.
        key_dim: per-head width; ``0`` means ``C // num_heads``. Default: ``0``.
        out_weight: the output Dense (to ``C``). Default: ``True``.
        qkv_bias, out_bias: Dense biases. Default: ``True``.
        dilation_rate: int or ``(dh, dw)`` (DiNAT). Default: ``1``.
        attn_dropout, output_dropout: dropouts (training). Default: ``0``.
        name: kecam's ``name=`` (layers ``qkv``, ``pos``, ``output``).

    Shape:
        ``[B, H, W, C] -> [B, H, W, C]`` (``[B, H, W, heads * key_dim]`` without ``out_weight``)
    """

    def __init__(
        self, dims: int, *, input_size: tuple[int, int], kernel_size: int = 7, num_heads: int = 4,
        key_dim: int = 0, out_weight: bool = True, qkv_bias: bool = True, out_bias: bool = True,
        dilation_rate=1, attn_dropout: float = 0, output_dropout: float = 0,
        name: str | None = None,
    ):  # fmt: skip
        super().__init__(name)
        what = "NeighborhoodAttention"
        _check_positive(kernel_size=kernel_size, num_heads=num_heads)
        dims = check_block(what, dims, out_weight=out_weight, qkv_bias=qkv_bias, out_bias=out_bias)
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size={kernel_size} must be odd (kecam's reshape fails)")
        key_dim = check_int(key_dim, "key_dim", what=what)
        key_dim = key_dim if key_dim > 0 else dims // num_heads
        if key_dim < 1:
            raise ValueError(f"num_heads={num_heads} leaves no key channels of the {dims} inputs")
        check_dense(what, max(dims, num_heads * key_dim), 3 * num_heads * key_dim, "key_dim")
        self.dilation = check_pair(dilation_rate, "dilation_rate", minimum=1, what=what)
        height, width = input_size
        self.padded = (
            max(height, kernel_size * self.dilation[0]),
            max(width, kernel_size * self.dilation[1]),
        )
        self.kernel_size, self.num_heads, self.key_dim = kernel_size, num_heads, key_dim
        embed = num_heads * key_dim
        check_size(
            self.padded[0] * self.padded[1] * max(3 * embed, num_heads * kernel_size**2),
            f"{what}: kernel_size={kernel_size} with dilation_rate={self.dilation} pads the map "
            f"to {self.padded[0]}x{self.padded[1]}",
        )
        self.qkv = nn.Linear(dims, embed * 3, bias=qkv_bias)
        self.pos = MultiHeadRelativePositionalKernelBias(
            num_heads, *self.padded, kernel_size, dilation_rate=self.dilation, name=self.sub("pos")
        )
        self.attn_drop = Dropout(attn_dropout, what="attn_dropout")
        self.out_weight = out_weight
        if out_weight:
            self.output = nn.Linear(embed, dims, bias=out_bias)
        self.out_drop = Dropout(output_dropout, what="output_dropout")

    def keras_layers(self):
        layers = [KerasLayer(self.sub("qkv"), "Dense", self.qkv)]
        if self.out_weight:
            layers.append(KerasLayer(self.sub("output"), "Dense", self.output))
        return tuple(layers)

    def __call__(self, x: mx.array) -> mx.array:
        batch, height, width, _ = x.shape
        pad_h, pad_w = self.padded[0] - height, self.padded[1] - width
        if pad_h or pad_w:
            x = mx.pad(x, [(0, 0), (0, pad_h), (0, pad_w), (0, 0)])
        heads, key_dim = self.num_heads, self.key_dim
        qkv = self.qkv(x).reshape(batch, *self.padded, 3, heads, key_dim)
        q, k, v = qkv[..., 0, :, :], qkv[..., 1, :, :], qkv[..., 2, :, :]
        table = self.pos.positional_embedding.reshape(heads, *(2 * self.kernel_size - 1,) * 2)
        out = ops.neighborhood_attention(
            q,
            k,
            v,
            self.kernel_size,
            dilation=self.dilation,
            bias=table,
            dropout=self.attn_drop if self.attn_drop.active else None,
        )
        out = out.reshape(batch, *self.padded, heads * key_dim)[:, :height, :width]
        if self.out_weight:
            out = self.output(out)
        return self.out_drop(out)


class HaloAttention(KerasModule):
    """HaloNet blocked local attention (kecam ``halo_attention``).

    Queries in non-overlapping ``b x b`` blocks (``b / strides`` after the strided 1x1 query
    conv) attend to their block grown by ``halo_size`` on every side (:func:`ops.halo_blocks`,
    zeros outside the map), plus a relative-position term computed from the unscaled query
    (:func:`ops.halo_attention`).
    The key/value conv's channels are per-head interleaved ``[key | value]``. When ``strides``
    does not divide ``block_size``, kecam attends at stride 1 and averages 2x2 at the end.

    Args:
        dims: input channels ``C``.
        input_size: ``(H, W)``, multiples of ``block_size``.
        num_heads: heads. Default: ``8``.
        key_dim: per-head width; ``0 < key_dim <= 1`` is a ratio of ``C`` (kecam's
            ``make_divisible(C * key_dim, 8) // num_heads``); ``0`` means ``C // num_heads``.
        block_size: ``b``. Default: ``4``.
        halo_size: the halo. Default: ``1``.
        strides: query stride. Default: ``1``.
        out_shape: output channels ``O`` (``None``: ``C``); a multiple of ``num_heads``.
        out_weight: the output Dense. Default: ``True``.
        out_bias: its bias. Default: ``False``.
        attn_dropout: dropout on the attention weights (training). Default: ``0``.
        name: kecam's ``name=`` (layers ``query_conv``, ``key_value_conv``, ``pos_emb``,
            ``output``).

    Shape:
        ``[B, H, W, C] -> [B, H / s, W / s, O]`` (``[B, H // 2, W // 2, O]`` when ``s`` does not
        divide ``b``).
    """

    def __init__(
        self, dims: int, *, input_size: tuple[int, int], num_heads: int = 8, key_dim: float = 0,
        block_size: int = 4, halo_size: int = 1, strides: int = 1, out_shape: int | None = None,
        out_weight: bool = True, out_bias: bool = False, attn_dropout: float = 0,
        name: str | None = None,
    ):  # fmt: skip
        super().__init__(name)
        what = "HaloAttention"
        _check_positive(num_heads=num_heads, block_size=block_size, strides=strides)
        dims = check_block(what, dims, out_weight=out_weight, out_bias=out_bias)
        halo_size = check_int(halo_size, "halo_size", minimum=0, what=what)
        # kecam: an int width above 1, a fraction of the channels below (make_divisible'd)
        key_dim = check_float(key_dim, "key_dim", what=what)
        if key_dim > 1:
            key_dim = int(key_dim)
        elif key_dim > 0:
            key_dim = make_divisible(dims * key_dim, divisor=8) // num_heads
        else:
            key_dim = dims // num_heads
        out_dims = dims if out_shape is None else check_int(out_shape, "out_shape", what=what)
        check_dense(what, dims, num_heads * key_dim + out_dims, "num_heads, key_dim, out_shape")
        check_dense(what, out_dims, out_dims, "out_shape")
        if key_dim < 1 or out_dims < 1 or out_dims % num_heads:
            raise ValueError(
                f"num_heads={num_heads} must leave a key width (got {key_dim}) and divide the "
                f"output channels out_shape={out_dims} (kecam's reshape fails)"
            )
        height, width = input_size
        if height % block_size or width % block_size:
            raise ValueError(
                f"block_size={block_size} must divide the input {height}x{width} "
                "(kecam's reshape fails)"
            )
        self.avg_down = block_size % strides != 0
        self.strides = 1 if self.avg_down else strides
        self.query_block = block_size // self.strides
        self.block_size, self.halo_size = block_size, halo_size
        self.num_heads, self.key_dim, self.value_dim = num_heads, key_dim, out_dims // num_heads
        window = block_size + 2 * halo_size
        embed = num_heads * key_dim
        blocks = (height // block_size) * (width // block_size)
        check_size(
            blocks * window**2 * (embed + out_dims),
            f"{what}: halo_size={halo_size} with block_size={block_size} (the key/value windows "
            "of one image)",
        )
        self.query = nn.Linear(dims, embed, bias=False)
        self.key_value = nn.Linear(dims, embed + out_dims, bias=False)
        self.pos_emb = RelativePositionalEmbedding(
            key_dim, self.query_block, self.query_block, position_height=window,
            name=self.sub("pos_emb"),
        )  # fmt: skip
        self.attn_drop = Dropout(attn_dropout, what="attn_dropout")
        self.out_weight = out_weight
        if out_weight:
            self.output = nn.Linear(num_heads * self.value_dim, out_dims, bias=out_bias)

    def keras_layers(self):
        layers = [
            KerasLayer(self.sub("query_conv"), "Conv2D", self.query),
            KerasLayer(self.sub("key_value_conv"), "Conv2D", self.key_value),
        ]
        if self.out_weight:
            layers.append(KerasLayer(self.sub("output"), "Dense", self.output))
        return tuple(layers)

    def __call__(self, x: mx.array) -> mx.array:
        heads, kd, vd = self.num_heads, self.key_dim, self.value_dim
        s = self.strides
        q = self.query(x[:, ::s, ::s])
        q = q.reshape(*q.shape[:3], heads, kd)
        kv = self.key_value(x)
        kv = kv.reshape(*kv.shape[:3], heads, kd + vd)
        out = ops.halo_attention(
            q, kv[..., :kd], kv[..., kd:], self.block_size, self.halo_size,
            pos_rows=self.pos_emb.r_height, pos_cols=self.pos_emb.r_width,
            dropout=self.attn_drop if self.attn_drop.active else None,
        )  # fmt: skip
        out = out.reshape(*out.shape[:3], heads * vd)
        if self.avg_down:
            out = _avg_pool_tf(out, 2, same=False)
        return self.output(out) if self.out_weight else out


__all__ = [
    "CotAttention",
    "HaloAttention",
    "NeighborhoodAttention",
    "OutlookAttention",
    "OutlookAttentionSimple",
    "RSoftmax",
    "SplitAttentionConv2d",
]
