"""NAT and DiNAT (kecam ``nat/nat.py``, ``nat/dinat.py``): one family builder, ten models.

``NAT(...)`` is kecam's family builder (its arguments and defaults), for reduced
configurations; the named models are rows of ``MODELS`` (kecam's constructor arguments as data)
and are registered with ``mlx_attention.models``.
"""

from __future__ import annotations

from collections.abc import Sequence

from .. import attention_layers
from ..layers import KerasModule
from ._base import ImageClassifier, channels_last
from ._glue import ClassifierHead, LayerScaleResidual, conv_output_size, drop_connect_rates
from ._registry import Family, ModelSpec, register_family

# kecam 1.4.3 nat/nat.py PRETRAINED_DICT: {model.name: {tag: md5 or {resolution: md5}}}.
PRETRAINED_DICT = {
    "nat_base": {"imagenet": "d221eaec4af71dd3522625333aa73d9e"},
    "nat_mini": {"imagenet": "921de737ccebe4ab210dcd79ec0aed5f"},
    "nat_small": {"imagenet": "5716d0d54f3abd582e586fbdea04b3db"},
    "nat_tiny": {"imagenet": "91ed860ca950de181f433c189135070b"},
    "dinat_base": {"imagenet": "fcd60313a2d579542bfce3ffbc32c216"},
    "dinat_large": {
        "imagenet21k-ft1k": {
            224: "4be0fd03d4abba37ac815184017ac197",
            384: "52b5397af0d337e2f366e41d34ad9c90",
        },
        "imagenet21k": "e09f6fe4d39289c25b1280a2d100341f",
    },
    "dinat_large_k11": {"imagenet21k-ft1k": "8874a98e3c6a37ce57499b3f91e918a0"},
    "dinat_mini": {"imagenet": "155c369909fbc6b19f22f2702deb42b5"},
    "dinat_small": {"imagenet": "879cf023c5c85f17c6f30c7f070fc13f"},
    "dinat_tiny": {"imagenet": "c9b15d1862f0eb2eaa6b7e70d3ea0d46"},
}
# Files whose head is not ImageNet-1k (kecam's nat/__init__.py doc table).
PRETRAINED_CLASSES = {("dinat_large", "imagenet21k"): 21841}


class NATBlock(KerasModule):
    """kecam's ``nat_block``: LN -> neighbourhood attention -> layer-scale residual, then
    LN -> MLP -> layer-scale residual.

    Args:
        dims: channels.
        input_size: ``(H, W)`` of the block's map.
        attn_kernel_size, num_heads, mlp_ratio, dilation_rate, attn_drop_rate, drop_rate,
            layer_scale, activation: kecam's ``nat_block`` arguments.
        name: kecam's block prefix, e.g. ``"stack1_block1_"``.

    Shape:
        ``[B, H, W, C] -> [B, H, W, C]``
    """

    def __init__(
        self, dims: int, input_size: tuple[int, int], *, attn_kernel_size: int = 7,
        num_heads: int = 4, mlp_ratio: float = 4, dilation_rate=1, attn_drop_rate: float = 0,
        drop_rate: float = 0, layer_scale: float = -1, activation: str = "gelu", name: str,
    ):  # fmt: skip
        super().__init__(name)
        shape = (*input_size, dims)
        self.attn_ln = attention_layers.layer_norm(shape, name=self.sub("attn_"))
        self.attn = attention_layers.neighborhood_attention(
            shape, attn_kernel_size, num_heads, dilation_rate=dilation_rate,
            attn_dropout=attn_drop_rate, name=self.sub("attn_"),
        )  # fmt: skip
        self.attn_residual = LayerScaleResidual(
            dims, layer_scale=layer_scale, drop_rate=drop_rate, name=self.sub("1_")
        )
        self.mlp_ln = attention_layers.layer_norm(shape, name=self.sub("mlp_"))
        self.mlp = attention_layers.mlp_block(
            shape, int(dims * mlp_ratio), activation=activation, name=self.sub("mlp_")
        )
        self.mlp_residual = LayerScaleResidual(
            dims, layer_scale=layer_scale, drop_rate=drop_rate, name=self.sub("2_")
        )

    @property
    def output_name(self) -> str:
        return self.mlp_residual.output_name

    def __call__(self, x):
        x = self.attn_residual(x, self.attn(self.attn_ln(x)))
        return self.mlp_residual(x, self.mlp(self.mlp_ln(x)))


