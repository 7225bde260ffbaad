"""EfficientViT-M (kecam ``efficientvit/efficientvit_m.py``): one family builder, six models.

``EfficientViT_M(...)`` is kecam's family builder (its arguments and defaults), for reduced
configurations; the named models are rows of ``MODELS``. The attention is the library's
``cascaded_mhsa_with_multi_head_position``, through ``window_attention`` where the map is
larger than the window. With ``use_distillation`` the model returns ``(head, distill_head)``
as kecam's two-output model does; ``switch_to_deploy()`` fuses them as kecam's does.

Positional tables depend on the window (or the map, where it is smaller): a file of another
input size loads with ``resize=True``. kecam reloads them only when ``window_size != 7`` or
the input is under 224 (it leaves mismatched tables random otherwise); ours resize wherever
asked.
"""

from __future__ import annotations

from collections.abc import Sequence

import mlx.core as mx

from .. import attention_layers
from ..layers import DropBlock, KerasModule
from ._base import DistilledClassifier, channels_last
from ._glue import BatchNormHead, ConvBNStem, conv_output_size, drop_connect_rates, per_item
from ._registry import Family, ModelSpec, register_family

# kecam 1.4.3 efficientvit/efficientvit_m.py PRETRAINED_DICT: {model.name: {tag: {size: md5}}}.
PRETRAINED_DICT = {
    "efficientvit_m0": {"imagenet": {224: "3a3855160a3262ddcb7969b8fc8c1dcc"}},
    "efficientvit_m1": {"imagenet": {224: "ea8f5812ea397b821abfc83cddf5845b"}},
    "efficientvit_m2": {"imagenet": {224: "6d267ec3419b7257f293273cef27dfc8"}},
    "efficientvit_m3": {"imagenet": {224: "6f3e5903fb230a83c2ca17761357f15f"}},
    "efficientvit_m4": {"imagenet": {224: "ada36562f1702b3baa3578e9d9a1cf7e"}},
    "efficientvit_m5": {"imagenet": {224: "7277f60414af8111f86d19d486a7f301"}},
}


class ResDepthwiseFFN(KerasModule):
    """kecam's ``res_depthwise_ffn``: a depthwise 3x3 + zero-gamma BatchNorm with a residual,
    then a 1x1 conv + BatchNorm + activation, a 1x1 conv + BatchNorm (zero gammas, as
    kecam's), residual (the Keras ``Add`` ``name + "output"``).

    Shape:
        ``[B, H, W, C] -> [B, H, W, C]``
    """

    def __init__(
        self, input_shape: tuple[int, int, int], *, mlp_ratio: int = 2, drop_rate: float = 0,
        activation: str = "relu", name: str,
    ):  # fmt: skip
        super().__init__(name)
        *grid, dims = input_shape
        hidden = (*grid, dims * mlp_ratio)
        self.dw = attention_layers.depthwise_conv2d_no_bias(
            input_shape, 3, padding="same", name=self.sub("dw_")
        )
        self.dw_bn = attention_layers.batchnorm_with_activation(
            input_shape, zero_gamma=True, name=self.sub("dw_")
        )
        self.ffn_1 = attention_layers.conv2d_no_bias(
            input_shape, dims * mlp_ratio, name=self.sub("ffn_1_")
        )
        self.ffn_1_bn = attention_layers.batchnorm_with_activation(
            hidden, activation=activation, zero_gamma=True, name=self.sub("ffn_1_")
        )
        self.ffn_2 = attention_layers.conv2d_no_bias(hidden, dims, name=self.sub("ffn_2_"))
        self.ffn_2_bn = attention_layers.batchnorm_with_activation(
            input_shape, zero_gamma=True, name=self.sub("ffn_2_")
        )
        self.drop = DropBlock(drop_rate, name=name)

    @property
    def output_name(self) -> str:
        return self.sub("output")

    def __call__(self, x: mx.array) -> mx.array:
        x = x + self.drop(self.dw_bn(self.dw(x)))
        ffn = self.ffn_2_bn(self.ffn_2(self.ffn_1_bn(self.ffn_1(x))))
        return x + self.drop(ffn)


