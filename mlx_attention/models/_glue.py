"""Glue that kecam writes once and several families reuse: the classifier head
(``common_layers.output_block``), the layer-scale residual
(``convnext.add_with_layer_scale_and_drop_block``) and the output size of a kecam conv."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence

import mlx.core as mx
import mlx.nn as nn

from .. import attention_layers
from ..layers import Activation, ChannelAffine, Conv2dNoBias, DropBlock, KerasLayer, KerasModule


def conv_output_size(conv: Conv2dNoBias, height: int, width: int) -> tuple[int, int]:
    """The ``(H', W')`` a kecam conv gives for an ``(H, W)`` input (its padding rule applied)."""
    sizes = []
    for size, (before, after), k, s, d in zip(
        (height, width), conv.pads(height, width), conv.kernel_size, conv.strides, conv.dilation
    ):
        sizes.append((size + before + after - d * (k - 1) - 1) // s + 1)
    return sizes[0], sizes[1]


def drop_connect_rates(num_blocks: Sequence[int], rate: float) -> list[list[float]]:
    """kecam's depth schedule ``rate * global_block_id / total_blocks``, a list per stack (the
    drop-path rate of each block: identity at inference)."""
    total, starts = sum(num_blocks), itertools.accumulate([0, *num_blocks])
    return [[rate * (start + i) / total for i in range(n)] for start, n in zip(starts, num_blocks)]


def per_item(value, index: int):
    """kecam's ``value[index] if isinstance(value, (list, tuple)) else value``: a per-stage or
    per-block list, or one value for all."""
    return value[index] if isinstance(value, (list, tuple)) else value


class LayerScaleResidual(KerasModule):
    """kecam's ``add_with_layer_scale_and_drop_block``:
    ``res_gamma(short) + drop_block(gamma(deep))``, the Keras ``Add`` named ``name + "output"``.

    Args:
        dims: channels (the last axis).
        layer_scale: the initial ``gamma`` of the deep branch; ``<= 0`` means none (kecam's
            ``-1``), as kecam tests ``> 0``.
        residual_scale: the initial ``res_gamma`` of the shortcut; ``<= 0`` means none.
        drop_rate: stochastic depth of the deep branch (training only).
        name: kecam's ``name=`` (layers ``gamma``, ``res_gamma``, ``output``).

    Shape:
        ``([B, ..., C], [B, ..., C]) -> [B, ..., C]``
    """

    def __init__(
        self, dims: int, *, layer_scale: float = 0, residual_scale: float = 0,
        drop_rate: float = 0, name: str | None = None,
    ):  # fmt: skip
        super().__init__(name)
        self.gamma = (
            ChannelAffine(
                (dims,), use_bias=False, weight_init_value=layer_scale, name=self.sub("gamma")
            )
            if layer_scale > 0
            else None
        )
        self.res_gamma = (
            ChannelAffine(
                (dims,),
                use_bias=False,
                weight_init_value=residual_scale,
                name=self.sub("res_gamma"),
            )
            if residual_scale > 0
            else None
        )
        self.drop = DropBlock(drop_rate, name=name)

    @property
    def output_name(self) -> str:
        """The Keras name of the sum (kecam's probe name of a block's output)."""
        return self.sub("output")

    def __call__(self, short: mx.array, deep: mx.array) -> mx.array:
        if self.res_gamma is not None:
            short = self.res_gamma(short)
        if self.gamma is not None:
            deep = self.gamma(deep)
        return short + self.drop(deep)


class ClassifierHead(KerasModule):
    """kecam's ``common_layers.output_block``: an optional ``features_`` 1x1 conv + BN, then
    ``GlobalAveragePooling2D("avg_pool")``, ``Dropout("head_drop")`` and
    ``Dense(num_classes, activation=classifier_activation, name="predictions")``; with
    ``pooled_norm``, a norm between the pooling and the dropout (EdgeNeXt's, ConvNeXt's
    ``layer_norm`` after ``avg_pool``).

    kecam forces ``predictions`` to float32 (``dtype="float32"``), so the head computes in
    float32 whatever the model's dtype. With ``num_classes=0`` only the ``features_`` layers
    remain (kecam's model then returns the feature map).

    Args:
        dims: channels of the feature map.
        num_classes: classes; ``0`` for no classifier.
        filters: channels of the ``features_`` conv; ``0`` for none.
        activation: the ``features_`` BN's activation.
        drop_rate: dropout before ``predictions`` (training only).
        classifier_activation: a kecam activation name, or ``None`` for logits.
        act_first: the ``features_`` activation before its BN (CMT).
        is_torch_mode: kecam's flag: the ``features_`` BN epsilon 1e-5 and torch padding;
            ``False``: TF's epsilon 1e-3 and TF padding.
        input_size: ``(H, W)`` of the feature map, needed with ``filters > 0``.
        pooled_norm: ``pooled_norm(dims)`` builds that norm (e.g. kecam's
            ``layer_norm(name="pre_output_")``); it exists only with a classifier, as in
            kecam, so ``reset`` builds a new one with the new ``predictions``.

    Shape:
        ``[B, H, W, dims] -> [B, num_classes]`` (``[B, H, W, filters or dims]`` for 0 classes;
        a rank-2 input skips the pooling, as kecam's does)
    """

    def __init__(
        self, dims: int, num_classes: int = 1000, *, filters: int = 0, activation: str = "relu",
        drop_rate: float = 0, classifier_activation: str | None = "softmax",
        act_first: bool = False, is_torch_mode: bool = True,
        input_size: tuple[int, int] | None = None,
        pooled_norm: Callable[[int], nn.Module] | None = None,
    ):  # fmt: skip
        super().__init__("")
        object.__setattr__(self, "_pooled_norm", pooled_norm)
        self.features = None
        if filters > 0:
            if input_size is None:
                raise ValueError("ClassifierHead with filters > 0 needs input_size")
            self.features = [
                attention_layers.conv2d_no_bias(
                    (*input_size, dims), filters, 1, use_bias=act_first,
                    use_torch_padding=is_torch_mode, name="features_",
                ),
                attention_layers.batchnorm_with_activation(
                    (*input_size, filters), activation=activation, act_first=act_first,
                    epsilon=1e-5 if is_torch_mode else 1e-3, name="features_",
                ),
            ]  # fmt: skip
            dims = filters
        self.num_features = dims
        self.dropout = nn.Dropout(drop_rate)
        self.reset(num_classes, classifier_activation)

    def reset(self, num_classes: int, classifier_activation: str | None) -> None:
        """A new, randomly initialised ``predictions`` layer for ``num_classes`` (0: none)."""
        if num_classes < 0:
            raise ValueError(f"num_classes={num_classes} must be >= 0")
        self.num_classes = num_classes
        self.predictions = nn.Linear(self.num_features, num_classes) if num_classes else None
        make_norm = self._pooled_norm
        self.norm = make_norm(self.num_features) if num_classes and make_norm else None
        self.activation = Activation(classifier_activation)

    def keras_layers(self):
        if self.predictions is None:
            return ()
        return (KerasLayer("predictions", "Dense", self.predictions),)

    def __call__(self, x: mx.array) -> mx.array:
        for layer in self.features or ():
            x = layer(x)
        if self.predictions is None:
            return x
        x = x.astype(mx.float32)
        if x.ndim == 4:
            x = mx.mean(x, axis=(1, 2))
        if self.norm is not None:
            x = self.norm(x)
        weight = self.predictions.weight.dtype
        logits = self.predictions(self.dropout(x).astype(weight)).astype(mx.float32)
        return self.activation(logits)


class BatchNormHead(KerasModule):
    """kecam's BatchNorm classifier of LeViT and EfficientViT-M: ``GlobalAveragePooling2D``,
    ``Dropout``, then per head a BatchNormalization and a ``Dense(num_classes)``; with
    ``distill_names`` a second (distillation) head on the same pooled features, and the model
    returns both outputs as a tuple, as kecam's two-output model does.

    The head computes in float32 whatever the model's dtype (kecam forces the Dense to
    float32). ``fused()`` is kecam's ``model_surgery.fuse_distill_head`` (``switch_to_deploy``):
    each BatchNorm folded into its Dense, the two heads averaged into one ``Dense`` under the
    first head's name.

    Args:
        dims: channels of the feature map.
        num_classes: classes; ``0`` for no classifier (the feature map passes through).
        names: ``(BatchNorm name, Dense name)`` of the head (``("head_", "head")``: Keras
            layers ``head_bn`` and ``head``); a BatchNorm name ``None`` means none (fused).
        distill_names: the same for the distillation head, or ``None``.
        drop_rate: dropout after the pooling (training only; kecam applies it for rates in
            ``(0, 1)``).
        classifier_activation: a kecam activation name, or ``None`` for logits.

    Shape:
        ``[B, H, W, dims] -> [B, num_classes]`` (a tuple of two with ``distill_names``)
    """

    def __init__(
        self, dims: int, num_classes: int = 1000, *, names: tuple[str | None, str],
        distill_names: tuple[str | None, str] | None = None, drop_rate: float = 0,
        classifier_activation: str | None = None,
    ):  # fmt: skip
        super().__init__("")
        self.features = None
        self.num_features = dims
        self.names, self.distill_names = names, distill_names
        self.dropout = nn.Dropout(drop_rate if 0 < drop_rate < 1 else 0)
        self.reset(num_classes, classifier_activation)

    def _branch(self, names: tuple[str | None, str]) -> dict:
        bn_name, dense_name = names
        norm = None
        if bn_name is not None:
            norm = attention_layers.batchnorm_with_activation((self.num_features,), name=bn_name)
        return {"norm": norm, "dense": nn.Linear(self.num_features, self.num_classes)}

    def reset(self, num_classes: int, classifier_activation: str | None) -> None:
        """New, randomly initialised heads for ``num_classes`` (0: none); BatchNorms reset."""
        if num_classes < 0:
            raise ValueError(f"num_classes={num_classes} must be >= 0")
        self.num_classes = num_classes
        self.activation = Activation(classifier_activation)
        self.branches = []
        if num_classes:
            named = [self.names] + ([self.distill_names] if self.distill_names else [])
            self.branches = [self._branch(names) for names in named]

    @property
    def predictions(self) -> nn.Linear | None:
        """The (first) head's Dense."""
        return self.branches[0]["dense"] if self.branches else None

    def keras_layers(self):
        named = [self.names] + ([self.distill_names] if self.distill_names else [])
        return tuple(
            KerasLayer(names[1], "Dense", branch["dense"])
            for names, branch in zip(named, self.branches)
        )

    def fused(self) -> BatchNormHead:
        """kecam's ``fuse_distill_head``: one head, ``Dense`` only, the BatchNorms folded in
        (``W' = W * gamma / sqrt(var + eps)``, ``b' = b + (beta - mean * gamma / sqrt(var +
        eps)) @ W``) and the distillation head averaged with it."""
        if not self.branches:
            raise ValueError("a model built with num_classes=0 has no head to fuse")
        weights, biases = [], []
        for branch in self.branches:
            dense, norm = branch["dense"], branch["norm"]
            weight, bias = dense.weight.astype(mx.float32), dense.bias.astype(mx.float32)
            if norm is not None:
                bn = norm.bn
                scale = bn.weight * mx.rsqrt(bn.running_var + bn.eps)
                shift = bn.bias - bn.running_mean * scale
                weight, bias = weight * scale, bias + weight @ shift
            weights.append(weight)
            biases.append(bias)
        head = BatchNormHead(
            self.num_features, self.num_classes, names=(None, self.names[1]),
            classifier_activation=self.activation.activation,
        )  # fmt: skip
        head.predictions.weight = sum(weights) / len(weights)
        head.predictions.bias = sum(biases) / len(biases)
        head.dropout = self.dropout
        return head

    def __call__(self, x: mx.array) -> mx.array | tuple[mx.array, mx.array]:
        if not self.branches:
            return x
        x = self.dropout(mx.mean(x.astype(mx.float32), axis=(1, 2)))
        outputs = []
        for branch in self.branches:
            y = x if branch["norm"] is None else branch["norm"](x)
            outputs.append(self.activation(branch["dense"](y)))
        return outputs[0] if len(outputs) == 1 else tuple(outputs)


class ConvNormStack(KerasModule):
    """Convs, each followed by its BatchNorm (``self.convs``, ``self.norms``, built by the
    subclass, with ``self.output_shape``); the output is the last BatchNorm's."""

    @property
    def output_name(self) -> str:
        return self.norms[-1].sub("bn")

    def __call__(self, x: mx.array) -> mx.array:
        for conv, norm in zip(self.convs, self.norms):
            x = norm(conv(x))
        return x


class ConvBNStem(ConvNormStack):
    """The four-conv stem of LeViT (``levit.patch_stem``) and EfficientViT-M: 3x3 stride-2
    ``conv2d_no_bias`` ("same") + BatchNorm, ``stem_width // 8, // 4, // 2`` and
    ``stem_width`` channels, the activation after every BatchNorm but the last.

    Args:
        input_shape: ``(H, W, C)`` of the image.
        stem_width: channels of the last conv.
        activation: a kecam activation name.
        name: kecam's prefix (``"stem_"``: layers ``stem_1_conv``, ``stem_1_bn``, ...).

    Shape:
        ``[B, H, W, C] -> [B, H/16, W/16, stem_width]`` (sizes rounded up at each stride)
    """

    def __init__(
        self, input_shape: tuple[int, int, int], stem_width: int, *, activation: str | None,
        name: str = "stem_",
    ):  # fmt: skip
        super().__init__(name)
        height, width, channels = input_shape
        self.convs, self.norms = [], []
        for index, divisor in enumerate((8, 4, 2, 1)):
            prefix, filters = self.sub(f"{index + 1}_"), stem_width // divisor
            conv = attention_layers.conv2d_no_bias(
                (height, width, channels), filters, 3, strides=2, padding="same", name=prefix
            )
            (height, width), channels = conv_output_size(conv, height, width), filters
            self.convs.append(conv)
            self.norms.append(
                attention_layers.batchnorm_with_activation(
                    (height, width, channels),
                    activation=activation if divisor > 1 else None,
                    name=prefix,
                )  # fmt: skip
            )
        self.output_shape = (height, width, channels)


def single_output(model):
    """The model with one output: kecam's ``switch_to_deploy()`` (the distillation head fused
    into the head, as kecam deploys LeViT and EfficientViT-M) where the model has two, else the
    model itself; a model with kecam's own combination of its outputs (UniFormer's token
    labels) through its ``combined()``. For ``predict`` and ``evaluate``, which rank one score
    per class."""
    if getattr(getattr(model, "head", None), "distill_names", None):
        return model.switch_to_deploy()
    if getattr(type(model), "combined", None) is not None:
        return model.combined()
    return model