class NATModel(ImageClassifier):
    """kecam's ``NAT`` model: a two-conv stem, four stages of ``NATBlock`` (DiNAT: every other
    block dilated by the map size over the kernel, at build time), ``pre_output_ln`` and
    kecam's ``output_block``. Arguments are those of :func:`NAT`.

    Shape:
        ``[B, H, W, 3] -> [B, num_classes]``; ``forward_features``: ``[B, H/32, W/32, C]``
        (sizes rounded up at each stride).
    """

    def __init__(
        self, *, num_blocks: Sequence[int], out_channels: Sequence[int], num_heads: Sequence[int],
        stem_width: int, attn_kernel_size: int, use_every_other_dilations: bool,
        mlp_ratio: float, layer_scale: float, input_shape: Sequence[int], activation: str,
        num_classes: int, drop_connect_rate: float, classifier_activation: str | None,
        dropout: float,
    ):  # fmt: skip
        input_shape = channels_last(input_shape)
        super().__init__(input_shape)
        if not len(num_blocks) == len(out_channels) == len(num_heads):
            raise ValueError(
                f"num_blocks={list(num_blocks)}, out_channels={list(out_channels)} and "
                f"num_heads={list(num_heads)} must have one entry per stage"
            )
        height, width, channels = input_shape
        stem_width = stem_width if stem_width > 0 else out_channels[0]
        for name, filters in (("stem_1_", stem_width // 2), ("stem_2_", stem_width)):
            conv = attention_layers.conv2d_no_bias(
                (height, width, channels), filters, 3, strides=2, padding="same", use_bias=True,
                name=name,
            )  # fmt: skip
            self.add(conv, conv.sub("conv"))
            (height, width), channels = conv_output_size(conv, height, width), filters
        self.add_layer_norm((height, width, channels), "stem_")

        rates = drop_connect_rates(num_blocks, drop_connect_rate)
        for stack_id, (blocks, out_channel, heads) in enumerate(
            zip(num_blocks, out_channels, num_heads)
        ):
            stack_name = f"stack{stack_id + 1}_"
            if stack_id > 0:
                name = stack_name + "downsample_"
                conv = attention_layers.conv2d_no_bias(
                    (height, width, channels), out_channel, 3, strides=2, padding="same",
                    name=name,
                )  # fmt: skip
                self.add(conv, conv.sub("conv"))
                (height, width), channels = conv_output_size(conv, height, width), out_channel
                self.add_layer_norm((height, width, channels), name)
            for block_id in range(blocks):
                if use_every_other_dilations and block_id % 2 == 1:
                    dilation = (
                        max(1, height // attn_kernel_size), max(1, width // attn_kernel_size)
                    )  # fmt: skip
                else:
                    dilation = 1
                block = NATBlock(
                    channels, (height, width), attn_kernel_size=attn_kernel_size,
                    num_heads=heads, mlp_ratio=mlp_ratio, dilation_rate=dilation,
                    drop_rate=rates[stack_id][block_id],
                    layer_scale=layer_scale, activation=activation,
                    name=f"{stack_name}block{block_id + 1}_",
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
    num_blocks=[3, 4, 6, 5], out_channels=[64, 128, 256, 512], num_heads=[2, 4, 8, 16],  # noqa: B006
    stem_width=-1, attn_kernel_size=7, use_every_other_dilations=False, mlp_ratio=3,
    layer_scale=-1, input_shape=(224, 224, 3), activation="gelu", num_classes=1000,
    drop_connect_rate=0, classifier_activation="softmax", dropout=0,
) -> NATModel:  # fmt: skip
    return NATModel(
        num_blocks=num_blocks, out_channels=out_channels, num_heads=num_heads,
        stem_width=stem_width, attn_kernel_size=attn_kernel_size,
        use_every_other_dilations=use_every_other_dilations, mlp_ratio=mlp_ratio,
        layer_scale=layer_scale, input_shape=input_shape, activation=activation,
        num_classes=num_classes, drop_connect_rate=drop_connect_rate,
        classifier_activation=classifier_activation, dropout=dropout,
    )  # fmt: skip


FAMILY = Family(
    module="nat",
    builder_name="NAT",
    build=_build,
    pretrained_dict=PRETRAINED_DICT,
    pretrained_classes=PRETRAINED_CLASSES,
    sub_release="nat",
    rescale_mode="torch",
    # kecam's NAT(...) arguments past the architecture ones, in kecam's order
    builder_tail=(("pretrained", None), ("model_name", "nat"), ("kwargs", None)),
)

_SMALL = {
    "num_blocks": [3, 4, 18, 5],
    "num_heads": [3, 6, 12, 24],
    "out_channels": [96, 192, 384, 768],
}
_BASE = {
    "num_blocks": [3, 4, 18, 5],
    "num_heads": [4, 8, 16, 32],
    "out_channels": [128, 256, 512, 1024],
}
_LARGE = {
    "num_blocks": [3, 4, 18, 5],
    "num_heads": [6, 12, 24, 48],
    "out_channels": [192, 384, 768, 1536],
}
_DILATED = {"use_every_other_dilations": True}
_MLP2, _MLP2_SCALED = {"mlp_ratio": 2}, {"mlp_ratio": 2, "layer_scale": 1e-5}

# kecam's constructors (nat.py, dinat.py): `fixed` are the constructor's locals (kwargs may not
# repeat them), `popped` its `kwargs.pop(name, default)` overrides.
MODELS = (
    ModelSpec("NAT_Mini", "nat_mini", fixed={"num_blocks": [3, 4, 6, 5]}),
    ModelSpec("NAT_Tiny", "nat_tiny", fixed={"num_blocks": [3, 4, 18, 5]}),
    ModelSpec("NAT_Small", "nat_small", fixed=_SMALL, popped=_MLP2_SCALED),
    ModelSpec("NAT_Base", "nat_base", fixed=_BASE, popped=_MLP2_SCALED),
    ModelSpec("DiNAT_Mini", "dinat_mini", fixed={"num_blocks": [3, 4, 6, 5], **_DILATED}),
    ModelSpec("DiNAT_Tiny", "dinat_tiny", fixed={"num_blocks": [3, 4, 18, 5], **_DILATED}),
    ModelSpec("DiNAT_Small", "dinat_small", fixed={**_SMALL, **_DILATED}, popped=_MLP2),
    ModelSpec("DiNAT_Base", "dinat_base", fixed={**_BASE, **_DILATED}, popped=_MLP2_SCALED),
    ModelSpec(
        "DiNAT_Large",
        "dinat_large",
        fixed={**_LARGE, **_DILATED},
        popped=_MLP2,
        kecam_pretrained="imagenet21k-ft1k",
    ),  # fmt: skip
    ModelSpec(
        "DiNAT_Large_K11",
        "dinat_large_k11",
        fixed={**_LARGE, **_DILATED, "attn_kernel_size": 11},
        popped=_MLP2,
        input_shape=(384, 384, 3),
        kecam_pretrained="imagenet21k-ft1k",
    ),  # fmt: skip
)

# The constructor's explicit arguments (kecam's order and defaults; `pretrained` follows them).
CONSTRUCTOR_ARGS = (
    ("input_shape", (224, 224, 3)),
    ("num_classes", 1000),
    ("activation", "gelu"),
    ("classifier_activation", "softmax"),
)

NAT, constructors = register_family(FAMILY, MODELS, CONSTRUCTOR_ARGS)
globals().update(constructors)

__all__ = ["MODELS", "NAT", "NATBlock", "NATModel", "PRETRAINED_DICT", *constructors]