class EfficientViTBlock(KerasModule):
    """kecam's ``attn_block``: ``ResDepthwiseFFN`` ``pre_``, the cascaded group attention
    (windowed where the map is larger than ``window_size``) with a residual, then
    ``ResDepthwiseFFN`` ``post_``.

    Shape:
        ``[B, H, W, C] -> [B, H, W, C]``
    """

    def __init__(
        self, input_shape: tuple[int, int, int], *, window_size: int = 7, num_heads: int = 4,
        key_dim: int = 16, kernel_sizes: int | Sequence[int] = 5, mlp_ratio: int = 2,
        drop_rate: float = 0, activation: str = "relu", name: str,
    ):  # fmt: skip
        super().__init__(name)
        height, width, _ = input_shape
        ffn = {"mlp_ratio": mlp_ratio, "drop_rate": drop_rate, "activation": activation}
        self.pre = ResDepthwiseFFN(input_shape, **ffn, name=self.sub("pre_"))
        attn = {
            "num_heads": num_heads, "key_dim": key_dim, "kernel_sizes": kernel_sizes,
            "activation": activation, "name": self.sub("attn_"),
        }  # fmt: skip
        if height <= window_size and width <= window_size:
            self.attn = attention_layers.cascaded_mhsa_with_multi_head_position(input_shape, **attn)
        else:
            self.attn = attention_layers.window_attention(
                input_shape, window_size,
                attention_block=attention_layers.cascaded_mhsa_with_multi_head_position, **attn,
            )  # fmt: skip
        self.drop = DropBlock(drop_rate, name=name)
        self.post = ResDepthwiseFFN(input_shape, **ffn, name=self.sub("post_"))

    @property
    def output_name(self) -> str:
        return self.post.output_name

    def __call__(self, x: mx.array) -> mx.array:
        x = self.pre(x)
        return self.post(x + self.drop(self.attn(x)))


class DownSample(KerasModule):
    """kecam's ``down_sample_block``: 1x1 conv (``hiddem_raio`` x) + BatchNorm + activation,
    depthwise 3x3 stride 2 + BatchNorm + activation, ``se_module``, 1x1 conv + BatchNorm.

    Shape:
        ``[B, H, W, C] -> [B, ceil(H / 2), ceil(W / 2), out_channel]``
    """

    def __init__(
        self, input_shape: tuple[int, int, int], out_channel: int, *, hiddem_raio: int = 4,
        activation: str = "relu", name: str,
    ):  # fmt: skip
        super().__init__(name)
        height, width, dims = input_shape
        hidden = dims * hiddem_raio
        self.pw = attention_layers.conv2d_no_bias(input_shape, hidden, 1, padding="same", name=name)
        self.pw_bn = attention_layers.batchnorm_with_activation(
            (height, width, hidden), activation=activation, name=self.sub("pw_")
        )
        self.dw = attention_layers.depthwise_conv2d_no_bias(
            (height, width, hidden), 3, strides=2, padding="same", name=name
        )
        height, width = conv_output_size(self.dw, height, width)
        self.dw_bn = attention_layers.batchnorm_with_activation(
            (height, width, hidden), activation=activation, name=self.sub("dw_")
        )
        self.se = attention_layers.se_module(
            (height, width, hidden), activation=activation, name=self.sub("se_")
        )
        self.out = attention_layers.conv2d_no_bias(
            (height, width, hidden), out_channel, 1, padding="same", name=self.sub("out_")
        )
        self.out_bn = attention_layers.batchnorm_with_activation(
            (height, width, out_channel), name=self.sub("out_")
        )
        self.output_shape = (height, width, out_channel)

    @property
    def output_name(self) -> str:
        return self.out_bn.sub("bn")

    def __call__(self, x: mx.array) -> mx.array:
        x = self.dw_bn(self.dw(self.pw_bn(self.pw(x))))
        return self.out_bn(self.out(self.se(x)))


class EfficientViTModel(DistilledClassifier):
    """kecam's ``EfficientViT_M`` model: the four-conv stem, per stage (after the first) a
    ``ResDepthwiseFFN`` / ``DownSample`` / ``ResDepthwiseFFN`` transition, the attention
    blocks, and the BatchNorm head (``pre_output_bn`` + ``head``; with ``use_distillation``
    also ``distill_output_bn`` + ``distill_head``, and the model returns both). Arguments are
    those of :func:`EfficientViT_M`.

    Shape:
        ``[B, H, W, 3] -> [B, num_classes]`` (a tuple of two with ``use_distillation``);
        ``forward_features``: ``[B, H/64, W/64, C]`` for three stages (sizes rounded up at
        each stride).
    """

    def __init__(
        self, *, num_blocks: Sequence[int], out_channels: Sequence[int], window_size: int,
        num_heads, key_dim: int, kernel_sizes, mlp_ratio: int, stem_width: int,
        input_shape: Sequence[int], num_classes: int, activation: str, drop_connect_rate: float,
        classifier_activation: str | None, use_distillation: bool, dropout: float,
    ):  # fmt: skip
        input_shape = channels_last(input_shape)
        super().__init__(input_shape)
        if len(num_blocks) != len(out_channels):
            raise ValueError(
                f"num_blocks={list(num_blocks)} and out_channels={list(out_channels)} must "
                "have one entry per stage"
            )
        stem_width = stem_width if stem_width > 0 else out_channels[0]
        stem = ConvBNStem(input_shape, stem_width, activation=activation, name="stem_")
        self.add(stem, stem.output_name)
        shape = stem.output_shape
        ffn = {"mlp_ratio": mlp_ratio, "activation": activation}
        rates = drop_connect_rates(num_blocks, drop_connect_rate)
        for stack_id, (blocks, out_channel) in enumerate(zip(num_blocks, out_channels)):
            stack_name = f"stack{stack_id + 1}_"
            if stack_id > 0:
                pre = ResDepthwiseFFN(shape, **ffn, name=stack_name + "pre_")
                down = DownSample(
                    shape, out_channel, activation=activation, name=stack_name + "downsample_"
                )
                shape = down.output_shape
                post = ResDepthwiseFFN(shape, **ffn, name=stack_name + "post_")
                for module in (pre, down, post):
                    self.add(module, module.output_name)
            heads = per_item(num_heads, stack_id)
            for block_id in range(blocks):
                block = EfficientViTBlock(
                    shape, window_size=window_size, num_heads=heads, key_dim=key_dim,
                    kernel_sizes=kernel_sizes, mlp_ratio=mlp_ratio,
                    drop_rate=rates[stack_id][block_id],
                    activation=activation, name=f"{stack_name}block{block_id + 1}_",
                )  # fmt: skip
                self.add(block, block.output_name)
        distill = ("distill_output_", "distill_head") if use_distillation else None
        self._finish(
            BatchNormHead(
                shape[-1],
                num_classes,
                names=("pre_output_", "head"),
                distill_names=distill,
                drop_rate=dropout,
                classifier_activation=classifier_activation,
            )  # fmt: skip
        )


