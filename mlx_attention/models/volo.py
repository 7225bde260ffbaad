"""VOLO (kecam ``volo/volo.py``): one family builder, five models.

``VOLO(...)`` is kecam's family builder (its arguments and defaults), for reduced
configurations; the named models are rows of ``MODELS`` and are registered with
``mlx_attention.models``. kecam's VOLO returns **logits** and takes no ``classifier_activation``
(nor do these constructors: their signatures are kecam's).

The network: ``patch_stem`` (three conv + BN + ReLU, then a ``patch_size // 2`` patch conv),
outlook-attention blocks, a 2x2 stride-2 ``downsample_conv``, ``positional_embedding``, MHSA
blocks (Keras's own ``MultiHeadAttention`` and a ``BiasLayer``), then the class stage: a class
token, ``classfiers`` class-attention blocks (kecam's spelling) that attend from the class token
only, ``pre_out_LN``, and ``token_head(x[:, 0]) + 0.5 * max(aux_head(x[:, 1:]))``.
``forward_features`` is kecam's ``num_classes=0`` output: the MHSA stage's map, before the class
token. ``positional_embedding`` depends on the input size: ``resize=True`` resizes a table saved
at another size (kecam's ``mismatch_class``), bilinearly as kecam 1.4.3.

Training-only options: ``mix_token`` (kecam's ``MixupToken``) changes nothing at inference (its
box is empty there), except that with ``token_label_top`` kecam appends the mixing ratio, 1, to
the class output (``[B, num_classes + 1]``), as here; token mixing in training mode is not
reproduced (a model built with it refuses to run in training mode).
"""

from __future__ import annotations

from collections.abc import Sequence

import mlx.core as mx
import mlx.nn as nn
import numpy as np

from .. import attention_layers
from ..layers import (
    Activation,
    BiasLayer,
    ClassToken,
    DropBlock,
    KerasLayer,
    KerasModule,
    KerasMultiHeadAttention,
    LayerNorm,
    PositionalEmbedding,
)
from ..layers.base import ModuleTree
from ._base import ImageClassifier, channels_last
from ._glue import conv_output_size, drop_connect_rates
from ._registry import Family, ModelSpec, register_family

# kecam 1.4.3 volo/volo.py PRETRAINED_DICT: {model.name: {tag: {width: md5}}}.
PRETRAINED_DICT = {
    "volo_d1": {"imagenet": {
        224: "b642d39b05da9f460035d5d5fa617774", 384: "c7632a783d43278608d84f9463743b2e",
    }},
    "volo_d2": {"imagenet": {
        224: "19c6c49d3a1020e9fafbcce775200e30", 384: "fc0435d59925e547d9003010a51e4a16",
    }},
    "volo_d3": {"imagenet": {
        224: "42ae5c1be8ceb644d4f7c3d894a0034f", 448: "62304a047f182265617c49f74991e6a0",
    }},
    "volo_d4": {"imagenet": {
        224: "b45c6518b5e7624b0f6a61f18a5a7bae", 448: "c3e48df2a555032608d48841d2f4a551",
    }},
    "volo_d5": {"imagenet": {
        224: "19c98591fb2a97c2a51d9723c2ff6e1d", 448: "6f9858b667cfef77339901c3121c85a1",
        512: "f2aa0cb8e265cabee840a6b83858d086",
    }},
}  # fmt: skip

ATTENTION_TYPES = ("outlook", "outlook_simple", "mhsa", "class")


class NamedLayerNorm(LayerNorm):
    """kecam's ``layers.LayerNormalization(name=name)``: the Keras layer is ``name`` itself
    (VOLO's ``..._LN``), not ``layer_norm``'s ``name + "ln"``."""

    def keras_layers(self):
        return (KerasLayer(self.sub(""), "LayerNormalization", self.ln),)


