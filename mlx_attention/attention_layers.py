"""kecam-compatible namespace: every name of kecam's ``attention_layers``, over layers and ops.

A kecam call site ports by swapping the import and the input tensor for its shape::

    # kecam:  nn = attention_layers.halo_attention(inputs, num_heads=4, name="attn_")
    block = attention_layers.halo_attention((32, 32, 128), num_heads=4, name="attn_")
    out = block(x)  # x: [B, 32, 32, 128]

Functions (kecam blocks) take ``input_shape`` (kecam's ``inputs`` without the batch axis) in the
place of ``inputs`` and return the module; classes (kecam layers) take ``input_shape=`` and
kecam's keyword arguments. Every signature is kecam 1.4.3's (1.3.1's for names 1.4.3 dropped).
"""

from __future__ import annotations

import functools
import inspect

from . import layers
from .layers.utils import (
    check_bool,
    check_bools,
    check_input_shape,
    check_int,
    check_int_list,
    check_pair,
    check_size,
    check_sizes,
    check_str,
    make_divisible,  # noqa: F401 - kecam's value helper, exported as in kecam
)

# --- common blocks (common_layers, res_mlp, mlp_mixer, volo) ----------------------------------


def _norm_axis(axis, rank: int, what: str) -> None:
    if axis != "auto":
        axis = check_int(axis, "axis", what=what)
    if axis not in ("auto", -1, rank - 1):
        raise ValueError(f"{what}: axis={axis!r}: only the channels-last axis is supported")


def _rank_axes(axis, rank: int, what: str) -> list[int]:
    """kecam's axis argument as non-negative axes of the batched input."""
    axes = list(axis) if isinstance(axis, (list, tuple)) else [axis]
    axes = [check_int(a, "axis", what=what) for a in axes]
    out = [a + rank if a < 0 else a for a in axes]
    if not all(0 < a < rank for a in out):
        raise ValueError(f"{what}: axis={axis!r} is out of range for a rank-{rank} input")
    return out


def _is_last_axis(axis, rank: int) -> bool:
    """kecam's test for a ``(C,)`` weight: ``axis == -1 or axis == rank - 1``, so a list
    (``axis=[3]``) never passes and keeps the full shape, ``(1, 1, C)``, as kecam stores it."""
    return not isinstance(axis, (list, tuple)) and axis in (-1, rank - 1)


def _conv_kwargs(kwargs: dict, allowed: tuple[str, ...], what: str) -> dict:
    unknown = sorted(set(kwargs) - set(allowed))
    if unknown:
        raise ValueError(f"{what}: unsupported Keras arguments {unknown}; supported: {allowed}")
    return kwargs


def activation_by_name(input_shape, activation="relu", name=None) -> layers.Activation:
    """kecam ``activation_by_name``; see ``layers.Activation``."""
    shape = check_input_shape(input_shape, (1, 2, 3, 4), "activation_by_name")
    return layers.Activation(activation, dims=shape[-1], name=name)


def batchnorm_with_activation(
    input_shape, activation=None, zero_gamma=False, epsilon=1e-05, momentum=0.9, axis="auto",
    act_first=False, use_evo_norm=False, evo_norm_group_size=-1, name=None,
) -> layers.BatchNormActivation:  # fmt: skip
    """kecam ``batchnorm_with_activation``; see ``layers.BatchNormActivation``."""
    shape = check_input_shape(input_shape, (1, 2, 3, 4), "batchnorm_with_activation")
    _norm_axis(axis, len(shape) + 1, "batchnorm_with_activation")
    check_int(evo_norm_group_size, "evo_norm_group_size", what="batchnorm_with_activation")
    if check_bool(use_evo_norm, "use_evo_norm", what="batchnorm_with_activation"):
        raise ValueError("batchnorm_with_activation: use_evo_norm=True (EvoNorm) is not supported")
    return layers.BatchNormActivation(
        shape[-1], activation=activation, zero_gamma=zero_gamma, epsilon=epsilon,
        momentum=momentum, act_first=act_first, name=name,
    )  # fmt: skip


def conv2d_no_bias(
    input_shape, filters, kernel_size=1, strides=1, padding="valid", use_bias=False, groups=1,
    use_torch_padding=True, name=None, **kwargs,
) -> layers.Conv2dNoBias:  # fmt: skip
    """kecam ``conv2d_no_bias``; ``**kwargs`` may carry Keras's ``dilation_rate``."""
    shape = check_input_shape(input_shape, 3, "conv2d_no_bias")
    kwargs = _conv_kwargs(kwargs, ("dilation_rate",), "conv2d_no_bias")
    return layers.Conv2dNoBias(
        shape[-1], filters, kernel_size, strides=strides, padding=padding, use_bias=use_bias,
        groups=groups, use_torch_padding=use_torch_padding, input_size=shape[:2], name=name,
        **kwargs,
    )  # fmt: skip


def depthwise_conv2d_no_bias(
    input_shape, kernel_size, strides=1, padding="valid", use_bias=False, use_torch_padding=True,
    name=None, **kwargs,
) -> layers.DepthwiseConv2dNoBias:  # fmt: skip
    """kecam ``depthwise_conv2d_no_bias``; ``**kwargs`` may carry ``depth_multiplier`` and
    ``dilation_rate``."""
    shape = check_input_shape(input_shape, 3, "depthwise_conv2d_no_bias")
    allowed = ("depth_multiplier", "dilation_rate")
    kwargs = _conv_kwargs(kwargs, allowed, "depthwise_conv2d_no_bias")
    return layers.DepthwiseConv2dNoBias(
        shape[-1], kernel_size, strides=strides, padding=padding, use_bias=use_bias,
        use_torch_padding=use_torch_padding, input_size=shape[:2], name=name, **kwargs,
    )  # fmt: skip


def layer_norm(
    input_shape, zero_gamma=False, epsilon=1e-05, center=True, axis="auto", name=None
) -> layers.LayerNorm:
    """kecam ``layer_norm``; see ``layers.LayerNorm``."""
    shape = check_input_shape(input_shape, (1, 2, 3, 4), "layer_norm")
    _norm_axis(axis, len(shape) + 1, "layer_norm")
    return layers.LayerNorm(
        shape[-1], zero_gamma=zero_gamma, epsilon=epsilon, center=center, name=name
    )


def group_norm(input_shape, groups=32, epsilon=1e-05, axis="auto", name=None) -> layers.GroupNorm:
    """kecam ``group_norm``; see ``layers.GroupNorm``."""
    shape = check_input_shape(input_shape, (2, 3), "group_norm")
    _norm_axis(axis, len(shape) + 1, "group_norm")
    return layers.GroupNorm(shape[-1], groups, epsilon=epsilon, name=name)


def se_module(
    input_shape, se_ratio=0.25, divisor=8, limit_round_down=0.9, activation="relu", use_bias=True,
    use_conv=True, name=None,
) -> layers.SqueezeExcite:  # fmt: skip
    """kecam ``se_module``; see ``layers.SqueezeExcite``."""
    shape = check_input_shape(input_shape, 3, "se_module")
    return layers.SqueezeExcite(
        shape[-1], se_ratio=se_ratio, divisor=divisor, limit_round_down=limit_round_down,
        activation=activation, use_bias=use_bias, use_conv=use_conv, name=name,
    )  # fmt: skip


