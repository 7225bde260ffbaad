"""EfficientViT-B and -L (kecam ``efficientvit/efficientvit_b.py``): two family builders, eight
models.

``EfficientViT_B(...)`` and ``EfficientViT_L(...)`` are kecam's family builders (their
arguments and defaults), for reduced configurations; the named models are rows of ``MODELS``.
Stages are kecam's ``mb_conv`` blocks (``MBConv``; fused 3x3 ones in the L models' first
stages); ``transform`` stages add the multi-scale linear attention ``lite_mhsa``
(``layers.LiteMHSA``) before every block but the first. The head is ``features_`` (1x1 conv,
BatchNorm, activation: in ``forward_features``, as in kecam's ``num_classes=0`` model), then
the pooled ``pre_predictions`` Dense, LayerNorm and activation, and ``predictions``. No weight
depends on the input size.

``lite_mhsa`` is kecam's function (a kecam face over ``layers.LiteMHSA``).
"""

from __future__ import annotations

from collections.abc import Sequence

import mlx.core as mx
import mlx.nn as nn

from .. import attention_layers
from ..layers import Activation, DropBlock, KerasLayer, KerasModule, LiteMHSA
from ..layers.utils import check_input_shape, check_int
from ._base import ImageClassifier, channels_last
from ._glue import conv_output_size, drop_connect_rates, per_item
from ._registry import Family, ModelSpec, register_family

# kecam 1.4.3 efficientvit/efficientvit_b.py PRETRAINED_DICT: {model.name: {tag: {size: md5}}}.
PRETRAINED_DICT = {
    "efficientvit_b0": {"imagenet": {224: "dd0104843abccee903d93c7a5f5d3174"}},
    "efficientvit_b1": {
        "imagenet": {
            224: "4fac7e85f4528276fafb5bb92e3f694f",
            256: "f62ff918d3805a01dd63e8c684410d19",
            288: "423077ad1a76d1b3904577a3b15d0670",
        }
    },
    "efficientvit_b2": {
        "imagenet": {
            224: "b576960761ae2193ff198d8b76f0f575",
            256: "9e4ff199945cfdb0a2207c5ed0d1ba96",
            288: "a4cdfe86cb9dde123e70839edae123fc",
        }
    },
    "efficientvit_b3": {
        "imagenet": {
            224: "52b0266e48b7fb0f469c23f0b564ee4f",
            256: "e8f3fd1ba3ce4d30d52b927d595663f9",
            288: "4569c90bb93c7a657d4add91f0a7323f",
        }
    },
    "efficientvit_l1": {"imagenet": {224: "a487ed323d278e7b4807a4f04257ed10"}},
    "efficientvit_l2": {
        "imagenet": {
            224: "b1bc0d47aeaa90421f73a89ceac04e8b",
            384: "c396388dd90e7532256a3a25fed4b5b0",
        }
    },
    "efficientvit_l3": {
        "imagenet": {
            224: "8b3d1480ce67c46101cf0a3a0fa69318",
            384: "e7d5f2bce807254c24d7530553f21f6a",
        }
    },
}

BATCH_NORM_EPSILON = LAYER_NORM_EPSILON = 1e-5  # kecam's module constants


def lite_mhsa(
    input_shape, num_heads=8, key_dim=16, sr_ratio=5, qkv_bias=False, out_shape=None,
    out_bias=False, dropout=0, activation="relu", name=None,
) -> LiteMHSA:  # fmt: skip
    """kecam ``efficientvit.efficientvit_b.lite_mhsa`` on ``input_shape = (H, W, C)``; see
    ``layers.LiteMHSA``. kecam takes ``dropout`` and never uses it (nor does this)."""
    height, width, channels = check_input_shape(input_shape, 3, "lite_mhsa")
    module = LiteMHSA(
        channels, num_heads, key_dim=key_dim, sr_ratio=sr_ratio, qkv_bias=qkv_bias,
        out_dims=out_shape, out_bias=out_bias, activation=activation, name=name,
    )  # fmt: skip
    module.expect_input_shape((height, width, channels))
    return module