class VOLOStem(KerasModule):
    """kecam's ``volo.patch_stem``: a 7x7 stride-2 and two 3x3 ``conv2d_no_bias`` ("same",
    torch padding), each with BN + ReLU (``stem_1_`` .. ``stem_3_``), then a
    ``patch_size // 2`` square patch conv with bias (``stem_patch_conv``, VALID).

    Shape:
        ``[B, H, W, C] -> [B, ceil(H/2) // s, ceil(W/2) // s, stem_width]``, ``s = patch_size // 2``
    """

    def __init__(
        self, input_shape: tuple[int, int, int], hidden_dim: int, stem_width: int,
        patch_size: int, *, name: str = "stem_",
    ):  # fmt: skip
        super().__init__(name)
        patch_step = patch_size // 2
        if patch_step < 1:
            raise ValueError(
                f"patch_size={patch_size} must be >= 2 (the patch conv is patch_size // 2)"
            )
        height, width, channels = input_shape
        self.layers = []
        for index, (kernel, strides) in enumerate(((7, 2), (3, 1), (3, 1))):
            prefix = self.sub(f"{index + 1}_")
            conv = attention_layers.conv2d_no_bias(
                (height, width, channels), hidden_dim, kernel, strides=strides, padding="same",
                name=prefix,
            )  # fmt: skip
            (height, width), channels = conv_output_size(conv, height, width), hidden_dim
            norm = attention_layers.batchnorm_with_activation(
                (height, width, channels), activation="relu", name=prefix
            )
            self.layers += [conv, norm]
        if height < patch_step or width < patch_step:
            raise ValueError(
                f"input_shape={tuple(input_shape)}: the stem's {height}x{width} map is smaller "
                f"than the {patch_step}x{patch_step} patch (patch_size={patch_size})"
            )
        patch = attention_layers.conv2d_no_bias(
            (height, width, channels), stem_width, patch_step, strides=patch_step,
            use_bias=True, name=self.sub("patch_"),
        )  # fmt: skip
        self.layers.append(patch)
        self.output_shape = (*conv_output_size(patch, height, width), stem_width)

    @property
    def output_name(self) -> str:
        return self.sub("patch_conv")

    def __call__(self, x: mx.array) -> mx.array:
        for layer in self.layers:
            x = layer(x)
        return x