def eca_module(input_shape, gamma=2.0, beta=1.0, name=None, **kwargs) -> layers.EcaModule:
    """kecam ``eca_module``; see ``layers.EcaModule``. kecam ignores ``**kwargs``."""
    shape = check_input_shape(input_shape, 3, "eca_module")
    return layers.EcaModule(shape[-1], gamma=gamma, beta=beta, name=name)


def drop_block(input_shape, drop_rate=0, name=None) -> layers.DropBlock:
    """kecam ``drop_block``; see ``layers.DropBlock``."""
    check_input_shape(input_shape, (1, 2, 3, 4), "drop_block")
    return layers.DropBlock(drop_rate, name=name)


def anti_alias_downsample(
    input_shape, kernel_size=3, strides=2, padding="same", trainable=False, name=None
) -> layers.AntiAliasDownsample:
    """kecam ``anti_alias_downsample``; ``padding`` is ignored, as in kecam (always TF SAME)."""
    shape = check_input_shape(input_shape, 3, "anti_alias_downsample")
    check_str(padding, "padding", what="anti_alias_downsample")
    return layers.AntiAliasDownsample(
        shape[-1], kernel_size, strides, trainable=trainable, name=name
    )


def mlp_block(
    input_shape, hidden_dim, output_channel=-1, drop_rate=0, use_conv=False, use_bias=True,
    activation="gelu", name=None,
) -> layers.MlpBlock:  # fmt: skip
    """kecam ``mlp_block`` (mlp_mixer); see ``layers.MlpBlock``."""
    shape = check_input_shape(input_shape, 3 if use_conv else (1, 2, 3), "mlp_block")
    return layers.MlpBlock(
        shape[-1], hidden_dim, output_channel=output_channel, drop_rate=drop_rate,
        use_conv=use_conv, use_bias=use_bias, activation=activation, name=name,
    )  # fmt: skip


def ChannelAffine(  # noqa: N802 - kecam's class name
    use_bias=True, weight_init_value=1, axis=-1, *, input_shape, name=None
) -> layers.ChannelAffine:
    """kecam ``ChannelAffine`` (res_mlp): the weight is ``(C,)`` for the last axis, otherwise
    the input shape with 1 off ``axis``, without the batch axis."""
    shape = check_input_shape(input_shape, (1, 2, 3, 4), "ChannelAffine")
    rank = len(shape) + 1
    axes = _rank_axes(axis, rank, "ChannelAffine")
    if _is_last_axis(axis, rank):
        weight_shape = (shape[-1],)
    else:
        weight_shape = tuple(shape[a - 1] if a in axes else 1 for a in range(1, rank))
    return layers.ChannelAffine(
        weight_shape, use_bias=use_bias, weight_init_value=weight_init_value, name=name
    )


def BiasLayer(axis=-1, initializer="zeros", *, input_shape, name=None) -> layers.BiasLayer:  # noqa: N802
    """kecam ``BiasLayer`` (volo): the bias is ``(C,)`` for the last axis, otherwise the input
    shape with 1 off ``axis``, with a leading 1 for the batch axis (as kecam stores it)."""
    shape = check_input_shape(input_shape, (1, 2, 3, 4), "BiasLayer")
    rank = len(shape) + 1
    axes = _rank_axes(axis, rank, "BiasLayer")
    if check_str(initializer, "initializer", what="BiasLayer") != "zeros":
        raise ValueError(f"BiasLayer: initializer={initializer!r}: only 'zeros' is supported")
    if axes == [rank - 1]:
        bias_shape = (shape[-1],)
    else:
        bias_shape = tuple(shape[a - 1] if a in axes else 1 for a in range(rank))
    return layers.BiasLayer(bias_shape, name=name)


def ClassToken(num_tokens=1, is_at_end=False, *, input_shape, name=None) -> layers.ClassToken:  # noqa: N802
    """kecam ``ClassToken`` (volo): ``[B, N, C] -> [B, N + num_tokens, C]``."""
    shape = check_input_shape(input_shape, 2, "ClassToken")
    return layers.ClassToken(shape[-1], num_tokens=num_tokens, is_at_end=is_at_end, name=name)


# --- positional embeddings ---------------------------------------------------------------------

from .layers import positional as _pos  # noqa: E402 - kept inside this section


def _grid(blocks: int, height: int, what: str, arg: str = "attn_height") -> tuple[int, int]:
    """kecam's grid from a token count: ``int(sqrt(n))`` square, or ``height x int(n / height)``;
    a ValueError when it does not cover the tokens (kecam fails to broadcast or reshape)."""
    height = check_int(height, arg, what=what)
    if height == -1:
        hh = ww = int(float(blocks) ** 0.5)
    elif height > 0:
        hh, ww = height, int(float(blocks) / height)
    else:
        raise ValueError(f"{what}: {arg}={height} must be -1 or positive")
    if hh < 1 or hh * ww != blocks:
        raise ValueError(
            f"{what}: {arg}={height}: the grid {hh}x{ww} does not cover the {blocks} tokens"
        )
    return hh, ww


def BiasPositionalEmbedding(  # noqa: N802 - kecam's class name
    axis=[1, 2, 3], attn_height=-1, initializer="zeros", *, input_shape, name=None,  # noqa: B006
) -> _pos.BiasPositionalEmbedding:  # fmt: skip
    """kecam ``BiasPositionalEmbedding`` (cmt): ``x + table``; the table is the input shape on
    ``axis`` (1 elsewhere), without the batch axis. kecam needs a rank-4 input ``[B, heads, Q,
    K]`` with ``K <= Q`` to build."""
    shape = check_input_shape(input_shape, (3, 4), "BiasPositionalEmbedding")
    attn_height = check_int(attn_height, "attn_height", what="BiasPositionalEmbedding")
    if len(shape) != 3:
        raise ValueError(
            f"BiasPositionalEmbedding: input_shape={shape}: kecam reads [heads, Q, K] at build"
        )
    if check_str(initializer, "initializer", what="BiasPositionalEmbedding") != "zeros":
        raise ValueError(f"BiasPositionalEmbedding: initializer={initializer!r}: only 'zeros'")
    rank = len(shape) + 1
    if not isinstance(axis, (list, tuple)):
        axis = check_int(axis, "axis", what="BiasPositionalEmbedding")
    if axis == -1 or axis == rank - 1:
        table = (shape[-1],)
    else:
        axes = _rank_axes(axis, rank, "BiasPositionalEmbedding")
        table = tuple(shape[a - 1] if a in axes else 1 for a in range(1, rank))
    return _pos.BiasPositionalEmbedding(
        shape[0], shape[1], shape[2], attn_height=attn_height,
        shape=None if table == shape else table, name=name,
    )  # fmt: skip


def ConvPositionalEncoding(  # noqa: N802
    kernel_size=3, input_height=-1, name=None, *, input_shape
) -> _pos.ConvPositionalEncoding:
    """kecam ``ConvPositionalEncoding`` (coat): tokens ``[B, 1 + H*W, C]``."""
    blocks, dims = check_input_shape(input_shape, 2, "ConvPositionalEncoding")
    input_height = check_int(input_height, "input_height", what="ConvPositionalEncoding")
    height = input_height if input_height > 0 else -1
    hh, ww = _grid(blocks - 1, height, "ConvPositionalEncoding", "input_height")
    return _pos.ConvPositionalEncoding(dims, hh, ww, kernel_size=kernel_size, name=name)


