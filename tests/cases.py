"""The kecam parity cases: one list, read by the fixture generator and by the tests.

Each case builds one kecam layer or block in a tiny Keras model (``tools/make_fixtures.py``)
and the same thing through our kecam face (the tests), with the same arguments: a name of
kecam's ``attention_layers`` is ours in ``mlx_attention.attention_layers``; a model-level kecam
function, named by its dotted module path under ``keras_cv_attention_models``
(``efficientvit.efficientvit_b.lite_mhsa``), is ours in ``mlx_attention.models.<its module's
last component>`` (``models.efficientvit_b.lite_mhsa``). Fixtures live in
``tests/fixtures/<family>/<id>.h5`` (weights) and ``.npz`` (``input_<i>`` and ``output_<i>``).
Imports nothing heavy: no TensorFlow, no MLX.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from pathlib import Path

FIXTURES = Path(__file__).parent / "fixtures"


@dataclass(frozen=True)
class Layer:
    """A kecam layer given to a case as an argument (coat's ``shared_crpe``): a value in
    ``Case.kwargs``, made on each side before the case's own call.

    Args:
        kecam: the layer class's name in kecam's ``attention_layers`` (and in ours).
        input_shape: its first input without the batch axis (ours is built for it; kecam's
            Keras layer builds on its first call).
        kwargs: kecam's arguments (``name=`` included).
    """

    kecam: str
    input_shape: tuple[int, ...]
    kwargs: dict = field(default_factory=dict)


def with_layers(kwargs: dict, make) -> dict:
    """``kwargs`` with each ``Layer`` value replaced by ``make(layer)`` (kecam's or ours)."""
    return {k: make(v) if isinstance(v, Layer) else v for k, v in kwargs.items()}


@dataclass(frozen=True)
class Case:
    """One kecam call to reproduce.

    Args:
        id: unique file stem.
        family: fixture sub-folder (``common``, ``positional``, ``global``, ``local``,
            ``blocks``).
        kecam: the name in kecam's ``attention_layers`` (and in ours), or a model-level
            function's dotted path under ``keras_cv_attention_models`` (see the module's doc).
        input_shapes: kecam's inputs without the batch axis; several for multi-input layers.
        kwargs: kecam's arguments (``name=`` included), given identically to ours; a ``Layer``
            value is a kecam layer made for the call.
        version: the kecam version that generates the fixture ("1.4.3" or "1.3.1").
        batch: the batch size of the fixture's inputs.
        inputs: "normal" (standard normal), "positive" (uniform in [0.5, 1.5]) or "ones".
        args: positional arguments after the input (kecam's order).
        resize_from: for a resize case, the input shapes the weights were saved at; the fixture
            holds those weights and kecam's output after ``load_resized_weights`` at
            ``input_shapes`` (the test loads with ``load_keras_weights(..., resize=...)``).
        resize_kwargs: arguments that differ for the saved layer (e.g. ``attn_height``).
        resize_method: the ``method`` given to ``load_resized_weights`` (``None``: kecam's
            default).
    """

    id: str
    family: str
    kecam: str
    input_shapes: tuple[tuple[int, ...], ...]
    kwargs: dict = field(default_factory=dict)
    version: str = "1.4.3"
    batch: int = 2
    inputs: str = "normal"
    args: tuple = ()
    resize_from: tuple[tuple[int, ...], ...] = ()
    resize_kwargs: dict = field(default_factory=dict)
    resize_method: str | None = None

    @property
    def name(self) -> str:
        """The function's or class's own name (the path's last component)."""
        return self.kecam.rsplit(".", 1)[-1]

    @property
    def in_attention_layers(self) -> bool:
        return "." not in self.kecam

    @property
    def kecam_module(self) -> str:
        module = "attention_layers" if self.in_attention_layers else self.kecam.rsplit(".", 1)[0]
        return f"keras_cv_attention_models.{module}"

    @property
    def our_module(self) -> str:
        if self.in_attention_layers:
            return "mlx_attention.attention_layers"
        return f"mlx_attention.models.{self.kecam_module.rsplit('.', 1)[-1]}"

    @property
    def is_class(self) -> bool:
        return self.name[0].isupper()

    @property
    def weights_path(self) -> Path:
        return FIXTURES / self.family / f"{self.id}.h5"

    @property
    def arrays_path(self) -> Path:
        return FIXTURES / self.family / f"{self.id}.npz"


def _case(id, family, kecam, *shapes, version="1.4.3", batch=2, inputs="normal", args=(), **kw):
    return Case(id, family, kecam, tuple(shapes), kw, version, batch, inputs, args)


def _resize_case(id, family, kecam, shape, source, method=None, source_kwargs=None, **kw):
    """A layer saved at input ``source`` and loaded, resized, at input ``shape``."""
    return Case(
        id, family, kecam, (shape,), kw, resize_from=(source,), resize_kwargs=source_kwargs or {},
        resize_method=method,
    )  # fmt: skip


_ACTIVATIONS = (
    "relu", "relu6", "swish", "silu", "gelu", "sigmoid", "tanh", "hard_sigmoid", "elu", "selu",
    "softplus", "softsign", "exponential", "linear", "softmax", "log_softmax", "hard_swish",
    "leaky_relu", "leaky_relu/0.1", "mish", "phish", "prelu", "gelu/app", "gelu/linear",
    "gelu/quick", "hard_sigmoid_torch", "squaredrelu", "starrelu",
)  # fmt: skip

COMMON = [
    *(
        _case(f"act_{a.replace('/', '_')}", "common", "activation_by_name", (5, 7, 6), activation=a, name="act_")
        for a in _ACTIVATIONS
    ),
    _case("act_prelu_tokens", "common", "activation_by_name", (9, 6), activation="PReLU", name="p_"),
    _case("bn_plain", "common", "batchnorm_with_activation", (5, 7, 6), name="bn_"),
    _case("bn_hswish_eps", "common", "batchnorm_with_activation", (4, 4, 8), activation="hard_swish", epsilon=1e-3, name="b_"),
    _case("bn_act_first", "common", "batchnorm_with_activation", (3, 5, 4), activation="relu", act_first=True, name="f_"),
    _case("conv_same_s2", "common", "conv2d_no_bias", (8, 8, 4), args=(6, 3, 2, "same"), name="c_"),
    _case("conv_same_odd", "common", "conv2d_no_bias", (7, 9, 4), args=(5, 3, 1, "SAME"), use_bias=True, name="c_"),
    _case("conv_even_k2_s2", "common", "conv2d_no_bias", (8, 8, 4), args=(6, 2, 2, "same"), name="c_"),
    _case("conv_even_k4_s2", "common", "conv2d_no_bias", (8, 10, 3), args=(4, 4, 2, "same"), name="c_"),
    _case("conv_tf_same_s2", "common", "conv2d_no_bias", (8, 7, 4), args=(6, 3, 2, "same"), use_torch_padding=False, name="t_"),
    _case("conv_tf_same_k2", "common", "conv2d_no_bias", (7, 8, 4), args=(6, 2, 2, "same"), use_torch_padding=False, name="t_"),
    _case("conv_valid_rect", "common", "conv2d_no_bias", (9, 7, 4), args=(6, (3, 1), (2, 1)), use_bias=True, name="v_"),
    _case("conv_groups", "common", "conv2d_no_bias", (6, 5, 4), args=(6, 3, 1, "same"), groups=2, name="g_"),
    _case("conv_int_pad", "common", "conv2d_no_bias", (6, 5, 4), args=(6, 3, 1, (2, 1)), name="i_"),
    _case("conv_dilated", "common", "conv2d_no_bias", (9, 8, 3), args=(4, 3, 1, "same"), dilation_rate=2, name="d_"),
    _case("dw_same", "common", "depthwise_conv2d_no_bias", (7, 9, 6), args=(3, 1, "same"), use_bias=True, name="dw_"),
    _case("dw_s2_even", "common", "depthwise_conv2d_no_bias", (8, 8, 4), args=(2, 2, "same"), name="dw_"),
    _case("dw_tf_same", "common", "depthwise_conv2d_no_bias", (9, 6, 4), args=(5, 2, "same"), use_torch_padding=False, name="dw_"),
    _case("dw_multiplier", "common", "depthwise_conv2d_no_bias", (6, 5, 3), args=(3, 1, "valid"), depth_multiplier=2, name="dw_"),
    _case("ln_4d", "common", "layer_norm", (5, 7, 6), name="ln_"),
    _case("ln_tokens_eps", "common", "layer_norm", (9, 8), epsilon=1e-6, name="ln_"),
    _case("ln_no_center", "common", "layer_norm", (4, 6, 8), center=False, name="ln_"),
    _case("gn_4", "common", "group_norm", (5, 7, 8), groups=4, name="gn_"),
    _case("gn_1", "common", "group_norm", (3, 4, 6), groups=1, epsilon=1e-3, name="gn_"),
    _case("se_conv", "common", "se_module", (5, 7, 16), name="se_"),
    _case("se_dense", "common", "se_module", (4, 6, 12), se_ratio=0.5, divisor=1, use_conv=False, name="se_"),
    _case("se_hsig", "common", "se_module", (4, 4, 8), activation=("relu", "hard_sigmoid_torch"), use_bias=False, name="se_"),
    _case("eca_16", "common", "eca_module", (5, 7, 16), name="eca_"),
    _case("eca_k5_odd", "common", "eca_module", (3, 5, 200), name="eca_"),
    _case("eca_gamma_beta", "common", "eca_module", (4, 4, 12), gamma=1.5, beta=3.0, name="eca_"),
    _case("drop_block", "common", "drop_block", (4, 5, 6), drop_rate=0.3, name="db_"),
    _case("anti_alias_even", "common", "anti_alias_downsample", (8, 8, 4), name="aa_"),
    _case("anti_alias_odd_k5", "common", "anti_alias_downsample", (7, 9, 3), kernel_size=5, name="aa_"),
    _case("anti_alias_trainable", "common", "anti_alias_downsample", (6, 5, 3), trainable=True, name="aa_"),
    _case("mlp_dense", "common", "mlp_block", (5, 7, 6), args=(12,), name="mlp_"),
    _case("mlp_tokens_out", "common", "mlp_block", (9, 8), args=(16, 5), activation="swish", name="blk_token_mixing/"),
    _case("mlp_conv", "common", "mlp_block", (4, 6, 6), args=(10,), use_conv=True, use_bias=False, name="mlp_"),
    _case("channel_affine", "common", "ChannelAffine", (5, 7, 6), name="ca"),
    _case("channel_affine_axis1", "common", "ChannelAffine", (4, 3, 3), axis=1, use_bias=False, name="ca1"),
    # a list-form last axis keeps kecam's full weight shape, (1, 1, C)
    _case("channel_affine_axis_list", "common", "ChannelAffine", (5, 7, 6), axis=[3], name="cal"),
    _case("bias_layer", "common", "BiasLayer", (9, 8), name="bias"),
    _case("bias_layer_axis1", "common", "BiasLayer", (4, 6), axis=1, name="bias1"),
    _case("class_token", "common", "ClassToken", (9, 8), name="class_token"),
    _case("class_tokens_end", "common", "ClassToken", (5, 4), num_tokens=2, is_at_end=True, name="tok"),
]  # fmt: skip

# Layers whose math is unchanged since kecam 1.3.1, checked on files 1.3.1 itself wrote.
COMMON_131 = [
    _case("v131_bn_conv", "common", "conv2d_no_bias", (8, 7, 4), args=(6, 3, 2, "SAME"), use_bias=True, version="1.3.1", name="c_"),
    _case("v131_dw", "common", "depthwise_conv2d_no_bias", (7, 9, 6), args=(3, 1, "SAME"), version="1.3.1", name="dw_"),
    _case("v131_mlp", "common", "mlp_block", (5, 7, 6), args=(12,), version="1.3.1", name="mlp_"),
    _case("v131_anti_alias", "common", "anti_alias_downsample", (8, 8, 4), version="1.3.1", name="aa_"),
]  # fmt: skip

# The global and channel attention blocks (issue 6).
GLOBAL = [
    _case("mhsa_square_bias", "global", "multi_head_self_attention", (4, 4, 16), num_heads=2, qkv_bias=True, out_bias=True, name="mhsa_"),
    _case("mhsa_rect_kd_out", "global", "multi_head_self_attention", (3, 5, 12), num_heads=3, key_dim=6, out_shape=18, name="attn_mhsa_"),
    _case("mhsa_tokens_no_out", "global", "multi_head_self_attention", (7, 8), num_heads=4, out_weight=False, qkv_bias=True, name="m_"),
    _case("mhsa_odd_positional", "global", "multi_head_self_attention", (5, 7, 8), args=(2, 3), out_bias=True, attn_dropout=0.1, output_dropout=0.1, name="m_"),
    _case("channel_square_bias", "global", "multi_head_self_attention_channel", (4, 4, 16), num_heads=2, qkv_bias=True, out_bias=True, name="channel_attn_"),
    _case("channel_c30_out", "global", "multi_head_self_attention_channel", (3, 5, 30), num_heads=4, out_shape=20, name="c_"),
    _case("channel_tokens_no_out", "global", "multi_head_self_attention_channel", (9, 12), num_heads=3, key_dim=5, out_weight=False, name="c_"),
    _case("channel_odd_kd", "global", "multi_head_self_attention_channel", (7, 5, 8), args=(2, 3), out_bias=True, attn_dropout=0.2, name="c_"),
    _case("xca_square", "global", "cross_covariance_attention", (4, 4, 16), num_heads=2, name="stda_xca_"),
    _case("xca_c30", "global", "cross_covariance_attention", (3, 5, 30), num_heads=4, name="x_"),
    _case("xca_tokens_kd", "global", "cross_covariance_attention", (10, 12), args=(3, 6), qkv_bias=False, out_bias=False, name="x_"),
    _case("xca_odd_one_head", "global", "cross_covariance_attention", (7, 9, 8), num_heads=1, out_dropout=0.1, name="x_"),
    _case("bot_square", "global", "mhsa_with_relative_position_embedding", (4, 4, 16), name="mhsa_"),
    _case("bot_rect_kd_out", "global", "mhsa_with_relative_position_embedding", (3, 5, 12), num_heads=2, key_dim=8, out_shape=10, out_bias=True, name="b_"),
    _case("bot_absolute_no_out", "global", "mhsa_with_relative_position_embedding", (4, 6, 8), num_heads=2, relative=False, out_weight=False, name="b_"),
    _case("bot_line", "global", "mhsa_with_relative_position_embedding", (1, 5, 8), args=(2,), out_weight=False, name="b_"),
    _case("bot_odd_kd", "global", "mhsa_with_relative_position_embedding", (5, 3, 12), num_heads=3, key_dim=5, attn_dropout=0.1, name="b_"),
    _case("coat_square", "global", "mhsa_with_multi_head_relative_position_embedding", (4, 4, 16), num_heads=2, name="stack_3_block_1_mhsa_"),
    _case("coat_rect_bias", "global", "mhsa_with_multi_head_relative_position_embedding", (3, 5, 12), num_heads=3, key_dim=6, out_shape=20, qkv_bias=True, out_bias=True, name="c_"),
    _case("coat_c30", "global", "mhsa_with_multi_head_relative_position_embedding", (4, 6, 30), num_heads=4, name="c_"),
    _case("coat_odd_no_out", "global", "mhsa_with_multi_head_relative_position_embedding", (5, 3, 8), num_heads=2, out_weight=False, attn_dropout=0.1, name="c_"),
    _case("cmt_sr1", "global", "light_mhsa_with_multi_head_relative_position_embedding", (4, 4, 16), num_heads=2, name="light_mhsa_"),
    _case("cmt_sr2_rect_bias", "global", "light_mhsa_with_multi_head_relative_position_embedding", (4, 6, 12), num_heads=3, sr_ratio=2, qkv_bias=True, out_bias=True, name="l_"),
    _case("cmt_sr2_odd_bn_kd", "global", "light_mhsa_with_multi_head_relative_position_embedding", (5, 7, 8), num_heads=2, key_dim=6, sr_ratio=2, use_bn=True, out_shape=10, name="l_"),
    _case("cmt_sr3_no_out", "global", "light_mhsa_with_multi_head_relative_position_embedding", (6, 9, 16), args=(4, 0, 3), out_weight=False, dropout=0.1, name="l_"),
    _case("cmt_sr2_tall", "global", "light_mhsa_with_multi_head_relative_position_embedding", (5, 3, 8), num_heads=2, sr_ratio=2, name="l_"),
    _case("cmt_c30", "global", "light_mhsa_with_multi_head_relative_position_embedding", (4, 4, 30), num_heads=4, sr_ratio=2, name="l_"),
    _case("levit_square_bn", "global", "mhsa_with_multi_head_position", (4, 4, 32), args=(4,), key_dim=8, output_dim=32, attn_ratio=2, use_bn=True, activation="hard_swish", name="stack1_block1_"),
    _case("levit_rect_bias", "global", "mhsa_with_multi_head_position", (3, 5, 16), num_heads=2, key_dim=4, qkv_bias=True, out_bias=True, name="lv_"),
    _case("levit_tokens_height", "global", "mhsa_with_multi_head_position", (12, 16), args=(2, -1, 3, 20, 3), name="lv_"),
    _case("levit_tokens_square", "global", "mhsa_with_multi_head_position", (16, 8), num_heads=2, use_bn=True, name="lv_"),
    _case("levit_c30", "global", "mhsa_with_multi_head_position", (4, 4, 30), num_heads=4, use_bn=True, activation="relu", name="lv_"),
    _case("levit_s2", "global", "mhsa_with_multi_head_position_and_strides", (8, 8, 32), args=(4,), key_dim=8, output_dim=48, attn_ratio=4, strides=2, activation="hard_swish", name="stack2_downsample_"),
    _case("levit_s2_odd", "global", "mhsa_with_multi_head_position_and_strides", (7, 7, 16), num_heads=2, strides=2, name="ls_"),
    _case("levit_s2_rect_bias", "global", "mhsa_with_multi_head_position_and_strides", (7, 5, 16), num_heads=2, key_dim=4, strides=2, use_bn=False, qkv_bias=True, out_bias=True, name="ls_"),
    _case("levit_s1", "global", "mhsa_with_multi_head_position_and_strides", (3, 5, 8), num_heads=2, attn_ratio=2, name="ls_"),
    _case("levit_s3", "global", "mhsa_with_multi_head_position_and_strides", (9, 6, 8), num_heads=2, strides=3, name="ls_"),
    _case("levit_s4_rect", "global", "mhsa_with_multi_head_position_and_strides", (9, 6, 8), num_heads=2, strides=4, name="ls_"),
    _case("levit_s2_wide", "global", "mhsa_with_multi_head_position_and_strides", (3, 9, 8), num_heads=2, strides=2, name="ls_"),
    _case("cascaded_square", "global", "cascaded_mhsa_with_multi_head_position", (7, 7, 16), num_heads=4, key_dim=4, kernel_sizes=[3, 3, 3, 3], name="stack1_block1_attn_"),
    _case("cascaded_rect_hswish", "global", "cascaded_mhsa_with_multi_head_position", (4, 6, 12), num_heads=3, activation="hard_swish", name="cg_"),
    _case("cascaded_short_kernels", "global", "cascaded_mhsa_with_multi_head_position", (5, 5, 8), num_heads=4, kernel_sizes=[3, 5], name="cg_"),
    _case("cascaded_default_kd", "global", "cascaded_mhsa_with_multi_head_position", (3, 5, 8), args=(2, -1, [1, 3]), name="cg_"),
    _case("v131_cmt_sr2_rect_bias", "global", "light_mhsa_with_multi_head_relative_position_embedding", (4, 6, 12), num_heads=3, sr_ratio=2, qkv_bias=True, out_bias=True, version="1.3.1", name="l_"),
    _case("v131_mhsa_rect", "global", "multi_head_self_attention", (3, 5, 12), num_heads=3, key_dim=6, qkv_bias=True, out_bias=True, version="1.3.1", name="m_"),
    _case("v131_channel_rect", "global", "multi_head_self_attention_channel", (3, 5, 12), num_heads=3, qkv_bias=True, out_bias=True, version="1.3.1", name="c_"),
    _case("v131_xca_rect", "global", "cross_covariance_attention", (3, 5, 12), num_heads=3, version="1.3.1", name="x_"),
    _case("v131_bot_rect", "global", "mhsa_with_relative_position_embedding", (3, 5, 12), num_heads=2, key_dim=8, version="1.3.1", name="b_"),
    _case("v131_coat_rect", "global", "mhsa_with_multi_head_relative_position_embedding", (3, 5, 12), num_heads=3, qkv_bias=True, version="1.3.1", name="c_"),
    _case("v131_levit_rect_bn", "global", "mhsa_with_multi_head_position", (3, 5, 16), num_heads=2, key_dim=4, attn_ratio=2, use_bn=True, activation="hard_swish", version="1.3.1", name="lv_"),
    _case("v131_levit_s2_rect", "global", "mhsa_with_multi_head_position_and_strides", (7, 5, 16), num_heads=2, key_dim=4, strides=2, version="1.3.1", name="ls_"),
    _case("v131_cmt_sr1_kd", "global", "light_mhsa_with_multi_head_relative_position_embedding", (3, 5, 8), num_heads=2, key_dim=3, out_shape=6, version="1.3.1", name="l_"),
]  # fmt: skip

# The local and windowed attention blocks (issue 7).
LOCAL = [
    _case("splat_square", "local", "split_attention_conv2d", (8, 8, 16), args=(16,), name="sa_"),
    _case("splat_s2_dsfirst", "local", "split_attention_conv2d", (7, 9, 16), args=(24,), strides=2, downsample_first=True, name="sa_"),
    _case("splat_s2_pool_g1", "local", "split_attention_conv2d", (7, 6, 16), args=(24, 3, 2), groups=1, name="sa_"),
    _case("splat_g3_k5_swish", "local", "split_attention_conv2d", (6, 5, 18), args=(12, 5), groups=3, activation="swish", name="sa_"),
    _case("rsoftmax_g4", "local", "rsoftmax", (1, 1, 32), args=(4,)),
    _case("cot_square", "local", "cot_attention", (8, 8, 32), kernel_size=3, name="cot_"),
    _case("cot_s2_odd", "local", "cot_attention", (7, 9, 32), strides=2, name="cot_"),
    _case("cot_s2_late_k5_swish", "local", "cot_attention", (7, 6, 16), args=(5, 2, False, "swish"), name="cot_"),
    _case("outlook_square", "local", "outlook_attention", (8, 8, 32), args=(32,), num_heads=4, name="ol_"),
    _case("outlook_odd_rect", "local", "outlook_attention", (7, 10, 16), args=(24, 3), name="ol_"),
    _case("outlook_k3_s3_pad", "local", "outlook_attention", (9, 8, 16), args=(16, 2, 3, 1, 3), name="ol_"),
    _case("outlook_k1", "local", "outlook_attention", (8, 7, 8), args=(8, 2, 1), name="ol_"),
    _case("outlook_simple_k2", "local", "outlook_attention_simple", (8, 8, 32), args=(32,), num_heads=4, kernel_size=2, name="os_"),
    _case("outlook_simple_pad", "local", "outlook_attention_simple", (7, 7, 16), args=(24, 3), name="os_"),
    _case("outlook_simple_rect", "local", "outlook_attention_simple", (7, 9, 16), args=(16, 2, 2), name="os_"),
    _case("nat_square_k3", "local", "neighborhood_attention", (8, 8, 16), kernel_size=3, num_heads=2, name="nat_"),
    _case("nat_pad_5x6_k7", "local", "neighborhood_attention", (5, 6, 16), name="nat_"),
    _case("nat_rect_k5_c30", "local", "neighborhood_attention", (9, 11, 30), kernel_size=5, num_heads=4, out_bias=False, name="nat_"),
    _case("nat_no_out_kd", "local", "neighborhood_attention", (7, 6, 12), kernel_size=3, num_heads=3, key_dim=6, out_weight=False, qkv_bias=False, name="nat_"),
    _case("dinat_11x9_k3_d2", "local", "neighborhood_attention", (11, 9, 16), kernel_size=3, num_heads=2, dilation_rate=2, name="dinat_"),
    _case("dinat_13x10_k5_d23", "local", "neighborhood_attention", (13, 10, 16), kernel_size=5, num_heads=2, dilation_rate=(2, 3), name="dinat_"),
    _case("dinat_pad_5x5_k3_d2", "local", "neighborhood_attention", (5, 5, 16), kernel_size=3, num_heads=4, dilation_rate=2, name="dinat_"),
    _case("halo_square", "local", "halo_attention", (8, 8, 32), num_heads=4, block_size=4, halo_size=1, name="halo"),
    _case("halo_s2_out", "local", "halo_attention", (8, 8, 32), num_heads=4, block_size=4, halo_size=1, strides=2, out_shape=48, name="halo_"),
    _case("halo_rect_h2_bias", "local", "halo_attention", (8, 12, 32), num_heads=2, block_size=4, halo_size=2, out_bias=True, name="h_"),
    _case("halo_b3_s2_avgdown", "local", "halo_attention", (6, 6, 32), num_heads=4, block_size=3, halo_size=1, strides=2, name="h_"),
    _case("halo_ratio_no_out", "local", "halo_attention", (8, 4, 24), num_heads=2, key_dim=0.5, block_size=4, halo_size=1, out_weight=False, name="h_"),
    _case("swin_square_shift", "local", "shifted_window_attention", (8, 8, 16), args=(4,), num_heads=2, shift_size=0.5, name="attn_"),
    _case("swin_10x6_w4_shift", "local", "shifted_window_attention", (10, 6, 16), args=(4,), num_heads=4, shift_size=0.5, name="attn_"),
    _case("swin_7x7_w7_noshift", "local", "shifted_window_attention", (7, 7, 16), args=(7,), shift_size=0.5, name="attn_"),
    _case("swin_5x9_w4_noshift_scale", "local", "shifted_window_attention", (5, 9, 16), args=(4, 2), pos_scale=8, name="attn_"),
    _case("swin_6x12_w36_shift", "local", "shifted_window_attention", (6, 12, 16), args=((3, 6), 2, 0.5), name="attn_"),
    _case("swin_core_kd_mask_free", "local", "window_mhsa_with_pair_wise_positional_embedding", (3, 4, 12), num_heads=3, key_dim=5, qv_bias=False, out_bias=False, pos_scale=(6, 6), name="w_"),
    _case("v131_swin_square_shift", "local", "shifted_window_attention", (8, 8, 16), args=(4,), num_heads=2, shift_size=0.5, version="1.3.1", name="attn_"),
    _case("v131_swin_10x6_w4_shift", "local", "shifted_window_attention", (10, 6, 16), args=(4,), num_heads=4, shift_size=0.5, version="1.3.1", name="attn_"),
    _case("v131_swin_core", "local", "window_mhsa_with_pair_wise_positional_embedding", (3, 4, 12), num_heads=3, key_dim=5, version="1.3.1", name="w_"),
    _case("davit_square", "local", "window_attention", (8, 8, 16), args=(4,), num_heads=2, name="attn_"),
    _case("davit_6x10_w4_pad", "local", "window_attention", (6, 10, 16), args=(4,), name="attn_"),
    _case("davit_w24", "local", "window_attention", (8, 8, 16), args=((2, 4), 2), name="attn_"),
    _case("davit_grid_7x9", "local", "window_attention", (7, 9, 12), args=(3, 3, True), name="attn_"),
    _case("exp_logit_scale_axis1", "local", "ExpLogitScale", (2, 5, 5), axis=1, name="scale"),
    _case("exp_logit_scale_last", "local", "ExpLogitScale", (4, 6), init_value=1.0, max_value=0.5, name="scale"),
    _case("exp_logit_scale_axis_list", "local", "ExpLogitScale", (4, 6), axis=[2], name="scale"),
]  # fmt: skip

# The positional-embedding layers (issue 4).
_P = "positional"
POSITIONAL = [
    _case("rel_square", _P, "RelativePositionalEmbedding", (2, 4, 4, 8), name="bot_pos_emb"),
    _case("rel_rect", _P, "RelativePositionalEmbedding", (2, 4, 5, 8), name="bot_pos_emb"),
    _case("rel_position_larger", _P, "RelativePositionalEmbedding", (2, 3, 4, 6), position_height=5, name="halo_pos_emb"),
    _case("rel_position_hw", _P, "RelativePositionalEmbedding", (1, 4, 3, 6), position_height=6, position_width=4, name="pe"),
    _case("rel_absolute", _P, "RelativePositionalEmbedding", (2, 4, 5, 8), use_absolute_pos=True, name="pe"),
    _case("rel_dynamic", _P, "RelativePositionalEmbedding", (2, 3, 3, 4), position_height=5, dynamic_shape=True, name="pe"),
    _case("rel_one_row", _P, "RelativePositionalEmbedding", (1, 1, 4, 4), batch=1, name="pe"),
    _case("beit_cls_square", _P, "MultiHeadRelativePositionalEmbedding", (2, 17, 17), name="blk_attn_pos_emb"),
    _case("beit_no_cls_rect", _P, "MultiHeadRelativePositionalEmbedding", (2, 15, 15), with_cls_token=False, attn_height=3, name="pe"),
    _case("beit_cls_rect", _P, "MultiHeadRelativePositionalEmbedding", (3, 25, 25), attn_height=4, name="pe"),
    _case("beit_kv_smaller", _P, "MultiHeadRelativePositionalEmbedding", (2, 16, 4), with_cls_token=False, name="pe"),
    _case("beit_kv_smaller_rect", _P, "MultiHeadRelativePositionalEmbedding", (2, 24, 6), with_cls_token=False, attn_height=4, name="pe"),
    _case("beit_one_table_head", _P, "MultiHeadRelativePositionalEmbedding", (2, 16, 16), with_cls_token=False, num_heads=1, name="pe"),
    _case("beit_one_input_head", _P, "MultiHeadRelativePositionalEmbedding", (1, 17, 17), num_heads=3, name="pe"),
    _case("beit_one_input_head_rect", _P, "MultiHeadRelativePositionalEmbedding", (1, 15, 15), with_cls_token=False, attn_height=3, num_heads=2, name="pe"),
    _case("levit_square", _P, "MultiHeadPositionalEmbedding", (2, 16, 16), name="lv_attn_pos"),
    _case("levit_rect", _P, "MultiHeadPositionalEmbedding", (2, 15, 15), query_height=3, name="lv_attn_pos"),
    _case("levit_strided", _P, "MultiHeadPositionalEmbedding", (2, 16, 49), name="lv_attn_pos"),
    _case("levit_strided_rect", _P, "MultiHeadPositionalEmbedding", (3, 12, 35), query_height=4, key_height=7, name="lv"),
    _case("levit_rank3", _P, "MultiHeadPositionalEmbedding", (16, 16), name="lv"),
    _case("nat_k3", _P, "MultiHeadRelativePositionalKernelBias", (25, 2, 1, 9), name="nat_attn_pos"),
    _case("nat_rect_k3", _P, "MultiHeadRelativePositionalKernelBias", (35, 2, 1, 9), input_height=5, name="nat_attn_pos"),
    _case("nat_k5_heads_first", _P, "MultiHeadRelativePositionalKernelBias", (2, 48, 1, 25), input_height=6, is_heads_first=True, name="p"),
    _case("nat_k4_even", _P, "MultiHeadRelativePositionalKernelBias", (30, 2, 1, 16), input_height=5, name="p"),
    _case("dinat_d2", _P, "MultiHeadRelativePositionalKernelBias", (42, 2, 1, 9), input_height=6, dilation_rate=2, name="p"),
    _case("dinat_d2_k5_rect", _P, "MultiHeadRelativePositionalKernelBias", (72, 3, 1, 25), input_height=9, dilation_rate=2, name="p"),
    _case("dinat_d23", _P, "MultiHeadRelativePositionalKernelBias", (48, 2, 1, 9), input_height=8, dilation_rate=(2, 3), name="p"),
    _case("nat_rank4", _P, "MultiHeadRelativePositionalKernelBias", (16, 2, 9), name="p"),
    _case("cmt_bias", _P, "BiasPositionalEmbedding", (2, 16, 4), attn_height=4, name="stack1_pos_emb"),
    _case("cmt_bias_rect", _P, "BiasPositionalEmbedding", (2, 24, 6), attn_height=4, name="stack1_pos_emb"),
    _case("cmt_bias_last_axis", _P, "BiasPositionalEmbedding", (2, 16, 4), axis=-1, name="pe"),
    _case("cmt_bias_axis_2", _P, "BiasPositionalEmbedding", (2, 16, 4), axis=[2], name="pe"),
    _case("cpe_k3", _P, "ConvPositionalEncoding", (17, 16), name="cpe1_"),
    _case("cpe_rect_k5", _P, "ConvPositionalEncoding", (21, 8), input_height=4, kernel_size=5, name="cpe2_"),
    _case("crpe_default", _P, "ConvRelativePositionalEncoding", (8, 17, 2), (8, 17, 2), name="crpe1_"),
    _case("crpe_rect", _P, "ConvRelativePositionalEncoding", (5, 21, 3), (5, 21, 3), head_splits=[2, 3], head_kernel_size=[3, 5], input_height=4, name="crpe2_"),
    _case("swin_mlp_square", _P, "MlpPairwisePositionalEmbedding", (2, 16, 16), hidden_dim=16, name="sw_attn_pos_emb"),
    _case("swin_mlp_rect_scale", _P, "MlpPairwisePositionalEmbedding", (3, 12, 12), hidden_dim=8, attn_height=3, pos_scale=6, name="sw_pos_emb"),
    _case("swin_mlp_scale_pair", _P, "MlpPairwisePositionalEmbedding", (2, 12, 12), hidden_dim=8, attn_height=4, pos_scale=[8, 5], name="sw_pos_emb"),
    _case("swin_mlp_extra_token", _P, "MlpPairwisePositionalEmbedding", (2, 17, 17), hidden_dim=8, attn_height=4, attn_width=4, name="pe"),
    _case("mlp_abs_image", _P, "MlpPairwisePositionalEmbedding", (4, 6, 8), hidden_dim=8, use_absolute_pos=True, name="pe"),
    _case("mlp_abs_tokens", _P, "MlpPairwisePositionalEmbedding", (12, 8), hidden_dim=8, use_absolute_pos=True, attn_height=3, name="pe"),
    _case("volo_image", _P, "PositionalEmbedding", (4, 5, 8), name="positional_embedding"),
    _case("volo_tokens", _P, "PositionalEmbedding", (17, 8), name="pos"),
    _case("fourier", _P, "PositionalEncodingFourier", (4, 5, 8), name="stack2_block1_pos"),
    _case("fourier_f8_t100", _P, "PositionalEncodingFourier", (3, 7, 6), filters=8, temperature=100, name="p"),
    _case("rot_cls", _P, "PositionalEncodingFourierRot", (17, 16), num_heads=2, name="rope"),
    _case("rot_rect_no_cls", _P, "PositionalEncodingFourierRot", (12, 8), with_cls_token=False, attn_height=3, name="rope"),
    _case("rot_heads_reg", _P, "PositionalEncodingFourierRot", (2, 21, 16), num_heads=2, num_reg_tokens=4, name="rope"),
    _case("rot_no_ref", _P, "PositionalEncodingFourierRot", (16, 8), with_cls_token=False, ref_feature_shape=0, temperature=100, name="rope"),
    # load_resized_weights: saved at one size, kecam's resized layer run at another.
    _resize_case("resize_rel", _P, "RelativePositionalEmbedding", (2, 6, 7, 8), (2, 4, 4, 8), name="pe"),
    _resize_case("resize_rel_nearest", _P, "RelativePositionalEmbedding", (2, 7, 5, 8), (2, 4, 4, 8), method="nearest", name="pe"),
    _resize_case("resize_rel_absolute", _P, "RelativePositionalEmbedding", (2, 6, 6, 8), (2, 3, 4, 8), use_absolute_pos=True, name="pe"),
    _resize_case("resize_beit_cls", _P, "MultiHeadRelativePositionalEmbedding", (2, 26, 26), (2, 17, 17), name="pe"),
    _resize_case("resize_beit_rect", _P, "MultiHeadRelativePositionalEmbedding", (2, 20, 20), (2, 9, 9), with_cls_token=False, attn_height=4, source_kwargs={"attn_height": -1}, name="pe"),
    _resize_case("resize_beit_nearest_down", _P, "MultiHeadRelativePositionalEmbedding", (2, 10, 10), (2, 26, 26), method="nearest", name="pe"),
    _resize_case("resize_levit", _P, "MultiHeadPositionalEmbedding", (2, 25, 25), (2, 16, 16), name="lv"),
    _resize_case("resize_levit_strided_nearest", _P, "MultiHeadPositionalEmbedding", (2, 9, 36), (2, 4, 16), method="nearest", name="lv"),
    _resize_case("resize_levit_rank3_bicubic", _P, "MultiHeadPositionalEmbedding", (36, 36), (16, 16), method="bicubic", name="lv"),
    _resize_case("resize_cmt", _P, "BiasPositionalEmbedding", (2, 36, 9), (2, 16, 4), attn_height=6, source_kwargs={"attn_height": 4}, name="pe"),
    _resize_case("resize_cmt_rect_nearest", _P, "BiasPositionalEmbedding", (2, 24, 6), (2, 16, 4), attn_height=4, method="nearest", name="pe"),
    _resize_case("resize_volo", _P, "PositionalEmbedding", (6, 7, 8), (4, 4, 8), name="pe"),
    _resize_case("resize_volo_tokens", _P, "PositionalEmbedding", (26, 8), (17, 8), name="pe"),
    _resize_case("resize_volo_bicubic", _P, "PositionalEmbedding", (5, 6, 8), (3, 3, 8), method="bicubic", name="pe"),
]  # fmt: skip

# coat and swin v2 as kecam 1.3.1 stored them (other layer names; swin's weightless pairwise layer).
POSITIONAL_131 = [
    _case("v131_pairwise_square", _P, "PairWiseRelativePositionalEmbedding", (4, 4, 8), version="1.3.1", name="sw_attn_pos_emb"),
    _case("v131_pairwise_rect_scale", _P, "PairWiseRelativePositionalEmbedding", (3, 6, 8), pos_scale=8, version="1.3.1", name="pe"),
    _case("v131_pairwise_scale_pair", _P, "PairWiseRelativePositionalEmbedding", (4, 4, 8), pos_scale=[6, 8], version="1.3.1", name="pe"),
    _case("v131_cpe", _P, "ConvPositionalEncoding", (17, 16), version="1.3.1", name="cpe_1"),
    _case("v131_cpe_rect", _P, "ConvPositionalEncoding", (21, 8), input_height=4, kernel_size=5, version="1.3.1", name="cpe_2"),
    _case("v131_crpe", _P, "ConvRelativePositionalEncoding", (8, 17, 2), (8, 17, 2), version="1.3.1", name="crpe_1"),
    _case("v131_beit_rect", _P, "MultiHeadRelativePositionalEmbedding", (2, 15, 15), with_cls_token=False, attn_height=3, version="1.3.1", name="pe"),
    _case("v131_nat", _P, "MultiHeadRelativePositionalKernelBias", (35, 2, 1, 9), input_height=5, version="1.3.1", name="p"),
]  # fmt: skip

# Model-level kecam functions (their modules' own blocks, not in attention_layers).
_B = "blocks"
_LITE = "efficientvit.efficientvit_b.lite_mhsa"
# the options no EfficientViT model passes: biases, out_shape, sr_ratio 3, key_dim 0 (C // heads)
_LITE_OPTIONS = {"num_heads": 2, "key_dim": 0, "sr_ratio": 3, "qkv_bias": True, "out_shape": 10, "out_bias": True}  # fmt: skip
_FACTOR = "coat.coat.factor_attention_conv_relative_positional_encoding"
_CRPE = "ConvRelativePositionalEncoding"
_BEIT = "beit.beit.attention_block"
BLOCKS = [
    # 4x7 first: the half-precision parity test takes a name's first case. At 5x5 some pixels'
    # ReLU queries are near zero, where kecam's q.(k^T v) / q.sum(k) is a ratio of tiny numbers
    # that bfloat16's rounding of the convs moves by 8e-2 of max|out| (float16: 1.6e-3)
    _case("lite_mhsa_4x7", _B, _LITE, (4, 7, 12), **_LITE_OPTIONS, name="attn_"),
    _case("lite_mhsa_5x5", _B, _LITE, (5, 5, 12), **_LITE_OPTIONS, name="attn_"),
    _case("lite_mhsa_1x1", _B, _LITE, (1, 1, 12), **_LITE_OPTIONS, name="attn_"),
    # the block's own crpe: kecam's floor(sqrt) grid, so a square one; default heads and splits
    _case("factor_attn_4x4_own_crpe", _B, _FACTOR, (17, 16), name="attn_"),
    # a shared crpe (as CoaT's stages give) for non-square and odd grids
    _case("factor_attn_3x5_shared", _B, _FACTOR, (16, 24), shared_crpe=Layer(_CRPE, (8, 16, 3), {"input_height": 3, "name": "crpe1_"}), name="attn_"),
    _case("factor_attn_5x7_splits_no_bias", _B, _FACTOR, (36, 12), num_heads=4, qkv_bias=False, shared_crpe=Layer(_CRPE, (4, 36, 3), {"head_splits": [1, 3], "head_kernel_size": [5, 3], "input_height": 5, "name": "crpe1_"}), name="attn_"),
    _case("beit_attn_cls_4x4_qv_bias", _B, _BEIT, (17, 16), num_heads=2, qv_bias=True, use_pos_emb=True, name="attn_"),
    # kecam's own pos_emb always takes a class token (attention_block does not pass
    # with_cls_token on): without one, 16 tokens are a class token and a 3x5 grid to it
    _case("beit_attn_no_cls_pos_emb_16", _B, _BEIT, (16, 12), num_heads=2, with_cls_token=False, attn_height=3, use_pos_emb=True, name="attn_"),
    _case("beit_attn_no_cls_3x5_no_out", _B, _BEIT, (15, 12), num_heads=3, qkv_bias=True, with_cls_token=False, attn_height=3, out_weight=False, name="attn_"),
    _case("beit_attn_cls_5x3_kd_out_bias", _B, _BEIT, (16, 12), num_heads=3, key_dim=6, qv_bias=True, out_bias=True, attn_height=5, use_pos_emb=True, attn_dropout=0.1, name="attn_"),
]  # fmt: skip

CASES: list[Case] = [
    *COMMON, *COMMON_131, *GLOBAL, *LOCAL, *POSITIONAL, *POSITIONAL_131, *BLOCKS
]  # fmt: skip


def cases(family: str | None = None, version: str | None = None) -> list[Case]:
    return [
        c
        for c in CASES
        if (family is None or c.family == family) and (version is None or c.version == version)
    ]


def signature_rows(fn) -> list[list]:
    """``[name, kind, repr(default) or None]`` per parameter: how kecam's signatures are recorded
    (tools/, in the fixtures' kecam_signatures.json and kecam_models.json) and compared
    with ours (tests); here, beside the case table, because the tools import it without pytest."""
    rows = []
    for p in inspect.signature(fn).parameters.values():
        default = None if p.default is inspect.Parameter.empty else repr(p.default)
        rows.append([p.name, p.kind.name, default])
    return rows