def _build(
    num_blocks=[1, 2, 3], out_channels=[64, 128, 192], window_size=7, num_heads=4, key_dim=16,  # noqa: B006
    kernel_sizes=5, mlp_ratio=2, stem_width=-1, input_shape=(224, 224, 3), num_classes=1000,
    activation="relu", drop_connect_rate=0, classifier_activation="softmax",
    use_distillation=False, dropout=0,
) -> EfficientViTModel:  # fmt: skip
    return EfficientViTModel(
        num_blocks=num_blocks, out_channels=out_channels, window_size=window_size,
        num_heads=num_heads, key_dim=key_dim, kernel_sizes=kernel_sizes, mlp_ratio=mlp_ratio,
        stem_width=stem_width, input_shape=input_shape, num_classes=num_classes,
        activation=activation, drop_connect_rate=drop_connect_rate,
        classifier_activation=classifier_activation, use_distillation=use_distillation,
        dropout=dropout,
    )  # fmt: skip


FAMILY = Family(
    # kecam's module path (its package `efficientvit` also holds EfficientViT_B)
    module="efficientvit.efficientvit_m",
    builder_name="EfficientViT_M",
    build=_build,
    pretrained_dict=PRETRAINED_DICT,
    pretrained_classes={},
    sub_release="efficientvit",
    rescale_mode="torch",
    # kecam's EfficientViT_M(...) arguments past the architecture ones, in kecam's order
    builder_tail=(("pretrained", None), ("model_name", "efficientvit_m"), ("kwargs", None)),
)

_KERNELS = {"kernel_sizes": [7, 5, 3, 3]}

# kecam's constructors: `fixed` are the constructor's locals (kwargs may not repeat them).
MODELS = (
    ModelSpec("EfficientViT_M0", "efficientvit_m0"),
    ModelSpec("EfficientViT_M1", "efficientvit_m1", fixed={
        "out_channels": [128, 144, 192], "num_heads": [2, 3, 3], **_KERNELS,
    }),
    ModelSpec("EfficientViT_M2", "efficientvit_m2", fixed={
        "out_channels": [128, 192, 224], "num_heads": [4, 3, 2], **_KERNELS,
    }),
    ModelSpec("EfficientViT_M3", "efficientvit_m3", fixed={
        "out_channels": [128, 240, 320], "num_heads": [4, 3, 4], "kernel_sizes": 5,
    }),
    ModelSpec("EfficientViT_M4", "efficientvit_m4", fixed={
        "out_channels": [128, 256, 384], "num_heads": 4, **_KERNELS,
    }),
    ModelSpec("EfficientViT_M5", "efficientvit_m5", fixed={
        "out_channels": [192, 288, 384], "num_blocks": [1, 3, 4], "num_heads": [3, 3, 4],
        **_KERNELS,
    }),
)  # fmt: skip

# The constructor's explicit arguments (kecam's order and defaults; `pretrained` follows them).
CONSTRUCTOR_ARGS = (
    ("input_shape", (224, 224, 3)),
    ("num_classes", 1000),
    ("activation", "relu"),
    ("classifier_activation", "softmax"),
)

EfficientViT_M, constructors = register_family(FAMILY, MODELS, CONSTRUCTOR_ARGS)
globals().update(constructors)

__all__ = [
    "MODELS", "PRETRAINED_DICT", "DownSample", "EfficientViTBlock", "EfficientViTModel",
    "EfficientViT_M", "ResDepthwiseFFN", *constructors,
]  # fmt: skip