def ConvRelativePositionalEncoding(  # noqa: N802
    head_splits=[2, 3, 3], head_kernel_size=[3, 5, 7], input_height=-1, name=None,  # noqa: B006
    *, input_shape,
) -> _pos.ConvRelativePositionalEncoding:  # fmt: skip
    """kecam ``ConvRelativePositionalEncoding`` (coat): called with ``(query, value)``, each
    ``[B, heads, 1 + H*W, d]``; ``input_shape`` is the query's."""
    heads, blocks, key_dim = check_input_shape(input_shape, 3, "ConvRelativePositionalEncoding")
    input_height = check_int(input_height, "input_height", what="ConvRelativePositionalEncoding")
    height = input_height if input_height > 0 else -1
    hh, ww = _grid(blocks - 1, height, "ConvRelativePositionalEncoding", "input_height")
    return _pos.ConvRelativePositionalEncoding(
        heads, key_dim, hh, ww, head_splits=head_splits, head_kernel_size=head_kernel_size,
        name=name,
    )  # fmt: skip


def MultiHeadPositionalEmbedding(  # noqa: N802
    query_height=-1, key_height=-1, *, input_shape, name=None
) -> _pos.MultiHeadPositionalEmbedding:
    """kecam ``MultiHeadPositionalEmbedding`` (levit): scores ``[B, heads, Q, K]`` or
    ``[B, Q, K]``."""
    shape = check_input_shape(input_shape, (2, 3), "MultiHeadPositionalEmbedding")
    heads = shape[0] if len(shape) == 3 else None
    try:
        return _pos.MultiHeadPositionalEmbedding(
            heads, shape[-2], shape[-1], query_height=query_height, key_height=key_height,
            name=name,
        )  # fmt: skip
    except ValueError as err:  # a wrong type stays an ArgumentTypeError
        raise type(err)(f"MultiHeadPositionalEmbedding: input_shape={shape}: {err}") from None


def MultiHeadRelativePositionalKernelBias(  # noqa: N802
    input_height=-1, is_heads_first=False, dilation_rate=1, *, input_shape, name=None
) -> _pos.MultiHeadRelativePositionalKernelBias:
    """kecam ``MultiHeadRelativePositionalKernelBias`` (nat, dinat): scores
    ``[B, H*W, heads, ..., k*k]`` (or heads first); the last axis must be a square number."""
    shape = check_input_shape(
        input_shape, tuple(range(3, 8)), "MultiHeadRelativePositionalKernelBias"
    )
    what = "MultiHeadRelativePositionalKernelBias"
    is_heads_first = check_bool(is_heads_first, "is_heads_first", what=what)
    input_height = check_int(input_height, "input_height", what=what)
    blocks, heads = (shape[1], shape[0]) if is_heads_first else (shape[0], shape[1])
    size = int(float(shape[-1]) ** 0.5)
    if size * size != shape[-1]:
        raise ValueError(
            f"MultiHeadRelativePositionalKernelBias: input_shape={shape}: the last axis "
            f"{shape[-1]} is not a square number of kernel taps"
        )
    height = input_height if input_height > 0 else int(float(blocks) ** 0.5)
    if height < 1 or blocks % height:
        raise ValueError(
            f"MultiHeadRelativePositionalKernelBias: input_height={input_height}: "
            f"{blocks} query tokens are not {height} rows"
        )
    try:
        return _pos.MultiHeadRelativePositionalKernelBias(
            heads, height, blocks // height, size, dilation_rate=dilation_rate,
            is_heads_first=is_heads_first, name=name,
        )  # fmt: skip
    except ValueError as err:  # a wrong type stays an ArgumentTypeError
        raise type(err)(
            f"{what}: input_shape={shape}, input_height={input_height}, "
            f"is_heads_first={is_heads_first}, dilation_rate={dilation_rate!r}: {err}"
        ) from None


def MultiHeadRelativePositionalEmbedding(  # noqa: N802
    with_cls_token=True, attn_height=-1, num_heads=-1, *, input_shape, name=None
) -> _pos.MultiHeadRelativePositionalEmbedding:
    """kecam ``MultiHeadRelativePositionalEmbedding`` (beit, coatnet, cmt): scores
    ``[B, heads, Q, K]``; ``num_heads`` other than the input's broadcasts as kecam's sum does:
    a 1-head table over the input's heads, or an input of 1 head over the table's
    (``[B, num_heads, Q, K]`` out)."""
    what = "MultiHeadRelativePositionalEmbedding"
    heads, queries, keys = check_input_shape(input_shape, 3, what)
    cls = 1 if check_bool(with_cls_token, "with_cls_token", what=what) else 0
    num_heads = check_int(num_heads, "num_heads", what=what)
    hh, ww = _grid(queries - cls, attn_height, "MultiHeadRelativePositionalEmbedding")
    table_heads = heads if num_heads == -1 else num_heads
    if heads != 1 and table_heads not in (heads, 1):
        raise ValueError(
            f"MultiHeadRelativePositionalEmbedding: num_heads={num_heads} does not broadcast "
            f"to the input's {heads} heads"
        )
    try:
        return _pos.MultiHeadRelativePositionalEmbedding(
            table_heads, hh, ww, with_cls_token=with_cls_token, key_blocks=keys, name=name
        )
    except ValueError as err:  # a wrong type stays an ArgumentTypeError
        raise type(err)(f"MultiHeadRelativePositionalEmbedding: {err}") from None


def PairWiseRelativePositionalEmbedding(  # noqa: N802
    pos_scale=-1, *, input_shape, name=None
) -> _pos.PairWiseRelativePositionalEmbedding:
    """kecam 1.3.1 ``PairWiseRelativePositionalEmbedding`` (swin v2): window tokens
    ``[B, h, w, C]`` -> ``(log coords, pair index)``."""
    height, width, _ = check_input_shape(input_shape, 3, "PairWiseRelativePositionalEmbedding")
    try:
        return _pos.PairWiseRelativePositionalEmbedding(
            height, width, pos_scale=pos_scale, name=name
        )
    except ValueError as err:  # a wrong type stays an ArgumentTypeError
        raise type(err)(f"PairWiseRelativePositionalEmbedding: {err}") from None