def _norm_or_activation(shape, activation, use_norm: bool, name: str) -> nn.Module:
    """kecam's ``batchnorm_with_activation(...) if use_norm else activation_by_name(...)``:
    without the norm kecam names no layer (its activation is an unnamed Keras layer)."""
    if use_norm:
        return attention_layers.batchnorm_with_activation(
            shape, activation, epsilon=BATCH_NORM_EPSILON, name=name
        )
    return Activation(activation, dims=shape[-1])


class MBConv(KerasModule):
    """kecam's ``efficientvit_b.mb_conv``.

    Unfused: a 1x1 ``expand_`` conv (where ``expansion > 1``) and a 3x3 depthwise conv (the
    stride), each with BatchNorm + activation (``use_norm``; the bare activation otherwise);
    fused: one 3x3 ``expand_`` conv (the stride, never a bias) with BatchNorm + activation.
    Then the ``pw_`` conv (3x3 when fused with ``expansion == 1``, else 1x1) and a zero-gamma
    BatchNorm; the residual ``Add`` (``shortcut``) or a linear ``Activation`` named
    ``name + "output"``.

    Args:
        input_shape: ``(H, W, C)``.
        output_channel: channels out.
        shortcut: add the input (kecam's blocks after the first of a stage).
        strides: of the depthwise (or fused expand) conv.
        expansion: hidden channels ``int(C * expansion)``.
        is_fused: the fused 3x3 form.
        use_bias: biases of the expand and depthwise convs.
        use_norm: BatchNorm after them.
        drop_rate: stochastic depth of the deep branch (training only).
        activation: a kecam activation name.
        name: kecam's prefix (``"stack_1_block_1_downsample_"``).

    Shape:
        ``[B, H, W, C] -> [B, ceil(H / s), ceil(W / s), output_channel]``
    """

    def __init__(
        self, input_shape: tuple[int, int, int], output_channel: int, *, shortcut: bool = True,
        strides: int = 1, expansion: float = 4, is_fused: bool = False, use_bias: bool = False,
        use_norm: bool = True, drop_rate: float = 0, activation: str | None = "hard_swish",
        name: str,
    ):  # fmt: skip
        super().__init__(name)
        self.parts: list[nn.Module] = []
        shape = input_shape
        if is_fused or expansion > 1:
            hidden = int(input_shape[-1] * expansion)
            expand = attention_layers.conv2d_no_bias(
                shape, hidden, 3 if is_fused else 1, strides if is_fused else 1,
                padding="same", use_bias=use_bias and not is_fused, name=self.sub("expand_"),
            )  # fmt: skip
            shape = (*conv_output_size(expand, *shape[:2]), hidden)
            self.parts += [expand, _norm_or_activation(shape, activation, use_norm, expand.name)]
        if not is_fused:
            dw = attention_layers.depthwise_conv2d_no_bias(
                shape, 3, strides=strides, padding="same", use_bias=use_bias, name=name
            )
            shape = (*conv_output_size(dw, *shape[:2]), shape[-1])
            self.parts += [dw, _norm_or_activation(shape, activation, use_norm, self.sub("dw_"))]
        pw = attention_layers.conv2d_no_bias(
            shape, output_channel, 3 if is_fused and expansion == 1 else 1, padding="same",
            name=self.sub("pw_"),
        )  # fmt: skip
        shape = (*conv_output_size(pw, *shape[:2]), output_channel)
        self.parts += [
            pw,
            attention_layers.batchnorm_with_activation(
                shape, zero_gamma=True, epsilon=BATCH_NORM_EPSILON, name=self.sub("pw_")
            ),
        ]
        if shortcut and shape != tuple(input_shape):
            raise ValueError(
                f"{name}: shortcut=True needs the input's shape {tuple(input_shape)} out, got "
                f"{shape} (strides={strides}, output_channel={output_channel}): kecam's Add fails"
            )
        self.shortcut = shortcut
        self.drop = DropBlock(drop_rate, name=name)
        self.output_shape = shape

    @property
    def output_name(self) -> str:
        return self.sub("output")

    def __call__(self, x: mx.array) -> mx.array:
        deep = x
        for part in self.parts:
            deep = part(deep)
        deep = self.drop(deep)
        return x + deep if self.shortcut else deep