class VOLOBlock(KerasModule):
    """kecam's ``volo.attention_mlp_block``: ``name + "LN"`` -> attention -> residual, then
    ``mlp_LN`` -> ``mlp_dense_1`` -> activation -> ``mlp_dense_2`` -> residual (the ``Add``
    named ``name + "output"``).

    The attention is ``outlook_attention`` or ``outlook_attention_simple`` (a map), Keras
    ``MultiHeadAttention`` (``attn_mhsa``, no biases, query scaled by ``1/sqrt(key_dim)``) then
    ``BiasLayer`` (``attn_bias``) over every position (``"mhsa"``), or the same from the first
    token only (``"class"``: tokens ``[B, N, C]``; the first token is updated, the others are
    concatenated back unchanged).

    Args:
        input_shape: ``(H, W, C)`` of the map, or ``(N, C)`` tokens for ``"class"``.
        embed_dim, num_heads, mlp_ratio: kecam's arguments (``key_dim = embed_dim //
            num_heads``; the hidden width is ``int(embed_dim * mlp_ratio)``).
        attention_type: one of ``ATTENTION_TYPES``.
        drop_rate: stochastic depth of both branches (training only).
        mlp_activation: a kecam activation name.
        name: kecam's block prefix (``"outlook_block0_"``, ``"MHSA_block0_"``, ``"classfiers0_"``).

    Shape:
        ``[B, *input_shape] -> [B, *input_shape]``
    """

    def __init__(
        self, input_shape: tuple[int, ...], embed_dim: int, num_heads: int, mlp_ratio: float,
        attention_type: str, *, drop_rate: float = 0, mlp_activation: str = "gelu", name: str,
    ):  # fmt: skip
        super().__init__(name)
        if attention_type not in ATTENTION_TYPES:
            raise ValueError(
                f"attention_type={attention_type!r}: expected one of {ATTENTION_TYPES}"
            )
        dims = input_shape[-1]
        if embed_dim != dims:  # kecam's Add of the shortcut and the attention output fails
            raise ValueError(
                f"{name}: embed_dim={embed_dim} must equal the {dims} input channels (the "
                "attention output is added to its input)"
            )
        self.is_class = attention_type == "class"
        self.attn_ln = NamedLayerNorm(dims, name=self.sub("LN"))
        self.attn_bias = None
        if attention_type == "outlook":
            self.attn = attention_layers.outlook_attention(
                input_shape, embed_dim, num_heads=num_heads, name=self.sub("attn_")
            )
        elif attention_type == "outlook_simple":
            self.attn = attention_layers.outlook_attention_simple(
                input_shape, embed_dim, num_heads=num_heads, name=self.sub("attn_")
            )
        else:
            key_dim = embed_dim // num_heads
            if key_dim < 1:
                raise ValueError(
                    f"{name}: num_heads={num_heads} on embed_dim={embed_dim} gives key_dim 0"
                )
            self.attn = KerasMultiHeadAttention(
                dims, num_heads, key_dim, output_shape=embed_dim, use_bias=False,
                name=self.sub("attn_mhsa"),
            )  # fmt: skip
            self.attn_bias = BiasLayer((embed_dim,), name=self.sub("attn_bias"))
        self.drop_1 = DropBlock(drop_rate)
        hidden = int(embed_dim * mlp_ratio)
        self.mlp_ln = NamedLayerNorm(embed_dim, name=self.sub("mlp_LN"))
        self.mlp_dense_1 = nn.Linear(embed_dim, hidden)
        self.mlp_act = Activation(mlp_activation, dims=hidden)
        self.mlp_dense_2 = nn.Linear(hidden, embed_dim)
        self.drop_2 = DropBlock(drop_rate)

    def keras_layers(self):
        return (
            KerasLayer(self.sub("mlp_dense_1"), "Dense", self.mlp_dense_1),
            KerasLayer(self.sub("mlp_dense_2"), "Dense", self.mlp_dense_2),
        )

    @property
    def output_name(self) -> str:
        """kecam's ``name + "output"``: for ``"class"``, the class token ``[B, 1, C]`` before
        the other tokens are concatenated back."""
        return self.sub("output")

    def residual(self, x: mx.array) -> mx.array:
        """The block up to its ``output`` layer (the class token alone for ``"class"``)."""
        normed = self.attn_ln(x)
        if self.is_class:
            short, attn = x[:, :1], self.attn(normed[:, :1], normed)
        else:
            short = x
            attn = self.attn(normed, normed) if self.attn_bias is not None else self.attn(normed)
        if self.attn_bias is not None:
            attn = self.attn_bias(attn)
        x = short + self.drop_1(attn)
        mlp = self.mlp_dense_2(self.mlp_act(self.mlp_dense_1(self.mlp_ln(x))))
        return x + self.drop_2(mlp)

    def __call__(self, x: mx.array) -> mx.array:
        out = self.residual(x)
        return mx.concatenate([out, x[:, 1:]], axis=1) if self.is_class else out


