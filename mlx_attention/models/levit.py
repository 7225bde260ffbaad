"""LeViT (kecam ``levit/levit.py``): one family builder, five models.

``LeViT(...)`` is kecam's family builder (its arguments and defaults), for reduced
configurations; the named models are rows of ``MODELS``. The blocks work on the ``[B, H, W, C]``
map as kecam's do (Dense layers and BatchNorms over the last axis, i.e. over every token);
the attention is the library's ``mhsa_with_multi_head_position`` and, between stages, its
strided form. With ``use_distillation`` the model returns ``(head, distill_head)`` as kecam's
two-output model does; ``switch_to_deploy()`` fuses them as kecam's does.
"""

from __future__ import annotations

from collections.abc import Sequence

import mlx.core as mx
import mlx.nn as nn

from .. import attention_layers
from ..layers import DropBlock, KerasLayer, KerasModule
from ._base import DistilledClassifier, channels_last
from ._glue import BatchNormHead, ConvBNStem
from ._registry import Family, ModelSpec, register_family

# kecam 1.4.3 levit/levit.py PRETRAINED_DICT: {model.name: {tag: md5}}.
PRETRAINED_DICT = {
    "levit128s": {"imagenet": "5e35073bb6079491fb0a1adff833da23"},
    "levit128": {"imagenet": "730c100fa4d5a10cf48fb923bb7da5c3"},
    "levit192": {"imagenet": "b078d2fe27857d0bdb26e101703210e2"},
    "levit256": {"imagenet": "9ada767ba2798c94aa1c894a00ae40fd"},
    "levit384": {"imagenet": "520f207f7f4c626b83e21564dd0c92a3"},
}


class LeViTMlp(KerasModule):
    """kecam's ``res_mlp_block``: Dense -> BatchNorm (last axis) + activation -> Dense ->
    BatchNorm, residual (the Keras ``Add`` ``name + "add"``).

    Args:
        input_shape: ``(H, W, dims)`` of the block's map.
        mlp_ratio: the hidden width is ``dims * mlp_ratio``.
        drop_rate: stochastic depth (training only).
        activation: a kecam activation name.
        name: kecam's prefix (``"stack1_block1_mlp_"``).

    Shape:
        ``[B, H, W, dims] -> [B, H, W, dims]``
    """

    def __init__(
        self, input_shape: tuple[int, int, int], mlp_ratio: int, *, drop_rate: float = 0,
        activation: str = "hard_swish", name: str,
    ):  # fmt: skip
        super().__init__(name)
        *grid, dims = input_shape
        hidden = dims * mlp_ratio
        self.dense_1 = nn.Linear(dims, hidden, bias=False)
        self.norm_1 = attention_layers.batchnorm_with_activation(
            (*grid, hidden), activation=activation, name=self.sub("1_")
        )
        self.dense_2 = nn.Linear(hidden, dims, bias=False)
        self.norm_2 = attention_layers.batchnorm_with_activation(input_shape, name=self.sub("2_"))
        self.drop = DropBlock(drop_rate, name=name)

    @property
    def output_name(self) -> str:
        return self.sub("add")

    def keras_layers(self):
        return (
            KerasLayer(self.sub("1_dense"), "Dense", self.dense_1),
            KerasLayer(self.sub("2_dense"), "Dense", self.dense_2),
        )

    def __call__(self, x: mx.array) -> mx.array:
        deep = self.norm_2(self.dense_2(self.norm_1(self.dense_1(x))))
        return x + self.drop(deep)


class LeViTResidualAttention(KerasModule):
    """kecam's ``res_mhsa_with_multi_head_position``: the library's LeViT attention (with
    BatchNorms) plus the input (the Keras ``Add`` ``name + "add"``).

    Shape:
        ``[B, H, W, C] -> [B, H, W, C]``
    """

    def __init__(
        self, input_shape: tuple[int, int, int], num_heads: int, key_dim: int, attn_ratio: int,
        *, drop_rate: float = 0, activation: str = "hard_swish", name: str,
    ):  # fmt: skip
        super().__init__(name)
        self.attn = attention_layers.mhsa_with_multi_head_position(
            input_shape, num_heads, key_dim, output_dim=input_shape[-1], attn_ratio=attn_ratio,
            use_bn=True, activation=activation, name=name,
        )  # fmt: skip
        self.drop = DropBlock(drop_rate, name=name)

    @property
    def output_name(self) -> str:
        return self.sub("add")

    def __call__(self, x: mx.array) -> mx.array:
        return x + self.drop(self.attn(x))


