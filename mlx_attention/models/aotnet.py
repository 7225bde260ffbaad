"""kecam's AotNet template (``aotnet/aotnet.py``) and the families it serves: BoTNet, HaloNet,
CotNet and ResNeSt.

``AotNet(...)`` is kecam's template builder (its arguments and defaults): a stem
(``aot_stem``), four stacks of ``aot_block`` whose middle conv is an attention block by
``attn_types`` (``"bot"``, ``"halo"``, ``"sa"``, ``"cot"``, or a plain / grouped conv with
optional SE or ECA), and kecam's ``output_block`` head. The named models of the four families
are rows of ``MODELS`` (kecam's constructor arguments as data); their family builders are
reachable as ``models.create_model("botnet.AotNet", ...)`` and so on.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import mlx.core as mx
import mlx.nn as nn

from .. import attention_layers, ops
from ..layers import DropBlock, KerasModule
from ._base import ImageClassifier, channels_last
from ._glue import ClassifierHead, per_item
from ._registry import Family, ModelSpec, register_family

# kecam 1.4.3 aotnet.DEFAULT_PARAMS: each attention type's defaults under its attn_params.
DEFAULT_PARAMS = {
    "bot": {"num_heads": 4, "relative": True, "out_bias": False},
    "halo": {"num_heads": 8, "block_size": 4, "halo_size": 1},
    "sa": {"kernel_size": 3, "groups": 2, "downsample_first": False},
    "cot": {"kernel_size": 3, "downsample_first": True},
}
ATTN_TYPES = (None, *DEFAULT_PARAMS)


def _shape_after(module: nn.Module, shape: tuple[int, int, int]) -> tuple[int, int, int]:
    """The output shape of ``module`` on a ``[1, *shape]`` input: MLX is lazy, so this builds
    the graph without computing it."""
    return tuple(module(mx.zeros((1, *shape))).shape[1:])


class Pool2d(KerasModule):
    """A weightless Keras layer over :mod:`ops.pooling`: ``ZeroPadding2D``, ``MaxPool2D`` or
    ``AveragePooling2D`` (TF's "SAME" padding: the odd cell at the bottom/right, the average's
    divisor without it).

    Shape:
        ``[B, H, W, C] -> [B, H', W', C]``
    """

    def __init__(self, kind: str, pool_size=2, strides=None, padding="valid", *, name=None):
        super().__init__(name)
        if kind not in ("zero_pad", "max", "avg"):
            raise ValueError(f"kind={kind!r} must be 'zero_pad', 'max' or 'avg'")
        self.kind, self.pool_size, self.strides, self.padding = kind, pool_size, strides, padding

    def __call__(self, x: mx.array) -> mx.array:
        if self.kind == "zero_pad":
            return ops.zero_pad2d(x, self.padding)
        pool = ops.max_pool2d if self.kind == "max" else ops.avg_pool2d
        return pool(x, self.pool_size, self.strides, self.padding)


class _Sequence(KerasModule):
    """Modules run one after the other (a kecam branch)."""

    def __init__(self, modules: Sequence[nn.Module]):
        super().__init__(None)
        self.parts = list(modules)

    def __call__(self, x: mx.array) -> mx.array:
        for module in self.parts:
            x = module(x)
        return x


class _Builder:
    """Appends kecam layers to a list while tracking the map's shape."""

    def __init__(self, shape: tuple[int, int, int]):
        self.shape, self.modules = shape, []

    def add(self, module: nn.Module) -> nn.Module:
        self.shape = _shape_after(module, self.shape)
        self.modules.append(module)
        return module

    def conv(self, filters, kernel_size=1, strides=1, padding="valid", **kwargs):
        return self.add(
            attention_layers.conv2d_no_bias(
                self.shape, filters, kernel_size, strides, padding, **kwargs
            )
        )

    def bn(self, activation=None, *, zero_gamma=False, bn_params: dict, name: str):
        return self.add(
            attention_layers.batchnorm_with_activation(
                self.shape, activation, zero_gamma=zero_gamma, **bn_params, name=name
            )
        )