class TransformBlock(KerasModule):
    """A ``transform`` stage's block after the first: ``x + lite_mhsa(x)`` (``name +
    "attn_"``, ``C // head_dimension`` heads of ``head_dimension``, ``sr_ratio=5``), then the
    stage's ``MBConv`` with its residual.

    Shape:
        ``[B, H, W, C] -> [B, H, W, C]``
    """

    def __init__(
        self, input_shape: tuple[int, int, int], *, head_dimension: int, name: str, **mb_conv
    ):
        super().__init__(name)
        channels = input_shape[-1]
        if channels < head_dimension:
            raise ValueError(
                f"{name}: {channels} channels under head_dimension={head_dimension} give "
                "kecam's lite_mhsa 0 heads"
            )
        self.attn = lite_mhsa(
            input_shape, num_heads=channels // head_dimension, key_dim=head_dimension,
            sr_ratio=5, name=self.sub("attn_"),
        )  # fmt: skip
        self.mb_conv = MBConv(input_shape, channels, shortcut=True, name=name, **mb_conv)
        self.output_shape = self.mb_conv.output_shape

    @property
    def output_name(self) -> str:
        return self.mb_conv.output_name

    def __call__(self, x: mx.array) -> mx.array:
        return self.mb_conv(x + self.attn(x))


class ConvBN(KerasModule):
    """``conv2d_no_bias`` and ``batchnorm_with_activation`` under one prefix (kecam's stem,
    3x3 stride 2 "same", and its ``features_`` 1x1 conv).

    Shape:
        ``[B, H, W, C] -> [B, H', W', filters]``
    """

    def __init__(self, input_shape, filters: int, kernel_size: int, strides: int, *, activation,
                 name: str):  # fmt: skip
        super().__init__(name)
        self.conv = attention_layers.conv2d_no_bias(
            input_shape, filters, kernel_size, strides, padding="same", name=name
        )
        self.output_shape = (*conv_output_size(self.conv, *input_shape[:2]), filters)
        self.bn = attention_layers.batchnorm_with_activation(
            self.output_shape, activation, epsilon=BATCH_NORM_EPSILON, name=name
        )
        self.activation = activation

    @property
    def output_name(self) -> str:
        return self.sub(self.activation) if self.activation else self.sub("bn")

    def __call__(self, x: mx.array) -> mx.array:
        return self.bn(self.conv(x))


class PrePredictionsHead(KerasModule):
    """kecam EfficientViT-B's classifier: ``GlobalAveragePooling2D``, ``Dropout``, then (for
    ``hidden > 0``) ``Dense(hidden, use_bias=False, name="pre_predictions")``, LayerNorm
    ``pre_predictions_ln`` and the activation, and ``Dense(num_classes, name="predictions")``.

    The head computes in float32 whatever the model's dtype (the models' rule: kecam forces
    ``predictions`` to float32).

    Shape:
        ``[B, H, W, dims] -> [B, num_classes]`` (the map itself for 0 classes)
    """

    def __init__(
        self, dims: int, num_classes: int, *, hidden: int, activation: str | None,
        drop_rate: float, classifier_activation: str | None,
    ):  # fmt: skip
        super().__init__("")
        self.features = None
        self.num_features = dims
        self.hidden, self.hidden_activation = hidden, activation
        self.dropout = nn.Dropout(drop_rate)
        self.reset(num_classes, classifier_activation)

    def reset(self, num_classes: int, classifier_activation: str | None) -> None:
        """New, randomly initialised ``pre_predictions`` (and its LayerNorm) and
        ``predictions`` for ``num_classes`` (0: none), as kecam builds them only with one."""
        if num_classes < 0:
            raise ValueError(f"num_classes={num_classes} must be >= 0")
        self.num_classes = num_classes
        self.pre_predictions = self.pre_norm = self.pre_act = self.predictions = None
        if num_classes:
            dims = self.num_features
            if self.hidden > 0:
                self.pre_predictions = nn.Linear(dims, self.hidden, bias=False)
                self.pre_norm = attention_layers.layer_norm(
                    (self.hidden,), epsilon=LAYER_NORM_EPSILON, name="pre_predictions_"
                )
                self.pre_act = Activation(
                    self.hidden_activation, dims=self.hidden, name="pre_predictions_"
                )
                dims = self.hidden
            self.predictions = nn.Linear(dims, num_classes)
        self.activation = Activation(classifier_activation)

    def keras_layers(self):
        named = (("pre_predictions", self.pre_predictions), ("predictions", self.predictions))
        return tuple(KerasLayer(n, "Dense", m) for n, m in named if m is not None)

    def __call__(self, x: mx.array) -> mx.array:
        if self.predictions is None:
            return x
        x = self.dropout(mx.mean(x.astype(mx.float32), axis=(1, 2)))
        if self.pre_predictions is not None:
            x = self.pre_act(self.pre_norm(self.pre_predictions(x)))
        return self.activation(self.predictions(x))