def MlpPairwisePositionalEmbedding(  # noqa: N802
    hidden_dim=512, attn_height=-1, attn_width=-1, pos_scale=-1, use_absolute_pos=False,
    is_deploy_mode=False, *, input_shape, name=None,
) -> _pos.MlpPairwisePositionalEmbedding:  # fmt: skip
    """kecam 1.4.3 ``MlpPairwisePositionalEmbedding``: relative on scores ``[B, heads, Q, Q]``
    (swin v2), absolute on ``[B, H, W, C]`` or ``[B, H*W, C]``."""
    what = "MlpPairwisePositionalEmbedding"
    shape = check_input_shape(input_shape, (2, 3), what)
    check_bools(what, use_absolute_pos=use_absolute_pos, is_deploy_mode=is_deploy_mode)
    attn_height = check_int(attn_height, "attn_height", what=what)
    attn_width = check_int(attn_width, "attn_width", what=what)
    if is_deploy_mode:
        return _pos.MlpPairwisePositionalEmbedding(0, 0, 0, deploy_shape=shape, name=name)
    kwargs = {"hidden_dim": hidden_dim, "name": name}
    try:
        if use_absolute_pos:
            if len(shape) == 3:
                return _pos.MlpPairwisePositionalEmbedding(
                    shape[-1], shape[0], shape[1], use_absolute_pos=True, **kwargs
                )
            hh, ww = _grid(shape[0], attn_height, what)
            return _pos.MlpPairwisePositionalEmbedding(
                shape[-1], hh, ww, use_absolute_pos=True, compressed=True, **kwargs
            )
        if len(shape) != 3 or shape[1] != shape[2]:
            raise ValueError(f"input_shape={shape}: expected scores [heads, Q, Q]")
        heads, queries = shape[0], shape[1]
        for arg, value in (("attn_height", attn_height), ("attn_width", attn_width)):
            if value != -1 and value < 1:
                raise ValueError(f"{arg}={value} must be -1 or positive")
        hh = int(float(queries) ** 0.5) if attn_height == -1 else attn_height
        ww = queries // hh if attn_width == -1 else attn_width
        if hh < 1 or ww < 1 or hh * ww > queries:
            raise ValueError(
                f"attn_height={attn_height}, attn_width={attn_width}: a {hh}x{ww} window does "
                f"not fit {queries} tokens"
            )
        return _pos.MlpPairwisePositionalEmbedding(
            heads, hh, ww, pos_scale=pos_scale, extra_tokens=queries - hh * ww, **kwargs
        )
    except ValueError as err:  # a wrong type stays an ArgumentTypeError
        raise type(err)(f"{what}: {err}") from None


def PositionalEmbedding(input_height=-1, *, input_shape, name=None) -> _pos.PositionalEmbedding:  # noqa: N802
    """kecam ``PositionalEmbedding`` (volo): ``[B, H, W, C]``, or tokens ``[B, N, C]`` whose
    grid (for resizing) is ``input_height x N // input_height`` (``int(sqrt(N))`` square)."""
    shape = check_input_shape(input_shape, (2, 3), "PositionalEmbedding")
    input_height = check_int(input_height, "input_height", what="PositionalEmbedding")
    if len(shape) == 3:
        return _pos.PositionalEmbedding(shape[2], shape[0], shape[1], name=name)
    height = input_height if input_height > 0 else int(float(shape[0]) ** 0.5)
    if shape[0] // height < 1:
        raise ValueError(
            f"PositionalEmbedding: input_height={input_height} is more rows than the "
            f"{shape[0]} tokens (kecam's table would be empty)"
        )
    return _pos.PositionalEmbedding(
        shape[1], height, shape[0] // height, num_tokens=shape[0], name=name
    )


def PositionalEncodingFourier(  # noqa: N802
    filters=32, temperature=1e4, *, input_shape, name=None
) -> _pos.PositionalEncodingFourier:
    """kecam ``PositionalEncodingFourier`` (edgenext): ``[B, H, W, C]``."""
    height, width, dims = check_input_shape(input_shape, 3, "PositionalEncodingFourier")
    try:
        return _pos.PositionalEncodingFourier(
            dims, height, width, filters=filters, temperature=temperature, name=name
        )
    except ValueError as err:  # a wrong type stays an ArgumentTypeError
        raise type(err)(f"PositionalEncodingFourier: {err}") from None


def RelativePositionalEmbedding(  # noqa: N802
    position_height=0, position_width=0, use_absolute_pos=False, dynamic_shape=False, *,
    input_shape, name=None,
) -> _pos.RelativePositionalEmbedding:  # fmt: skip
    """kecam ``RelativePositionalEmbedding`` (botnet, halonet): the unscaled query
    ``[B, heads, H, W, d]`` -> ``[B, heads, H, W, Ph, Pw]``."""
    _, height, width, key_dim = check_input_shape(input_shape, 4, "RelativePositionalEmbedding")
    return _pos.RelativePositionalEmbedding(
        key_dim, height, width, position_height=position_height, position_width=position_width,
        use_absolute_pos=use_absolute_pos, dynamic_shape=dynamic_shape, name=name,
    )  # fmt: skip


def PositionalEncodingFourierRot(  # noqa: N802
    with_cls_token=True, num_reg_tokens=0, attn_height=-1, num_heads=-1, temperature=1e4,
    reg_temperature=100, ref_feature_shape=16, reg_ref_feature_shape=14, *, input_shape,
    name=None,
) -> _pos.PositionalEncodingFourierRot:  # fmt: skip
    """kecam 1.4.3 ``PositionalEncodingFourierRot`` (eva02): ``[B, ..., cls + H*W + reg, C]``."""
    what = "PositionalEncodingFourierRot"
    shape = check_input_shape(input_shape, (2, 3, 4), what)
    with_cls_token = check_bool(with_cls_token, "with_cls_token", what=what)
    num_reg_tokens = check_int(num_reg_tokens, "num_reg_tokens", minimum=0, what=what)
    patches = shape[-2] - (1 if with_cls_token else 0) - num_reg_tokens
    if patches < 1:
        raise ValueError(
            f"{what}: with_cls_token={with_cls_token}, num_reg_tokens={num_reg_tokens} leave no "
            f"patch tokens of the {shape[-2]}"
        )
    hh, ww = _grid(patches, attn_height, what)
    try:
        return _pos.PositionalEncodingFourierRot(
            shape[-1], hh, ww, num_heads=num_heads, with_cls_token=with_cls_token,
            num_reg_tokens=num_reg_tokens, temperature=temperature,
            reg_temperature=reg_temperature, ref_feature_shape=ref_feature_shape,
            reg_ref_feature_shape=reg_ref_feature_shape, name=name,
        )  # fmt: skip
    except ValueError as err:  # a wrong type stays an ArgumentTypeError
        raise type(err)(f"{what}: {err}") from None


# --- patch extraction and windowing helpers (ops) ----------------------------------------------

import mlx.core as _mx  # noqa: E402 - kept inside this section
from mlx import nn as _nn  # noqa: E402

from . import ops as _ops  # noqa: E402


class OpModule(_nn.Module):
    """A weightless module applying one ``ops`` function (kecam helpers that are not layers).

    Shape:
        that of the wrapped function; ``describe`` says which.
    """

    def __init__(self, fn, describe: str):
        super().__init__()
        self._fn, self.describe = fn, describe

    def __call__(self, *inputs):
        return self._fn(*inputs)


def _window_shape(input_shape, window_height, window_width, what):
    height, width, _ = check_input_shape(input_shape, 3, what)
    window_height = check_int(window_height, "window_height", minimum=1, what=what)
    window_width = check_int(window_width, "window_width", what=what)
    window_width = window_width if window_width > 0 else window_height
    if height % window_height or width % window_width:
        raise ValueError(
            f"{what}: a {height}x{width} map is not a multiple of window_height={window_height}, "
            f"window_width={window_width}; pad it first (pad_to_divisible_by_window_size)"
        )
    return height, width, window_width


def window_partition(input_shape, window_height, window_width=-1) -> OpModule:
    """kecam ``window_partition``: ``[B, ph*wh, pw*ww, C] -> [B*ph*pw, wh, ww, C]``."""
    _, _, window_width = _window_shape(input_shape, window_height, window_width, "window_partition")
    window = (window_height, window_width)
    return OpModule(lambda x: _ops.window_partition(x, window), f"window_partition {window}")


