"""UniFormer (kecam ``uniformer/uniformer.py``): one family builder, seven models.

``Uniformer(...)`` is kecam's family builder (its arguments and defaults), for reduced
configurations; the named models are rows of ``MODELS`` and are registered with
``mlx_attention.models``. Stages of convolutional blocks (``block_types`` ``"conv"``) and of
self-attention blocks (``"transform"``) share a depthwise positional encoding; the attention is
the library's ``multi_head_self_attention`` over every token of the stage.

kecam's ``token_label`` release files also carry the token-labelling head ``aux_head``. Built
with ``token_label_top=True`` the model has it and returns kecam's two outputs (class logits,
``[B, H * W, classes]`` token logits), and ``decode_predictions`` combines them as kecam's
``token_label_imagenet_decode_predictions``. Built without it (the default), the model loads
such a file and reports ``aux_head`` under ``load_report.skipped``, even under ``strict``: it
is a known optional head of the release files, not a foreign weight.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import mlx.core as mx
import mlx.nn as nn

from .. import attention_layers
from ..layers import Activation, KerasLayer, KerasModule
from ._base import ImageClassifier, channels_last
from ._glue import ClassifierHead, LayerScaleResidual, conv_output_size, drop_connect_rates
from ._registry import Family, ModelSpec, register_family
from .davit import ConvPositionalEncodingAdd

# kecam 1.4.3 uniformer/uniformer.py PRETRAINED_DICT: {model.name: {tag: {resolution: md5}}}.
PRETRAINED_DICT = {
    "uniformer_base_32": {"token_label": {224: "992e2534c5741b2fb4f35a99b40b9c98"}},
    "uniformer_base_64": {
        "imagenet": {224: "e852a51824f01ef9a87792395d0d8820"},
        "token_label": {224: "f72f7683bfe19854c79f9395f31bdb23"},
    },
    "uniformer_small_32": {"token_label": {224: "efb9e6531fcc2b560abdddc16b7e8297"}},
    "uniformer_small_64": {
        "imagenet": {224: "867648a1d96af15ef553337e27b53ede"},
        "token_label": {224: "4d8d4f874b5bcf47594587800ff61fbd"},
    },
    "uniformer_small_plus_32": {
        "imagenet": {224: "7796cce29b5ea6572330547ba7eb5e0d"},
        "token_label": {224: "b1d32f5e5714b66d76ef2fecce636dfb"},
    },
    "uniformer_small_plus_64": {
        "imagenet": {224: "7d10381f4527496adb2d39c4a665c808"},
        "token_label": {224: "15d6af207a0f09957a5534ae1ad540ed"},
    },
    "uniformer_large_64": {
        "token_label": {
            224: "b1020b4e8029209a326e8fe7183d7d28",
            384: "809ba104d43e905d5b24a8ec6ee02bdd",
        }
    },
}

# kecam's epsilons: BatchNormalization 1e-5 (batchnorm_with_activation's default), LN 1e-6.
LAYER_NORM_EPSILON = 1e-6
# The Keras layer of the release files that a model without ``token_label_top`` does not use.
AUX_HEAD = "aux_head"


class UniformerConvBlock(KerasModule):
    """kecam's ``uniformer.conv_block``: positional encoding (``x + dwconv3x3(x)``), then
    BN -> 1x1 conv -> depthwise 5x5 -> 1x1 conv as the "attention", layer-scale residual; BN
    -> conv MLP -> layer-scale residual.

    Args:
        input_shape: ``(H, W, C)`` of the block's map.
        mlp_ratio, drop_rate, layer_scale, activation: kecam's arguments.
        name: kecam's block prefix, e.g. ``"stack1_block1_"``.

    Shape:
        ``[B, H, W, C] -> [B, H, W, C]``
    """

    def __init__(
        self, input_shape: tuple[int, int, int], *, mlp_ratio: float = 4, drop_rate: float = 0,
        layer_scale: float = -1, activation: str = "gelu", name: str,
    ):  # fmt: skip
        super().__init__(name)
        dims = input_shape[-1]
        self.pos_emb = ConvPositionalEncodingAdd(input_shape, name=self.sub("pos_emb_"))
        self.attn_bn = attention_layers.batchnorm_with_activation(
            input_shape, name=self.sub("attn_")
        )
        self.attn = [
            attention_layers.conv2d_no_bias(
                input_shape, dims, 1, use_bias=True, name=self.sub("attn_1_")
            ),
            attention_layers.depthwise_conv2d_no_bias(
                input_shape, 5, padding="same", use_bias=True, name=self.sub("attn_")
            ),
            attention_layers.conv2d_no_bias(
                input_shape, dims, 1, use_bias=True, name=self.sub("attn_2_")
            ),
        ]
        self.attn_residual = LayerScaleResidual(
            dims, layer_scale=layer_scale, drop_rate=drop_rate, name=self.sub("1_")
        )
        self.mlp_bn = attention_layers.batchnorm_with_activation(input_shape, name=self.sub("mlp_"))
        self.mlp = attention_layers.mlp_block(
            input_shape, int(dims * mlp_ratio), use_conv=True, activation=activation,
            name=self.sub("mlp_"),
        )  # fmt: skip
        self.mlp_residual = LayerScaleResidual(
            dims, layer_scale=layer_scale, drop_rate=drop_rate, name=self.sub("2_")
        )

    @property
    def output_name(self) -> str:
        return self.mlp_residual.output_name

    def __call__(self, x: mx.array) -> mx.array:
        x = self.pos_emb(x)
        deep = self.attn_bn(x)
        for layer in self.attn:
            deep = layer(deep)
        x = self.attn_residual(x, deep)
        return self.mlp_residual(x, self.mlp(self.mlp_bn(x)))


class UniformerAttnBlock(KerasModule):
    """kecam's ``uniformer.attn_block``: positional encoding (``x + dwconv3x3(x)``), then LN ->
    multi-head self-attention over the map's tokens -> layer-scale residual; LN -> MLP ->
    layer-scale residual.

    kecam reshapes the map to ``[B, H * W, C]`` for the block and back after it, so its
    ``..._2_output`` is the token form (``forward_intermediates`` returns it so); the per-token
    layers here work on the map directly.

    Args:
        input_shape: ``(H, W, C)`` of the block's map.
        num_heads: attention heads (kecam: ``out_channel // head_dimension``).
        out_channel: kecam's ``out_channel``: the MLP's hidden width is
            ``int(out_channel * mlp_ratio)``.
        qkv_bias, mlp_ratio, attn_drop_rate, drop_rate, layer_scale, activation: kecam's.
        name: kecam's block prefix, e.g. ``"stack3_block1_"``.

    Shape:
        ``[B, H, W, C] -> [B, H, W, C]``
    """

    def __init__(
        self, input_shape: tuple[int, int, int], num_heads: int, *, out_channel: int,
        qkv_bias: bool = True, mlp_ratio: float = 4, attn_drop_rate: float = 0,
        drop_rate: float = 0, layer_scale: float = -1, activation: str = "gelu", name: str,
    ):  # fmt: skip
        super().__init__(name)
        dims = input_shape[-1]
        self.pos_emb = ConvPositionalEncodingAdd(input_shape, name=self.sub("pos_emb_"))
        self.attn_ln = attention_layers.layer_norm(
            input_shape, epsilon=LAYER_NORM_EPSILON, name=self.sub("attn_")
        )
        self.attn = attention_layers.multi_head_self_attention(
            input_shape, num_heads, qkv_bias=qkv_bias, out_bias=True,
            attn_dropout=attn_drop_rate, name=self.sub("attn_mhsa_"),
        )  # fmt: skip
        self.attn_residual = LayerScaleResidual(
            dims, layer_scale=layer_scale, drop_rate=drop_rate, name=self.sub("1_")
        )
        self.mlp_ln = attention_layers.layer_norm(
            input_shape, epsilon=LAYER_NORM_EPSILON, name=self.sub("mlp_")
        )
        self.mlp = attention_layers.mlp_block(
            input_shape, int(out_channel * mlp_ratio), activation=activation,
            name=self.sub("mlp_"),
        )  # fmt: skip
        self.mlp_residual = LayerScaleResidual(
            dims, layer_scale=layer_scale, drop_rate=drop_rate, name=self.sub("2_")
        )

    @property
    def output_name(self) -> str:
        return self.mlp_residual.output_name

    def __call__(self, x: mx.array) -> mx.array:
        x = self.pos_emb(x)
        x = self.attn_residual(x, self.attn(self.attn_ln(x)))
        return self.mlp_residual(x, self.mlp(self.mlp_ln(x)))


class TokenLabelHead(ClassifierHead):
    """kecam's head with ``token_label_top``: ``output_block`` without activation (class
    logits) and ``Dense(num_classes, name="aux_head")`` on every token of the map, reshaped to
    ``[B, H * W, num_classes]``; the model returns both. With ``mix_token`` kecam appends its
    token-mixup ``lam`` to the class logits, 1 at inference (no mixed area); the random
    mixup of kecam's training phase is not reproduced (``train()`` mode computes the same).

    Args:
        dims: channels of the feature map.
        num_classes: classes; ``0`` for no head (the feature map passes through, as kecam's
            ``output_block``).
        drop_rate: dropout before ``predictions`` (training only).
        mix_token: kecam's ``mix_token``.

    Shape:
        ``[B, H, W, dims] -> ([B, num_classes (+ 1 with mix_token)], [B, H * W, num_classes])``
    """

    def __init__(
        self, dims: int, num_classes: int = 1000, *, drop_rate: float = 0, mix_token: bool = False
    ):
        super().__init__(dims, num_classes, drop_rate=drop_rate, classifier_activation=None)
        self.mix_token = mix_token

    def reset(self, num_classes: int, classifier_activation: str | None = None) -> None:
        """New, randomly initialised heads for ``num_classes`` (0: none); kecam's class
        output is logits whatever ``classifier_activation`` says."""
        super().reset(num_classes, None)
        self.aux_head = nn.Linear(self.num_features, num_classes) if num_classes else None

    def keras_layers(self):
        aux = () if self.aux_head is None else (KerasLayer(AUX_HEAD, "Dense", self.aux_head),)
        return (*super().keras_layers(), *aux)

    def __call__(self, x: mx.array) -> mx.array | tuple[mx.array, mx.array]:
        logits = super().__call__(x)
        if self.aux_head is None:
            return logits
        tokens = x.astype(mx.float32).reshape(x.shape[0], -1, x.shape[-1])
        aux = self.aux_head(tokens.astype(self.aux_head.weight.dtype)).astype(mx.float32)
        if self.mix_token:
            logits = mx.concatenate([logits, mx.ones((x.shape[0], 1), logits.dtype)], axis=-1)
        return logits, aux


class UniformerModel(ImageClassifier):
    """kecam's ``Uniformer`` model: a 4x4 stride-4 conv stem + LN (or, ``use_conv_stem``, two
    3x3 stride-2 convs with BatchNorms), four stages of ``UniformerConvBlock`` or
    ``UniformerAttnBlock`` (a 2x2 stride-2 conv + LN between them, or a 3x3 stride-2 conv + BN
    with ``use_conv_stem``), ``post_bn`` and kecam's ``output_block`` (``TokenLabelHead`` with
    ``token_label_top``). Arguments are those of :func:`Uniformer`.

    Shape:
        ``[B, H, W, 3] -> [B, num_classes]`` (two outputs with ``token_label_top``: see
        ``TokenLabelHead``); ``forward_features``: ``[B, H/32, W/32, C]`` (sizes rounded down
        at the valid convs, up at the padded ones of ``use_conv_stem``).
    """

    def __init__(
        self, *, num_blocks: Sequence[int], out_channels: Sequence[int], head_dimension: int,
        use_conv_stem: bool, block_types: Sequence[str], stem_width: int, qkv_bias: bool,
        mlp_ratio: float, layer_scale: float, mix_token: bool, token_label_top: bool,
        input_shape: Sequence[int], num_classes: int, activation: str, mlp_drop_rate: float,
        attn_drop_rate: float, drop_connect_rate: float, dropout: float,
        classifier_activation: str | None,
    ):  # fmt: skip
        input_shape = channels_last(input_shape)
        super().__init__(input_shape)
        if not len(num_blocks) == len(out_channels) == len(block_types):
            raise ValueError(
                f"num_blocks={list(num_blocks)}, out_channels={list(out_channels)} and "
                f"block_types={list(block_types)} must have one entry per stage"
            )
        if mlp_drop_rate > 0:
            # kecam's stem builds `layers.Dropout(mlp_drop_rate)` without calling it, and its
            # next layer refuses the layer object
            raise ValueError(
                f"mlp_drop_rate={mlp_drop_rate}: kecam's Uniformer cannot build with it (its "
                "stem's Dropout is never applied to a tensor); use 0"
            )
        stem_width = stem_width if stem_width > 0 else out_channels[0]
        if block_types[0][0].lower() == "c" and stem_width != out_channels[0]:
            raise ValueError(
                f"stem_width={stem_width} must equal out_channels[0]={out_channels[0]} when the "
                "first stage is convolutional (kecam's residual Add cannot add them)"
            )
        shape = self._stem(input_shape, stem_width, use_conv_stem, activation)

        rates = drop_connect_rates(num_blocks, drop_connect_rate)
        token_outputs = []
        for stack_id, (blocks, out_channel, block_type) in enumerate(
            zip(num_blocks, out_channels, block_types)
        ):
            stack_name = f"stack{stack_id + 1}_"
            if stack_id > 0:
                shape = self._downsample(shape, out_channel, use_conv_stem, stack_name)
            is_conv = block_type[0].lower() == "c"
            for block_id in range(blocks):
                common = {
                    "mlp_ratio": mlp_ratio, "layer_scale": layer_scale, "activation": activation,
                    "drop_rate": rates[stack_id][block_id],
                    "name": f"{stack_name}block{block_id + 1}_",
                }  # fmt: skip
                if is_conv:
                    block = UniformerConvBlock(shape, **common)
                else:
                    heads = out_channel // head_dimension
                    if heads < 1:
                        raise ValueError(
                            f"out_channels[{stack_id}]={out_channel} < head_dimension="
                            f"{head_dimension}: the attention stage would have 0 heads"
                        )
                    block = UniformerAttnBlock(
                        shape, heads, out_channel=out_channel, qkv_bias=qkv_bias,
                        attn_drop_rate=attn_drop_rate, **common,
                    )  # fmt: skip
                    token_outputs.append(block.output_name)
                self.add(block, block.output_name)
        object.__setattr__(self, "token_outputs", frozenset(token_outputs))
        post = attention_layers.batchnorm_with_activation(shape, name="post_")
        self.add(post, post.sub("bn"))
        self.token_label_top = token_label_top
        if token_label_top:
            head = TokenLabelHead(shape[-1], num_classes, drop_rate=dropout, mix_token=mix_token)
        else:
            head = ClassifierHead(
                shape[-1], num_classes, drop_rate=dropout,
                classifier_activation=classifier_activation,
            )  # fmt: skip
        self._finish(head)
        # A release file's token-label head, which this model does not use, loads as skipped
        object.__setattr__(self, "optional_layers", () if token_label_top else (AUX_HEAD,))

    def _stem(
        self, shape: tuple[int, int, int], stem_width: int, use_conv_stem: bool, activation: str
    ) -> tuple[int, int, int]:
        """kecam's ``uniformer.stem``, its layers added; returns the output shape."""
        if not use_conv_stem:
            conv = attention_layers.conv2d_no_bias(
                shape, stem_width, 4, strides=4, use_bias=True, name="stem_"
            )
            self.add(conv, conv.sub("conv"))
            shape = (*conv_output_size(conv, *shape[:2]), stem_width)
            norm = attention_layers.layer_norm(shape, epsilon=LAYER_NORM_EPSILON, name="stem_")
            self.add(norm, norm.sub("ln"))
            return shape
        for index, filters in enumerate((stem_width // 2, stem_width)):
            if index:
                act = attention_layers.activation_by_name(shape, activation, name="stem_")
                self.add(act, f"stem_{activation}")
            shape = self._conv_bn(shape, filters, 3, f"stem_{index + 1}_")
        return shape

    def _conv_bn(
        self, shape: tuple[int, int, int], filters: int, kernel_size: int, name: str
    ) -> tuple[int, int, int]:
        """A stride-2 ``conv2d_no_bias`` with bias ("same", torch padding) and its BN."""
        conv = attention_layers.conv2d_no_bias(
            shape, filters, kernel_size, strides=2, padding="same", use_bias=True, name=name
        )
        self.add(conv, conv.sub("conv"))
        shape = (*conv_output_size(conv, *shape[:2]), filters)
        norm = attention_layers.batchnorm_with_activation(shape, name=name)
        self.add(norm, norm.sub("bn"))
        return shape

    def _downsample(
        self, shape: tuple[int, int, int], out_channel: int, use_conv_stem: bool, name: str
    ) -> tuple[int, int, int]:
        """The stage's ``downsample_`` layers; returns the output shape."""
        name += "downsample_"
        if use_conv_stem:
            return self._conv_bn(shape, out_channel, 3, name)
        conv = attention_layers.conv2d_no_bias(
            shape, out_channel, 2, strides=2, use_bias=True, name=name
        )
        self.add(conv, conv.sub("conv"))
        shape = (*conv_output_size(conv, *shape[:2]), out_channel)
        norm = attention_layers.layer_norm(shape, epsilon=LAYER_NORM_EPSILON, name=name)
        self.add(norm, norm.sub("ln"))
        return shape

    def forward_intermediates(self, x: mx.array) -> dict[str, mx.array]:
        """Every feature layer's output by kecam's Keras name; an attention block's
        ``..._2_output`` in kecam's token form ``[B, H * W, C]``."""
        outputs = super().forward_intermediates(x)
        for name in self.token_outputs:
            value = outputs[name]
            outputs[name] = value.reshape(value.shape[0], -1, value.shape[-1])
        return outputs

    def combined(self) -> UniformerModel:
        """The model with one output, for ``predict`` and ``evaluate``: with
        ``token_label_top``, a new model (sharing this one's arrays) whose output is kecam's
        decoding score ``softmax(class + 0.5 * max over tokens)`` (``combine_token_label``);
        otherwise the model itself."""
        if not self.token_label_top:
            return self
        one = copy.copy(self)
        one.head = CombinedTokenLabelHead(self.head)
        one.token_label_top = False
        object.__setattr__(
            one, "pretrained_cfg", {**self.pretrained_cfg, "classifier_activation": "softmax"}
        )
        return one

    def decode_predictions(self, preds, top: int = 5):
        """kecam's ``model.decode_predictions``; with ``token_label_top`` kecam's
        ``token_label_imagenet_decode_predictions``: ``softmax(preds[0] + 0.5 * max over tokens
        of preds[1])`` decoded."""
        if self.token_label_top:
            preds = combine_token_label(preds)
        return super().decode_predictions(preds, top=top)


class CombinedTokenLabelHead(KerasModule):
    """A ``TokenLabelHead`` whose two outputs are combined as kecam's decoding does
    (``combine_token_label``); the same Keras layers.

    Shape:
        ``[B, H, W, dims] -> [B, num_classes]``
    """

    def __init__(self, head: TokenLabelHead):
        super().__init__("")
        self.head = head
        self.num_classes, self.num_features = head.num_classes, head.num_features

    @property
    def predictions(self) -> nn.Linear | None:
        return self.head.predictions

    @property
    def features(self) -> list | None:
        return self.head.features

    def __call__(self, x: mx.array) -> mx.array:
        out = self.head(x)
        return combine_token_label(out) if isinstance(out, tuple) else out


def combine_token_label(preds, classifier_activation: str | None = "softmax") -> mx.array:
    """kecam's ``token_label_imagenet_decode_predictions`` without the decoding: the class
    logits plus half the tokens' largest logit per class, then ``classifier_activation``.

    Args:
        preds: a token-label model's ``(class logits [B, K], token logits [B, N, K])``.
        classifier_activation: a kecam activation name, or ``None`` for the sum.

    Shape:
        ``([B, K], [B, N, K]) -> [B, K]``
    """
    logits, tokens = (mx.array(p) if not isinstance(p, mx.array) else p for p in preds)
    return Activation(classifier_activation)(logits + 0.5 * mx.max(tokens, axis=1))


def _build(
    num_blocks=[3, 4, 8, 3], out_channels=[64, 128, 320, 512], head_dimension=64,  # noqa: B006
    use_conv_stem=False, block_types=["conv", "conv", "transform", "transform"],  # noqa: B006
    stem_width=-1, qkv_bias=True, mlp_ratio=4, layer_scale=-1, mix_token=False,
    token_label_top=False, input_shape=(224, 224, 3), num_classes=1000, activation="gelu",
    mlp_drop_rate=0, attn_drop_rate=0, drop_connect_rate=0, dropout=0,
    classifier_activation="softmax",
) -> UniformerModel:  # fmt: skip
    return UniformerModel(
        num_blocks=num_blocks, out_channels=out_channels, head_dimension=head_dimension,
        use_conv_stem=use_conv_stem, block_types=block_types, stem_width=stem_width,
        qkv_bias=qkv_bias, mlp_ratio=mlp_ratio, layer_scale=layer_scale, mix_token=mix_token,
        token_label_top=token_label_top, input_shape=input_shape, num_classes=num_classes,
        activation=activation, mlp_drop_rate=mlp_drop_rate, attn_drop_rate=attn_drop_rate,
        drop_connect_rate=drop_connect_rate, dropout=dropout,
        classifier_activation=classifier_activation,
    )  # fmt: skip


FAMILY = Family(
    module="uniformer",
    builder_name="Uniformer",
    build=_build,
    pretrained_dict=PRETRAINED_DICT,
    pretrained_classes={},
    sub_release="uniformer",
    rescale_mode="torch",
    # kecam's Uniformer(...) arguments past the architecture ones, in kecam's order
    builder_tail=(("pretrained", None), ("model_name", "uniformer"), ("kwargs", None)),
)

_SMALL = {"num_blocks": [3, 4, 8, 3]}
_SMALL_PLUS = {"num_blocks": [3, 5, 9, 3], "use_conv_stem": True}
_BASE = {"num_blocks": [5, 8, 20, 7]}
# kecam's constructors: `fixed` are the constructor's locals (kwargs may not repeat them).
MODELS = (
    ModelSpec("UniformerSmall32", "uniformer_small_32", fixed={**_SMALL, "head_dimension": 32},
              kecam_pretrained="token_label"),
    ModelSpec("UniformerSmall64", "uniformer_small_64", fixed={**_SMALL, "head_dimension": 64}),
    ModelSpec("UniformerSmallPlus32", "uniformer_small_plus_32",
              fixed={**_SMALL_PLUS, "head_dimension": 32}),
    ModelSpec("UniformerSmallPlus64", "uniformer_small_plus_64",
              fixed={**_SMALL_PLUS, "head_dimension": 64}),
    ModelSpec("UniformerBase32", "uniformer_base_32", fixed={**_BASE, "head_dimension": 32},
              kecam_pretrained="token_label"),
    ModelSpec("UniformerBase64", "uniformer_base_64", fixed={**_BASE, "head_dimension": 64}),
    ModelSpec("UniformerLarge64", "uniformer_large_64", fixed={
        "num_blocks": [5, 10, 24, 7], "out_channels": [128, 192, 448, 640],
        "head_dimension": 64, "layer_scale": 1e-6,
    }, kecam_pretrained="token_label"),
)  # fmt: skip

# The constructor's explicit arguments (kecam's order and defaults; `pretrained` follows them).
CONSTRUCTOR_ARGS = (
    ("input_shape", (224, 224, 3)),
    ("num_classes", 1000),
    ("classifier_activation", "softmax"),
    ("token_label_top", False),
)

Uniformer, constructors = register_family(FAMILY, MODELS, CONSTRUCTOR_ARGS)
globals().update(constructors)

__all__ = [
    "AUX_HEAD", "MODELS", "PRETRAINED_DICT", "CombinedTokenLabelHead", "TokenLabelHead",
    "Uniformer", "UniformerAttnBlock", "UniformerConvBlock", "UniformerModel",
    "combine_token_label", *constructors,
]  # fmt: skip
