"""The local and windowed attention blocks: kecam parity with kernels off and emulated, the
combinations kecam cannot compute, and mx.compile / mx.grad through every block."""

from __future__ import annotations

import mlx.core as mx
import numpy as np
import pytest
from cases import LOCAL
from parity import build_module, load_arrays, run_case

from mlx_attention import attention_layers as al
from mlx_attention import kernels
from mlx_attention.convert import load_keras_weights
from mlx_attention.convert.loader import declared_layers
from tests import kernel_harness as harness


@pytest.mark.parametrize("case", LOCAL, ids=lambda c: c.id)
def test_matches_kecam_on_each_backend(case, kernels_mode):
    run_case(case)


# Every combination kecam raises, crashes or returns NaN/inf for: (call, argument named).
INVALID = [
    (lambda: al.split_attention_conv2d((8, 8, 15), 16, groups=2, name="s_"), "groups"),
    (lambda: al.split_attention_conv2d((8, 8, 16), 0, name="s_"), "filters"),
    (lambda: al.rsoftmax((1, 1, 30), 4), "groups"),
    (lambda: al.cot_attention((8, 8, 20), name="c_"), "divisible by 8"),
    (lambda: al.cot_attention((8, 8, 36), name="c_"), "divisible by 8"),
    (lambda: al.cot_attention((8, 8, 32), kernel_size=2, name="c_"), "kernel_size"),
    (lambda: al.outlook_attention((8, 8, 16), 30, 4, name="o_"), "num_heads"),
    (lambda: al.outlook_attention((28, 28, 192), 4, 192, name="o_"), "num_heads"),
    (lambda: al.outlook_attention((8, 8, 16), 16, 4, strides=1, name="o_"), "strides"),
    (lambda: al.outlook_attention((8, 6, 16), 16, 4, kernel_size=5, name="o_"), "strides"),
    (lambda: al.outlook_attention((8, 8, 16), 16, 4, kernel_size=2, name="o_"), "kernel_size"),
    (lambda: al.outlook_attention_simple((8, 7, 16), 16, 4, 2, name="o_"), "kernel_size"),
    (lambda: al.outlook_attention_simple((8, 8, 16), 30, 4, name="o_"), "num_heads"),
    (lambda: al.neighborhood_attention((8, 8, 16), kernel_size=4, name="n_"), "kernel_size"),
    (lambda: al.neighborhood_attention((8, 8, 16), 3, dilation_rate=0, name="n_"), "dilation"),
    (lambda: al.halo_attention((6, 8, 32), 4, block_size=4, name="h_"), "block_size"),
    (lambda: al.halo_attention((2, 2, 32), 4, block_size=4, name="h_"), "block_size"),
    (lambda: al.halo_attention((8, 8, 30), 4, name="h_"), "num_heads"),
    (lambda: al.shifted_window_attention((8, 8, 30), 4, 4, name="s_"), "num_heads"),
    (lambda: al.shifted_window_attention((1, 8, 16), 4, 2, name="s_"), "window_size"),
    (lambda: al.shifted_window_attention((8, 8, 16), 4, 2, 1.0, name="s_"), "shift_size"),
    (lambda: al.window_mhsa_with_pair_wise_positional_embedding((1, 4, 16), name="w_"), "window"),
    (lambda: al.window_mhsa_with_pair_wise_positional_embedding((4, 4, 8), pos_scale=1), "pos_"),
    (lambda: al.window_attention((8, 8, 30), 4, 4, name="d_"), "num_heads"),
    (lambda: al.window_attention((8, 8, 16), 4, data_format="channels_first"), "data_format"),
]  # fmt: skip


@pytest.mark.parametrize("call, named", INVALID, ids=[f"invalid{i}" for i in range(len(INVALID))])
def test_invalid_combinations_raise_naming_the_argument(call, named):
    with pytest.raises(ValueError, match=named):
        call()


# One case per block kind for compile and grad (the fixtures' weights, kernels off).
_GRAD_CASES = {}
for _case in LOCAL:
    _GRAD_CASES.setdefault(_case.kecam, _case)


@pytest.mark.parametrize("case", list(_GRAD_CASES.values()), ids=lambda c: c.kecam)
def test_compile_and_grad(case, monkeypatch):
    monkeypatch.setenv(kernels.ENV_VAR, "off")
    module = build_module(case)
    if declared_layers(module):  # kecam's weights: a random initialisation made the check flaky
        load_keras_weights(module, case.weights_path)
    inputs, _ = load_arrays(case)
    x = mx.array(inputs[0])
    eager = module(x)
    compiled = mx.compile(module)(x)
    np.testing.assert_allclose(np.asarray(compiled), np.asarray(eager), rtol=1e-5, atol=1e-5)

    rng = np.random.default_rng(0)
    weights = mx.array(rng.normal(size=eager.shape).astype(np.float32))

    def loss(x):  # a random linear functional of the output
        return (module(x) * weights).mean()

    grad = mx.grad(loss)(x)
    assert grad.shape == x.shape and bool(mx.all(mx.isfinite(grad)))
    # The gradient agrees with a central difference along a random direction. The outputs are
    # subtracted element by element before the mean: differencing two float32 losses of outputs
    # around 100 would leave only the rounding of their sums (which varies with the run's threads).
    direction = mx.array(rng.normal(size=x.shape).astype(np.float32))
    eps = 1e-3
    delta = module(x + eps * direction) - module(x - eps * direction)
    numeric = (delta * weights).mean() / (2 * eps)
    analytic = (grad * direction).sum()
    assert abs(numeric.item() - analytic.item()) <= 5e-2 * abs(analytic.item()) + 1e-4


# The first fixture of each fused-attention block, one of them with a value width (7.5 -> 7)
# outside the harness' common builds, so the emulated kernel is built for it on demand.
_FUSED_CASES = [next(c for c in LOCAL if c.kecam == name) for name in
                ("neighborhood_attention", "halo_attention")] + [
    next(c for c in LOCAL if c.id == "nat_rect_k5_c30")
]  # fmt: skip


@pytest.mark.parametrize("case", _FUSED_CASES, ids=lambda c: c.id)
def test_blocks_run_the_fused_kernel_when_emulated(case, kernels_mode, monkeypatch):
    """Under the emulated backend the attention itself runs in the fused kernel (a call of its
    emulator), and a training-mode attention dropout falls back to the portable path."""
    calls = []

    def counting(inputs, out_shape, threadgroup):
        calls.append(out_shape)
        return harness.fused.emulate_both(inputs, out_shape, threadgroup)

    monkeypatch.setattr(kernels.fused, "_emulator", counting)
    run_case(case)
    assert len(calls) == (kernels_mode == "emulated")

    factory = getattr(al, case.kecam)
    module = factory(case.input_shapes[0], *case.args, **{**case.kwargs, "attn_dropout": 0.5})
    x = mx.array(load_arrays(case)[0][0])
    module.train()
    calls.clear()
    mx.random.seed(0)
    dropped = module(x)
    assert not calls and bool(mx.all(mx.isfinite(dropped)))
    module.eval()
    assert not mx.allclose(dropped, module(x)).item()