def window_reverse(input_shape, patch_height, patch_width, window_height, window_width) -> OpModule:
    """kecam ``window_reverse``: ``[B*ph*pw, wh, ww, C] -> [B, ph*wh, pw*ww, C]``."""
    check_input_shape(input_shape, 3, "window_reverse")
    patch_height, window_height, window_width = (
        check_int(v, n, minimum=1, what="window_reverse")
        for n, v in (("patch_height", patch_height), ("window_height", window_height),
                     ("window_width", window_width))
    )  # fmt: skip
    patch_width = check_int(patch_width, "patch_width", what="window_reverse")
    patch_width = patch_width if patch_width > 0 else patch_height
    size, window = (patch_height * window_height, patch_width * window_width), (
        window_height, window_width,
    )  # fmt: skip
    if tuple(input_shape[:2]) != window:
        raise ValueError(
            f"window_reverse: input_shape={tuple(input_shape)} is not window_height="
            f"{window_height} x window_width={window_width}"
        )
    return OpModule(lambda x: _ops.window_reverse(x, size, window), f"window_reverse {size}")


def pad_to_divisible_by_window_size(input_shape, window_size) -> OpModule:
    """kecam ``pad_to_divisible_by_window_size``; the call returns ``(x, wh, ww, pad_h, pad_w)``.

    The window is clamped to the map (``wh = min(wh, H)``), then bottom/right zero padding.
    """
    height, width, _ = check_input_shape(input_shape, 3, "pad_to_divisible_by_window_size")
    wh, ww = check_pair(
        window_size, "window_size", minimum=1, what="pad_to_divisible_by_window_size"
    )
    wh, ww = min(wh, height), min(ww, width)
    grid_h, grid_w = _ops.window_grid((height, width), (wh, ww))
    pad_h, pad_w = grid_h * wh - height, grid_w * ww - width

    def pad(x):
        return _mx.pad(x, [(0, 0), (0, pad_h), (0, pad_w), (0, 0)]), wh, ww, pad_h, pad_w

    return OpModule(pad, f"pad bottom/right by ({pad_h}, {pad_w})")


def reverse_padded_for_window_size(input_shape, padding_height, padding_width) -> OpModule:
    """kecam ``reverse_padded_for_window_size``: crop ``padding_*`` rows/columns bottom/right."""
    height, width, _ = check_input_shape(input_shape, 3, "reverse_padded_for_window_size")
    padding_height = check_int(
        padding_height, "padding_height", what="reverse_padded_for_window_size"
    )
    padding_width = check_int(padding_width, "padding_width", what="reverse_padded_for_window_size")
    if not (0 <= padding_height < height and 0 <= padding_width < width):
        raise ValueError(
            f"reverse_padded_for_window_size: padding_height={padding_height} and "
            f"padding_width={padding_width} must be in [0, the map ({height}, {width}))"
        )
    keep = (height - padding_height, width - padding_width)
    return OpModule(lambda x: x[:, : keep[0], : keep[1]], f"crop to {keep}")


def CompatibleExtractPatches(  # noqa: N802 - kecam's class name
    sizes=3,
    strides=2,
    rates=1,
    padding="same",
    compressed=True,
    force_conv=False,
    *,
    input_shape,
    name=None,
) -> OpModule:
    """kecam ``CompatibleExtractPatches``: ``padding="same"`` pads ``k // 2`` (not TF SAME).

    ``force_conv`` changes only how kecam computes it (a frozen identity conv); same values here.

    Shape:
        ``[B, H, W, C] -> [B, oh, ow, k*k*C]`` (``compressed``) or ``[B, oh, ow, k, k, C]``.
    """
    what = "CompatibleExtractPatches"
    shape = check_input_shape(input_shape, 3, what)
    kernel = check_pair(sizes, "sizes", minimum=1, what=what)[0]
    stride = check_pair(strides, "strides", minimum=1, what=what)[0]
    rates = check_pair(rates, "rates", minimum=1, what=what)
    check_bools(what, compressed=compressed, force_conv=force_conv)
    pad = kernel // 2 if check_str(padding, "padding", what=what).lower() == "same" else 0
    try:
        grid = _ops.unfold_axis_maps(shape[:2], kernel, stride, rates, pad)  # validates the sizes
    except ValueError as err:  # a wrong type stays an ArgumentTypeError
        raise type(err)(
            f"{what}: sizes={sizes!r}, strides={strides!r}, rates={rates!r}: {err}"
        ) from None
    check_size(grid[0].grid * grid[1].grid * kernel**2 * shape[2], f"{what}: sizes={sizes!r}")

    def unfold(x):
        out = _ops.extract_patches(x, kernel, stride=stride, dilation=rates, padding=pad)
        return out.reshape(*out.shape[:3], -1) if compressed else out

    return OpModule(unfold, f"unfold k={kernel} s={stride} d={rates} pad={pad}")


def fold_by_conv2d_transpose(
    input_shape,
    output_shape=None,
    kernel_size=3,
    strides=2,
    dilation_rate=1,
    padding="same",
    compressed="auto",
    name=None,
) -> OpModule:
    """kecam ``fold_by_conv2d_transpose`` (sum of overlaps); ``input_shape`` is the patches'.

    As in kecam, any truthy ``padding`` (``"valid"`` too) means ``pad = k // 2``, and Keras'
    rule ``pad < strides`` (its output_padding) is enforced. ``name`` is kept for the loader
    (kecam stores a constant ``fold_convtrans`` identity kernel).

    Shape:
        ``[B, oh, ow, k*k*C]`` or ``[B, oh, ow, k, k, C] -> [B, H, W, C]``.
    """
    what = "fold_by_conv2d_transpose"
    shape = check_input_shape(input_shape, (3, 5), what)
    kernel_size = check_int(kernel_size, "kernel_size", minimum=1, what=what)
    strides = check_int(strides, "strides", minimum=1, what=what)
    dilation_rate = check_int(dilation_rate, "dilation_rate", minimum=1, what=what)
    if compressed != "auto":
        compressed = check_bool(compressed, "compressed", what=what)
    if output_shape is not None:
        output_shape = check_int_list(output_shape, "output_shape", minimum=1, what=what)[:2]
        if len(output_shape) != 2:
            raise ValueError(f"{what}: output_shape={output_shape!r} needs a height and a width")
    pad = kernel_size // 2 if padding else 0
    if pad >= strides:
        raise ValueError(
            f"fold_by_conv2d_transpose: kernel_size {kernel_size} gives padding {pad}, which must "
            f"be < strides {strides} (Keras: 'Strides must be greater than output padding')"
        )
    compressed = len(shape) == 3 if compressed == "auto" else compressed
    grid_h, grid_w = shape[:2]
    channels = shape[-1] // (kernel_size * kernel_size) if compressed else shape[-1]
    if channels < 1 or (compressed and channels * kernel_size**2 != shape[-1]):
        raise ValueError(
            f"{what}: kernel_size={kernel_size}: the {shape[-1]} patch channels are not "
            f"kernel_size**2 = {kernel_size**2} taps of whole channels (kecam's reshape fails)"
        )
    if not compressed and shape[2:4] != (kernel_size, kernel_size):
        raise ValueError(
            f"{what}: compressed={compressed}, kernel_size={kernel_size}: the patches "
            f"{shape} are not [oh, ow, k, k, C]"
        )
    canvas = [(g - 1) * strides + dilation_rate * (kernel_size - 1) + 1 for g in (grid_h, grid_w)]
    if output_shape is None:
        if pad == 0:
            raise ValueError(
                f"{what}: padding={padding!r} with kernel_size={kernel_size} pads 0, and without "
                "output_shape kecam's crop [0:-0] returns an empty map; give output_shape"
            )
        size = tuple(c - pad for c in canvas)
    else:  # kecam slices the transposed conv's canvas (+ pad zero rows): it truncates silently
        size = tuple(min(n, c) for n, c in zip(output_shape, canvas))
    check_size(
        canvas[0] * canvas[1] * channels * kernel_size**2,
        f"{what}: strides={strides}, dilation_rate={dilation_rate}, output_shape={output_shape}",
    )
    # the windows cover canvas - pad rows; kecam's output padding adds zero rows below that
    covered = tuple(min(n, c - pad) for n, c in zip(size, canvas))

    def fold(patches):
        patches = patches.reshape(-1, grid_h, grid_w, kernel_size, kernel_size, channels)
        out = _ops.fold(patches, covered, stride=strides, dilation=dilation_rate, padding=pad)
        if covered != size:
            out = _mx.pad(
                out, [(0, 0), (0, size[0] - covered[0]), (0, size[1] - covered[1]), (0, 0)]
            )
        return out

    module = OpModule(fold, f"fold to {size}")
    module.name = name if name is None else check_str(name, "name", what=what)
    return module