class EfficientViTBModel(ImageClassifier):
    """kecam's ``EfficientViT_B`` model (also what ``EfficientViT_L`` builds); the arguments
    are those of :func:`EfficientViT_B`.

    Stages are kecam's ``zip(num_blocks, out_channels, block_types)``; the first block of each
    strides by 2 (``stack_{i}_block_1_downsample_``); stages from the third on have biased
    convs and no BatchNorm in their ``MBConv`` (kecam's "fewer_norm").

    Shape:
        ``[B, H, W, 3] -> [B, num_classes]``; ``forward_features``: ``[B, H/32, W/32,
        output_filters[0]]`` for four stages (sizes rounded up at each stride; the last stage's
        channels without ``features_``).
    """

    def __init__(
        self, *, num_blocks: Sequence[int], out_channels: Sequence[int], stem_width: int,
        block_types: Sequence[str], expansions, is_fused, head_dimension: int, output_filters,
        input_shape: Sequence[int], num_classes: int, activation: str | None,
        drop_connect_rate: float, classifier_activation: str | None, dropout: float,
    ):  # fmt: skip
        input_shape = channels_last(input_shape)
        super().__init__(input_shape)
        stages = len(list(zip(num_blocks, out_channels, block_types)))
        fused = list(is_fused) if isinstance(is_fused, (list, tuple)) else [is_fused] * stages
        if len(fused) < max(stages, 1) or (
            isinstance(expansions, (list, tuple)) and len(expansions) < stages
        ):
            raise ValueError(
                f"is_fused={is_fused!r} and expansions={expansions!r} need an entry per stage "
                f"({stages}): kecam indexes them by stage"
            )
        head_dimension = check_int(head_dimension, "head_dimension", minimum=1)
        if stages > 2 and str(activation).lower() in ("prelu", "starrelu", "star_relu"):
            raise ValueError(
                f"activation={activation!r} has weights, which kecam leaves unnamed in the "
                "stages without BatchNorm (the third on): no file could load them"
            )
        stem = ConvBN(input_shape, stem_width, 3, 2, activation=activation, name="stem_")
        self.add(stem, stem.output_name)
        stem_mb = MBConv(
            stem.output_shape, stem_width, shortcut=True, expansion=1, is_fused=fused[0],
            activation=activation, name="stem_MB_",
        )  # fmt: skip
        self.add(stem_mb, stem_mb.output_name)
        shape = stem_mb.output_shape
        rates = drop_connect_rates(num_blocks, drop_connect_rate)
        for stack_id, (blocks, out_channel, block_type) in enumerate(
            zip(num_blocks, out_channels, block_types)
        ):
            is_conv = block_type[0].lower() == "c"
            stack_expansions = per_item(expansions, stack_id)
            use_bias, use_norm = (True, False) if stack_id >= 2 else (False, True)
            for block_id in range(blocks):
                name = f"stack_{stack_id + 1}_block_{block_id + 1}_"
                mb_conv = {
                    "expansion": per_item(stack_expansions, block_id),
                    "is_fused": fused[stack_id], "use_bias": use_bias, "use_norm": use_norm,
                    "drop_rate": rates[stack_id][block_id],
                    "activation": activation,
                }  # fmt: skip
                if block_id == 0:
                    block = MBConv(
                        shape, out_channel, shortcut=False, strides=2, **mb_conv,
                        name=name + "downsample_",
                    )  # fmt: skip
                elif is_conv:
                    block = MBConv(shape, out_channel, shortcut=True, **mb_conv, name=name)
                else:
                    block = TransformBlock(
                        shape, head_dimension=head_dimension, **mb_conv, name=name
                    )
                shape = block.output_shape
                self.add(block, block.output_name)
        if not isinstance(output_filters, (list, tuple)):
            output_filters = (output_filters, 0)
        if output_filters[0] > 0:  # in forward_features, as kecam's num_classes=0
            features = ConvBN(shape, output_filters[0], 1, 1, activation=activation,
                              name="features_")  # fmt: skip
            shape = features.output_shape
            self.add(features, features.output_name)
        self._finish(
            PrePredictionsHead(
                shape[-1],
                num_classes,
                hidden=output_filters[1],
                activation=activation,
                drop_rate=dropout,
                classifier_activation=classifier_activation,
            )  # fmt: skip
        )

    def forward_intermediates(self, x: mx.array) -> dict[str, mx.array]:
        """Every feature layer's output keyed by kecam's Keras name of it (``stem_hard_swish``,
        ``stack_1_block_1_downsample_output``, ..., ``features_hard_swish``), and before each
        transform block's output its ``lite_mhsa`` output (``stack_3_block_2_attn_out_bn``)."""
        x = self._as_input(x)
        outputs = {}
        for layer, name in zip(self.layers, self.output_names):
            if isinstance(layer, TransformBlock):
                attn = layer.attn(x)
                outputs[layer.attn.sub("out_bn")] = attn
                x = layer.mb_conv(x + attn)
            else:
                x = layer(x)
            outputs[name] = x
        return outputs


