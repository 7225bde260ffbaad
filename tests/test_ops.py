"""ops/ against kecam's own helpers (committed fixtures), argument checks, and the NA core."""

from __future__ import annotations

import json
from pathlib import Path

import mlx.core as mx
import numpy as np
import pytest

from mlx_attention import ops
from tests.helpers import assert_matches

FIXTURES = np.load(Path(__file__).parent / "fixtures" / "ops" / "kecam_ops.npz")


def cases(prefix: str) -> list[str]:
    return sorted({k.rsplit("/", 1)[0] for k in FIXTURES.files if k.startswith(prefix + "/")})


def load(case: str):
    return (
        mx.array(FIXTURES[f"{case}/x"]),
        FIXTURES[f"{case}/kecam"],
        json.loads(str(FIXTURES[f"{case}/args"])),
    )


def run_case(case: str, backend: str = "ops") -> tuple[mx.array, np.ndarray]:
    """One kecam fixture through ops/ (or a kernel backend): returns (ours, kecam's)."""
    x, expected, args = load(case)
    kind = case.split("/")[0]
    if kind == "window_partition":
        out = ops.window_partition(x, args["window"], shift=args["shift"], backend=backend)
    elif kind == "window_reverse":
        out = ops.window_reverse(
            x, args["size"], args["window"], shift=args["shift"], backend=backend
        )
    elif kind == "extract_patches":
        out = ops.extract_patches(
            x, args["kernel"], stride=args["stride"], dilation=args["dilation"],
            padding=args["padding"], backend=backend,
        )  # fmt: skip
    elif kind == "halo_blocks":
        out = ops.halo_blocks(x, args["block"], args["halo"], backend=backend)
    elif kind == "neighborhood":
        out = ops.neighborhood_patches(
            x, args["kernel"], dilation=args["dilation"], backend=backend
        )
    else:
        pad = args["kernel"] // 2
        out = ops.fold(x, args["size"], stride=args["stride"], padding=pad, backend=backend)
    return out, expected


GATHER_CASES = [
    c
    for kind in (
        "window_partition", "window_reverse", "extract_patches", "halo_blocks", "neighborhood",
    )
    for c in cases(kind)
]  # fmt: skip


@pytest.mark.parametrize("case", GATHER_CASES)
def test_gathers_equal_kecam(case):
    out, expected = run_case(case)
    np.testing.assert_array_equal(np.asarray(out), expected)


@pytest.mark.parametrize("case", cases("fold"))
def test_fold_matches_kecam(case):
    out, expected = run_case(case)
    assert_matches(out, expected)


@pytest.mark.parametrize("case", cases("mask"))
def test_shifted_window_mask_equals_kecam(case):
    height, width, wh, ww, sh, sw = json.loads(str(FIXTURES[f"{case}/args"]))
    mask = ops.shifted_window_mask((height, width), (wh, ww), (sh, sw))
    np.testing.assert_array_equal(np.asarray(mask), FIXTURES[f"{case}/kecam"])


@pytest.mark.parametrize(
    "size, kernel, stride, dilation, padding",
    [((7, 9), 3, 2, 1, 1), ((8, 6), (3, 2), (1, 2), (2, 1), (2, 0)), ((5, 5), 1, 1, 1, 0)],
)
def test_fold_is_the_adjoint_of_unfold(size, kernel, stride, dilation, padding):
    """<unfold(x), p> == <x, fold(p)> on random data (fold is unfold's transpose)."""
    x = mx.random.normal((2, *size, 3), key=mx.random.key(1))
    patches = ops.extract_patches(x, kernel, stride=stride, dilation=dilation, padding=padding)
    p = mx.random.normal(patches.shape, key=mx.random.key(2))
    folded = ops.fold(p, size, stride=stride, dilation=dilation, padding=padding)
    lhs, rhs = (patches * p).sum().item(), (x * folded).sum().item()
    assert abs(lhs - rhs) <= 1e-4 * max(1.0, abs(lhs))


@pytest.mark.parametrize("size", [(4, 4), (5, 7), (1, 3)])
@pytest.mark.parametrize("window, shift", [(2, 0), ((2, 3), (1, 2)), ((4, 1), (3, 0))])
def test_window_round_trip(size, window, shift):
    x = mx.arange(2 * size[0] * size[1] * 3).reshape(2, *size, 3)
    parts = ops.window_partition(x, window, shift=shift)
    assert mx.array_equal(ops.window_reverse(parts, size, window, shift=shift), x)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda x: ops.window_partition(x, 0), "window_size must be >= 1"),
        (lambda x: ops.window_partition(x, 4, shift=4), r"0 <= shift < window"),
        (lambda x: ops.window_partition(x[0], 4), "rank-4"),
        (lambda x: ops.window_reverse(x, (8, 7), 4), "do not tile"),
        (lambda x: ops.extract_patches(x, 9, dilation=1), "smaller than the dilated kernel"),
        (lambda x: ops.extract_patches(x, 3, stride=0), "stride must be >= 1"),
        (lambda x: ops.extract_patches(x, (3, 3, 3)), "pair of ints"),
        (lambda x: ops.halo_blocks(x, 3, 1), "not a multiple of block_size 3"),
        (lambda x: ops.neighborhood_patches(x, 4), "must be odd"),
        (lambda x: ops.neighborhood_patches(x, 3, dilation=3), "smaller than kernel"),
        (lambda x: ops.extract_patches(x, 3, backend="nope"), "not one of"),
        (lambda x: ops.extract_patches(x, 3, backend="emulated_missing"), "not one of"),
    ],
)
def test_argument_errors_quote_the_numbers(call, message):
    with pytest.raises(ValueError, match=message):
        call(mx.zeros((1, 8, 8, 2)))