def WindowAttentionMask(  # noqa: N802 - kecam's class name
    height,
    width,
    window_height,
    window_width,
    shift_height=0,
    shift_width=0,
    *,
    input_shape,
    name=None,
) -> OpModule:
    """kecam ``WindowAttentionMask``: adds ``-100`` between tokens of different shifted regions.

    Shape:
        scores ``[B * nW, heads, N, N] -> [B * nW, heads, N, N]``, ``N = wh * ww``.
    """
    what = "WindowAttentionMask"
    heads, queries, keys = check_input_shape(input_shape, 3, what)
    height, width, window_height, window_width = check_sizes(
        what, height=height, width=width, window_height=window_height, window_width=window_width
    )
    shift_height = check_int(shift_height, "shift_height", minimum=0, what=what)
    shift_width = check_int(shift_width, "shift_width", minimum=0, what=what)
    check_size(height * width * queries, f"{what}: height={height}, width={width}")
    window = (window_height, window_width)
    try:
        mask = _ops.shifted_window_mask((height, width), window, (shift_height, shift_width))
    except ValueError as err:  # a wrong type stays an ArgumentTypeError
        raise type(err)(
            f"{what}: height={height}, width={width}, window_height={window_height}, "
            f"window_width={window_width}: {err}"
        ) from None
    if queries != keys or queries != window_height * window_width:
        raise ValueError(
            f"{what}: scores {tuple(input_shape)} need N = window_height * window_width = "
            f"{window_height} * {window_width}"
        )

    def add_mask(scores):
        blocks = mask.shape[0]
        out = scores.reshape(-1, blocks, heads, queries, keys) + mask[None, :, None].astype(
            scores.dtype
        )
        return out.reshape(scores.shape)

    return OpModule(add_mask, f"shifted-window mask {mask.shape}")


# --- global and channel attention blocks -------------------------------------------------------


def multi_head_self_attention(
    input_shape, num_heads=4, key_dim=0, out_shape=None, pos_emb=None, out_weight=True,
    qkv_bias=False, out_bias=False, attn_dropout=0, output_dropout=0, name=None,
) -> layers.MultiHeadSelfAttention:  # fmt: skip
    """kecam ``multi_head_self_attention`` (uniformer), ``[N, C]`` or ``[H, W, C]`` inputs;
    ``pos_emb`` is an MLX module or callable on the scores. See
    ``layers.MultiHeadSelfAttention``."""
    shape = check_input_shape(input_shape, (2, 3), "multi_head_self_attention")
    return layers.MultiHeadSelfAttention(
        shape[-1], num_heads, key_dim=key_dim, out_dims=out_shape, out_weight=out_weight,
        qkv_bias=qkv_bias, out_bias=out_bias, attn_dropout=attn_dropout,
        output_dropout=output_dropout, pos_emb=pos_emb, name=name,
    )  # fmt: skip


def multi_head_self_attention_channel(
    input_shape, num_heads=4, key_dim=0, out_shape=None, out_weight=True, qkv_bias=False,
    out_bias=False, attn_dropout=0, output_dropout=0, name=None,
) -> layers.ChannelSelfAttention:  # fmt: skip
    """kecam ``multi_head_self_attention_channel`` (davit); see ``layers.ChannelSelfAttention``."""
    shape = check_input_shape(input_shape, (2, 3), "multi_head_self_attention_channel")
    return layers.ChannelSelfAttention(
        shape[-1], num_heads, key_dim=key_dim, out_dims=out_shape, out_weight=out_weight,
        qkv_bias=qkv_bias, out_bias=out_bias, attn_dropout=attn_dropout,
        output_dropout=output_dropout, name=name,
    )  # fmt: skip


def cross_covariance_attention(
    input_shape, num_heads=4, key_dim=0, qkv_bias=True, out_bias=True, attn_dropout=0,
    out_dropout=0, name=None,
) -> layers.CrossCovarianceAttention:  # fmt: skip
    """kecam ``cross_covariance_attention`` (edgenext); ``qkv_bias`` is ignored, as in kecam
    (the qkv projection always has a bias). See ``layers.CrossCovarianceAttention``."""
    shape = check_input_shape(input_shape, (2, 3), "cross_covariance_attention")
    check_bool(qkv_bias, "qkv_bias", what="cross_covariance_attention")  # unused, as in kecam
    return layers.CrossCovarianceAttention(
        shape[-1], num_heads, key_dim=key_dim, out_bias=out_bias, attn_dropout=attn_dropout,
        out_dropout=out_dropout, name=name,
    )  # fmt: skip


from .layers.utils import check_channels_last as _check_channels_last  # noqa: E402 - this section


def mhsa_with_relative_position_embedding(
    input_shape, num_heads=4, key_dim=0, relative=True, out_shape=None, out_weight=True,
    out_bias=False, attn_dropout=0, data_format=None, name=None,
) -> layers.BotNetAttention:  # fmt: skip
    """kecam ``mhsa_with_relative_position_embedding`` (botnet); see ``layers.BotNetAttention``."""
    _check_channels_last(data_format)
    height, width, dims = check_input_shape(input_shape, 3, "mhsa_with_relative_position_embedding")
    return layers.BotNetAttention(
        dims, num_heads, height=height, width=width, key_dim=key_dim, relative=relative,
        out_dims=out_shape, out_weight=out_weight, out_bias=out_bias, attn_dropout=attn_dropout,
        name=name,
    )  # fmt: skip


def mhsa_with_multi_head_relative_position_embedding(
    input_shape, num_heads=4, key_dim=0, global_query=None, out_shape=None, out_weight=True,
    qkv_bias=False, out_bias=False, attn_dropout=0, data_format=None, name=None,
) -> layers.CoAtNetAttention:  # fmt: skip
    """kecam ``mhsa_with_multi_head_relative_position_embedding`` (coatnet); ``global_query``
    is an array ``[B, heads, H * W, key_dim]`` or ``True`` (given per call). See
    ``layers.CoAtNetAttention``."""
    _check_channels_last(data_format)
    height, width, dims = check_input_shape(
        input_shape, 3, "mhsa_with_multi_head_relative_position_embedding"
    )
    return layers.CoAtNetAttention(
        dims, num_heads, height=height, width=width, key_dim=key_dim, global_query=global_query,
        out_dims=out_shape, out_weight=out_weight, qkv_bias=qkv_bias, out_bias=out_bias,
        attn_dropout=attn_dropout, name=name,
    )  # fmt: skip