def _attn_block(
    b: _Builder, filters: int, strides: int, *, attn_type, attn_params, se_ratio, use_eca,
    groups, group_size, bn_after_attn, bn_params: dict, activation: str, name: str,
) -> None:  # fmt: skip
    """kecam's ``aotnet.attn_block`` (the ``deep_2_`` part of a block), appended to ``b``."""
    if attn_type not in ATTN_TYPES:
        raise ValueError(f"attn_types entry {attn_type!r} must be one of {list(ATTN_TYPES)}")
    params = dict(DEFAULT_PARAMS.get(attn_type, {}))
    params.update(attn_params or {})
    attn_act = params.pop("activation", activation)
    se_divisor = params.pop("se_divisor", 8)
    need_downsample = False
    if attn_type == "bot":
        b.add(
            attention_layers.mhsa_with_relative_position_embedding(
                b.shape, **params, name=name + "mhsa_"
            )
        )
        need_downsample = True
    elif attn_type == "halo":
        out_shape = int(filters * params.pop("halo_expansion", 1))
        b.add(
            attention_layers.halo_attention(
                b.shape, **params, strides=strides, out_shape=out_shape, name=name + "halo"
            )
        )
    elif attn_type == "sa":
        b.add(
            attention_layers.split_attention_conv2d(
                b.shape, **params, filters=filters, strides=strides, activation=attn_act,
                name=name + "sa_",
            )
        )  # fmt: skip
    elif attn_type == "cot":
        b.add(
            attention_layers.cot_attention(
                b.shape, **params, strides=strides, activation=attn_act, name=name + "cot_"
            )
        )
    else:  # ResNet; ResNeXt-like with groups > 1
        groups = groups if group_size == 0 else filters // group_size
        b.conv(
            filters, 3, strides, "same", groups=groups,
            name=(name + "GC_") if groups > 1 else name,
        )  # fmt: skip
    if strides != 1 and need_downsample:
        b.add(Pool2d("avg", 2, strides, name=name + "pool"))
    if bn_after_attn:
        b.bn(activation, bn_params=bn_params, name=name)
    if attn_type is None and se_ratio:
        b.add(
            attention_layers.se_module(
                b.shape, se_ratio=se_ratio, divisor=se_divisor, activation=attn_act,
                name=name + "se_",
            )
        )  # fmt: skip
    if attn_type is None and use_eca:
        b.add(attention_layers.eca_module(b.shape, name=name + "eca_"))