class VOLOHead(KerasModule):
    """kecam's VOLO after the MHSA stage: the map as tokens, ``class_token``, ``classfiers``
    class-attention blocks, ``pre_out_LN``, then the top (the Dense layers in float32, as
    kecam forces them):

    - default: ``token_head(x[:, 0]) + 0.5 * max(aux_head(x[:, 1:]), tokens)``;
    - ``token_label_top``: ``(token_head(x[:, 0]), aux_head(x[:, 1:]))``, two outputs (with
      ``mix_token`` the first gets kecam's mixing ratio, 1 at inference, as an extra column);
    - ``mean_classifier_top``: ``token_head`` of the mean of every token (class token included);
    - ``token_classifier_top``: ``token_head(x[:, 0])``.

    With ``num_classes=0`` there is no class stage (kecam's model ends at the MHSA stage).

    Shape:
        ``[B, H, W, C] -> [B, num_classes]`` (see above for ``token_label_top``)
    """

    def __init__(
        self, dims: int, grid: tuple[int, int], num_classes: int, *, classfiers: int,
        num_heads: int, mlp_ratio: float, mlp_activation: str, top: str, mix_token: bool,
    ):  # fmt: skip
        super().__init__("")
        self.num_features, self.features = dims, None
        self._stage = {
            "tokens": grid[0] * grid[1] + 1, "classfiers": classfiers, "num_heads": num_heads,
            "mlp_ratio": mlp_ratio, "mlp_activation": mlp_activation,
        }  # fmt: skip
        self.top, self.mix_token = top, mix_token
        self.class_token, self.blocks, self.pre_out_ln = None, [], None
        self.token_head = self.aux_head = None
        self.reset(num_classes, None)

    def _build_stage(self) -> None:
        stage, dims = self._stage, self.num_features
        self.class_token = ClassToken(dims, name="class_token")
        self.blocks = [
            VOLOBlock(
                (stage["tokens"], dims),
                dims,
                stage["num_heads"],
                stage["mlp_ratio"],
                "class",
                mlp_activation=stage["mlp_activation"],
                name=f"classfiers{index}_",
            )  # fmt: skip
            for index in range(stage["classfiers"])
        ]
        self.pre_out_ln = NamedLayerNorm(dims, name="pre_out_LN")

    def reset(self, num_classes: int, classifier_activation: str | None) -> None:
        """New, randomly initialised heads for ``num_classes``; ``0`` removes the class stage
        (kecam's ``num_classes=0`` model), which a later reset rebuilds at random."""
        if classifier_activation is not None:
            raise ValueError(
                f"classifier_activation={classifier_activation!r}: kecam's VOLO returns logits "
                "(it has no classifier activation)"
            )
        if num_classes < 0:
            raise ValueError(f"num_classes={num_classes} must be >= 0")
        self.num_classes = num_classes
        if not num_classes:
            self.class_token, self.blocks, self.pre_out_ln = None, [], None
            self.token_head = self.aux_head = None
            return
        if self.class_token is None:
            self._build_stage()
        self.token_head = nn.Linear(self.num_features, num_classes)
        with_aux = self.top in ("default", "token_label")
        self.aux_head = nn.Linear(self.num_features, num_classes) if with_aux else None

    @property
    def predictions(self) -> nn.Linear | None:
        """The class token's Dense (``token_head``)."""
        return self.token_head

    def keras_layers(self):
        named = (("token_head", self.token_head), ("aux_head", self.aux_head))
        return tuple(KerasLayer(n, "Dense", m) for n, m in named if m is not None)

    def intermediates(self, x: mx.array) -> tuple[dict[str, mx.array], mx.array]:
        """kecam's layer outputs of the class stage (``class_token``, each block's ``output``:
        the class token, ``pre_out_LN``) and the head's output."""
        outputs = {}
        if not self.num_classes:
            return outputs, x
        x = self.class_token(x.reshape(x.shape[0], -1, x.shape[-1]))
        outputs["class_token"] = x
        for block in self.blocks:
            outputs[block.output_name] = block.residual(x)
            x = mx.concatenate([outputs[block.output_name], x[:, 1:]], axis=1)
        x = self.pre_out_ln(x)
        outputs["pre_out_LN"] = x
        return outputs, self._top(x.astype(mx.float32))

    def _top(self, x: mx.array) -> mx.array | tuple[mx.array, mx.array]:
        weight = self.token_head.weight.dtype
        x = x.astype(weight)
        if self.top == "mean":
            return self.token_head(mx.mean(x, axis=1)).astype(mx.float32)
        cls = self.token_head(x[:, 0]).astype(mx.float32)
        if self.top == "token":
            return cls
        aux = self.aux_head(x[:, 1:]).astype(mx.float32)
        if self.top == "token_label":
            if self.mix_token:  # kecam's ratio 1 - box area / tokens: the box is empty
                cls = mx.concatenate([cls, mx.ones((cls.shape[0], 1), cls.dtype)], axis=-1)
            return cls, aux
        return cls + mx.max(aux, axis=1) * 0.5

    def __call__(self, x: mx.array) -> mx.array | tuple[mx.array, mx.array]:
        return self.intermediates(x)[1]


