"""Constructor arguments (issue 12, items 6, 7 and the first half of 12): wrong types raise a
``TypeError`` naming the argument, values out of range a ``ValueError`` naming it, sizes that
kecam cannot build (or that would allocate terabytes) are refused at construction, and what
kecam computes is still computed.

What kecam 1.4.3 does for each refused or kept combination was run once with
``TF_USE_LEGACY_KERAS=1``; the comments quote it.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import mlx.core as mx
import numpy as np
import pytest

from mlx_attention import attention_layers as al
from mlx_attention import layers, ops
from mlx_attention.layers.utils import (
    ArgumentTypeError,
    check_bool,
    check_float,
    check_int,
    check_pair,
    check_size,
)


def _finite(module, *shapes, batch=2):
    out = module(
        *[mx.random.normal((batch, *s), key=mx.random.key(i)) for i, s in enumerate(shapes)]
    )
    assert np.isfinite(np.asarray(out)).all()
    return out


# --- the helper -----------------------------------------------------------------------------


def test_an_int_is_integral_and_not_bool():
    assert check_int(np.int64(3), "n") == 3 and type(check_int(np.int64(3), "n")) is int
    for value in (True, np.bool_(False), 2.0, "2", None):
        with pytest.raises(TypeError, match="n must be an int"):
            check_int(value, "n")
    with pytest.raises(ValueError, match=r"n=0 must be >= 1"):
        check_int(0, "n", minimum=1)
    with pytest.raises(ValueError, match=r"n=2147483648 must be <= 2147483647"):
        check_int(2**31, "n")  # MLX's shapes and slice indices are 32-bit


def test_floats_bools_pairs_and_sizes():
    assert check_float(2, "x") == 2.0
    for value in (True, "1", None):
        with pytest.raises(TypeError, match="x must be a number"):
            check_float(value, "x")
    for value in (float("nan"), float("inf")):
        with pytest.raises(ValueError, match="x=.* must be finite"):
            check_float(value, "x")
    with pytest.raises(ValueError, match=r"x=1.0 must be < 1"):
        check_float(1, "x", below=1)
    with pytest.raises(TypeError, match="b must be True or False"):
        check_bool(1, "b")
    assert check_pair([1, 3, 5, 1], "k") == (3, 5)  # kecam's [1, k, k, 1]
    with pytest.raises(TypeError, match="k must be an int or a pair"):
        check_pair((2, True), "k")
    with pytest.raises(ValueError, match=r"k=\(0, 2\): each entry must be >= 1"):
        check_pair((0, 2), "k", minimum=1)
    check_size(2**31, "ok")
    with pytest.raises(ValueError, match="big: 2147483649 elements is over"):
        check_size(2**31 + 1, "big")


def test_a_wrong_type_is_a_type_error_that_old_value_error_handlers_still_catch():
    assert issubclass(ArgumentTypeError, TypeError) and issubclass(ArgumentTypeError, ValueError)


# --- item 6: zero output channels ended the process with exit status 0 ----------------------


def test_zero_filters_raise_instead_of_ending_the_process():
    """Run in a child: the regression (a BLAS error, then exit 0) must not take pytest along, and
    the child must reach its last line."""
    script = textwrap.dedent(
        """
        import mlx.core as mx
        from mlx_attention import attention_layers as al, ops
        try:
            al.conv2d_no_bias((8, 8, 4), 0, name="c_")
        except ValueError as error:
            assert "filters" in str(error), error
        else:
            raise SystemExit("conv2d_no_bias(filters=0) built")
        # Keras refuses filters <= 0 too ("Expected a strictly positive value")
        for weight in (mx.zeros((0, 1, 1, 4)), mx.zeros((0, 3, 3, 1))):
            for groups in (1, 4):
                if weight.shape[-1] * groups != 4:
                    continue
                try:
                    ops.conv2d(mx.ones((1, 5, 5, 4)), weight, groups=groups)
                except ValueError as error:
                    assert "zero output channels" in str(error), error
                else:
                    raise SystemExit(f"ops.conv2d ran on weight {weight.shape}")
        print("survived")
        """
    )
    child = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert child.returncode == 0 and "survived" in child.stdout, child.stdout + child.stderr


def test_ops_conv2d_with_zero_output_channels_raises_in_process():
    # safe in-process once fixed: the check runs before MLX sees the empty GEMM
    with pytest.raises(ValueError, match="zero output channels"):
        ops.conv2d(mx.ones((1, 5, 5, 4)), mx.zeros((0, 3, 3, 4)))


# --- item 7: wrong types, zero divisors, absurd sizes ---------------------------------------

WRONG_TYPES = [
    # each crashed late inside MLX (std::bad_cast, incompatible function arguments, slice
    # indices must be integers) or gave a raw TypeError that named nothing
    (lambda: al.multi_head_self_attention((4, 4, 16), num_heads=True, name="m_"), "num_heads"),
    (lambda: al.conv2d_no_bias((8, 8, 4), 4, 3, groups=2.0, name="c_"), "groups"),
    (lambda: al.conv2d_no_bias((8, 8, 4), 4, 3, strides=2.0, name="c_"), "strides"),
    (lambda: al.ConvPositionalEncoding(input_height=2.0, input_shape=(17, 16)), "input_height"),
    (lambda: al.ClassToken(num_tokens=2.0, input_shape=(9, 8)), "num_tokens"),
    (lambda: al.halo_attention((8, 8, 32), 4, block_size=True, name="h_"), "block_size"),
    (lambda: al.halo_attention((8, 8, 32), 4, halo_size=True, name="h_"), "halo_size"),
    (lambda: al.CompatibleExtractPatches(padding=None, input_shape=(8, 8, 4)), "padding"),
    (lambda: al.mhsa_with_multi_head_position((4, 4, 16), 2, output_dim=2.0), "output_dim"),
    (lambda: al.layer_norm((4, 4, 8), center=1, name="l_"), "center"),
    (lambda: al.se_module((4, 4, 16), divisor=8.0, name="s_"), "divisor"),
    (lambda: al.ChannelAffine(weight_init_value="1", input_shape=(4, 4, 8)), "weight_init_value"),
    (lambda: al.fold_by_conv2d_transpose((4, 4, 18), output_shape=8), "output_shape"),
    # bool passes isinstance(v, int): this built a one-row map
    (lambda: al.conv2d_no_bias((True, 8, 16), 4, name="c_"), "input_shape"),
    (lambda: al.layer_norm((8, 8.0, 16), name="l_"), "input_shape"),
]  # fmt: skip


@pytest.mark.parametrize("call, named", WRONG_TYPES, ids=[w[1] for w in WRONG_TYPES])
def test_a_wrong_type_raises_a_type_error_naming_the_argument(call, named):
    with pytest.raises(TypeError, match=named):
        call()


OUT_OF_RANGE = [
    # kecam: ZeroDivisionError (integer division or modulo by zero)
    (lambda: al.se_module((4, 4, 16), divisor=0, name="s_"), "divisor=0"),
    (lambda: al.make_divisible(30, 0), "divisor=0"),
    # kecam: ZeroDivisionError (float division by zero); we gave one too
    (lambda: al.BiasPositionalEmbedding(attn_height=0, input_shape=(2, 16, 4)), "attn_height=0"),
    (lambda: al.MultiHeadRelativePositionalEmbedding(attn_height=0, input_shape=(2, 17, 17)), "attn_height=0"),  # noqa: E501
    (lambda: al.MlpPairwisePositionalEmbedding(attn_height=0, input_shape=(2, 16, 16)), "attn_height=0"),  # noqa: E501
    # kecam: returns an empty result of shape (8, 8, 8, 0) for a batch of 2 (we divided by 0)
    (lambda: al.halo_attention((8, 8, 32), 4, out_shape=0, name="h_"), "out_shape=0"),
    # kecam: NaN/inf from temperature ** x with temperature <= 0
    (lambda: al.PositionalEncodingFourier(temperature=0, input_shape=(4, 4, 8)), "temperature"),
    (lambda: al.PositionalEncodingFourierRot(temperature=-1, input_shape=(17, 16)), "temperature"),
    # kecam: ExpLogitScale(init_value=1e3, max_value=1e3) returns inf
    (lambda: al.ExpLogitScale(init_value=1e3, max_value=1e3, input_shape=(4, 6)), "max_value"),
    (lambda: al.drop_block((4, 4, 8), drop_rate=1.0), "drop_rate=1.0"),
    (lambda: al.batchnorm_with_activation((4, 4, 8), epsilon=-1e-3), "epsilon"),
    (lambda: al.PositionalEncodingFourierRot(num_reg_tokens=20, input_shape=(17, 16)), "num_reg_tokens"),  # noqa: E501
]  # fmt: skip


@pytest.mark.parametrize("call, named", OUT_OF_RANGE, ids=[o[1] for o in OUT_OF_RANGE])
def test_a_value_out_of_range_raises_a_value_error_naming_it(call, named):
    with pytest.raises(ValueError, match=named) as error:
        call()
    assert not isinstance(error.value, TypeError)


# Refused before anything is allocated (so a regression fails here, at construction, instead of
# allocating terabytes or segfaulting inside MLX at the call).
ABSURD_SIZES = [
    # was: the call segfaulted in the padded SAME average pool (30000^2 x 16 per image)
    (lambda: al.outlook_attention((8, 8, 16), 16, 4, strides=30000, name="o_"), "strides=30000"),
    # was: a 10^5 x 10^5 projection, a segfault in MLX's random initialiser
    (lambda: al.outlook_attention((8, 8, 16), 100000, 4, name="o_"), "embed_dim"),
    (lambda: al.halo_attention((8, 8, 32), 4, out_shape=100000, name="h_"), "out_shape"),
    # was: a reshape to 4 * 10^12 key/value windows at the call
    (lambda: al.halo_attention((8, 8, 32), 4, halo_size=10**6, name="h_"), "halo_size=1000000"),
    # was: the map padded to 3 * 10^6 on each side (terabytes)
    (lambda: al.neighborhood_attention((8, 8, 16), 3, 2, dilation_rate=10**6, name="n_"), "dilation_rate"),  # noqa: E501
    # was: a segfault at the call (its [H, W, Ph, Pw] output per head is 1.6 * 10^11)
    (lambda: al.RelativePositionalEmbedding(position_height=10**5, input_shape=(2, 4, 4, 8)), "position_height"),  # noqa: E501
    # was: a segfault padding the map by 10^5 on each side
    (lambda: al.conv2d_no_bias((8, 8, 4), 4, 3, padding=10**5, name="c_"), "padding"),
    (lambda: al.depthwise_conv2d_no_bias((8, 8, 4), 3, padding=10**5, name="d_"), "padding"),
    (lambda: al.conv2d_no_bias((8, 8, 4), 2**40, name="c_"), "filters"),
    (lambda: al.mlp_block((4, 4, 6), 2**30, name="m_"), "hidden_dim"),
    (lambda: al.se_module((4, 4, 16), se_ratio=1e9, name="s_"), "se_ratio"),
    (lambda: al.ClassToken(num_tokens=2**30, input_shape=(9, 8)), "num_tokens"),
    (lambda: al.ChannelAffine(axis=[1, 2], input_shape=(50000, 50000, 4)), "input_shape"),
    # was: a segfault at the call (a 10^5 x 10^5 channel attention matrix per head)
    (lambda: al.multi_head_self_attention_channel((4, 4, 16), key_dim=10**5, name="c_"), "key_dim"),  # noqa: E501
    (lambda: al.cross_covariance_attention((4, 4, 16), key_dim=10**5, name="x_"), "key_dim"),
]  # fmt: skip


@pytest.mark.parametrize("call, named", ABSURD_SIZES, ids=[a[1] for a in ABSURD_SIZES])
def test_an_absurd_size_is_refused_before_allocating(call, named):
    with pytest.raises(ValueError, match=named):
        call()


# --- item 12 (first half): kecam cannot build a VALID conv whose output would be empty --------

EMPTY_CONVS = [
    # kecam: "Negative dimension size caused by subtracting 5 from 4"
    (lambda: al.conv2d_no_bias((4, 4, 3), 4, 5, name="c_"), "kernel_size"),
    (lambda: al.conv2d_no_bias((4, 9, 3), 4, (5, 3), name="c_"), "kernel_size"),
    (lambda: al.depthwise_conv2d_no_bias((4, 4, 3), 5, name="d_"), "kernel_size"),
    # kecam: "One of the dimensions in the output is <= 0" (torch-style "same" pads k // 2 and
    # ignores the dilation)
    (lambda: al.conv2d_no_bias((4, 4, 3), 4, 3, padding="same", dilation_rate=10, name="c_"), "dilation_rate"),  # noqa: E501
    (lambda: al.depthwise_conv2d_no_bias((4, 4, 3), 3, padding=1, dilation_rate=4, name="d_"), "dilation_rate"),  # noqa: E501
]  # fmt: skip


@pytest.mark.parametrize("call, named", EMPTY_CONVS, ids=[f"empty{i}" for i in range(5)])
def test_an_empty_valid_convolution_raises_at_construction(call, named):
    with pytest.raises(ValueError, match=f"{named}.*output would be empty"):
        call()


def test_fold_crops_as_kecam_does():
    # kecam slices its transposed conv's canvas: an output_shape past it is truncated silently
    # (9 rows for a 4x4 grid, k=3, s=2), and with no padding and no output_shape the crop
    # [0:-0] is empty: checked against kecam 1.4.3's fold_by_conv2d_transpose
    fold = al.fold_by_conv2d_transpose((4, 4, 18), (12, 5), 3, 2)
    assert fold(mx.ones((2, 4, 4, 18))).shape == (2, 9, 5, 2)
    with pytest.raises(ValueError, match="padding=False.*empty map"):
        al.fold_by_conv2d_transpose((4, 4, 18), None, 3, 2, padding=False)
    fold = al.fold_by_conv2d_transpose((4, 4, 18), (9, 9), 3, 2, padding=False)
    assert fold(mx.ones((2, 4, 4, 18))).shape == (2, 9, 9, 2)


def test_conv_sizes_that_just_fit_still_build():
    module = al.conv2d_no_bias((4, 5, 3), 2, (4, 5), name="c_")
    assert _finite(module, (4, 5, 3)).shape == (2, 1, 1, 2)
    # TF SAME never empties the map, whatever the kernel
    module = al.depthwise_conv2d_no_bias((4, 4, 3), 7, padding="same", use_torch_padding=False)
    assert _finite(module, (4, 4, 3)).shape == (2, 4, 4, 3)


# --- what kecam computes, we compute (even where it looks odd) ------------------------------


def test_what_kecam_computes_is_still_computed():
    # kecam: groups = max(1, groups); groups=0 and -3 build a dense conv
    for groups in (0, -3):
        assert _finite(al.conv2d_no_bias((4, 4, 4), 4, groups=groups, name="c_"), (4, 4, 4)).shape
    # kecam: strides larger than the map give one output pixel
    assert _finite(al.conv2d_no_bias((4, 4, 3), 4, strides=100, name="c_"), (4, 4, 3)).shape == (
        2, 1, 1, 4,
    )  # fmt: skip
    # kecam: ClassToken(num_tokens=0) concatenates nothing
    x = mx.random.normal((2, 5, 4))
    out = al.ClassToken(num_tokens=0, input_shape=(5, 4), name="t")(x)
    assert out.shape == (2, 5, 4) and mx.array_equal(out, x)
    # kecam: make_divisible keeps at least one divisor of channels for se_ratio 0 or negative
    for ratio in (0, -1):
        module = al.se_module((4, 4, 16), se_ratio=ratio, name="s_")
        assert module.reduce.weight.shape[0] == 8 and _finite(module, (4, 4, 16)).shape
    # kecam: epsilon=0 normalises finite random inputs (MLX's norms refuse eps=0: the smallest
    # normal float32 stands for it)
    _finite(al.layer_norm((4, 4, 6), epsilon=0, name="l_"), (4, 4, 6))
    _finite(al.batchnorm_with_activation((4, 4, 6), epsilon=0, name="b_"), (4, 4, 6))
    _finite(al.group_norm((4, 4, 6), 2, epsilon=0, name="g_"), (4, 4, 6))
    # kecam: any momentum builds (it only matters in training)
    _finite(al.batchnorm_with_activation((4, 4, 6), momentum=2.0, name="b_"), (4, 4, 6))
    # kecam: mlp_block(output_channel=0) keeps the input channels
    assert _finite(al.mlp_block((4, 4, 6), 8, output_channel=0, name="m_"), (4, 4, 6)).shape == (
        2, 4, 4, 6,
    )  # fmt: skip
    # kecam: num_heads=0 in PositionalEncodingFourierRot means one head
    _finite(
        al.PositionalEncodingFourierRot(num_heads=0, with_cls_token=False, input_shape=(16, 8)),
        (16, 8),
    )  # noqa: E501
    # numpy integers are integers
    assert _finite(al.conv2d_no_bias((4, 4, 3), np.int64(4), name="c_"), (4, 4, 3)).shape[-1] == 4


def test_native_modules_check_their_arguments_too():
    with pytest.raises(TypeError, match="num_heads"):
        layers.NeighborhoodAttention(16, input_size=(8, 8), num_heads=2.0)
    with pytest.raises(TypeError, match="dims"):
        layers.LayerNorm(True)
    with pytest.raises(ValueError, match="filters=0"):
        layers.Conv2dNoBias(4, 0)
    with pytest.raises(TypeError, match="is_grid"):
        layers.WindowAttention(layers.LayerNorm(4), 2, input_size=(4, 4), is_grid="yes")