class LeViTStack(KerasModule):
    """kecam's ``attention_mlp_stack``: ``depth`` attention + MLP blocks, then, where the
    width changes, the strided attention ``downsample_`` (``embed_dim // key_dim`` heads,
    ``attn_ratio * strides``) and its MLP; the output is kecam's ``name + "output"``.

    Shape:
        ``[B, H, W, C] -> [B, ceil(H / s), ceil(W / s), out_channel]``
    """

    def __init__(
        self, input_shape: tuple[int, int, int], out_channel: int, num_heads: int, depth: int,
        key_dim: int, attn_ratio: int, mlp_ratio: int, strides: int,
        stack_drop: tuple[float, float], activation: str, name: str,
    ):  # fmt: skip
        super().__init__(name)
        height, width, embed_dim = input_shape
        start, end = stack_drop
        self.blocks = []
        drop_rate = start
        for index in range(depth):
            block_name = self.sub(f"block{index + 1}_")
            drop_rate = start + (end - start) * index / depth
            self.blocks.append(
                LeViTResidualAttention(
                    input_shape,
                    num_heads,
                    key_dim,
                    attn_ratio,
                    drop_rate=drop_rate,
                    activation=activation,
                    name=block_name,
                )  # fmt: skip
            )
            if mlp_ratio > 0:
                self.blocks.append(
                    LeViTMlp(
                        input_shape,
                        mlp_ratio,
                        drop_rate=drop_rate,
                        activation=activation,
                        name=block_name + "mlp_",
                    )  # fmt: skip
                )
        if embed_dim != out_channel:
            down = attention_layers.mhsa_with_multi_head_position_and_strides(
                input_shape, embed_dim // key_dim, key_dim, out_channel, attn_ratio * strides,
                strides, activation=activation, name=self.sub("downsample_"),
            )  # fmt: skip
            self.blocks.append(down)
            height, width = -(-height // strides), -(-width // strides)
            if mlp_ratio > 0:
                self.blocks.append(
                    LeViTMlp(
                        (height, width, out_channel),
                        mlp_ratio,
                        drop_rate=drop_rate,
                        activation=activation,
                        name=self.sub("downsample_mlp_"),
                    )  # fmt: skip
                )
        self.output_shape = (height, width, out_channel)

    @property
    def output_name(self) -> str:
        return self.sub("output")

    def __call__(self, x: mx.array) -> mx.array:
        for block in self.blocks:
            x = block(x)
        return x


class LeViTModel(DistilledClassifier):
    """kecam's ``LeViT`` model: the four-conv stem, one ``LeViTStack`` per stage and the
    BatchNorm head (``head_bn`` + ``head``; with ``use_distillation`` also ``distill_head_bn``
    + ``distill_head``, and the model returns both). Arguments are those of :func:`LeViT`.

    Shape:
        ``[B, H, W, 3] -> [B, num_classes]`` (a tuple of two with ``use_distillation``);
        ``forward_features``: ``[B, H/64, W/64, C]`` for the default strides (sizes rounded
        up at each stride).
    """

    def __init__(
        self, *, patch_channel: int, out_channels: Sequence[int], num_heads: Sequence[int],
        depthes: Sequence[int], key_dims: Sequence[int], attn_ratios: Sequence[int],
        mlp_ratios: Sequence[int], strides: Sequence[int], input_shape: Sequence[int],
        num_classes: int, activation: str, drop_connect_rate, dropout: float,
        classifier_activation: str | None, use_distillation: bool,
    ):  # fmt: skip
        input_shape = channels_last(input_shape)
        super().__init__(input_shape)
        stem = ConvBNStem(input_shape, patch_channel, activation=activation, name="stem_")
        self.add(stem, stem.output_name)
        shape = stem.output_shape
        if isinstance(drop_connect_rate, (list, tuple)):
            drop_start, drop_end = drop_connect_rate
        else:
            drop_start = drop_end = drop_connect_rate
        total_blocks, global_block_id = sum(depthes), 0
        stages = zip(out_channels, num_heads, depthes, key_dims, attn_ratios, mlp_ratios, strides)
        for index, (out_channel, heads, depth, key_dim, ratio, mlp_ratio, stride) in enumerate(
            stages
        ):
            span = drop_end - drop_start
            stack_drop = (
                drop_start + span * global_block_id / total_blocks,
                drop_start + span * (global_block_id + depth) / total_blocks,
            )
            stack = LeViTStack(
                shape, out_channel, heads, depth, key_dim, ratio, mlp_ratio, stride,
                stack_drop, activation, name=f"stack{index + 1}_",
            )  # fmt: skip
            self.add(stack, stack.output_name)
            shape, global_block_id = stack.output_shape, global_block_id + depth
        distill = ("distill_head_", "distill_head") if use_distillation else None
        self._finish(
            BatchNormHead(
                shape[-1],
                num_classes,
                names=("head_", "head"),
                distill_names=distill,
                drop_rate=dropout,
                classifier_activation=classifier_activation,
            )  # fmt: skip
        )


def _build(
    patch_channel=128, out_channels=[256, 384, 384], num_heads=[4, 6, 8], depthes=[2, 3, 4],  # noqa: B006
    key_dims=[16, 16, 16], attn_ratios=[2, 2, 2], mlp_ratios=[2, 2, 2], strides=[2, 2, 0],  # noqa: B006
    input_shape=(224, 224, 3), num_classes=1000, activation="hard_swish", drop_connect_rate=0,
    dropout=0, classifier_activation=None, use_distillation=False,
) -> LeViTModel:  # fmt: skip
    return LeViTModel(
        patch_channel=patch_channel, out_channels=out_channels, num_heads=num_heads,
        depthes=depthes, key_dims=key_dims, attn_ratios=attn_ratios, mlp_ratios=mlp_ratios,
        strides=strides, input_shape=input_shape, num_classes=num_classes,
        activation=activation, drop_connect_rate=drop_connect_rate, dropout=dropout,
        classifier_activation=classifier_activation, use_distillation=use_distillation,
    )  # fmt: skip


FAMILY = Family(
    module="levit",
    builder_name="LeViT",
    build=_build,
    pretrained_dict=PRETRAINED_DICT,
    pretrained_classes={},
    sub_release="levit",
    rescale_mode="torch",
    # kecam's LeViT(...) arguments past the architecture ones, in kecam's order
    builder_tail=(("pretrained", None), ("model_name", "levit"), ("kwargs", None)),
)

_DEPTH4 = {"depthes": [4, 4, 4]}
_KEY32 = {"key_dims": [32, 32, 32], **_DEPTH4}
_DISTILLED = {"use_distillation": True}

# kecam's constructors: `fixed` are the constructor's locals (kwargs may not repeat them).
MODELS = (
    ModelSpec("LeViT128S", "levit128s"),
    ModelSpec("LeViT128", "levit128", fixed={"num_heads": [4, 8, 12], **_DEPTH4}),
    ModelSpec("LeViT192", "levit192", fixed={
        "patch_channel": 192, "out_channels": [288, 384, 384], "num_heads": [3, 5, 6], **_KEY32,
    }),
    ModelSpec("LeViT256", "levit256", fixed={
        "patch_channel": 256, "out_channels": [384, 512, 512], "num_heads": [4, 6, 8], **_KEY32,
    }, arg_defaults=_DISTILLED),
    ModelSpec("LeViT384", "levit384", fixed={
        "patch_channel": 384, "out_channels": [512, 768, 768], "num_heads": [6, 9, 12], **_KEY32,
    }, arg_defaults=_DISTILLED),
)  # fmt: skip

# The constructor's explicit arguments (kecam's order and defaults; `pretrained` follows them).
CONSTRUCTOR_ARGS = (
    ("input_shape", (224, 224, 3)),
    ("num_classes", 1000),
    ("use_distillation", False),
    ("classifier_activation", None),
)

LeViT, constructors = register_family(FAMILY, MODELS, CONSTRUCTOR_ARGS)
globals().update(constructors)

__all__ = [
    "MODELS", "PRETRAINED_DICT", "LeViT", "LeViTMlp", "LeViTModel", "LeViTResidualAttention",
    "LeViTStack", *constructors,
]  # fmt: skip
