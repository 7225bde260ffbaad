"""BEiT (kecam ``beit/beit.py``): kecam's ``Beit`` family builder in BEiT's form, and the four
BEiT constructors (v1 and v2, Base and Large, patch 16).

kecam's ``Beit(...)`` also builds ViT, DINOv2, EVA, EVA02, FlexiViT and MetaTransformer through
its other flags; here it takes all of kecam's arguments, builds what BEiT uses (relative
positional tables, query/value biases, layer scale, the mean-pooled or class-token head,
``include_top=False``, ``use_pre_norm``) and refuses the other families' flags with a
ValueError. ``attention_block`` is kecam's ``beit.attention_block`` (a kecam face over
``layers.BeitAttention``).
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence

import mlx.core as mx
import numpy as np

from ..layers import BeitAttention, BeitMlp, ClassToken, KerasModule, LayerNorm, PatchConv2D
from ..layers.utils import check_float, check_input_shape
from ._base import ImageClassifier, channels_last
from ._glue import ClassifierHead, LayerScaleResidual
from ._registry import Family, ModelSpec, register_family

# kecam 1.4.3 beit/beit.py PRETRAINED_DICT, the BEiT rows: {model.name: {tag: {width: md5}}}.
PRETRAINED_DICT = {
    "beit_base_patch16": {
        "imagenet21k-ft1k": {
            224: "d7102337a13a3983f3b6470de77b5d5c",
            384: "76353026477c60f8fdcbcc749fea17b3",
        }
    },
    "beit_v2_base_patch16": {"imagenet21k-ft1k": {224: "d001dcb67cdda16bfdbb2873ab9b13c8"}},
    "beit_large_patch16": {
        "imagenet21k-ft1k": {
            224: "fce2d162e7fa4dba9a1b1fc5e1dec5ce",
            384: "158934d07dd8b1e1c6b96883aa00a748",
            512: "64d18088e91df243960e5830aab80a6e",
        }
    },
    "beit_v2_large_patch16": {"imagenet21k-ft1k": {224: "b3cee12a545bfb676f9f426ee7158d27"}},
}

# attention_block arguments only ViT-family models use (rotary embeddings, qk norm, registers,
# text inputs, a shared table), with the values that switch them off
_OTHER_ATTENTION_ARGS = {
    "use_qk_norm": False, "use_rot_pos_emb": False, "num_reg_tokens": 0, "shared_pos_emb": None,
    "text_max_block_size": 0,
}  # fmt: skip


def attention_block(
    input_shape, num_heads=4, key_dim=0, qkv_bias=False, qv_bias=False, out_weight=True,
    out_bias=False, use_qk_norm=False, use_rot_pos_emb=False, with_cls_token=True,
    num_reg_tokens=0, attn_height=-1, shared_pos_emb=None, use_pos_emb=False,
    text_max_block_size=0, attn_dropout=0, epsilon=1e-6, temperature=1e4, ref_feature_shape=16,
    reg_ref_feature_shape=14, name=None,
) -> BeitAttention:  # fmt: skip
    """kecam ``beit.attention_block`` on tokens ``input_shape = (cls + h * w, C)``; see
    ``layers.BeitAttention``. The grid is kecam's: ``attn_height`` rows (``-1``: the square
    root of the patch tokens, floored) and ``patches // attn_height`` columns. ``epsilon``,
    ``temperature``, ``ref_feature_shape`` and ``reg_ref_feature_shape`` serve only the
    ViT-family options, which raise."""
    what = "attention_block"
    tokens, channels = check_input_shape(input_shape, 2, what)
    given = {
        "use_qk_norm": use_qk_norm, "use_rot_pos_emb": use_rot_pos_emb,
        "num_reg_tokens": num_reg_tokens, "shared_pos_emb": shared_pos_emb,
        "text_max_block_size": text_max_block_size,
    }  # fmt: skip
    for arg, off in _OTHER_ATTENTION_ARGS.items():
        if given[arg] is not off and given[arg] != off:
            raise ValueError(f"{what}: {arg}={given[arg]!r} (a ViT-family option) is not supported")
    for arg, value in (("epsilon", epsilon), ("temperature", temperature)):
        check_float(value, arg, what=what)
    # kecam builds its positional table without passing with_cls_token on: the table always
    # takes the first token for a class token
    cls_token = with_cls_token or use_pos_emb
    patches = tokens - (1 if cls_token else 0)
    height = int(float(patches) ** 0.5) if attn_height == -1 else attn_height
    if not isinstance(height, int) or height < 1 or patches < height:
        raise ValueError(f"{what}: attn_height={attn_height} does not fit {patches} patch tokens")
    # kecam's table: a square grid without attn_height, else attn_height rows
    width = height if use_pos_emb and attn_height == -1 else patches // height
    if use_pos_emb and patches != height * width:
        raise ValueError(
            f"{what}: use_pos_emb with {tokens} tokens: kecam's table takes the first for a class "
            f"token and the other {patches} for a {height}x{width} grid, which they do not fill "
            f"(with_cls_token={with_cls_token}, attn_height={attn_height})"
        )
    module = BeitAttention(
        channels, num_heads, height=height, width=width, key_dim=key_dim,
        qkv_bias=qkv_bias, qv_bias=qv_bias, out_weight=out_weight, out_bias=out_bias,
        with_cls_token=cls_token, use_pos_emb=use_pos_emb, attn_dropout=attn_dropout,
        name=name,
    )  # fmt: skip
    module.expect_input_shape(tuple(input_shape))
    return module


class BeitStem(KerasModule):
    """``stem_conv`` (``PatchConv2D``), the patches as tokens, ``cls_token`` and, with
    ``use_pre_norm``, ``pre_ln``.

    Shape:
        ``[B, H, W, 3] -> [B, 1 + (H // p) * (W // p), embed_dim]``
    """

    def __init__(
        self, in_dims: int, embed_dim: int, patch_size: int, *, use_patch_bias: bool,
        use_pre_norm: bool, epsilon: float,
    ):  # fmt: skip
        super().__init__("")
        self.stem_conv = PatchConv2D(
            in_dims, embed_dim, patch_size, use_bias=use_patch_bias, name="stem_conv"
        )
        self.cls_token = ClassToken(embed_dim, name="cls_token")
        self.pre_ln = LayerNorm(embed_dim, epsilon=epsilon, name="pre_") if use_pre_norm else None

    @property
    def output_name(self) -> str:
        return "pre_ln" if self.pre_ln is not None else "cls_token"

    def __call__(self, x: mx.array) -> mx.array:
        x = self.stem_conv(x)
        x = self.cls_token(x.reshape(x.shape[0], -1, x.shape[-1]))
        return self.pre_ln(x) if self.pre_ln is not None else x


class BeitBlock(KerasModule):
    """kecam's ``beit.attention_mlp_block`` (LayerNorm, not gated): LN -> ``BeitAttention`` ->
    ``attn_gamma`` -> residual; LN -> ``BeitMlp`` -> ``mlp_gamma`` -> residual
    (``name + "mlp_output"``).

    Shape:
        ``[B, N, C] -> [B, N, C]``
    """

    def __init__(
        self, dims: int, height: int, width: int, *, num_heads: int, key_dim: int,
        qv_bias: bool, qkv_bias: bool, out_weight: bool, out_bias: bool, attn_dropout: float,
        layer_scale: float, mlp_ratio: float, drop_rate: float, epsilon: float,
        activation: str, name: str,
    ):  # fmt: skip
        super().__init__(name)
        self.attn_ln = LayerNorm(dims, epsilon=epsilon, name=self.sub("attn_"))
        self.attn = BeitAttention(
            dims, num_heads, height=height, width=width, key_dim=key_dim, qkv_bias=qkv_bias,
            qv_bias=qv_bias, out_weight=out_weight, out_bias=out_bias, use_pos_emb=True,
            attn_dropout=attn_dropout, name=self.sub("attn_"),
        )  # fmt: skip
        out_dims = num_heads * self.attn.key_dim
        if out_dims != dims:  # kecam's Add of the shortcut and the attention output fails
            raise ValueError(
                f"num_heads={num_heads} * attn_key_dim={self.attn.key_dim} = {out_dims} must "
                f"equal embed_dim={dims} (the attention output is added to its input)"
            )
        self.attn_residual = LayerScaleResidual(
            dims, layer_scale=layer_scale, drop_rate=drop_rate, name=self.sub("attn_")
        )
        self.mlp_ln = LayerNorm(dims, epsilon=epsilon, name=self.sub("mlp_"))
        self.mlp = BeitMlp(dims, mlp_ratio, activation=activation, name=self.sub("mlp_"))
        self.mlp_residual = LayerScaleResidual(
            dims, layer_scale=layer_scale, drop_rate=drop_rate, name=self.sub("mlp_")
        )

    @property
    def output_name(self) -> str:
        return self.mlp_residual.output_name

    def __call__(self, x: mx.array) -> mx.array:
        x = self.attn_residual(x, self.attn(self.attn_ln(x)))
        return self.mlp_residual(x, self.mlp(self.mlp_ln(x)))


class BeitPool(KerasModule):
    """kecam's head before ``predictions``: the mean of the patch tokens then ``out_ln``
    (``use_mean_pooling_head``), ``out_ln`` then the class token, or (``include_top=False``)
    ``out_ln`` over every token.

    Shape:
        ``[B, N, C] -> [B, C]`` (``[B, N, C]`` for ``pooling=None``)
    """

    def __init__(self, dims: int, *, pooling: str | None, epsilon: float):
        super().__init__("")
        self.out_ln = LayerNorm(dims, epsilon=epsilon, name="out_")
        self.pooling = pooling

    def __call__(self, x: mx.array) -> mx.array:
        if self.pooling == "mean":
            return self.out_ln(mx.mean(x[:, 1:], axis=1))
        x = self.out_ln(x)
        return x[:, 0] if self.pooling == "cls" else x


class BeitModel(ImageClassifier):
    """kecam's ``Beit`` model in BEiT's form: ``BeitStem``, ``depth`` ``BeitBlock``\\ s,
    ``BeitPool`` (``out_ln``) and ``predictions``. Arguments are those of :func:`Beit`.

    Shape:
        ``[B, H, W, 3] -> [B, num_classes]``; ``forward_features`` (kecam's ``num_classes=0``):
        ``[B, embed_dim]`` (``[B, tokens, embed_dim]`` with ``include_top=False``)
    """

    def __init__(
        self, *, depth: int, embed_dim: int, num_heads: int, patch_size: int,
        use_patch_bias: bool, use_pre_norm: bool, attn_key_dim: int, attn_qv_bias: bool,
        attn_qkv_bias: bool, attn_out_weight: bool, attn_out_bias: bool, attn_dropout: float,
        mlp_ratio: float, include_top: bool, use_mean_pooling_head: bool,
        input_shape: Sequence[int], num_classes: int, layer_norm_epsilon: float,
        activation: str, layer_scale: float, drop_connect_rate: float,
        classifier_activation: str | None,
    ):  # fmt: skip
        input_shape = channels_last(input_shape)
        super().__init__(input_shape)
        height, width, channels = input_shape
        stem = BeitStem(
            channels, embed_dim, patch_size, use_patch_bias=use_patch_bias,
            use_pre_norm=use_pre_norm, epsilon=layer_norm_epsilon,
        )  # fmt: skip
        grid = (height // patch_size, width // patch_size)
        if min(grid) < 1:
            raise ValueError(
                f"input_shape={tuple(input_shape)} is smaller than patch_size={patch_size}"
            )
        self.add(stem, stem.output_name)
        rates = np.linspace(0, drop_connect_rate, depth) if depth else []
        for block_id in range(depth):
            block = BeitBlock(
                embed_dim, *grid, num_heads=num_heads, key_dim=attn_key_dim,
                qv_bias=attn_qv_bias, qkv_bias=attn_qkv_bias, out_weight=attn_out_weight,
                out_bias=attn_out_bias, attn_dropout=attn_dropout, layer_scale=layer_scale,
                mlp_ratio=mlp_ratio, drop_rate=float(rates[block_id]),
                epsilon=layer_norm_epsilon, activation=activation, name=f"block{block_id}_",
            )  # fmt: skip
            self.add(block, block.output_name)
        pooling = None if not include_top else "mean" if use_mean_pooling_head else "cls"
        self.add(BeitPool(embed_dim, pooling=pooling, epsilon=layer_norm_epsilon), "out_ln")
        self._finish(
            ClassifierHead(
                embed_dim,
                num_classes if include_top else 0,
                classifier_activation=classifier_activation,
            )  # fmt: skip
        )


# kecam's Beit flags that build the other families, with the values that switch them off
_OTHER_FAMILIES = {
    "use_mask_inputs": False, "patch_merging_block_id": -1, "with_cls_token": True,
    "num_reg_tokens": 0, "use_qk_norm": False, "use_abs_pos_emb": False,
    "use_rot_pos_emb": False, "use_shared_pos_emb_for_attn": False, "use_gated_mlp": False,
    "use_norm_mlp": False, "use_rms_norm": False, "use_cat_head": False, "vocab_size": 0,
}  # fmt: skip


def _build(
    depth=12, embed_dim=768, num_heads=12, patch_size=16, use_patch_bias=True,
    use_pre_norm=False, use_mask_inputs=False, patch_merging_block_id=-1,
    patch_merging_num_tokens=8, with_cls_token=True, num_reg_tokens=0, reg_temperature=None,
    attn_key_dim=0, attn_qv_bias=True, attn_qkv_bias=False, use_qk_norm=False,
    attn_out_weight=True, attn_out_bias=True, attn_dropout=0, use_abs_pos_emb=False,
    use_abs_pos_emb_on_cls_token=True, use_rot_pos_emb=False, use_shared_pos_emb_for_attn=False,
    mlp_ratio=4, use_gated_mlp=False, use_norm_mlp=False, use_rms_norm=False, include_top=True,
    use_mean_pooling_head=True, use_cat_head=False, vocab_size=0, max_block_size=77,
    text_positional_dropout=0, text_use_positional_embedding=True, input_shape=(224, 224, 3),
    num_classes=1000, layer_norm_epsilon=1e-6, activation="gelu", layer_scale=0.1,
    temperature=1e4, ref_feature_shape=16, reg_ref_feature_shape=14, drop_connect_rate=0,
    classifier_activation="softmax", force_reload_mismatch=False,
) -> BeitModel:  # fmt: skip
    """kecam's ``Beit`` architecture arguments. ``force_reload_mismatch`` (kecam's loading flag,
    after ``pretrained`` in kecam's order) changes nothing here: ``resize=True`` resizes."""
    given = locals()
    for arg, off in _OTHER_FAMILIES.items():
        if given[arg] != off:
            raise ValueError(
                f"Beit: {arg}={given[arg]!r} builds a ViT-family model (ViT, DINOv2, EVA, "
                f"FlexiViT, ...), which is not supported; BEiT uses {arg}={off!r}"
            )
    return BeitModel(
        depth=depth, embed_dim=embed_dim, num_heads=num_heads, patch_size=patch_size,
        use_patch_bias=use_patch_bias, use_pre_norm=use_pre_norm, attn_key_dim=attn_key_dim,
        attn_qv_bias=attn_qv_bias, attn_qkv_bias=attn_qkv_bias,
        attn_out_weight=attn_out_weight, attn_out_bias=attn_out_bias, attn_dropout=attn_dropout,
        mlp_ratio=mlp_ratio, include_top=include_top,
        use_mean_pooling_head=use_mean_pooling_head, input_shape=input_shape,
        num_classes=num_classes, layer_norm_epsilon=layer_norm_epsilon, activation=activation,
        layer_scale=layer_scale, drop_connect_rate=drop_connect_rate,
        classifier_activation=classifier_activation,
    )  # fmt: skip


# kecam's order puts force_reload_mismatch after pretrained: the registry's builder signature
# takes it from builder_tail, so the architecture signature leaves it out.
_signature = inspect.signature(_build)
_build.__signature__ = _signature.replace(
    parameters=[p for n, p in _signature.parameters.items() if n != "force_reload_mismatch"]
)

FAMILY = Family(
    module="beit",
    builder_name="Beit",
    build=_build,
    pretrained_dict=PRETRAINED_DICT,
    pretrained_classes={},
    sub_release="beit",
    rescale_mode="tf",
    # kecam's Beit(...) arguments past the architecture ones, in kecam's order
    builder_tail=(
        ("pretrained", None),
        ("force_reload_mismatch", False),
        ("model_name", "beit"),
        ("kwargs", None),
    ),  # fmt: skip
)

# kecam's constructors: `fixed` are the constructor's locals (kwargs may not repeat them, kecam
# raises a TypeError for layer_scale too: it reads it with kwargs.get and passes both).
_BASE = {"embed_dim": 768, "depth": 12, "num_heads": 12, "layer_scale": 0.1}
_LARGE = {"embed_dim": 1024, "depth": 24, "num_heads": 16, "layer_scale": 1e-5}
_FIXED = {"force_reload_mismatch": False}
_TAG = "imagenet21k-ft1k"
MODELS = (
    ModelSpec("BeitBasePatch16", "beit_base_patch16", {**_BASE, **_FIXED}, kecam_pretrained=_TAG),
    ModelSpec(
        "BeitV2BasePatch16", "beit_v2_base_patch16", {**_BASE, **_FIXED}, kecam_pretrained=_TAG
    ),
    ModelSpec(
        "BeitLargePatch16", "beit_large_patch16", {**_LARGE, **_FIXED}, kecam_pretrained=_TAG
    ),
    ModelSpec(
        "BeitV2LargePatch16",
        "beit_v2_large_patch16",
        {**_LARGE, **_FIXED},
        kecam_pretrained=_TAG,
    ),  # fmt: skip
)

# The constructor's explicit arguments (kecam's order and defaults; `pretrained` follows them).
CONSTRUCTOR_ARGS = (
    ("input_shape", (224, 224, 3)),
    ("num_classes", 1000),
    ("activation", "gelu"),
    ("classifier_activation", "softmax"),
)

Beit, constructors = register_family(FAMILY, MODELS, CONSTRUCTOR_ARGS)
globals().update(constructors)

__all__ = [
    "MODELS", "PRETRAINED_DICT", "Beit", "BeitBlock", "BeitModel", "BeitPool", "BeitStem",
    "attention_block", *constructors,
]  # fmt: skip