class VOLOModel(ImageClassifier):
    """kecam's ``VOLO`` model: ``VOLOStem``, ``num_blocks[0]`` outlook ``VOLOBlock``\\ s,
    ``downsample_conv`` (2x2, stride 2, VALID, with bias), ``positional_embedding``,
    ``num_blocks[1]`` MHSA ``VOLOBlock``\\ s, then ``VOLOHead``. Arguments are those of
    :func:`VOLO`.

    Shape:
        ``[B, H, W, 3] -> [B, num_classes]`` (logits); ``forward_features``: ``[B, h, w,
        embed_dims[1]]``, the MHSA stage's map (``h = (ceil(H/2) // (patch_size // 2)) // 2``)
    """

    def __init__(
        self, *, num_blocks: Sequence[int], embed_dims: Sequence[int], num_heads: Sequence[int],
        mlp_ratios: Sequence[float], stem_hidden_dim: int, patch_size: int, mlp_activation: str,
        input_shape: Sequence[int], num_classes: int, drop_connect_rate: float, classfiers: int,
        mix_token: bool, token_classifier_top: bool, mean_classifier_top: bool,
        token_label_top: bool, first_attn_type: str,
    ):  # fmt: skip
        input_shape = channels_last(input_shape)
        super().__init__(input_shape)
        if first_attn_type not in ("outlook", "outlook_simple"):
            raise ValueError(
                f"first_attn_type={first_attn_type!r}: expected 'outlook' or 'outlook_simple' "
                "(kecam's attention_mlp_block builds no attention for other values)"
            )
        stem = VOLOStem(input_shape, stem_hidden_dim, embed_dims[0], patch_size)
        self.add(stem, stem.output_name)
        shape = stem.output_shape
        self.mix_token = mix_token
        rates = drop_connect_rates(num_blocks, drop_connect_rate)
        stages = ((first_attn_type, "outlook_block"), ("mhsa", "MHSA_block"))
        for stage, (attention_type, prefix) in enumerate(stages):
            if stage == 1:
                conv = attention_layers.conv2d_no_bias(
                    shape, embed_dims[0] * 2, 2, strides=2, use_bias=True, name="downsample_"
                )
                shape = (*conv_output_size(conv, *shape[:2]), embed_dims[0] * 2)
                self.add(conv, conv.sub("conv"))
                self.add(PositionalEmbedding(shape[2], *shape[:2], name="positional_embedding"),
                         "positional_embedding")  # fmt: skip
            for index in range(num_blocks[stage]):
                block = VOLOBlock(
                    shape, embed_dims[stage], num_heads[stage], mlp_ratios[stage],
                    attention_type, drop_rate=rates[stage][index],
                    mlp_activation=mlp_activation, name=f"{prefix}{index}_",
                )  # fmt: skip
                self.add(block, block.output_name)
        top = (
            "token_label" if token_label_top
            else "mean" if mean_classifier_top
            else "token" if token_classifier_top
            else "default"
        )  # fmt: skip
        self._finish(
            VOLOHead(
                shape[2],
                shape[:2],
                num_classes,
                classfiers=classfiers,
                num_heads=num_heads[-1],
                mlp_ratio=mlp_ratios[-1],
                mlp_activation=mlp_activation,
                top=top,
                mix_token=mix_token,
            )  # fmt: skip
        )

    def set_dtype(self, dtype: mx.Dtype, predicate=lambda d: mx.issubdtype(d, mx.floating)):
        """Cast the parameters; only ``token_head`` and ``aux_head`` stay float32 (kecam forces
        those two: its class stage computes in the model's dtype)."""
        super().set_dtype(dtype, predicate)
        for module in (self.head.class_token, *self.head.blocks, self.head.pre_out_ln):
            if module is not None:
                module.set_dtype(dtype, predicate)

    def count_params(self) -> int:
        """As kecam's ``count_params``: the outlook blocks' fold kernels, which kecam stores
        and which are constants here, count too."""
        constants = sum(
            np.size(weight)
            for decl in ModuleTree.of(self).declarations()
            if isinstance(decl, KerasLayer) and decl.kind == "Constant"
            for weight in decl.weights
        )
        return super().count_params() + constants

    def forward_features(self, x: mx.array) -> mx.array:
        if self.mix_token and self.training:
            raise NotImplementedError(
                "mix_token: kecam's training-time token mixing (MixupToken) is not reproduced; "
                "at inference it changes nothing"
            )
        return super().forward_features(x)

    def forward_intermediates(self, x: mx.array) -> dict[str, mx.array]:
        """Every feature layer's output and the class stage's (``class_token``,
        ``classfiers{i}_output``: the class token ``[B, 1, C]``, ``pre_out_LN``), keyed by
        kecam's Keras names, in order."""
        outputs = super().forward_intermediates(x)
        features = outputs[self.output_names[-1]]
        outputs.update(self.head.intermediates(features)[0])
        return outputs


