"""kecam's common building blocks (``common_layers``, ``res_mlp``, ``mlp_mixer``, ``volo``).

Every module is channels-last and computes what the kecam block of the same role computes in
inference; ``module.train()`` switches drop paths on.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import mlx.core as mx
import mlx.nn as nn
import numpy as np

from .. import ops
from .base import KerasLayer, KerasModule
from .utils import (
    check_bool,
    check_choice,
    check_float,
    check_int,
    check_pair,
    check_shape,
    check_size,
    check_sizes,
    check_str,
    make_divisible,
)

# MLX's own activations (``nn.relu``, ``nn.gelu``, ``nn.prelu``, ...) are ``mx.compile``d, and an
# interpreter that called a compiled function from several threads aborts at exit ("terminate
# called without an active exception": MLX's per-thread compile cache; README, Known issues).
# These are the same formulas, uncompiled, so that blocks run from threads exit cleanly (on the
# CPU they are as fast).


def relu(x: mx.array) -> mx.array:
    return mx.maximum(x, 0)


def _relu6(x):
    return mx.minimum(mx.maximum(x, 0), 6.0)


def _silu(x):
    return x * mx.sigmoid(x)


def _gelu(x):
    return x * (1 + mx.erf(x / math.sqrt(2))) / 2


def _gelu_tanh(x):
    return 0.5 * x * (1 + mx.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))


def _gelu_sigmoid(x):
    return x * mx.sigmoid(1.702 * x)


def _elu(x, alpha: float = 1.0):
    return mx.where(x > 0, x, alpha * (mx.exp(x) - 1))


def _softplus(x):
    return mx.logaddexp(x, 0)


class PReLU(nn.PReLU):
    """``nn.PReLU`` (per-channel ``weight``), uncompiled."""

    def __call__(self, x: mx.array) -> mx.array:
        return mx.maximum(0, x) + self.weight * mx.minimum(0, x)


def _hard_swish(x):
    return x * mx.minimum(mx.maximum(x + 3, 0), 6) / 6


def _gelu_linear(x):
    erf = mx.maximum(mx.abs(x) * -0.7071 + 1.769, 0)
    erf = erf**2 * -0.1444 + 0.5
    return x * (erf * mx.sign(x) + 0.5)


def _leaky_relu(alpha: float) -> Callable[[mx.array], mx.array]:
    return lambda x: mx.where(x >= 0, x, alpha * x)


# Names that activation_by_name resolves by value, lower-cased as kecam 1.4.3 compares them.
_KECAM_ACTIVATIONS: dict[str, Callable[[mx.array], mx.array]] = {
    "hard_swish": _hard_swish,
    "leaky_relu": _leaky_relu(0.3),  # keras.layers.LeakyReLU's default alpha
    "mish": lambda x: x * mx.tanh(_softplus(x)),
    "phish": lambda x: x * mx.tanh(_gelu(x)),
    "hard_sigmoid_torch": lambda x: mx.clip(x / 6 + 0.5, 0, 1),
    "squaredrelu": lambda x: mx.square(relu(x)),
    "squared_relu": lambda x: mx.square(relu(x)),
}

# Names kecam hands to keras.layers.Activation unchanged (case-sensitive), as tf-keras defines them.
_KERAS_ACTIVATIONS: dict[str, Callable[[mx.array], mx.array]] = {
    "relu": relu,
    "relu6": _relu6,
    "swish": _silu,
    "silu": _silu,
    "gelu": _gelu,  # the exact erf form
    "sigmoid": mx.sigmoid,
    "tanh": mx.tanh,
    "hard_sigmoid": lambda x: mx.clip(0.2 * x + 0.5, 0, 1),
    "elu": _elu,
    "selu": lambda x: _elu(x, 1.67326) * 1.0507,
    "softplus": _softplus,
    "softsign": lambda x: x / (1 + mx.abs(x)),
    "exponential": mx.exp,
    "linear": lambda x: x,
    "softmax": lambda x: mx.softmax(x, axis=-1),
    "log_softmax": lambda x: x - mx.logsumexp(x, axis=-1, keepdims=True),
}

# Prefixes kecam matches with startswith (after lower-casing).
_KECAM_PREFIXES: dict[str, Callable[[mx.array], mx.array]] = {
    "gelu/app": _gelu_tanh,
    "gelu/linear": _gelu_linear,
    "gelu/quick": _gelu_sigmoid,
}


def _mlx_eps(epsilon: float) -> float:
    """MLX's norms refuse ``eps=0``, which kecam computes: the smallest normal float32 adds
    nothing to a variance above ~1e-31, so it stands for 0 there."""
    return max(epsilon, float(np.finfo(np.float32).tiny))


def _float32_statistics(norm: Callable[[mx.array], mx.array]) -> Callable[[mx.array], mx.array]:
    """Run a normalisation in float32 for half-precision inputs (DESIGN.md: stats in float32)."""

    def run(x: mx.array) -> mx.array:
        if x.dtype in (mx.float16, mx.bfloat16):
            return norm(x.astype(mx.float32)).astype(x.dtype)
        return norm(x)

    return run


class Activation(KerasModule):
    """kecam's ``activation_by_name``: every activation name kecam 1.4.3 accepts.

    Names kecam special-cases are matched lower-cased (``hard_swish``, ``leaky_relu`` with
    alpha 0.3, ``leaky_relu/<alpha>``, ``mish``, ``phish``, ``prelu``, ``gelu/app...`` (tanh
    form), ``gelu/linear``, ``gelu/quick``, ``hard_sigmoid_torch``, ``squared_relu``,
    ``star_relu``); every other name is a tf-keras activation, case-sensitive, where ``gelu``
    is the exact erf form and ``hard_sigmoid`` is ``clip(0.2 x + 0.5, 0, 1)``.

    Args:
        activation: the kecam activation name; ``None`` is the identity.
        dims: channels, needed by ``prelu`` (a per-channel slope).
        name: kecam's ``name=``; the Keras layer is ``name + activation``.

    Shape:
        ``[B, ..., C] -> [B, ..., C]``
    """

    def __init__(self, activation: str | None = "relu", *, dims: int | None = None, name=None):
        super().__init__(name)
        self.activation = activation
        self._fn: Callable[[mx.array], mx.array] | None = None
        if dims is not None:
            dims = check_int(dims, "dims", minimum=1, what="Activation")
        if activation is None:
            self._fn = lambda x: x
            return
        lower = check_str(activation, "activation", what="Activation").lower()
        if lower == "prelu":
            if dims is None:
                raise ValueError("activation='prelu' needs dims (the channel count)")
            self.prelu = PReLU(dims, init=0.25)
            self._fn = self.prelu
        elif lower in ("starrelu", "star_relu"):
            self.gain = mx.array(1.0)
            self.bias = mx.array(0.0)
            self._fn = lambda x: mx.square(relu(x)) * self.gain + self.bias
        elif lower.startswith("leaky_relu/"):
            try:
                self._fn = _leaky_relu(float(lower.split("/")[-1]))
            except ValueError:
                raise ValueError(f"activation={activation!r}: the alpha is not a number") from None
        elif lower in _KECAM_ACTIVATIONS:
            self._fn = _KECAM_ACTIVATIONS[lower]
        else:
            prefix = next((p for p in _KECAM_PREFIXES if lower.startswith(p)), None)
            self._fn = _KECAM_PREFIXES[prefix] if prefix else _KERAS_ACTIVATIONS.get(activation)
        if self._fn is None:
            known = sorted({*_KECAM_ACTIVATIONS, *_KERAS_ACTIVATIONS, *_KECAM_PREFIXES})
            raise ValueError(
                f"activation={activation!r} is not one kecam accepts (Keras names are "
                f"case-sensitive); known: {known}, prelu, star_relu, leaky_relu/<alpha>"
            )

    def keras_layers(self):
        lower = (self.activation or "").lower()
        if lower == "prelu":
            return (KerasLayer(self.sub(self.activation), "PReLU", self.prelu),)
        if lower in ("starrelu", "star_relu"):
            return (KerasLayer(self.sub(self.activation), "Weights", self, ("gain", "bias")),)
        return ()

    def __call__(self, x: mx.array) -> mx.array:
        return self._fn(x)


def _conv_padding(padding, kernel: tuple[int, int], use_torch_padding: bool):
    """kecam's padding rule: ``"same"`` means torch-style ``k // 2`` (dilation ignored) unless
    ``use_torch_padding=False``, where it means TF SAME; an int or pair is an explicit pad."""
    if isinstance(padding, str):
        mode = check_choice(padding, "padding", ("same", "valid"), ignore_case=True)
        if mode == "valid":
            return (0, 0)
        return (kernel[0] // 2, kernel[1] // 2) if use_torch_padding else "tf_same"
    pads = check_pair(padding, "padding", minimum=0)
    if max(pads) == 0:
        return (0, 0)
    return pads if use_torch_padding else "tf_same"


class Conv2d(nn.Conv2d):
    """``nn.Conv2d`` (same parameters, so the same loading rules) computed by
    :func:`ops.conv2d`, which has faster CPU forms for grouped and depthwise convolutions."""

    def __call__(self, x: mx.array) -> mx.array:
        return ops.conv2d(
            x, self.weight, self.get("bias"), stride=self.stride, padding=self.padding,
            dilation=self.dilation, groups=self.groups,
        )  # fmt: skip


class _Conv2d(KerasModule):
    """A kecam conv: ``"same"`` / explicit / TF-SAME padding around ``mx.conv2d``."""

    def __init__(
        self,
        in_dims: int,
        out_dims: int,
        kernel_size,
        *,
        strides=1,
        padding="valid",
        use_bias: bool = False,
        groups: int = 1,
        dilation_rate=1,
        use_torch_padding: bool = True,
        input_size: tuple[int, int] | None = None,
        name: str | None = None,
    ):
        super().__init__(name)
        what = type(self).__name__
        in_dims = check_int(in_dims, "in_dims", minimum=1, what=what)
        # Keras refuses filters <= 0; MLX's CPU conv would end the process on a BLAS error
        out_dims = check_int(out_dims, "filters", minimum=1, what=what)
        self.kernel_size = check_pair(kernel_size, "kernel_size", minimum=1, what=what)
        self.strides = check_pair(strides, "strides", minimum=1, what=what)
        self.dilation = check_pair(dilation_rate, "dilation_rate", minimum=1, what=what)
        groups = max(1, check_int(groups, "groups", what=what))  # kecam: max(1, groups)
        use_bias = check_bool(use_bias, "use_bias", what=what)
        use_torch_padding = check_bool(use_torch_padding, "use_torch_padding", what=what)
        kh, kw = self.kernel_size
        sized_by = f"filters={out_dims}, kernel_size={self.kernel_size}, groups={groups}"
        check_size(out_dims * kh * kw * (in_dims // groups), f"{what}: {sized_by}")
        if max(self.strides) > 1 and max(self.dilation) > 1:
            raise ValueError(
                f"strides={self.strides} with dilation_rate={self.dilation}: Keras Conv2D does not "
                "support both above 1"
            )
        if in_dims % groups or out_dims % groups:
            raise ValueError(
                f"groups={groups} must divide the input channels {in_dims} and filters {out_dims}"
            )
        self.padding = _conv_padding(padding, self.kernel_size, use_torch_padding)
        self.groups, self._group_dims = groups, in_dims // groups
        if input_size is not None:  # before the kernel is allocated
            self.output_size(*check_sizes(what, height=input_size[0], width=input_size[1]))
        self.conv = Conv2d(
            in_dims, out_dims, self.kernel_size, stride=self.strides, dilation=self.dilation,
            groups=groups, bias=use_bias,
        )  # fmt: skip

    def pads(self, height: int, width: int) -> list[tuple[int, int]]:
        """``[(top, bottom), (left, right)]`` for an input of this size."""
        if self.padding == "tf_same":
            return [
                ops.same_pads(size, k, s, d)
                for size, k, s, d in zip(
                    (height, width), self.kernel_size, self.strides, self.dilation
                )
            ]
        return [(p, p) for p in self.padding]

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        """The output map of an input of this size; a ``ValueError`` where it is empty (Keras
        cannot build a VALID conv whose dilated kernel is larger than the padded map)."""
        (top, bottom), (left, right) = self.pads(height, width)
        padded = (height + top + bottom) * (width + left + right) * self._group_dims
        check_size(padded * self.groups, f"{type(self).__name__}: padding={self.padding}")
        out = []
        for size, pad, k, s, d in zip(
            (height, width), (top + bottom, left + right), self.kernel_size, self.strides,
            self.dilation,
        ):  # fmt: skip
            out.append((size + pad - d * (k - 1) - 1) // s + 1)
        if min(out) < 1:
            raise ValueError(
                f"{type(self).__name__}: kernel_size={self.kernel_size} with "
                f"dilation_rate={self.dilation} is larger than the {height}x{width} input padded "
                f"by padding={self.padding}: the output would be empty (Keras cannot build it)"
            )
        return out[0], out[1]

    def __call__(self, x: mx.array) -> mx.array:
        (top, bottom), (left, right) = self.pads(x.shape[1], x.shape[2])
        if top or bottom or left or right:
            x = mx.pad(x, [(0, 0), (top, bottom), (left, right), (0, 0)])
        return self.conv(x)


class Conv2dNoBias(_Conv2d):
    """kecam's ``conv2d_no_bias``: a Conv2D with kecam's padding rule.

    ``padding="same"`` pads ``k // 2`` on both sides (torch style, dilation not taken into
    account), so an even kernel grows the output: k=2, s=2 on H=8 gives 5, as in kecam. With
    ``use_torch_padding=False`` it is TF SAME (the extra row/column at the bottom/right). An int
    or pair is an explicit symmetric pad.

    Args:
        in_dims: input channels.
        filters: output channels.
        kernel_size, strides, padding, use_bias, groups, use_torch_padding: as kecam's.
        dilation_rate: Keras's ``dilation_rate`` (kecam's ``**kwargs``).
        input_size: the ``(H, W)`` it is built for, if known: an empty output raises here.
        name: kecam's ``name=``; the Keras layer is ``name + "conv"``.

    Shape:
        ``[B, H, W, in_dims] -> [B, H', W', filters]``
    """

    def __init__(self, in_dims: int, filters: int, kernel_size=1, **kwargs):
        super().__init__(in_dims, filters, kernel_size, **kwargs)

    def keras_layers(self):
        return (KerasLayer(self.sub("conv"), "Conv2D", self.conv),)


class DepthwiseConv2dNoBias(_Conv2d):
    """kecam's ``depthwise_conv2d_no_bias``: a DepthwiseConv2D with kecam's padding rule.

    Args:
        dims: input channels.
        kernel_size, strides, padding, use_bias, use_torch_padding: as kecam's.
        depth_multiplier: Keras's ``depth_multiplier``; the output has ``dims * depth_multiplier``
            channels, channel ``c * M + m`` from input channel ``c``.
        dilation_rate: Keras's ``dilation_rate``.
        input_size: the ``(H, W)`` it is built for, if known: an empty output raises here.
        name: kecam's ``name=``; the Keras layer is ``name + "dw_conv"``.

    Shape:
        ``[B, H, W, dims] -> [B, H', W', dims * depth_multiplier]``
    """

    def __init__(self, dims: int, kernel_size, *, depth_multiplier: int = 1, **kwargs):
        what = "DepthwiseConv2dNoBias"
        depth_multiplier = check_int(depth_multiplier, "depth_multiplier", minimum=1, what=what)
        dims = check_int(dims, "dims", minimum=1, what=what)
        super().__init__(dims, dims * depth_multiplier, kernel_size, groups=dims, **kwargs)

    def keras_layers(self):
        return (KerasLayer(self.sub("dw_conv"), "DepthwiseConv2D", self.conv),)


class AntiAliasDownsample(KerasModule):
    """kecam's ``anti_alias_downsample``: a fixed binomial blur with TF SAME padding, strided.

    kecam ignores its ``padding`` argument and always pads TF SAME. With ``trainable=False``
    (the default) the kernel is a constant the loader checks; with ``True`` it is a weight.

    Args:
        dims: channels.
        kernel_size: the binomial filter size (3 gives ``[1, 2, 1] / 4`` per axis).
        strides: the downsampling stride.
        trainable: whether the kernel is a weight.
        name: kecam's ``name=``; the Keras layer is ``name + "anti_alias_down"``.

    Shape:
        ``[B, H, W, C] -> [B, ceil(H / s), ceil(W / s), C]``
    """

    def __init__(
        self, dims: int, kernel_size: int = 3, strides: int = 2, *, trainable: bool = False,
        name: str | None = None,
    ):  # fmt: skip
        super().__init__(name)
        what = "AntiAliasDownsample"
        dims = check_int(dims, "dims", minimum=1, what=what)
        kernel_size = check_int(kernel_size, "kernel_size", minimum=1, what=what)
        strides = check_int(strides, "strides", minimum=1, what=what)
        trainable = check_bool(trainable, "trainable", what=what)
        check_size(kernel_size * kernel_size * dims, f"{what}: kernel_size={kernel_size}")
        taps = np.array(np.poly1d((0.5, 0.5)) ** (kernel_size - 1), dtype=np.float32)
        self.keras_kernel = np.repeat((taps[:, None] * taps[None, :])[:, :, None, None], dims, 2)
        self.kernel_size, self.strides, self.trainable = kernel_size, strides, trainable
        kernel = mx.array(self.keras_kernel.transpose(2, 0, 1, 3))
        if trainable:
            self.weight = kernel
        else:
            self._kernel = kernel

    def keras_layers(self):
        name = self.sub("anti_alias_down")
        if self.trainable:
            return (KerasLayer(name, "DepthwiseConv2D", self),)
        return (KerasLayer(name, "Constant", weights=(self.keras_kernel,)),)

    def __call__(self, x: mx.array) -> mx.array:
        pads = [ops.same_pads(s, self.kernel_size, self.strides, 1) for s in x.shape[1:3]]
        kernel = self.weight if self.trainable else self._kernel
        x = mx.pad(x, [(0, 0), *pads, (0, 0)])
        return ops.conv2d(x, kernel.astype(x.dtype), stride=self.strides, groups=x.shape[-1])


class BatchNormActivation(KerasModule):
    """kecam's ``batchnorm_with_activation``: BatchNormalization then (or, with ``act_first``,
    after) ``activation_by_name``. Inference uses the moving statistics.

    Args:
        dims: channels (the last axis).
        activation: a kecam activation name or ``None``.
        zero_gamma: initialise gamma to zeros.
        epsilon: kecam's default 1e-5 (models ported from TF pass 1e-3).
        momentum: Keras momentum (MLX's is ``1 - momentum``).
        act_first: activation before the normalisation.
        name: kecam's ``name=``; Keras layers ``name + "bn"`` and ``name + activation``.

    Shape:
        ``[B, ..., C] -> [B, ..., C]``
    """

    def __init__(
        self, dims: int, *, activation: str | None = None, zero_gamma: bool = False,
        epsilon: float = 1e-5, momentum: float = 0.9, act_first: bool = False,
        name: str | None = None,
    ):  # fmt: skip
        super().__init__(name)
        what = "BatchNormActivation"
        dims = check_int(dims, "dims", minimum=1, what=what)
        zero_gamma = check_bool(zero_gamma, "zero_gamma", what=what)
        epsilon = check_float(epsilon, "epsilon", minimum=0, what=what)
        momentum = check_float(momentum, "momentum", what=what)
        act_first = check_bool(act_first, "act_first", what=what)
        self.bn = nn.BatchNorm(dims, eps=_mlx_eps(epsilon), momentum=1 - momentum)
        if zero_gamma:
            self.bn.weight = mx.zeros([dims])
        self.act = Activation(activation, dims=dims, name=name)
        self.act_first = act_first
        self._norm = _float32_statistics(self._batch_norm)

    def _batch_norm(self, x: mx.array) -> mx.array:
        # nn.BatchNorm takes rank 2 to 4; kecam normalises rank-5 inputs over the same channels
        if x.ndim > 4:
            return self.bn(x.reshape(x.shape[0], -1, x.shape[-1])).reshape(x.shape)
        return self.bn(x)

    def keras_layers(self):
        return (KerasLayer(self.sub("bn"), "BatchNormalization", self.bn),)

    def __call__(self, x: mx.array) -> mx.array:
        if self.act_first:
            return self._norm(self.act(x))
        return self.act(self._norm(x))


class LayerNorm(KerasModule):
    """kecam's ``layer_norm``: LayerNormalization over the channels (biased variance).

    Args:
        dims: channels (the last axis).
        zero_gamma: initialise gamma to zeros.
        epsilon: kecam's default 1e-5 (BEiT and EdgeNeXt pass 1e-6).
        center: with ``False`` there is no beta (kecam 1.4.3).
        name: kecam's ``name=``; the Keras layer is ``name + "ln"``.

    Shape:
        ``[B, ..., C] -> [B, ..., C]``
    """

    def __init__(
        self, dims: int, *, zero_gamma: bool = False, epsilon: float = 1e-5, center: bool = True,
        name: str | None = None,
    ):  # fmt: skip
        super().__init__(name)
        dims = check_int(dims, "dims", minimum=1, what="LayerNorm")
        zero_gamma = check_bool(zero_gamma, "zero_gamma", what="LayerNorm")
        epsilon = check_float(epsilon, "epsilon", minimum=0, what="LayerNorm")
        center = check_bool(center, "center", what="LayerNorm")
        self.ln = nn.LayerNorm(dims, eps=_mlx_eps(epsilon), bias=center)
        if zero_gamma:
            self.ln.weight = mx.zeros([dims])
        self._norm = _float32_statistics(self.ln)

    def keras_layers(self):
        return (KerasLayer(self.sub("ln"), "LayerNormalization", self.ln),)

    def __call__(self, x: mx.array) -> mx.array:
        return self._norm(x)


class GroupNorm(KerasModule):
    """kecam's ``group_norm``: GroupNormalization with contiguous channel groups.

    Args:
        dims: channels (the last axis).
        groups: number of groups; must divide ``dims``.
        epsilon: kecam's default 1e-5.
        name: kecam's ``name=``; the Keras layer is ``name + "group_norm"``.

    Shape:
        ``[B, H, W, C] -> [B, H, W, C]``
    """

    def __init__(self, dims: int, groups: int = 32, *, epsilon: float = 1e-5, name=None):
        super().__init__(name)
        dims = check_int(dims, "dims", minimum=1, what="GroupNorm")
        groups = check_int(groups, "groups", minimum=1, what="GroupNorm")
        if dims % groups:
            raise ValueError(f"GroupNorm: groups={groups} must divide the {dims} channels")
        epsilon = check_float(epsilon, "epsilon", minimum=0, what="GroupNorm")
        self.gn = nn.GroupNorm(groups, dims, eps=_mlx_eps(epsilon), pytorch_compatible=True)
        self._norm = _float32_statistics(self.gn)

    def keras_layers(self):
        return (KerasLayer(self.sub("group_norm"), "GroupNormalization", self.gn),)

    def __call__(self, x: mx.array) -> mx.array:
        return self._norm(x)


class SqueezeExcite(KerasModule):
    """kecam's ``se_module``: global mean, reduce, activation, expand, gate, multiply.

    Args:
        dims: channels.
        se_ratio, divisor, limit_round_down: the reduction is
            ``make_divisible(dims * se_ratio, divisor, limit_round_down=limit_round_down)``.
        activation: a name, or a pair ``(hidden, output)``; the output gate defaults to sigmoid.
        use_bias: biases of the two projections.
        use_conv: 1x1 Conv2D (``name + "1_conv"``) rather than Dense (``name + "1_dense"``).
        name: kecam's ``name=``.

    Shape:
        ``[B, H, W, C] -> [B, H, W, C]``
    """

    def __init__(
        self, dims: int, *, se_ratio: float = 0.25, divisor: int = 8,
        limit_round_down: float = 0.9, activation: str | Sequence[str] = "relu",
        use_bias: bool = True, use_conv: bool = True, name: str | None = None,
    ):  # fmt: skip
        super().__init__(name)
        what = "SqueezeExcite"
        dims = check_int(dims, "dims", minimum=1, what=what)
        se_ratio = check_float(se_ratio, "se_ratio", what=what)
        divisor = check_int(divisor, "divisor", minimum=1, what=what)
        limit_round_down = check_float(limit_round_down, "limit_round_down", what=what)
        use_bias = check_bool(use_bias, "use_bias", what=what)
        use_conv = check_bool(use_conv, "use_conv", what=what)
        if isinstance(activation, (list, tuple)):
            if len(activation) != 2:
                raise ValueError(f"{what}: activation={activation!r}: a name or a pair of names")
            hidden_act, out_act = activation
        else:
            hidden_act, out_act = activation, "sigmoid"
        # kecam's make_divisible keeps at least one divisor of channels, whatever the ratio
        check_size(dims * se_ratio, f"{what}: se_ratio={se_ratio} of {dims} channels")
        reduction = make_divisible(dims * se_ratio, divisor, limit_round_down=limit_round_down)
        check_size(dims * reduction, f"{what}: se_ratio={se_ratio} and divisor={divisor}")
        self.use_conv = use_conv
        self.reduce = nn.Linear(dims, reduction, bias=use_bias)
        self.hidden_act = Activation(hidden_act, dims=reduction, name=name)
        self.expand = nn.Linear(reduction, dims, bias=use_bias)
        self.out_act = Activation(out_act, dims=dims, name=name)

    def keras_layers(self):
        kind, suffix = ("Conv2D", "conv") if self.use_conv else ("Dense", "dense")
        return (
            KerasLayer(self.sub(f"1_{suffix}"), kind, self.reduce),
            KerasLayer(self.sub(f"2_{suffix}"), kind, self.expand),
        )

    def __call__(self, x: mx.array) -> mx.array:
        se = mx.mean(x, axis=(1, 2), keepdims=True)
        se = self.out_act(self.expand(self.hidden_act(self.reduce(se))))
        return x * se


class EcaModule(KerasModule):
    """kecam's ``eca_module`` (Efficient Channel Attention): the global mean of each channel,
    a 1-D convolution over the channel axis (zero-padded, no bias), sigmoid, multiply.

    The kernel size follows the channels: ``t = int((log2(C) + beta) / gamma)``, made odd
    (``t + 1`` when even) and at least 3, as kecam.

    Args:
        dims: channels.
        gamma, beta: kecam's kernel-size rule. Default: ``2.0``, ``1.0``.
        name: kecam's ``name=`` (layer ``name + "conv1d"``, a Keras ``Conv1D``).

    Shape:
        ``[B, H, W, C] -> [B, H, W, C]``
    """

    def __init__(
        self, dims: int, *, gamma: float = 2.0, beta: float = 1.0, name: str | None = None
    ):
        super().__init__(name)
        what = "EcaModule"
        dims = check_int(dims, "dims", minimum=1, what=what)
        gamma = check_float(gamma, "gamma", what=what)
        beta = check_float(beta, "beta", what=what)
        if gamma == 0:  # kecam: ZeroDivisionError
            raise ValueError(f"{what}: gamma={gamma} divides the kernel-size rule")
        t = (np.log(float(dims)) / np.log(2.0) + beta) / gamma
        if not np.isfinite(t) or abs(t) > 2**20:
            raise ValueError(f"{what}: gamma={gamma}, beta={beta} give a kernel size of {t}")
        t = int(t)
        self.kernel_size = max(t if t % 2 else t + 1, 3)
        self.conv = nn.Conv1d(1, 1, self.kernel_size, padding=self.kernel_size // 2, bias=False)

    def keras_layers(self):
        return (KerasLayer(self.sub("conv1d"), "Conv1D", self.conv),)

    def __call__(self, x: mx.array) -> mx.array:
        # the statistic and its gate in float32 for half-precision inputs, as the other
        # normalisation statistics of this package
        acc = mx.float32 if x.dtype in (mx.float16, mx.bfloat16) else x.dtype
        pooled = mx.mean(x.astype(acc), axis=(1, 2))[..., None]  # [B, C, 1]: C is the length
        gate = mx.sigmoid(self.conv(pooled.astype(self.conv.weight.dtype)).astype(acc))
        return x * gate[:, None, None, :, 0].astype(x.dtype)


class DropBlock(KerasModule):
    """kecam's ``drop_block``: stochastic depth. Identity at inference; in training mode each
    sample is dropped with probability ``drop_rate`` and kept samples scaled by
    ``1 / (1 - drop_rate)``.

    Shape:
        ``[B, ...] -> [B, ...]``
    """

    def __init__(self, drop_rate: float = 0.0, *, name: str | None = None):
        super().__init__(name)
        self.drop_rate = check_float(drop_rate, "drop_rate", minimum=0, below=1, what="DropBlock")

    def __call__(self, x: mx.array) -> mx.array:
        if not self.training or self.drop_rate == 0:
            return x
        keep = 1 - self.drop_rate
        mask = mx.random.bernoulli(keep, [x.shape[0]] + [1] * (x.ndim - 1))
        return x * mask.astype(x.dtype) / keep


class ChannelAffine(KerasModule):
    """kecam's ``ChannelAffine`` (res_mlp): ``x * weight + bias`` with a per-channel (or
    per-axis) weight.

    Args:
        shape: the weight shape, broadcast against the input without its batch axis (kecam:
            ``(C,)`` for the last axis; otherwise the input shape with 1 off the chosen axes).
        use_bias: add a bias of the same shape.
        weight_init_value: the initial weight.
        name: the Keras layer name.

    Shape:
        ``[B, ...] -> [B, ...]``
    """

    def __init__(
        self, shape: Sequence[int], *, use_bias: bool = True, weight_init_value: float = 1.0,
        name: str | None = None,
    ):  # fmt: skip
        super().__init__(name)
        shape = check_shape(shape, "ChannelAffine")
        use_bias = check_bool(use_bias, "use_bias", what="ChannelAffine")
        weight_init_value = check_float(
            weight_init_value, "weight_init_value", what="ChannelAffine"
        )
        self.weight = mx.full(shape, weight_init_value, dtype=mx.float32)
        self.use_bias = use_bias
        if use_bias:
            self.bias = mx.zeros(tuple(shape))

    def keras_layers(self):
        names = ("weight", "bias") if self.use_bias else ("weight",)
        return (KerasLayer(self.sub(""), "Weights", self, names),)

    def __call__(self, x: mx.array) -> mx.array:
        return x * self.weight + self.bias if self.use_bias else x * self.weight


class BiasLayer(KerasModule):
    """kecam's ``BiasLayer`` (volo): ``x + bias``.

    Args:
        shape: the bias shape, broadcast against the input without its batch axis (kecam keeps a
            leading 1 for a non-last axis: ``(1, C, 1)`` for ``axis=1`` on ``[B, C, N]``).
        name: the Keras layer name.

    Shape:
        ``[B, ...] -> [B, ...]``
    """

    def __init__(self, shape: Sequence[int], *, name: str | None = None):
        super().__init__(name)
        self.bias = mx.zeros(check_shape(shape, "BiasLayer"))

    def keras_layers(self):
        return (KerasLayer(self.sub(""), "Weights", self, ("bias",)),)

    def __call__(self, x: mx.array) -> mx.array:
        return x + self.bias


class ClassToken(KerasModule):
    """kecam's ``ClassToken`` (volo): learned tokens concatenated to the sequence.

    Args:
        dims: channels.
        num_tokens: how many tokens (kecam 1.4.3).
        is_at_end: append rather than prepend (kecam 1.4.3).
        name: the Keras layer name.

    Shape:
        ``[B, N, C] -> [B, N + num_tokens, C]``
    """

    def __init__(
        self, dims: int, *, num_tokens: int = 1, is_at_end: bool = False, name: str | None = None
    ):
        super().__init__(name)
        dims = check_int(dims, "dims", minimum=1, what="ClassToken")
        # kecam builds num_tokens=0 (a no-op concat)
        num_tokens = check_int(num_tokens, "num_tokens", minimum=0, what="ClassToken")
        check_size(num_tokens * dims, f"ClassToken: num_tokens={num_tokens}")
        is_at_end = check_bool(is_at_end, "is_at_end", what="ClassToken")
        self.tokens = mx.zeros([1, num_tokens, dims])
        self.is_at_end = is_at_end

    def keras_layers(self):
        return (KerasLayer(self.sub(""), "Weights", self, ("tokens",)),)

    def __call__(self, x: mx.array) -> mx.array:
        tokens = mx.broadcast_to(self.tokens.astype(x.dtype), (x.shape[0], *self.tokens.shape[1:]))
        return mx.concatenate([x, tokens] if self.is_at_end else [tokens, x], axis=1)


class MlpBlock(KerasModule):
    """kecam's ``mlp_block`` (mlp_mixer): Dense, activation, Dense (or 1x1 convs).

    Args:
        dims: input channels.
        hidden_dim: hidden channels.
        output_channel: output channels; ``<= 0`` keeps ``dims``.
        drop_rate: dropout after each projection, training mode only.
        use_conv: 1x1 Conv2D layers ``Conv_0`` / ``Conv_1`` instead of ``Dense_0`` / ``Dense_1``.
        use_bias: projection biases.
        activation: a kecam activation name (``"gelu"`` is the exact form).
        name: kecam's ``name=``.

    Shape:
        ``[B, ..., dims] -> [B, ..., output_channel]``
    """

    def __init__(
        self, dims: int, hidden_dim: int, *, output_channel: int = -1, drop_rate: float = 0.0,
        use_conv: bool = False, use_bias: bool = True, activation: str | None = "gelu",
        name: str | None = None,
    ):  # fmt: skip
        super().__init__(name)
        what = "MlpBlock"
        dims = check_int(dims, "dims", minimum=1, what=what)
        hidden_dim = check_int(hidden_dim, "hidden_dim", minimum=1, what=what)
        output_channel = check_int(output_channel, "output_channel", what=what)
        drop_rate = check_float(drop_rate, "drop_rate", minimum=0, below=1, what=what)
        use_conv = check_bool(use_conv, "use_conv", what=what)
        use_bias = check_bool(use_bias, "use_bias", what=what)
        out_dims = output_channel if output_channel > 0 else dims
        check_size(hidden_dim * max(dims, out_dims), f"{what}: hidden_dim={hidden_dim}")
        self.use_conv = use_conv
        self.fc1 = nn.Linear(dims, hidden_dim, bias=use_bias)
        self.act = Activation(activation, dims=hidden_dim, name=name)
        self.fc2 = nn.Linear(hidden_dim, out_dims, bias=use_bias)
        self.dropout = nn.Dropout(drop_rate)

    def keras_layers(self):
        kind, stem = ("Conv2D", "Conv") if self.use_conv else ("Dense", "Dense")
        return (
            KerasLayer(self.sub(f"{stem}_0"), kind, self.fc1),
            KerasLayer(self.sub(f"{stem}_1"), kind, self.fc2),
        )

    def __call__(self, x: mx.array) -> mx.array:
        return self.dropout(self.fc2(self.dropout(self.act(self.fc1(x)))))


__all__ = [
    "Activation",
    "AntiAliasDownsample",
    "BatchNormActivation",
    "BiasLayer",
    "ChannelAffine",
    "ClassToken",
    "Conv2dNoBias",
    "DepthwiseConv2dNoBias",
    "DropBlock",
    "GroupNorm",
    "LayerNorm",
    "MlpBlock",
    "SqueezeExcite",
]