class AotBlock(KerasModule):
    """kecam's ``aot_block``: an optional ``gap_pad`` (halo blocks: padded to a multiple of
    the block size, centred), ``preact_`` BN, a shortcut (``conv``: 1x1 conv + BN, after
    ``AvgPool2D(s, s, "same")`` for ``avg`` or ``anti_alias_downsample``; ``None``: none; no
    conv shortcut: ``MaxPool2D(s, s, "same")`` when strided), the deep branch (``deep_1_`` 1x1
    conv + BN, ``deep_2_`` attention or conv, ``deep_3_`` 1x1 conv), the ``3_`` BN with
    ``zero_gamma``, the Add and the output activation.

    Shape:
        ``[B, H, W, C] -> [B, H', W', filters]``
    """

    def __init__(
        self, shape: tuple[int, int, int], filters: int, strides: int = 1, *,
        conv_shortcut: bool = False, hidden_channel_ratio: float = 0.25, drop_rate: float = 0,
        preact: bool = False, use_3x3_kernel: bool = False, bn_after_attn: bool = True,
        shortcut_type: str | None = "conv", use_block_output_activation: bool = True,
        use_evo_norm: bool = False, epsilon: float = 1e-5, evo_norm_group_size: int = -1,
        activation: str = "relu", attn_block_params: dict, name: str,
    ):  # fmt: skip
        super().__init__(name)
        bn_params = {
            "use_evo_norm": use_evo_norm, "evo_norm_group_size": evo_norm_group_size,
            "epsilon": epsilon,
        }  # fmt: skip
        self.preact, self.use_block_output_activation = preact, use_block_output_activation
        self.gap_pad = None
        if attn_block_params.get("attn_type") == "halo":
            block = (attn_block_params.get("attn_params") or {}).get(
                "block_size", DEFAULT_PARAMS["halo"]["block_size"]
            )
            height, width = shape[:2]
            if height % block or width % block:
                # kecam pads a whole block on an axis that already divides, when the other not
                gap_h, gap_w = block - height % block, block - width % block
                pads = ((gap_h // 2, gap_h - gap_h // 2), (gap_w // 2, gap_w - gap_w // 2))
                self.gap_pad = Pool2d("zero_pad", padding=pads, name=self.sub("gap_pad"))
                shape = _shape_after(self.gap_pad, shape)
        self.preact_bn = (
            attention_layers.batchnorm_with_activation(
                shape, activation, **bn_params, name=self.sub("preact_")
            )
            if preact
            else None
        )

        self.has_shortcut = not (conv_shortcut and shortcut_type is None)
        short = _Builder(shape)
        if conv_shortcut and shortcut_type is not None:
            conv_strides = strides
            if strides > 1 and shortcut_type == "avg":
                short.add(Pool2d("avg", strides, strides, "same", name=self.sub("shortcut_down")))
                conv_strides = 1
            elif strides > 1 and shortcut_type == "anti_alias":
                short.add(
                    attention_layers.anti_alias_downsample(
                        short.shape, kernel_size=3, strides=2, name=self.sub("shortcut_down")
                    )
                )
                conv_strides = 1
            short.conv(filters, 1, conv_strides, name=self.sub("shortcut_"))
            if not preact:
                short.bn(bn_params=bn_params, name=self.sub("shortcut_"))
        elif not conv_shortcut and strides > 1:
            short.add(Pool2d("max", strides, strides, "same"))
        # kecam's MaxPool2D shortcut reads the block's input (before preact); the conv one
        # reads the preact output
        self.shortcut_reads_input = not conv_shortcut
        self.shortcut = _Sequence(short.modules)

        hidden = int(filters * hidden_channel_ratio)
        deep = _Builder(shape)
        bn_act = {"activation": activation, "bn_params": bn_params}
        if use_3x3_kernel:
            deep.conv(hidden, 3, 1, "same", name=self.sub("deep_1_"))
        else:
            deep.conv(hidden, 1, 1, "valid", name=self.sub("deep_1_"))
        deep.bn(**bn_act, name=self.sub("deep_1_"))
        _attn_block(
            deep, hidden, strides, **attn_block_params, bn_after_attn=bn_after_attn,
            bn_params=bn_params, activation=activation, name=self.sub("deep_2_"),
        )  # fmt: skip
        if not use_3x3_kernel:
            deep.conv(filters, 1, 1, "valid", name=self.sub("deep_3_"))
        if not preact and not (use_3x3_kernel and bn_after_attn):
            deep.bn(zero_gamma=True, bn_params=bn_params, name=self.sub("3_"))
        self.deep = _Sequence(deep.modules)
        self.drop = DropBlock(drop_rate)
        self.out_act = (
            attention_layers.activation_by_name(deep.shape, activation, name=self.sub("out_"))
            if not preact and use_block_output_activation
            else None
        )
        if self.has_shortcut and short.shape != deep.shape:  # kecam's Add refuses to build
            raise ValueError(
                f"{self.sub('add')}: the shortcut gives {short.shape} and the deep branch "
                f"{deep.shape} (filters={filters}, hidden_channel_ratio={hidden_channel_ratio}, "
                f"strides={strides}, use_3x3_kernel={use_3x3_kernel})"
            )
        self.output_shape = deep.shape

    @property
    def output_name(self) -> str:
        return self.sub("output")

    def __call__(self, x: mx.array) -> mx.array:
        if self.gap_pad is not None:
            x = self.gap_pad(x)
        pre = self.preact_bn(x) if self.preact_bn is not None else x
        deep = self.drop(self.deep(pre))
        if self.has_shortcut:
            deep = self.shortcut(x if self.shortcut_reads_input else pre) + deep
        return self.out_act(deep) if self.out_act is not None else deep


class AotStem(KerasModule):
    """kecam's ``aot_stem`` (``deep``, ``deep2``, ``quad``, ``tiered``, ``kernel_3x3`` or a
    7x7 conv) named ``stem_``, then ``stem_`` BN + activation (not with ``preact``) and the
    stem pool: ``ZeroPadding2D(1)`` + ``MaxPool2D(3, 2)`` (zeros, not ``-inf``: after a swish
    the zeros win over negative values, as in kecam).

    Shape:
        ``[B, H, W, 3] -> [B, H', W', stem_width]``
    """

    def __init__(
        self, shape: tuple[int, int, int], stem_width: int, stem_type=None, *,
        activation: str = "relu", quad_stem_act: bool = False, last_strides: int = 1,
        preact: bool = False, downsample: bool = True, bn_params: dict,
    ):  # fmt: skip
        super().__init__(None)
        b = _Builder(shape)
        acts = {"bn_params": bn_params}

        def convs(specs):
            for index, (filters, strides, with_bn) in enumerate(specs):
                b.conv(filters, 3, strides, "same", name=f"stem_{index + 1}_")
                if with_bn:
                    b.bn(activation, **acts, name=f"stem_{index + 1}_")

        if stem_type in ("deep", "deep2"):
            half = stem_width // 2 if stem_type == "deep" else stem_width
            convs([(half, 2, True), (half, 1, True), (stem_width, last_strides, False)])
        elif stem_type == "quad":
            convs([
                (stem_width // 8, 2, quad_stem_act), (stem_width // 4, 1, quad_stem_act),
                (stem_width // 2, 1, True), (stem_width, last_strides, False),
            ])  # fmt: skip
        elif stem_type == "tiered":
            convs([
                (3 * stem_width // 8, 2, True), (stem_width // 2, 1, True),
                (stem_width, last_strides, False),
            ])  # fmt: skip
        elif stem_type == "kernel_3x3":
            b.conv(stem_width, 3, 2, "same", name="stem_")
        elif stem_type is None:
            b.conv(stem_width, 7, 2, "same", name="stem_")
        else:
            raise ValueError(
                f"stem_type={stem_type!r} must be one of "
                "[None, 'deep', 'deep2', 'quad', 'tiered', 'kernel_3x3']"
            )
        last = b.modules[-1].sub("conv")
        if not preact:
            b.bn(activation, **acts, name="stem_")
            last = f"stem_{activation}" if activation else "stem_bn"
        if downsample:
            b.add(Pool2d("zero_pad", padding=1, name="stem_pool_pad"))
            b.add(Pool2d("max", 3, 2, "valid", name="stem_pool"))
            last = "stem_pool"
        self.parts, self.output_name, self.output_shape = b.modules, last, b.shape

    def __call__(self, x: mx.array) -> mx.array:
        for module in self.parts:
            x = module(x)
        return x


def _drop_rates(num_blocks: Sequence[int], end: float) -> list[list[float]]:
    """kecam's ``drop_connect_rates_split(num_blocks, 0, end)``: a linspace cut per stack."""
    total = sum(num_blocks)
    rates = [end * i / (total - 1) if total > 1 else 0.0 for i in range(total)]
    out, start = [], 0
    for blocks in num_blocks:
        out.append(rates[start : start + blocks])
        start += blocks
    return out


class AotNetModel(ImageClassifier):
    """kecam's ``AotNet`` model; the arguments are those of :func:`AotNet`.

    Shape:
        ``[B, H, W, 3] -> [B, num_classes]``; ``forward_features``: the last stack's map (after
        ``post_`` BN with ``preact``, and the ``features_`` conv + BN with
        ``output_num_features > 0``).
    """

    def __init__(self, **kw: Any):
        input_shape = channels_last(kw["input_shape"])
        super().__init__(input_shape)
        num_blocks, out_channels = list(kw["num_blocks"]), list(kw["out_channels"])
        strides = kw["strides"]
        if isinstance(strides, int):  # kecam's AotNet50 / BotNet50 rule: [1, 2, 2, strides]
            strides = [1, 2, 2, strides]
        if not len(num_blocks) <= len(out_channels) or not len(num_blocks) <= len(strides):
            raise ValueError(
                f"num_blocks={num_blocks} needs an out_channels ({out_channels}) and a strides "
                f"({list(strides)}) entry per stack"
            )
        activation, preact = kw["activation"], kw["preact"]
        bn_params = {
            "use_evo_norm": kw["use_evo_norm"], "evo_norm_group_size": kw["evo_norm_group_size"],
            "epsilon": kw["bn_epsilon"],
        }  # fmt: skip
        stem = AotStem(
            input_shape, kw["stem_width"], kw["stem_type"], activation=activation,
            quad_stem_act=kw["quad_stem_act"], last_strides=kw["stem_last_strides"],
            preact=preact, downsample=kw["stem_downsample"], bn_params=bn_params,
        )  # fmt: skip
        self.add(stem, stem.output_name)
        shape = stem.output_shape
        block_params = {
            "preact": preact, "use_3x3_kernel": kw["use_3x3_kernel"],
            "use_block_output_activation": kw["use_block_output_activation"],
            "bn_after_attn": kw["bn_after_attn"], "shortcut_type": kw["shortcut_type"],
            "use_evo_norm": kw["use_evo_norm"], "evo_norm_group_size": kw["evo_norm_group_size"],
            "epsilon": kw["bn_epsilon"], "activation": activation,
        }  # fmt: skip
        per_stack = ("attn_types", "attn_params", "se_ratio", "use_eca", "groups", "group_size")
        rates = _drop_rates(num_blocks, kw["drop_connect_rate"])
        for stack_id, (blocks, filters, stride) in enumerate(
            zip(num_blocks, out_channels, strides)
        ):
            stack = {key: per_item(kw[key], stack_id) for key in per_stack}
            ratio = per_item(kw["hidden_channel_ratio"], stack_id)
            strides_block = 0 if kw["strides_first"] else blocks - 1
            for block_id in range(blocks):
                attn_block_params = {
                    "attn_type" if key == "attn_types" else key: per_item(value, block_id)
                    for key, value in stack.items()
                }
                block = AotBlock(
                    shape, filters, stride if block_id == strides_block else 1,
                    conv_shortcut=block_id == 0 and (stride != 1 or shape[-1] != filters),
                    hidden_channel_ratio=per_item(ratio, block_id),
                    drop_rate=rates[stack_id][block_id], **block_params,
                    attn_block_params=attn_block_params,
                    name=f"stack{stack_id + 1}_block{block_id + 1}_",
                )  # fmt: skip
                self.add(block, block.output_name)
                shape = block.output_shape
        if preact:
            post = attention_layers.batchnorm_with_activation(
                shape, activation, **bn_params, name="post_"
            )
            self.add(post, post.sub(activation) if activation else post.sub("bn"))
        if kw["output_num_features"] > 0:  # in forward_features, as kecam's num_classes=0
            conv = attention_layers.conv2d_no_bias(
                shape, kw["output_num_features"], 1, name="features_"
            )
            shape = _shape_after(conv, shape)
            bn = attention_layers.batchnorm_with_activation(
                shape, activation, **bn_params, name="features_"
            )
            self.add(_Sequence([conv, bn]), bn.sub(activation) if activation else bn.sub("bn"))
        self._finish(
            ClassifierHead(
                shape[-1],
                kw["num_classes"],
                drop_rate=kw["dropout"],
                classifier_activation=kw["classifier_activation"],
            )  # fmt: skip
        )


def _build(
    num_blocks=[3, 4, 6, 3], preact=False, strides=[1, 2, 2, 2], strides_first=True,  # noqa: B006
    out_channels=[256, 512, 1024, 2048], hidden_channel_ratio=0.25, use_3x3_kernel=False,  # noqa: B006
    use_block_output_activation=True, use_evo_norm=False, bn_epsilon=1e-5,
    evo_norm_group_size=-1, stem_width=64, stem_type=None, quad_stem_act=False,
    stem_last_strides=1, stem_downsample=True, attn_types=None, attn_params={},  # noqa: B006
    se_ratio=0, use_eca=False, groups=1, group_size=0, bn_after_attn=True,
    shortcut_type="conv", input_shape=(224, 224, 3), num_classes=1000, activation="relu",
    drop_connect_rate=0, classifier_activation="softmax", output_num_features=0, dropout=0,
) -> AotNetModel:  # fmt: skip
    return AotNetModel(**locals())


# kecam 1.4.3 PRETRAINED_DICT of each module: {model.name: {tag: md5 or {resolution: md5}}}.
PRETRAINED = {
    "botnet": {
        "botnet26t": {"imagenet": {256: "6d7a9548f866b4971ca2c9d17dd815fc"}},
        "botnext_eca26t": {"imagenet": {256: "170b9b4d7fba88dbcb41716047c047b9"}},
        "botnet_se33t": {"imagenet": {256: "f612743ec59d430f197bc38b3a7f8837"}},
    },
    "cotnet": {
        "cotnet101": {"imagenet": {224: "589d2c817699d96085136f2af2dd2036"}},
        "cotnet50": {"imagenet": {224: "e2b1fd313834deebb1c1f83451525254"}},
        "cotnet_se101d": {"imagenet": {224: "4e2fc28b9a92259269f1b5544e67ab50"}},
        "cotnet_se152d": {
            "imagenet": {
                224: "6a2744af16b8cc4177fef52aba7ff083",
                320: "9dad11a2ec3d2c8ecac9832fcf1e9ad3",
            }
        },  # fmt: skip
        "cotnet_se50d": {"imagenet": {224: "d1e40b172d26925794f0c9dea090dba7"}},
    },
    "resnest": {
        "resnest101": {"imagenet": "63f9ebdcd32529cbc4b4fbbec3d1bb2f"},
        "resnest200": {"imagenet": "8e211dcb089b588e18d36ba7cdf92ef0"},
        "resnest269": {"imagenet": "4309ed1b0a8ae92f2b1143dc3512c5c7"},
        "resnest50": {"imagenet": "eee7b20a229821f730ab205b6afeb369"},
    },
}
PRETRAINED["halonet"] = {
    "halonet26t": {"imagenet": {256: "6e8848ce6e98a13cd45f65dd68435d00"}},
    "halonet50t": {"imagenet": {256: "6c353144df942cb81a3eb7c140fc9791"}},
    "halonet_se33t": {"imagenet": {256: "7e0afb7f8fb6459491b8a46ad80bcd91"}},
    "halonext_eca26t": {"imagenet": {256: "630037a5c135bceacd0691a22855eb7e"}},
    "haloregnetz_b": {"imagenet": {224: "e889647682d1c554de032d376acf0c48"}},
    "halobotnet50t": {"imagenet": {256: "0af1faad1a81e468d6e670e9fc253edc"}},
}


def _family(module: str, builder: str | None = None) -> Family:
    """The family of kecam's module ``module``; its builder is kecam's template as that
    module imports it (``botnet.botnet.AotNet``), or kecam's own builder there (``BotNet``)."""
    return Family(
        module=module,
        builder_name=builder or f"{module}.AotNet",
        build=_build,
        pretrained_dict=PRETRAINED.get(module, {}),
        pretrained_classes={},
        sub_release=module,
        rescale_mode="torch",
        builder_tail=(("model_name", "aotnet"), ("pretrained", None), ("kwargs", None)),
    )


# --- BoTNet (kecam botnet/botnet.py) ------------------------------------------------------------
_BOT = {"num_heads": 4, "out_weight": False}
_T26 = {"num_blocks": [2, 2, 2, 2], "stem_type": "tiered"}
_SE33 = {
    "stem_type": "tiered", "stem_last_strides": 2, "stem_downsample": False,
    "out_channels": [256, 512, 1024, 1536], "hidden_channel_ratio": [1 / 4, 1 / 4, 1 / 4, 1 / 3],
    "num_blocks": [2, 3, 3, 2], "se_ratio": 1 / 16, "output_num_features": 1280,
}  # fmt: skip
_256 = (256, 256, 3)
BOTNET_T = (
    ModelSpec("BotNet26T", "botnet26t", input_shape=_256, fixed={
        **_T26, "attn_types": [None, None, [None, "bot"], "bot"], "attn_params": _BOT,
    }),
    ModelSpec("BotNextECA26T", "botnext_eca26t", input_shape=_256, fixed={
        **_T26, "attn_types": [None, None, [None, "bot"], "bot"],
        "attn_params": {**_BOT, "key_dim": 16}, "use_eca": True, "group_size": 16,
    }, arg_defaults={"activation": "swish"}),
    ModelSpec("BotNetSE33T", "botnet_se33t", input_shape=_256, fixed={
        **_SE33, "attn_types": [None, [None, None, "bot"], [None, None, "bot"], "bot"],
        "attn_params": _BOT,
    }, arg_defaults={"activation": "swish"}),
)  # fmt: skip
# kecam's BotNet(...): attn_types [None, None, None, "bot"], strides [1, 2, 2, strides]
BOTNET = tuple(
    ModelSpec(name, name.lower(), kecam_pretrained=tag, fixed={
        "num_blocks": blocks, "attn_types": [None, None, None, "bot"], "attn_params": _BOT,
    })
    for name, blocks, tag in (
        ("BotNet50", [3, 4, 6, 3], "imagenet"), ("BotNet101", [3, 4, 23, 3], None),
        ("BotNet152", [3, 8, 36, 3], None),
    )
)  # fmt: skip

# --- HaloNet (kecam halonet/halonet.py) ---------------------------------------------------------


def _halo(block_size, halo_size, num_heads, **extra) -> dict:
    return {
        "block_size": block_size, "halo_size": halo_size, "num_heads": num_heads,
        "out_weight": False, **extra,
    }  # fmt: skip


# kecam's halonet.BLOCK_CONFIGS: halo block/halo size, value expansion (rv), bottleneck
# expansion (rb), output features (df), blocks, heads
BLOCK_CONFIGS = {
    "h0": (8, 3, 1, 0.5, -1, [3, 3, 7, 3]), "h1": (8, 3, 1, 1, -1, [3, 3, 10, 3]),
    "h2": (8, 3, 1, 1.25, -1, [3, 3, 11, 3]), "h3": (10, 3, 1, 1.5, 1024, [3, 3, 12, 3]),
    "h4": (12, 2, 1, 3, 1280, [3, 3, 12, 3]), "h5": (14, 2, 2.5, 2, 1536, [3, 3, 23, 3]),
    "h6": (8, 4, 3, 2.75, 1536, [3, 3, 24, 3]), "h7": (10, 3, 4, 3.5, 2048, [3, 3, 26, 3]),
}  # fmt: skip
_H_SIZES = {"h0": 256, "h1": 256, "h2": 256, "h3": 320, "h4": 384, "h5": 448, "h6": 512, "h7": 600}


def _halonet_h(key: str) -> ModelSpec:
    """kecam's ``HaloNet(**BLOCK_CONFIGS[key])`` as AotNet arguments (Keras casts the float
    channel counts to int)."""
    block, halo, rv, rb, features, blocks = BLOCK_CONFIGS[key]
    params = [
        {**_halo(block, halo, heads), "halo_expansion": rv} for heads in (4, 8, 8, 8)
    ]  # fmt: skip
    size = _H_SIZES[key]
    return ModelSpec(
        f"HaloNet{key.upper()}", f"halonet{key}", input_shape=(size, size, 3), fixed={
            "num_blocks": blocks, "out_channels": [int(c * rb) for c in (64, 128, 256, 512)],
            "hidden_channel_ratio": 1 / rb, "attn_types": "halo", "attn_params": params,
            "output_num_features": features,
        }, arg_defaults={"activation": "swish"},
    )  # fmt: skip


_H8_2, _H8_3 = _halo(8, 2, 8), _halo(8, 3, 8)
HALONET = (
    ModelSpec("HaloNet26T", "halonet26t", input_shape=_256, fixed={
        **_T26, "attn_types": [None, None, [None, "halo"], "halo"],
        "attn_params": [None, None, [None, _H8_2], _H8_2],
    }),
    ModelSpec("HaloNet50T", "halonet50t", input_shape=_256, fixed={
        "num_blocks": [3, 4, 6, 3], "stem_type": "tiered",
        "attn_types": [None, [None, None, None, "halo"], [None, "halo"] * 3, [None, "halo", None]],
        "attn_params": [
            None, [None, None, None, _halo(8, 3, 4)], [None, _H8_3] * 3, [None, _H8_3, None],
        ],
    }, arg_defaults={"activation": "swish"}),
    ModelSpec("HaloNetSE33T", "halonet_se33t", input_shape=_256, fixed={
        **_SE33, "attn_types": [None, [None, None, "halo"], [None, None, "halo"], "halo"],
        "attn_params": [None, [None, None, _H8_3], [None, None, _H8_3], _H8_3],
    }, arg_defaults={"activation": "swish"}),
    ModelSpec("HaloNextECA26T", "halonext_eca26t", input_shape=_256, fixed={
        **_T26, "attn_types": [None, None, [None, "halo"], "halo"],
        "attn_params": [None, None, [None, {**_H8_2, "key_dim": 16}], {**_H8_2, "key_dim": 16}],
        "use_eca": True, "groups": [4, 8, 16, 32],
    }, arg_defaults={"activation": "swish"}),
    ModelSpec("HaloRegNetZB", "haloregnetz_b", fixed={
        "num_blocks": [2, 6, 12, 2], "strides": [2, 2, 2, 2], "out_channels": [48, 96, 192, 288],
        "hidden_channel_ratio": [
            [32 * 3 / 48, 3], [1.5] + [3] * 5, [1.5] + [3] * 11, [192 * 3 / 288, 3]
        ],
        "use_block_output_activation": False, "stem_type": "kernel_3x3", "stem_width": 32,
        "stem_downsample": False,
        "attn_types": [None, None, [None, None, None, "halo"] * 3, "halo"],
        "attn_params": {**_halo(7, 2, 8, key_dim=0.33), "activation": "relu"},
        "se_ratio": 0.25, "group_size": 16, "shortcut_type": None, "output_num_features": 1536,
    }, arg_defaults={"activation": "swish"}),
    ModelSpec("HaloBotNet50T", "halobotnet50t", input_shape=_256, fixed={
        "num_blocks": [3, 4, 6, 3], "stem_type": "tiered", "stem_last_strides": 2,
        "stem_downsample": False,
        "attn_types": [None, [None, "halo"] * 2, [None, "halo"] * 3, [None, "bot", None]],
        "attn_params": [None, [None, _H8_3] * 2, [None, _H8_3] * 3, [None, _BOT, None]],
    }, arg_defaults={"activation": "swish"}),
    *(_halonet_h(key) for key in BLOCK_CONFIGS),
)  # fmt: skip

# --- CotNet (kecam cotnet/cotnet.py): CotNet(bn_after_attn=False, shortcut_type="avg",
# attn_types="cot") -----------------------------------------------------------------------------
_COT = {"bn_after_attn": False, "shortcut_type": "avg", "attn_types": "cot"}
_SA = {"downsample_first": True, "groups": 1, "activation": "swish"}


def _cotnet_se(name: str, blocks: list[int], stem_width: int, cot_params: dict) -> ModelSpec:
    pairs = (blocks[2] + 1) // 2  # kecam: ["cot", "sa"] * 12 for 23 blocks
    return ModelSpec(name, name.lower().replace("cotnetse", "cotnet_se"), fixed={
        "num_blocks": blocks, "strides": [2, 2, 2, 2],
        "attn_types": ["sa", "sa", ["cot", "sa"] * pairs, "cot"],
        "attn_params": [_SA, _SA, [cot_params, _SA] * pairs, cot_params],
        "stem_type": "deep", "stem_width": stem_width, "stem_downsample": False,
    }, popped={k: v for k, v in _COT.items() if k != "attn_types"})  # fmt: skip


COTNET = (
    ModelSpec("CotNet50", "cotnet50", popped=_COT, fixed={
        "num_blocks": [3, 4, 6, 3], "strides": [1, 2, 2, 2],
    }),
    ModelSpec("CotNet101", "cotnet101", popped=_COT, fixed={
        "num_blocks": [3, 4, 23, 3], "strides": [1, 2, 2, 2],
    }),
    _cotnet_se("CotNetSE50D", [3, 4, 6, 3], 64, {}),
    _cotnet_se("CotNetSE101D", [3, 4, 23, 3], 128, {}),
    _cotnet_se("CotNetSE152D", [3, 8, 36, 3], 128, {"downsample_first": False}),
)  # fmt: skip

# --- ResNeSt (kecam resnest/resnest.py): ResNest(stem_type="deep", attn_types="sa",
# bn_after_attn=False, shortcut_type="avg") -----------------------------------------------------
_RESNEST = {"stem_type": "deep", "attn_types": "sa", "bn_after_attn": False, "shortcut_type": "avg"}
RESNEST = tuple(
    ModelSpec(name, name.lower(), input_shape=(size, size, 3), popped=_RESNEST, fixed={
        "num_blocks": blocks, "stem_width": width,
    })
    for name, blocks, width, size in (
        ("ResNest50", [3, 4, 6, 3], 64, 224), ("ResNest101", [3, 4, 23, 3], 128, 256),
        ("ResNest200", [3, 24, 36, 3], 128, 320), ("ResNest269", [3, 30, 48, 8], 128, 416),
    )
)  # fmt: skip

# The constructors' explicit arguments (kecam's order and defaults; `pretrained` follows them).
_ARGS = (
    ("input_shape", (224, 224, 3)),
    ("num_classes", 1000),
    ("activation", "relu"),
    ("classifier_activation", "softmax"),
)

AotNet, _ = register_family(_family("aotnet", "AotNet"), (), _ARGS)
_constructors: dict = {}
# {kecam module: {constructor name: function}}, re-exported by models.botnet, .halonet, ...
FAMILY_CONSTRUCTORS: dict[str, dict] = {}
for _fam, _specs, _extra in (
    (_family("botnet"), BOTNET_T, ()),
    (_family("botnet", "BotNet"), BOTNET, (("pretrained", None), ("strides", 1))),
    (_family("halonet"), HALONET, ()),
    (_family("cotnet"), COTNET, ()),
    (_family("resnest"), RESNEST, (("pretrained", None), ("groups", 2))),
):
    _made = register_family(_fam, _specs, _ARGS + _extra)[1]
    FAMILY_CONSTRUCTORS.setdefault(_fam.module, {}).update(_made)
    _constructors.update(_made)
globals().update(_constructors)
MODELS = (*BOTNET_T, *BOTNET, *HALONET, *COTNET, *RESNEST)
CONSTRUCTORS = tuple(sorted(_constructors))

__all__ = [
    "CONSTRUCTORS", "FAMILY_CONSTRUCTORS", "MODELS", "AotBlock", "AotNet", "AotNetModel",
    "AotStem", "Pool2d", *CONSTRUCTORS,
]  # fmt: skip