def test_fold_rejects_an_output_beyond_the_patches():
    patches = mx.zeros((1, 4, 4, 3, 3, 2))
    with pytest.raises(ValueError, match="at most 8"):
        ops.fold(patches, (9, 8), stride=2, padding=1)


# --- neighbourhood attention core -------------------------------------------------------------


def explicit_neighborhood_attention(q, k, v, kernel, dilation, bias):
    """The straightforward form: gather every query's K*K keys and values, then softmax(QK^T)V."""
    batch, height, width, heads, key_dim = q.shape
    kv = mx.concatenate([k, v], axis=-1).reshape(batch, height, width, -1)
    patches = ops.neighborhood_patches(kv, kernel, dilation=dilation, backend="ops")
    patches = patches.reshape(batch, height, width, -1, heads, 2 * key_dim)  # [.., K*K, heads, ..]
    keys, values = patches[..., :key_dim], patches[..., key_dim:]
    scores = mx.einsum("bhwnd,bhwtnd->bhwnt", q * key_dim**-0.5, keys)
    if bias is not None:
        rows, cols = ops.neighborhood_axis_maps((height, width), kernel, dilation)
        rel_r = (rows.source() - np.arange(height)[:, None]) // rows.dilation + rows.kernel - 1
        rel_c = (cols.source() - np.arange(width)[:, None]) // cols.dilation + cols.kernel - 1
        table = bias[:, mx.array(rel_r)][:, :, :, mx.array(rel_c)]  # [heads, H, kh, W, kw]
        scores = scores + table.transpose(1, 3, 0, 2, 4).reshape(height, width, heads, -1)
    return mx.einsum("bhwnt,bhwtnd->bhwnd", mx.softmax(scores, axis=-1), values)


@pytest.mark.parametrize(
    "size, kernel, dilation", [((7, 9), 3, 1), ((8, 10), 3, (2, 3)), ((6, 5), 5, 1)]
)
@pytest.mark.parametrize("dtype", [mx.float32, mx.float16])
def test_neighborhood_attention_core_matches_explicit_gather(size, kernel, dilation, dtype):
    keys = mx.random.split(mx.random.key(3), 4)
    shape = (2, *size, 2, 4)
    q, k, v = (mx.random.normal(shape, key=key) for key in keys[:3])
    kh, kw = ops.geometry.to_pair(kernel, "kernel")
    bias = mx.random.normal((2, 2 * kh - 1, 2 * kw - 1), key=keys[3])
    expected = explicit_neighborhood_attention(q, k, v, kernel, dilation, bias)
    ours = ops.neighborhood_attention(
        q.astype(dtype), k.astype(dtype), v.astype(dtype), kernel, dilation=dilation, bias=bias
    )
    assert ours.dtype == dtype
    assert_matches(ours, np.asarray(expected), dtype)


def peak_megabytes(fn, *args) -> float:
    mx.synchronize()
    mx.clear_cache()
    mx.reset_peak_memory()
    base = mx.get_active_memory()
    mx.eval(fn(*args))
    return (mx.get_peak_memory() - base) / 2**20


def test_neighborhood_attention_core_peak_memory():
    """56x56x64, 2 heads, kernel 7, batch 1: at most a third of explicit K*K gathering."""
    keys = mx.random.split(mx.random.key(4), 4)
    q, k, v = (mx.random.normal((1, 56, 56, 2, 32), key=key) for key in keys[:3])
    bias = mx.random.normal((2, 13, 13), key=keys[3])
    mx.eval(q, k, v, bias)
    explicit = peak_megabytes(explicit_neighborhood_attention, q, k, v, 7, 1, bias)
    core = peak_megabytes(lambda *a: ops.neighborhood_attention(*a, 7, bias=bias), q, k, v)
    print(f"peak MB: core {core:.1f}, explicit K*K gather {explicit:.1f}")
    assert explicit > 100, explicit  # the measurement sees the K*K copies
    assert core <= explicit / 3, (core, explicit)