def _build(
    num_blocks, embed_dims, num_heads, mlp_ratios, stem_hidden_dim=64, patch_size=8,
    mlp_activation="gelu", input_shape=(224, 224, 3), num_classes=1000, drop_connect_rate=0,
    classfiers=2, mix_token=False, token_classifier_top=False, mean_classifier_top=False,
    token_label_top=False, first_attn_type="outlook",
) -> VOLOModel:  # fmt: skip
    return VOLOModel(
        num_blocks=num_blocks, embed_dims=embed_dims, num_heads=num_heads,
        mlp_ratios=mlp_ratios, stem_hidden_dim=stem_hidden_dim, patch_size=patch_size,
        mlp_activation=mlp_activation, input_shape=input_shape, num_classes=num_classes,
        drop_connect_rate=drop_connect_rate, classfiers=classfiers, mix_token=mix_token,
        token_classifier_top=token_classifier_top, mean_classifier_top=mean_classifier_top,
        token_label_top=token_label_top, first_attn_type=first_attn_type,
    )  # fmt: skip


FAMILY = Family(
    module="volo",
    builder_name="VOLO",
    build=_build,
    pretrained_dict=PRETRAINED_DICT,
    pretrained_classes={},
    sub_release="volo",
    rescale_mode="torch",
    # kecam's VOLO(...) arguments past the architecture ones, in kecam's order
    builder_tail=(("pretrained", None), ("model_name", "VOLO"), ("kwargs", None)),
)


def _spec(name: str, blocks, dims, heads, ratio: int, stem: int) -> ModelSpec:
    fixed = {
        "num_blocks": blocks, "embed_dims": dims, "num_heads": heads,
        "mlp_ratios": [ratio, ratio], "stem_hidden_dim": stem,
    }  # fmt: skip
    return ModelSpec(name, name.lower(), fixed=fixed)


# kecam's constructors: `fixed` are the constructor's locals (kwargs may not repeat them).
MODELS = (
    _spec("VOLO_d1", [4, 14], [192, 384], [6, 12], 3, 64),
    _spec("VOLO_d2", [6, 18], [256, 512], [8, 16], 3, 64),
    _spec("VOLO_d3", [8, 28], [256, 512], [8, 16], 3, 64),
    _spec("VOLO_d4", [8, 28], [384, 768], [12, 16], 3, 64),
    _spec("VOLO_d5", [12, 36], [384, 768], [12, 16], 4, 128),
)

# The constructor's explicit arguments (kecam's order and defaults; `pretrained` follows them).
CONSTRUCTOR_ARGS = (("input_shape", (224, 224, 3)), ("num_classes", 1000))

VOLO, constructors = register_family(FAMILY, MODELS, CONSTRUCTOR_ARGS)
globals().update(constructors)

__all__ = [
    "MODELS", "PRETRAINED_DICT", "NamedLayerNorm", "VOLO", "VOLOBlock", "VOLOHead",
    "VOLOModel", "VOLOStem", *constructors,
]  # fmt: skip
