"""DaViT (kecam ``davit/davit.py``): one family builder, six models.

``DaViT(...)`` is kecam's family builder (its arguments and defaults), for reduced
configurations; the named models are rows of ``MODELS`` and are registered with
``mlx_attention.models``. The spatial window is ``ceil(input / window_ratio)`` per axis, fixed
when the model is built (7x7 at 224), as kecam's.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import mlx.core as mx

from .. import attention_layers
from ..layers import KerasModule
from ._base import ImageClassifier, channels_last
from ._glue import ClassifierHead, LayerScaleResidual, conv_output_size, drop_connect_rates
from ._registry import Family, ModelSpec, register_family

# kecam 1.4.3 davit/davit.py PRETRAINED_DICT: {model.name: {tag: md5}}.
PRETRAINED_DICT = {
    "davit_t": {"imagenet": "040a215cbcf1c0ce06db665cdcf6f9ac"},
    "davit_s": {"imagenet": "b95558071c639815f4ab2e9d09a4141f"},
    "davit_b": {"imagenet": "89e50de7a70ea7b2404f8f57369d8015"},
}


class ConvPositionalEncodingAdd(KerasModule):
    """kecam's ``davit.conv_positional_encoding`` (``use_norm=False, activation=None``, as
    DaViT calls it): ``x + depthwise_conv3x3(x)`` (SAME, with bias), the ``Add`` named
    ``name + "output"``.

    Args:
        input_shape: ``(H, W, C)``.
        kernel_size: the depthwise kernel.
        name: kecam's prefix (``"stack1_block1_pre_attn_cpe_"``).

    Shape:
        ``[B, H, W, C] -> [B, H, W, C]``
    """

    def __init__(self, input_shape: tuple[int, int, int], kernel_size: int = 3, *, name: str):
        super().__init__(name)
        self.conv = attention_layers.depthwise_conv2d_no_bias(
            input_shape, kernel_size, padding="same", use_bias=True, name=name
        )

    def __call__(self, x: mx.array) -> mx.array:
        return x + self.conv(x)


class DaViTBlock(KerasModule):
    """kecam's ``davit_block``: CPE -> LN -> window attention (or, with ``use_channel_attn``,
    channel attention) -> layer-scale residual; CPE -> LN -> MLP -> layer-scale residual.

    Args:
        input_shape: ``(H, W, C)`` of the block's map.
        window_size: ``(wh, ww)`` of the spatial attention (clamped to the map).
        num_heads, use_channel_attn, mlp_ratio, drop_rate, layer_scale: kecam's arguments.
        name: kecam's block prefix, e.g. ``"stack1_block1_"``.

    Shape:
        ``[B, H, W, C] -> [B, H, W, C]``
    """

    def __init__(
        self, input_shape: tuple[int, int, int], window_size: Sequence[int], *,
        num_heads: int = 4, use_channel_attn: bool = False, mlp_ratio: float = 4,
        drop_rate: float = 0, layer_scale: float = -1, name: str,
    ):  # fmt: skip
        super().__init__(name)
        dims = input_shape[-1]
        self.pre_attn = ConvPositionalEncodingAdd(input_shape, name=self.sub("pre_attn_cpe_"))
        self.attn_ln = attention_layers.layer_norm(input_shape, name=self.sub("attn_"))
        if use_channel_attn:
            self.attn = attention_layers.multi_head_self_attention_channel(
                input_shape, num_heads, qkv_bias=True, out_bias=True,
                name=self.sub("channel_attn_"),
            )  # fmt: skip
        else:
            self.attn = attention_layers.window_attention(
                input_shape, list(window_size), num_heads, name=self.sub("attn_")
            )
        self.attn_residual = LayerScaleResidual(
            dims, layer_scale=layer_scale, drop_rate=drop_rate, name=self.sub("1_")
        )
        self.pre_ffn = ConvPositionalEncodingAdd(input_shape, name=self.sub("pre_ffn_cpe_"))
        self.mlp_ln = attention_layers.layer_norm(input_shape, name=self.sub("mlp_"))
        self.mlp = attention_layers.mlp_block(
            input_shape, int(dims * mlp_ratio), activation="gelu", name=self.sub("mlp_")
        )
        self.mlp_residual = LayerScaleResidual(
            dims, layer_scale=layer_scale, drop_rate=drop_rate, name=self.sub("2_")
        )

    @property
    def output_name(self) -> str:
        return self.mlp_residual.output_name

    def __call__(self, x: mx.array) -> mx.array:
        x = self.pre_attn(x)
        x = self.attn_residual(x, self.attn(self.attn_ln(x)))
        x = self.pre_ffn(x)
        return self.mlp_residual(x, self.mlp(self.mlp_ln(x)))


class DaViTModel(ImageClassifier):
    """kecam's ``DaViT`` model: a 7x7 stride-``stem_patch_size`` conv stem (torch padding) and
    LN, four stages (LN + a 2x2 stride-2 TF-SAME conv between them) of ``DaViTBlock``
    alternating window and channel attention, ``pre_output_ln`` and kecam's ``output_block``.
    Arguments are those of :func:`DaViT`.

    Shape:
        ``[B, H, W, 3] -> [B, num_classes]``; ``forward_features``: ``[B, H/32, W/32, C]``
        (sizes rounded up at each stride).
    """

    def __init__(
        self, *, num_blocks: Sequence[int], out_channels: Sequence[int], num_heads: Sequence[int],
        stem_width: int, stem_patch_size: int, window_ratio: int, mlp_ratio: float,
        layer_scale: float, input_shape: Sequence[int], num_classes: int,
        drop_connect_rate: float, classifier_activation: str | None, dropout: float,
    ):  # fmt: skip
        input_shape = channels_last(input_shape)
        super().__init__(input_shape)
        if not len(num_blocks) == len(out_channels) == len(num_heads):
            raise ValueError(
                f"num_blocks={list(num_blocks)}, out_channels={list(out_channels)} and "
                f"num_heads={list(num_heads)} must have one entry per stage"
            )
        if window_ratio < 1:
            raise ValueError(f"window_ratio={window_ratio} must be >= 1")
        height, width, channels = input_shape
        # kecam: the window from the input size, not the stage's map (clamped there)
        window_size = (math.ceil(height / window_ratio), math.ceil(width / window_ratio))
        stem_width = stem_width if stem_width > 0 else out_channels[0]
        conv = attention_layers.conv2d_no_bias(
            input_shape, stem_width, 7, strides=stem_patch_size, use_bias=True, padding="same",
            name="stem_",
        )  # fmt: skip
        self.add(conv, conv.sub("conv"))
        (height, width), channels = conv_output_size(conv, height, width), stem_width
        self.add_layer_norm((height, width, channels), "stem_")

        rates = drop_connect_rates(num_blocks, drop_connect_rate)
        for stack_id, (blocks, out_channel, heads) in enumerate(
            zip(num_blocks, out_channels, num_heads)
        ):
            stack_name = f"stack{stack_id + 1}_"
            if stack_id > 0:
                name = stack_name + "downsample_"
                self.add_layer_norm((height, width, channels), name)
                # TF SAME: a 2x2 kernel pads bottom/right only, and only for odd sizes
                conv = attention_layers.conv2d_no_bias(
                    (height, width, channels), out_channel, 2, strides=2, padding="same",
                    use_bias=True, use_torch_padding=False, name=name,
                )  # fmt: skip
                self.add(conv, conv.sub("conv"))
                (height, width), channels = conv_output_size(conv, height, width), out_channel
            for block_id in range(blocks):
                block = DaViTBlock(
                    (height, width, channels), window_size, num_heads=heads,
                    use_channel_attn=block_id % 2 == 1, mlp_ratio=mlp_ratio,
                    drop_rate=rates[stack_id][block_id],
                    layer_scale=layer_scale, name=f"{stack_name}block{block_id + 1}_",
                )  # fmt: skip
                self.add(block, block.output_name)
        self.add_layer_norm((height, width, channels), "pre_output_")
        self._finish(
            ClassifierHead(
                channels,
                num_classes,
                drop_rate=dropout,
                classifier_activation=classifier_activation,
            )  # fmt: skip
        )


def _build(
    num_blocks=[2, 2, 6, 2], out_channels=[96, 192, 384, 768], num_heads=[3, 6, 12, 24],  # noqa: B006
    stem_width=-1, stem_patch_size=4, window_ratio=32, mlp_ratio=4, layer_scale=-1,
    input_shape=(224, 224, 3), num_classes=1000, drop_connect_rate=0,
    classifier_activation="softmax", dropout=0,
) -> DaViTModel:  # fmt: skip
    return DaViTModel(
        num_blocks=num_blocks, out_channels=out_channels, num_heads=num_heads,
        stem_width=stem_width, stem_patch_size=stem_patch_size, window_ratio=window_ratio,
        mlp_ratio=mlp_ratio, layer_scale=layer_scale, input_shape=input_shape,
        num_classes=num_classes, drop_connect_rate=drop_connect_rate,
        classifier_activation=classifier_activation, dropout=dropout,
    )  # fmt: skip


FAMILY = Family(
    module="davit",
    builder_name="DaViT",
    build=_build,
    pretrained_dict=PRETRAINED_DICT,
    pretrained_classes={},
    sub_release="davit",
    rescale_mode="torch",
    # kecam's DaViT(...) arguments past the architecture ones, in kecam's order
    builder_tail=(("pretrained", None), ("model_name", "davit"), ("kwargs", None)),
)

_DEEP = {"num_blocks": [2, 2, 18, 2]}
# kecam's constructors: `fixed` are the constructor's locals (kwargs may not repeat them).
MODELS = (
    ModelSpec("DaViT_T", "davit_t", fixed={"num_blocks": [2, 2, 6, 2]}),
    ModelSpec("DaViT_S", "davit_s", fixed=_DEEP),
    ModelSpec(
        "DaViT_B",
        "davit_b",
        fixed={**_DEEP, "out_channels": [128, 256, 512, 1024], "num_heads": [4, 8, 16, 32]},
    ),  # fmt: skip
    ModelSpec(
        "DaViT_L",
        "davit_l",
        fixed={**_DEEP, "out_channels": [192, 384, 768, 1536], "num_heads": [6, 12, 24, 48]},
        input_shape=(384, 384, 3),
        kecam_pretrained=None,
    ),  # fmt: skip
    ModelSpec(
        "DaViT_H",
        "davit_h",
        fixed={**_DEEP, "out_channels": [256, 512, 1024, 2048], "num_heads": [8, 16, 32, 64]},
        input_shape=(512, 512, 3),
        kecam_pretrained=None,
    ),  # fmt: skip
    ModelSpec(
        "DaViT_G",
        "davit_g",
        fixed={
            "num_blocks": [2, 2, 24, 6],
            "out_channels": [384, 768, 1536, 3072],
            "num_heads": [12, 24, 48, 96],
        },
        input_shape=(512, 512, 3),
        kecam_pretrained=None,
    ),  # fmt: skip
)

# The constructor's explicit arguments (kecam's order and defaults; `pretrained` follows them).
CONSTRUCTOR_ARGS = (
    ("input_shape", (224, 224, 3)),
    ("num_classes", 1000),
    ("classifier_activation", "softmax"),
)

DaViT, constructors = register_family(FAMILY, MODELS, CONSTRUCTOR_ARGS)
globals().update(constructors)

__all__ = [
    "MODELS", "PRETRAINED_DICT", "ConvPositionalEncodingAdd", "DaViT", "DaViTBlock",
    "DaViTModel", *constructors,
]  # fmt: skip