def light_mhsa_with_multi_head_relative_position_embedding(
    input_shape, num_heads=4, key_dim=0, sr_ratio=1, qkv_bias=False, pos_emb=None, use_bn=False,
    out_shape=None, out_weight=True, out_bias=False, dropout=0, name="",
) -> layers.LightMHSA:  # fmt: skip
    """kecam ``light_mhsa_with_multi_head_relative_position_embedding`` (cmt); loads kecam
    1.4.3 and 1.3.1 files. kecam's default ``name=""`` gives duplicate Keras names; pass one to
    load weights. See ``layers.LightMHSA``."""
    height, width, dims = check_input_shape(
        input_shape, 3, "light_mhsa_with_multi_head_relative_position_embedding"
    )
    return layers.LightMHSA(
        dims, num_heads, height=height, width=width, key_dim=key_dim, sr_ratio=sr_ratio,
        qkv_bias=qkv_bias, pos_emb=pos_emb, use_bn=use_bn, out_dims=out_shape,
        out_weight=out_weight, out_bias=out_bias, dropout=dropout, name=name,
    )  # fmt: skip


def mhsa_with_multi_head_position(
    input_shape, num_heads, key_dim=-1, attn_height=-1, output_dim=-1, attn_ratio=1,
    use_bn=False, qkv_bias=False, out_bias=False, activation=None, name=None,
) -> layers.LeViTAttention:  # fmt: skip
    """kecam ``mhsa_with_multi_head_position`` (levit, 1.4.3 order: ``attn_height`` before
    ``output_dim``, ``use_bn=False``); for ``[N, C]`` inputs the grid is ``attn_height`` (or
    ``int(sqrt(N))``) rows. See ``layers.LeViTAttention``."""
    shape = check_input_shape(input_shape, (2, 3), "mhsa_with_multi_head_position")
    attn_height = check_int(attn_height, "attn_height", what="mhsa_with_multi_head_position")
    if len(shape) == 3:
        height, width = shape[:2]
    else:
        tokens = shape[0]
        height = attn_height if attn_height > 0 else int(tokens**0.5)
        width = tokens // height if height > 0 else 0
        if height < 1 or height * width != tokens:
            raise ValueError(
                f"mhsa_with_multi_head_position: attn_height={attn_height} does not tile the "
                f"{tokens} tokens into a grid (kecam's positional index would not fit)"
            )
    return layers.LeViTAttention(
        shape[-1], num_heads, height=height, width=width, key_dim=key_dim, out_dims=output_dim,
        attn_ratio=attn_ratio, use_bn=use_bn, qkv_bias=qkv_bias, out_bias=out_bias,
        activation=activation, name=name,
    )  # fmt: skip


def mhsa_with_multi_head_position_and_strides(
    input_shape, num_heads, key_dim=-1, output_dim=-1, attn_ratio=1, strides=1, use_bn=True,
    qkv_bias=False, out_bias=False, activation=None, name=None,
) -> layers.LeViTStridedAttention:  # fmt: skip
    """kecam ``mhsa_with_multi_head_position_and_strides`` (levit); see
    ``layers.LeViTStridedAttention``."""
    height, width, dims = check_input_shape(
        input_shape, 3, "mhsa_with_multi_head_position_and_strides"
    )
    return layers.LeViTStridedAttention(
        dims, num_heads, height=height, width=width, key_dim=key_dim, out_dims=output_dim,
        attn_ratio=attn_ratio, strides=strides, use_bn=use_bn, qkv_bias=qkv_bias,
        out_bias=out_bias, activation=activation, name=name,
    )  # fmt: skip


def cascaded_mhsa_with_multi_head_position(
    input_shape, num_heads=4, key_dim=-1, kernel_sizes=5, activation="relu", name=None
) -> layers.CascadedGroupAttention:
    """kecam ``cascaded_mhsa_with_multi_head_position`` (efficientvit_m, kecam 1.4.3); see
    ``layers.CascadedGroupAttention``."""
    height, width, dims = check_input_shape(
        input_shape, 3, "cascaded_mhsa_with_multi_head_position"
    )
    return layers.CascadedGroupAttention(
        dims, num_heads, height=height, width=width, key_dim=key_dim, kernel_sizes=kernel_sizes,
        activation=activation, name=name,
    )  # fmt: skip


# --- local and windowed attention blocks -------------------------------------------------------


def split_attention_conv2d(
    input_shape, filters, kernel_size=3, strides=1, downsample_first=False, groups=2,
    activation="relu", name="",
) -> layers.SplitAttentionConv2d:  # fmt: skip
    """kecam ``split_attention_conv2d`` (resnest); see ``layers.SplitAttentionConv2d``.

    kecam's default ``name=""`` builds duplicate Keras layer names; pass a name to load weights.
    """
    shape = check_input_shape(input_shape, 3, "split_attention_conv2d")
    return layers.SplitAttentionConv2d(
        shape[-1], filters, kernel_size=kernel_size, strides=strides,
        downsample_first=downsample_first, groups=groups, activation=activation, name=name,
    )  # fmt: skip


def rsoftmax(input_shape, groups) -> layers.RSoftmax:
    """kecam ``rsoftmax`` (resnest); see ``layers.RSoftmax``."""
    shape = check_input_shape(input_shape, (1, 2, 3), "rsoftmax")
    size = 1
    for n in shape:
        size *= n
    if not isinstance(groups, int) or groups < 1 or size % groups:
        raise ValueError(f"rsoftmax: groups={groups!r} must divide the {size} features")
    return layers.RSoftmax(groups)


def cot_attention(
    input_shape, kernel_size=3, strides=1, downsample_first=True, activation="relu", name=None
) -> layers.CotAttention:
    """kecam ``cot_attention`` (cotnet); see ``layers.CotAttention``."""
    shape = check_input_shape(input_shape, 3, "cot_attention")
    return layers.CotAttention(
        shape[-1], kernel_size=kernel_size, strides=strides, downsample_first=downsample_first,
        activation=activation, name=name,
    )  # fmt: skip


def outlook_attention(
    input_shape, embed_dim, num_heads=8, kernel_size=3, padding=1, strides=2, attn_dropout=0,
    output_dropout=0, name="",
) -> layers.OutlookAttention:  # fmt: skip
    """kecam ``outlook_attention`` (volo, 1.4.3 scale); ``padding`` is unused, as in kecam.

    Note kecam's order: ``outlook_attention(input_shape, embed_dim, num_heads)``; kecam README's
    ``outlook_attention(inputs, 4, 192)`` means ``embed_dim=4, num_heads=192`` and raises.
    """
    shape = check_input_shape(input_shape, 3, "outlook_attention")
    check_int(padding, "padding", what="outlook_attention")  # unused, as in kecam
    return layers.OutlookAttention(
        shape[-1], embed_dim, num_heads=num_heads, kernel_size=kernel_size, strides=strides,
        attn_dropout=attn_dropout, output_dropout=output_dropout, input_size=shape[:2],
        name=name,
    )  # fmt: skip