def _build(
    num_blocks=[2, 2, 3, 3], out_channels=[16, 32, 64, 128], stem_width=8,  # noqa: B006
    block_types=["conv", "conv", "transform", "transform"], expansions=4, is_fused=False,  # noqa: B006
    head_dimension=16, output_filters=[1024, 1280], input_shape=(224, 224, 3),  # noqa: B006
    num_classes=1000, activation="hard_swish", drop_connect_rate=0,
    classifier_activation="softmax", dropout=0,
) -> EfficientViTBModel:  # fmt: skip
    return EfficientViTBModel(**locals())


# kecam's EfficientViT_L expansions default: (first block, later blocks) of each of 4 stages
_L_EXPANSIONS = ((16, 4), (16, 4), (16, 4), (24, 6))


def _build_l(
    num_blocks=[2, 2, 5, 5], out_channels=[64, 128, 256, 512], stem_width=32,  # noqa: B006
    head_dimension=32, block_types=["conv", "conv", "conv", "transform"],  # noqa: B006
    is_fused=[True, True, False, False], output_filters=[3072, 3200], activation="gelu",  # noqa: B006
    model_name="efficientvit_l", expansions=None, input_shape=(224, 224, 3), num_classes=1000,
    drop_connect_rate=0, classifier_activation="softmax", dropout=0,
) -> EfficientViTBModel:  # fmt: skip
    """kecam's ``EfficientViT_L``: ``EfficientViT_B`` with L's defaults. kecam's signature ends
    in ``model_name, **kwargs`` (the rest goes to ``EfficientViT_B``); here those are named.
    ``model_name`` names the model only (the registry reads it); ``expansions=None`` is
    kecam's ``kwargs.pop`` default: 16 for each stage's first block (24 for the fourth
    stage's) and 4 after (6)."""
    if len(num_blocks) < len(_L_EXPANSIONS):  # kecam builds the default even when given
        raise ValueError(
            f"num_blocks={list(num_blocks)} must have 4 stages: kecam's EfficientViT_L reads "
            "num_blocks[3] for its default expansions (an IndexError there)"
        )
    if expansions is None:
        expansions = [
            [first] + [rest] * num_blocks[i] for i, (first, rest) in enumerate(_L_EXPANSIONS)
        ]
    return EfficientViTBModel(
        num_blocks=num_blocks, out_channels=out_channels, stem_width=stem_width,
        block_types=block_types, expansions=expansions, is_fused=is_fused,
        head_dimension=head_dimension, output_filters=output_filters, input_shape=input_shape,
        num_classes=num_classes, activation=activation, drop_connect_rate=drop_connect_rate,
        classifier_activation=classifier_activation, dropout=dropout,
    )  # fmt: skip