def outlook_attention_simple(
    input_shape, embed_dim, num_heads=6, kernel_size=3, attn_dropout=0, name=""
) -> layers.OutlookAttentionSimple:
    """kecam ``outlook_attention_simple`` (volo, 1.4.3 scale); see
    ``layers.OutlookAttentionSimple``."""
    shape = check_input_shape(input_shape, 3, "outlook_attention_simple")
    return layers.OutlookAttentionSimple(
        shape[-1], embed_dim, num_heads=num_heads, kernel_size=kernel_size,
        attn_dropout=attn_dropout, input_size=shape[:2], name=name,
    )  # fmt: skip


def neighborhood_attention(
    input_shape, kernel_size=7, num_heads=4, key_dim=0, out_weight=True, qkv_bias=True,
    out_bias=True, dilation_rate=1, attn_dropout=0, output_dropout=0, name=None,
) -> layers.NeighborhoodAttention:  # fmt: skip
    """kecam ``neighborhood_attention`` (nat; dinat with ``dilation_rate``); see
    ``layers.NeighborhoodAttention``."""
    shape = check_input_shape(input_shape, 3, "neighborhood_attention")
    return layers.NeighborhoodAttention(
        shape[-1], input_size=shape[:2], kernel_size=kernel_size, num_heads=num_heads,
        key_dim=key_dim, out_weight=out_weight, qkv_bias=qkv_bias, out_bias=out_bias,
        dilation_rate=dilation_rate, attn_dropout=attn_dropout, output_dropout=output_dropout,
        name=name,
    )  # fmt: skip


def halo_attention(
    input_shape, num_heads=8, key_dim=0, block_size=4, halo_size=1, strides=1, out_shape=None,
    out_weight=True, out_bias=False, attn_dropout=0, name=None,
) -> layers.HaloAttention:  # fmt: skip
    """kecam ``halo_attention`` (halonet); see ``layers.HaloAttention``."""
    shape = check_input_shape(input_shape, 3, "halo_attention")
    return layers.HaloAttention(
        shape[-1], input_size=shape[:2], num_heads=num_heads, key_dim=key_dim,
        block_size=block_size, halo_size=halo_size, strides=strides, out_shape=out_shape,
        out_weight=out_weight, out_bias=out_bias, attn_dropout=attn_dropout, name=name,
    )  # fmt: skip


def ExpLogitScale(  # noqa: N802 - kecam's class name
    axis=-1, init_value=2.302585092994046, max_value=4.605170185988092, *, input_shape, name=None
) -> layers.ExpLogitScale:
    """kecam ``ExpLogitScale`` (swin v2): ``x * exp(min(weight, max_value))`` (log-space
    arguments, as in 1.4.3). The weight is ``(C,)`` for the last axis, ``(1,)`` for ``None``,
    otherwise the batched shape with 1 off ``axis``."""
    shape = check_input_shape(input_shape, (1, 2, 3, 4), "ExpLogitScale")
    rank = len(shape) + 1
    if axis is None:
        weight_shape = (1,)
    else:
        axes = _rank_axes(axis, rank, "ExpLogitScale")
        if _is_last_axis(axis, rank):
            weight_shape = (shape[-1],)
        else:
            weight_shape = tuple(shape[a - 1] if a in axes else 1 for a in range(rank))
    return layers.ExpLogitScale(weight_shape, init_value=init_value, max_value=max_value, name=name)


def window_mhsa_with_pair_wise_positional_embedding(
    input_shape, num_heads=4, key_dim=0, meta_hidden_dim=512, mask=None, pos_scale=-1,
    out_bias=True, qv_bias=True, attn_dropout=0, out_dropout=0, name=None,
) -> layers.WindowMhsaPairWise:  # fmt: skip
    """kecam ``window_mhsa_with_pair_wise_positional_embedding`` (swin v2, on windows
    ``[B', h, w, C]``); ``mask`` is an additive ``[nW, N, N]`` array or a callable on the
    scores; ``meta_hidden_dim`` is ignored, as in kecam 1.4.3. See
    ``layers.WindowMhsaPairWise``."""
    what = "window_mhsa_with_pair_wise_positional_embedding"
    shape = check_input_shape(input_shape, 3, what)
    check_int(meta_hidden_dim, "meta_hidden_dim", what=what)  # unused, as in kecam 1.4.3
    return layers.WindowMhsaPairWise(
        shape[-1], shape[:2], num_heads=num_heads, key_dim=key_dim, mask=mask,
        pos_scale=pos_scale, out_bias=out_bias, qv_bias=qv_bias, attn_dropout=attn_dropout,
        out_dropout=out_dropout, name=name,
    )  # fmt: skip


def shifted_window_attention(
    input_shape, window_size, num_heads=4, shift_size=0, pos_scale=-1, name=None
) -> layers.ShiftedWindowAttention:
    """kecam ``shifted_window_attention`` (swin v2); see ``layers.ShiftedWindowAttention``."""
    shape = check_input_shape(input_shape, 3, "shifted_window_attention")
    return layers.ShiftedWindowAttention(
        shape[-1], window_size, input_size=shape[:2], num_heads=num_heads,
        shift_size=shift_size, pos_scale=pos_scale, name=name,
    )  # fmt: skip


def window_attention(
    input_shape, window_size, num_heads=4, is_grid=False, attention_block=None,
    data_format="channels_last", name=None, **kwargs,
) -> layers.WindowAttention:  # fmt: skip
    """kecam ``window_attention`` (davit). ``attention_block`` is one of our kecam-face block
    functions (or any ``f(window_shape, num_heads=, name=, **kwargs) -> module``); the default
    is ``multi_head_self_attention(..., qkv_bias=True, out_bias=True)``, and ``kwargs`` go only
    to a given ``attention_block``, as in kecam. See ``layers.WindowAttention``."""
    shape = check_input_shape(input_shape, 3, "window_attention")
    layers.utils.check_channels_last(data_format)
    window = layers.window._clamped_window(window_size, shape[:2])
    window_shape = (*window, shape[-1])
    if attention_block is None:
        if kwargs:
            raise ValueError(f"window_attention: {sorted(kwargs)} need an attention_block")
        attention = multi_head_self_attention(
            window_shape, num_heads=num_heads, qkv_bias=True, out_bias=True, name=name
        )
    else:
        attention = attention_block(window_shape, num_heads=num_heads, name=name, **kwargs)
    return layers.WindowAttention(
        attention, window_size, input_size=shape[:2], is_grid=is_grid, name=name
    )


# --- a module built from kecam's input_shape takes [B, *input_shape] only ---------------------


def _takes_its_input_shape(factory):
    @functools.wraps(factory)
    def build(*args, **kwargs):
        module = factory(*args, **kwargs)
        if isinstance(module, layers.KerasModule):
            module.expect_input_shape(kwargs["input_shape"] if "input_shape" in kwargs else args[0])
        return module

    return build


for _name, _factory in list(globals().items()):
    if (
        inspect.isfunction(_factory)
        and not _name.startswith("_")
        and _factory.__module__ == __name__
        and "input_shape" in inspect.signature(_factory).parameters
    ):
        globals()[_name] = _takes_its_input_shape(_factory)