_FAMILY = {
    "module": "efficientvit.efficientvit_b", "pretrained_dict": PRETRAINED_DICT,
    "pretrained_classes": {}, "sub_release": "efficientvit", "rescale_mode": "torch",
}  # fmt: skip
FAMILY_B = Family(
    builder_name="EfficientViT_B", build=_build, **_FAMILY,
    # kecam's EfficientViT_B(...) arguments past the architecture ones, in kecam's order
    builder_tail=(("pretrained", None), ("model_name", "efficientvit"), ("kwargs", None)),
)  # fmt: skip
FAMILY_L = Family(
    builder_name="EfficientViT_L", build=_build_l, **_FAMILY,
    builder_tail=(("pretrained", None),),
)  # fmt: skip

_B_HEADS = {"head_dimension": 32, "output_filters": [2304, 2560]}
# kecam's constructors: `fixed` are the constructor's locals (kwargs may not repeat them).
MODELS_B = (
    ModelSpec("EfficientViT_B0", "efficientvit_b0"),
    ModelSpec("EfficientViT_B1", "efficientvit_b1", fixed={
        "out_channels": [32, 64, 128, 256], "num_blocks": [2, 3, 4, 5], "stem_width": 16,
        "output_filters": [1536, 1600],
    }),
    ModelSpec("EfficientViT_B2", "efficientvit_b2", fixed={
        "out_channels": [48, 96, 192, 384], "num_blocks": [3, 4, 5, 7], "stem_width": 24,
        **_B_HEADS,
    }),
    ModelSpec("EfficientViT_B3", "efficientvit_b3", fixed={
        "out_channels": [64, 128, 256, 512], "num_blocks": [4, 6, 7, 10], "stem_width": 32,
        **_B_HEADS,
    }),
)  # fmt: skip
# kecam's L constructors pass model_name themselves (kwargs repeating it raise a TypeError)
MODELS_L = (
    ModelSpec("EfficientViT_L0", "efficientvit_l0", fixed={"model_name": "efficientvit_l0"},
              kecam_pretrained=None),
    ModelSpec("EfficientViT_L1", "efficientvit_l1", fixed={
        "num_blocks": [2, 2, 7, 7], "model_name": "efficientvit_l1",
    }),
    ModelSpec("EfficientViT_L2", "efficientvit_l2", fixed={
        "num_blocks": [3, 3, 9, 9], "model_name": "efficientvit_l2",
    }),
    ModelSpec("EfficientViT_L3", "efficientvit_l3", fixed={
        "num_blocks": [3, 3, 9, 9], "out_channels": [128, 256, 512, 1024], "stem_width": 64,
        "output_filters": [6144, 6400], "model_name": "efficientvit_l3",
    }),
)  # fmt: skip
MODELS = MODELS_B + MODELS_L


def _constructor_args(activation: str) -> tuple:
    """The constructors' explicit arguments (kecam's order and defaults; `pretrained` follows)."""
    return (
        ("input_shape", (224, 224, 3)),
        ("num_classes", 1000),
        ("activation", activation),
        ("classifier_activation", "softmax"),
    )


EfficientViT_B, constructors = register_family(FAMILY_B, MODELS_B, _constructor_args("hard_swish"))
EfficientViT_L, constructors_l = register_family(FAMILY_L, MODELS_L, _constructor_args("gelu"))
constructors.update(constructors_l)
globals().update(constructors)

__all__ = [
    "MODELS", "PRETRAINED_DICT", "ConvBN", "EfficientViTBModel", "EfficientViT_B",
    "EfficientViT_L", "MBConv", "PrePredictionsHead", "TransformBlock", "lite_mhsa",
    *constructors,
]  # fmt: skip
