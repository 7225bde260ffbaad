"""Time and peak memory of every attention block at the shape of a real model stage.

The block table (:data:`BLOCKS`) is defined here once: each row is a kecam call (name and
arguments) at the input shape of the model stage that uses it, with its analytic FLOPs. A row whose
kecam name is not (yet) in :mod:`mlx_attention.attention_layers` is reported as ``pending``.

Protocol (docs/benchmarks.md): warm-up calls, then timed calls that each end in ``mx.eval`` until
at least ``min_calls`` calls and ``min_seconds`` seconds; the figure is the median, with the
quartiles as the spread. Peak memory is ``mx.get_peak_memory()`` over one call after
``mx.reset_peak_memory()``, minus what was already allocated (weights and input): the memory the
call itself needs, output included.

Whole models (:data:`MODEL_ROWS`, ``--models``) are timed the same way, in a table of their own:
one call is the model's forward pass on a ``[B, H, W, 3]`` batch at its default input size.

``mlx-attention bench`` calls :func:`main` (quick mode unless ``--full``); ``bench/run.py`` in
the repository adds the peers (kecam on TensorFlow, natten-mlx) and the plot.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import resource
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import mlx.core as mx

DTYPES = {"float32": mx.float32, "float16": mx.float16, "bfloat16": mx.bfloat16}
MODES = ("eager", "compiled")
KERNEL_SETTINGS = ("auto", "off")


# --- analytic FLOPs: 2 per multiply-add of the matrix products; elementwise work is ignored ----


def _dense(tokens: int, cin: int, cout: int) -> int:
    return 2 * tokens * cin * cout


def _conv(pixels: int, kernel: int, cin_per_group: int, cout: int) -> int:
    return 2 * pixels * kernel * kernel * cin_per_group * cout


def _attention(queries: int, keys: int, heads: int, key_dim: int, value_dim: int) -> int:
    """Scores (``q . k``) plus the weighted sum of values, for every query and key it sees."""
    return 2 * queries * keys * heads * (key_dim + value_dim)


def _relative_logits(queries: int, heads: int, key_dim: int, span_h: int, span_w: int) -> int:
    """botnet/halo ``RelativePositionalEmbedding``: ``q @ r`` against both relative tables."""
    return 2 * queries * heads * key_dim * (2 * span_h - 1 + 2 * span_w - 1)


def _coat_crpe(pixels: int) -> int:
    # CoaT's conv relative positional encoding at 64 channels: 16 ch 3x3, 24 ch 5x5, 24 ch 7x7.
    return 2 * pixels * (16 * 9 + 24 * 25 + 24 * 49)


# --- the block table ------------------------------------------------------------------------


@dataclass(frozen=True)
class Block:
    """One row: a kecam call at the input shape of a model stage.

    Args:
        key: short row name.
        kecam: the kecam name, looked up in ``mlx_attention.attention_layers``.
        input_shapes: the inputs without the batch axis (several for a layer kecam calls with
            several tensors; the module is built with the first one).
        kwargs: kecam's arguments.
        source: the model and stage the shape comes from.
        flops: analytic FLOPs of one batch-1 call.
        is_class: a kecam layer class (built with ``input_shape=``) rather than a block function.
        windows: the block runs on ``batch * windows`` inputs (a per-window core).
        floor: the straightforward MLX port the row is compared with (docs/benchmarks.md), as
            ``(kind, parameters)``; kind is ``"mhsa"``, ``"window"`` or ``"neighborhood"``.
        kecam_module: where kecam defines the name, for the TensorFlow peer.
    """

    key: str
    kecam: str
    input_shapes: tuple[tuple[int, ...], ...]
    kwargs: dict
    source: str
    flops: int
    is_class: bool = False
    windows: int = 1
    floor: tuple[str, dict] | None = None
    kecam_module: str = "keras_cv_attention_models.attention_layers"

    @property
    def shape_text(self) -> str:
        text = " + ".join("x".join(map(str, s)) for s in self.input_shapes)
        return f"{self.windows}x({text})" if self.windows > 1 else text


def _block(key, kecam, shape, source, flops, **options) -> Block:
    kwargs = options.pop("kwargs", {})
    shapes = shape if isinstance(shape[0], tuple) else (shape,)
    return Block(key, kecam, shapes, {**kwargs, "name": "blk_"}, source, int(flops), **options)


BLOCKS: tuple[Block, ...] = (
    _block(
        "nat", "neighborhood_attention", (56, 56, 64), "NAT_Tiny stage1 @224",
        _dense(3136, 64, 192) + _attention(3136, 49, 2, 32, 32) + _dense(3136, 64, 64),
        kwargs=dict(kernel_size=7, num_heads=2),
        floor=("neighborhood", dict(heads=2, kernel_size=7, out_dims=64)),
    ),
    _block(
        "swinv2_win", "shifted_window_attention", (64, 64, 96),
        "SwinTransformerV2Tiny_window8 stage1 @256",
        _dense(4096, 96, 288) + _attention(4096, 64, 3, 32, 32) + _dense(4096, 96, 96)
        + _dense(15 * 15, 2, 512) + _dense(15 * 15, 512, 3),  # the pairwise-bias MLP
        kwargs=dict(window_size=8, num_heads=3, shift_size=0),
        floor=("window", dict(heads=3, window_size=8, out_dims=96)),
    ),
    _block(
        "swinv2_core", "window_mhsa_with_pair_wise_positional_embedding", (8, 8, 96),
        "SwinTransformerV2Tiny_window8 stage1 @256 (64 windows)",
        _dense(4096, 96, 288) + _attention(4096, 64, 3, 32, 32) + _dense(4096, 96, 96)
        + _dense(15 * 15, 2, 512) + _dense(15 * 15, 512, 3),
        kwargs=dict(num_heads=3), windows=64,
        floor=("mhsa", dict(heads=3, key_dim=32, value_dim=32, out_dims=96)),
    ),
    _block(
        "volo_outlook", "outlook_attention", (28, 28, 192), "VOLO_d1 stage1 @224",
        2 * _dense(784, 192, 192) + _dense(196, 192, 6 * 81) + _attention(196 * 9, 9, 6, 0, 32),
        kwargs=dict(embed_dim=192, num_heads=6, kernel_size=3, strides=2),
    ),
    _block(
        "volo_outlook_simple", "outlook_attention_simple", (28, 28, 192),
        "VOLO_d1 stage1 @224 (outlook_simple variant)",
        # padded to 30x30 for 3x3 windows: v on 900 pixels, attention on 10x10 windows
        _dense(900, 192, 192) + _dense(100, 192, 6 * 81) + _attention(100 * 9, 9, 6, 0, 32)
        + _dense(784, 192, 192),
        kwargs=dict(embed_dim=192, num_heads=6, kernel_size=3),
    ),
    _block(
        "halo", "halo_attention", (32, 32, 128), "HaloNet50T stage2 (4th block) @256",
        _dense(1024, 128, 128) + _dense(1024, 128, 256) + _attention(1024, 196, 4, 32, 32)
        + _relative_logits(1024, 4, 32, 14, 14),
        kwargs=dict(num_heads=4, block_size=8, halo_size=3, out_weight=False),
    ),
    _block(
        "botnet_mhsa", "mhsa_with_relative_position_embedding", (14, 14, 512),
        "BotNet50 stage4 @224 (strides=1)",
        _dense(196, 512, 1536) + _attention(196, 196, 4, 128, 128)
        + _relative_logits(196, 4, 128, 14, 14),
        kwargs=dict(num_heads=4, out_weight=False),
        floor=("mhsa", dict(heads=4, key_dim=128, value_dim=128, out_dims=None)),
    ),
    _block(
        "coatnet_mhsa", "mhsa_with_multi_head_relative_position_embedding", (14, 14, 384),
        "CoAtNet0 stage3 @224",
        _dense(196, 384, 1152) + _attention(196, 196, 12, 32, 32) + _dense(196, 384, 384),
        kwargs=dict(num_heads=12, key_dim=32, out_shape=384),
        floor=("mhsa", dict(heads=12, key_dim=32, value_dim=32, out_dims=384)),
    ),
    _block(
        "levit_mhsa", "mhsa_with_multi_head_position", (14, 14, 128), "LeViT128S stage1 @224",
        _dense(196, 128, 256) + _attention(196, 196, 4, 16, 32) + _dense(196, 128, 128),
        kwargs=dict(num_heads=4, key_dim=16, attn_ratio=2, use_bn=True, activation="hard_swish"),
        floor=("mhsa", dict(heads=4, key_dim=16, value_dim=32, out_dims=128)),
    ),
    _block(
        "levit_strided", "mhsa_with_multi_head_position_and_strides", (14, 14, 128),
        "LeViT128S stage1 -> 2 downsample @224",
        _dense(49, 128, 128) + _dense(196, 128, 640) + _attention(49, 196, 8, 16, 64)
        + _dense(49, 512, 256),
        kwargs=dict(
            num_heads=8, key_dim=16, output_dim=256, attn_ratio=4, strides=2,
            activation="hard_swish",
        ),  # fmt: skip
    ),
    _block(
        "cmt_lmhsa", "light_mhsa_with_multi_head_relative_position_embedding", (40, 40, 46),
        "CMTTiny stage1 @160",
        _dense(1600, 46, 46) + _conv(25, 8, 1, 46) + _dense(25, 46, 92)
        + _attention(1600, 25, 1, 46, 46) + _dense(1600, 46, 46),
        kwargs=dict(num_heads=1, sr_ratio=8),
    ),
    _block(
        "uniformer_mhsa", "multi_head_self_attention", (196, 320), "UniformerSmall64 stage3 @224",
        _dense(196, 320, 960) + _attention(196, 196, 5, 64, 64) + _dense(196, 320, 320),
        kwargs=dict(num_heads=5, qkv_bias=True, out_bias=True),
        floor=("mhsa", dict(heads=5, key_dim=64, value_dim=64, out_dims=320)),
    ),
    _block(
        "davit_win", "window_attention", (56, 56, 96), "DaViT_T stage1 @224",
        _dense(3136, 96, 288) + _attention(3136, 49, 3, 32, 32) + _dense(3136, 96, 96),
        kwargs=dict(window_size=7, num_heads=3),
        floor=("window", dict(heads=3, window_size=7, out_dims=96)),
    ),
    _block(
        "davit_chan", "multi_head_self_attention_channel", (56, 56, 96), "DaViT_T stage1 @224",
        # channel attention: [kd, kd] scores per head, summed over the 3136 tokens
        _dense(3136, 96, 288) + _attention(32, 32, 3, 3136, 3136) + _dense(3136, 96, 96),
        kwargs=dict(num_heads=3, qkv_bias=True, out_bias=True),
    ),
    _block(
        "edgenext_xca", "cross_covariance_attention", (1024, 96), "EdgeNeXt_Small stage2 @256",
        _dense(1024, 96, 288) + _attention(12, 12, 8, 1024, 1024) + _dense(1024, 96, 96),
        kwargs=dict(num_heads=8),
    ),
    _block(
        "cotnet", "cot_attention", (56, 56, 64), "CotNet50 stage1 @224",
        _conv(3136, 3, 16, 64) + _dense(3136, 128, 32) + _dense(3136, 32, 72)
        + _dense(3136, 64, 64) + 2 * 3136 * 9 * 64  # the per-pixel 3x3 local aggregation
        + _dense(1, 64, 32) + _dense(1, 32, 128),
        kwargs=dict(kernel_size=3),
    ),
    _block(
        "resnest_sa", "split_attention_conv2d", (56, 56, 64), "ResNest50 stage1 @224",
        _conv(3136, 3, 32, 128) + _dense(1, 64, 32) + _dense(1, 32, 128),
        kwargs=dict(filters=64, kernel_size=3, groups=2),
    ),
    _block(
        "coat_factor_crpe", "factor_attention_conv_relative_positional_encoding", (3137, 64),
        "CoaTLiteTiny stage1 @224",
        _dense(3137, 64, 192) + _attention(8, 8, 8, 3137, 3137) + _coat_crpe(3136)
        + _dense(3137, 64, 64),
        kwargs=dict(num_heads=8), kecam_module="keras_cv_attention_models.coat.coat",
    ),
    # positional layers, at the stage of the model that uses them; an added bias counts one
    # FLOP per element
    _block(
        "coat_cpe", "ConvPositionalEncoding", (3137, 64), "CoaTLiteTiny stage1 @224",
        _conv(3136, 3, 1, 64), kwargs=dict(kernel_size=3), is_class=True,
    ),
    _block(
        "coat_crpe", "ConvRelativePositionalEncoding", ((8, 3137, 8), (8, 3137, 8)),
        "CoaTLiteTiny stage1 @224 (q, v)", _coat_crpe(3136) + 3136 * 64,
        kwargs=dict(head_splits=[2, 3, 3], head_kernel_size=[3, 5, 7]), is_class=True,
    ),
    _block(
        "botnet_pos", "RelativePositionalEmbedding", (4, 14, 14, 128),
        "BotNet50 stage4 @224 (query)", _relative_logits(196, 4, 128, 14, 14), is_class=True,
    ),
    _block(
        "coatnet_pos", "MultiHeadRelativePositionalEmbedding", (12, 196, 196),
        "CoAtNet0 stage3 @224 (scores)", 12 * 196 * 196,
        kwargs=dict(with_cls_token=False), is_class=True,
    ),
    _block(
        "levit_pos", "MultiHeadPositionalEmbedding", (4, 196, 196),
        "LeViT128S stage1 @224 (scores)", 4 * 196 * 196, is_class=True,
    ),
    _block(
        "nat_pos", "MultiHeadRelativePositionalKernelBias", (3136, 2, 1, 49),
        "NAT_Tiny stage1 @224 (scores)", 3136 * 2 * 49,
        kwargs=dict(input_height=56), is_class=True,
    ),
    _block(
        "cmt_pos", "BiasPositionalEmbedding", (1, 1600, 25),
        "CMTTiny_torch stage1 @160 (scores)", 1600 * 25,
        kwargs=dict(axis=[1, 2, 3], attn_height=40), is_class=True,
    ),
    _block(
        "swinv2_pos", "PairWiseRelativePositionalEmbedding", (8, 8, 96),
        "SwinTransformerV2Tiny_window8 stage1 @256 (log-spaced coordinates)", 15 * 15 * 2,
        is_class=True,
    ),
    _block(
        "volo_pos", "PositionalEmbedding", (14, 14, 384), "VOLO_d1 stage2 @224",
        14 * 14 * 384, is_class=True,
    ),
    _block(
        "edgenext_pos", "PositionalEncodingFourier", (32, 32, 96),
        "EdgeNeXt_Small stage2 @256", _dense(1024, 64, 96) + 1024 * 96,
        kwargs=dict(filters=32), is_class=True,
    ),
)  # fmt: skip


def select_blocks(names: str | Sequence[str] | None) -> list[Block]:
    """Rows by key or kecam name (comma-separated or a list); all rows for ``None``/``"all"``."""
    if names is None or names == "all":
        return list(BLOCKS)
    wanted = [n.strip() for n in names.split(",")] if isinstance(names, str) else list(names)
    by_name = {b.key: b for b in BLOCKS} | {b.kecam: b for b in BLOCKS}
    unknown = [n for n in wanted if n not in by_name]
    if unknown:
        raise ValueError(f"unknown blocks {unknown}; known: {', '.join(b.key for b in BLOCKS)}")
    return [by_name[n] for n in wanted]


# --- the protocol ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Protocol:
    """How long to time: ``warmup`` calls, then until ``min_calls`` and ``min_seconds``.

    Around the timed calls, the CPU that other processes (and the hypervisor's steal) used is
    measured; above ``max_other_cores`` the timed calls are repeated, up to ``retries`` more
    times, and the cleanest attempt is reported (docs/benchmarks.md).
    """

    warmup: int = 3
    min_calls: int = 20
    min_seconds: float = 1.0
    max_calls: int = 200
    retries: int = 2
    max_other_cores: float = 0.25


FULL = Protocol()
# Quick mode keeps the shape of the protocol but shortens it: a few timed calls per row, and
# contamination is marked, not retried, so batch 1 of every row fits in well under a minute.
QUICK = Protocol(warmup=1, min_calls=5, min_seconds=0.0, max_calls=5, retries=0)
QUICK_BATCHES = "1"
# A whole model's call runs for a second or more on a CPU: ten calls give a steady median, and
# one repeat where other processes disturbed them keeps the full model run in minutes.
MODEL_FULL = Protocol(warmup=2, min_calls=10, min_seconds=1.0, max_calls=50, retries=1)


@dataclass
class Timing:
    """Result of :func:`measure`; times in milliseconds, memory in bytes (``None``: not taken).

    ``other_cores`` is the CPU other processes used while the reported calls ran (``None``
    where the machine does not say: no ``/proc/stat``); ``attempt_other_cores`` has it for
    every attempt, the reported one included.
    """

    median_ms: float
    q1_ms: float
    q3_ms: float
    min_ms: float
    max_ms: float
    calls: int
    peak_bytes: int | None
    times_ms: list[float] = field(repr=False, default_factory=list)
    other_cores: float | None = None
    attempt_other_cores: list[float | None] = field(default_factory=list)
    contaminated: bool = False

    @property
    def spread(self) -> float:
        """Inter-quartile range over the median."""
        return (self.q3_ms - self.q1_ms) / self.median_ms if self.median_ms > 0 else 0.0


def _machine_busy_seconds() -> float | None:
    """CPU seconds every process on the machine has used, steal included, from /proc/stat."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    # user nice system idle iowait irq softirq steal (guest time is already in user)
    busy = fields[0] + fields[1] + fields[2] + sum(fields[5:8])
    return busy / os.sysconf("SC_CLK_TCK")


def _own_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# /proc/stat counts CPU time in clock ticks (10 ms on Linux): a window must span this many ticks
# before the other processes' share of it is resolved to about a tenth of a core.
_MIN_TICKS = 10


class OtherLoad:
    """Cores used by other processes between construction and :meth:`cores`."""

    def __init__(self):
        self.machine, self.own = _machine_busy_seconds(), _own_seconds()
        self.wall = time.perf_counter()

    def cores(self) -> float | None:
        """Other processes' cores, between 0 and the machine's; ``None`` where the machine does
        not say (no ``/proc/stat``) or the window is too short for its tick resolution."""
        machine = _machine_busy_seconds()
        wall = time.perf_counter() - self.wall
        if machine is None or self.machine is None or wall * os.sysconf("SC_CLK_TCK") < _MIN_TICKS:
            return None
        other = (machine - self.machine) - (_own_seconds() - self.own)
        return min(max(0.0, other / wall), float(os.cpu_count() or 1))


def time_calls(
    call: Callable[[], object], protocol: Protocol = FULL, peak_bytes: int | None = None
) -> Timing:
    """Timed calls of ``call`` (which must return when its work is done), repeated while other
    processes use more than ``protocol.max_other_cores``; warm-up is the caller's."""
    attempts = []
    for _ in range(1 + protocol.retries):
        load = OtherLoad()
        times: list[float] = []
        started = time.perf_counter()
        while len(times) < protocol.max_calls and (
            len(times) < protocol.min_calls or time.perf_counter() - started < protocol.min_seconds
        ):
            t0 = time.perf_counter()
            call()
            times.append((time.perf_counter() - t0) * 1e3)
        attempts.append((load.cores(), times))
        if attempts[-1][0] is None or attempts[-1][0] <= protocol.max_other_cores:
            break
    other, times = min(attempts, key=lambda a: a[0] or 0.0)
    q1, _, q3 = statistics.quantiles(times, n=4) if len(times) > 1 else (times[0],) * 3
    return Timing(
        statistics.median(times), q1, q3, min(times), max(times), len(times), peak_bytes, times,
        other, [a[0] for a in attempts], other is not None and other > protocol.max_other_cores,
    )  # fmt: skip


def measure(fn: Callable[[], object], protocol: Protocol = FULL) -> Timing:
    """Time ``fn`` (no arguments; its result is ``mx.eval``-ed on every call).

    Peak memory is taken over one call after the warm-up, relative to what is allocated before
    it, so weights and inputs do not count.
    """
    for _ in range(protocol.warmup):
        mx.eval(fn())
    mx.synchronize()
    mx.reset_peak_memory()
    resident = mx.get_active_memory()
    mx.eval(fn())
    mx.synchronize()
    peak = max(0, mx.get_peak_memory() - resident)

    def call():
        mx.eval(fn())
        mx.synchronize()

    return time_calls(call, protocol, peak)


class Progress:
    """A one-line progress bar on stderr (plain text, no dependency)."""

    def __init__(self, total: int, stream=None, width: int = 24):
        self.total, self.done, self.width = max(total, 1), 0, width
        self.stream = stream if stream is not None else sys.stderr
        self.started = time.perf_counter()

    def step(self, label: str) -> None:
        self.done += 1
        filled = round(self.width * self.done / self.total)
        elapsed = time.perf_counter() - self.started
        line = f"[{'#' * filled}{'.' * (self.width - filled)}] {self.done}/{self.total} "
        line += f"{elapsed:5.0f}s {label}"
        self.stream.write("\r" + line[:110].ljust(110))
        if self.done >= self.total:
            self.stream.write("\n")
        self.stream.flush()


# --- the straightforward MLX floors (docs/benchmarks.md) ------------------------------------


def _weight(rows: int, cols: int, dtype) -> mx.array:
    return (mx.random.normal((rows, cols)) * rows**-0.5).astype(dtype)


def _manual_attention(q, k, v, scale: float) -> mx.array:
    scores = (q * scale) @ k.swapaxes(-1, -2)
    return mx.softmax(scores.astype(mx.float32), axis=-1).astype(v.dtype) @ v


def _mhsa_floor(dims: int, dtype, heads, key_dim, value_dim, out_dims, **_) -> Callable:
    """Dense qkv, manual ``softmax(q k^T) v`` per head, optional dense output; tokens x C."""
    w_qkv = _weight(dims, heads * (2 * key_dim + value_dim), dtype)
    w_out = _weight(heads * value_dim, out_dims, dtype) if out_dims else None

    def call(x: mx.array) -> mx.array:
        batch, tokens = x.shape[0], math.prod(x.shape[1:-1])
        qkv = x.reshape(batch, tokens, dims) @ w_qkv
        q, k, v = mx.split(qkv, [heads * key_dim, 2 * heads * key_dim], axis=-1)
        q, k = (t.reshape(batch, tokens, heads, key_dim).transpose(0, 2, 1, 3) for t in (q, k))
        v = v.reshape(batch, tokens, heads, value_dim).transpose(0, 2, 1, 3)
        out = _manual_attention(q, k, v, key_dim**-0.5).transpose(0, 2, 1, 3)
        out = out.reshape(*x.shape[:-1], heads * value_dim)
        return out @ w_out if w_out is not None else out

    return call


def _window_floor(dims: int, dtype, heads, window_size, out_dims, **_) -> Callable:
    """Window partition (reshape/transpose), the MHSA floor per window, window reverse."""
    per_window = _mhsa_floor(dims, dtype, heads, dims // heads, dims // heads, out_dims)
    w = window_size

    def call(x: mx.array) -> mx.array:
        batch, height, width, _ = x.shape
        wins = x.reshape(batch, height // w, w, width // w, w, dims).transpose(0, 1, 3, 2, 4, 5)
        out = per_window(wins.reshape(-1, w * w, dims))
        out = out.reshape(batch, height // w, width // w, w, w, -1).transpose(0, 1, 3, 2, 4, 5)
        return out.reshape(batch, height, width, -1)

    return call


def _neighborhood_floor(dims: int, dtype, heads, kernel_size, out_dims, **_) -> Callable:
    """Neighbourhood attention with the K*K neighbourhoods gathered explicitly."""
    key_dim, k = dims // heads, kernel_size
    w_qkv, w_out = _weight(dims, 3 * dims, dtype), _weight(dims, out_dims, dtype)

    def starts(length: int) -> mx.array:
        # window start clamped inside the image, then the k taps of each window
        first = mx.clip(mx.arange(length) - k // 2, 0, length - k)
        return first[:, None] + mx.arange(k)[None, :]

    def call(x: mx.array) -> mx.array:
        batch, height, width, _ = x.shape
        q, kk, v = mx.split(x @ w_qkv, 3, axis=-1)
        rows, cols = starts(height), starts(width)

        def gather(t):  # [B, H, W, C] -> [B, H, W, heads, k*k, kd]
            t = t[:, rows][:, :, :, cols]  # [B, H, k, W, k, C]
            t = t.reshape(batch, height, k, width, k, heads, key_dim)
            return t.transpose(0, 1, 3, 5, 2, 4, 6).reshape(batch, height, width, heads, k * k, -1)

        q = q.reshape(batch, height, width, heads, 1, key_dim)
        out = _manual_attention(q, gather(kk), gather(v), key_dim**-0.5)
        return out.reshape(batch, height, width, dims) @ w_out

    return call


FLOORS = {"mhsa": _mhsa_floor, "window": _window_floor, "neighborhood": _neighborhood_floor}


def build_floor(block: Block, dtype=mx.float32) -> Callable | None:
    """The row's straightforward MLX port, or ``None`` where the row has none."""
    if block.floor is None:
        return None
    kind, params = block.floor
    return FLOORS[kind](block.input_shapes[0][-1], dtype, **params)


# --- building and running this library's blocks ---------------------------------------------


def build_block(block: Block, dtype=mx.float32):
    """``(module, status)``: status is ``"ok"``, ``"pending"`` (name not in the namespace yet)
    or ``"error: ..."`` (the constructor raised)."""
    from . import attention_layers

    factory = getattr(attention_layers, block.kecam, None)
    if factory is None:
        return None, "pending"
    try:
        if block.is_class:
            module = factory(input_shape=block.input_shapes[0], **block.kwargs)
        else:
            module = factory(block.input_shapes[0], **block.kwargs)
    except Exception as exc:  # a row must not stop the run; the table says what happened
        return None, f"error: {type(exc).__name__}: {exc}"
    if dtype != mx.float32:
        module.set_dtype(dtype)
    return module, "ok"


def make_inputs(block: Block, batch: int, dtype=mx.float32, seed: int = 0) -> list[mx.array]:
    mx.random.seed(seed)
    arrays = [
        mx.random.normal((batch * block.windows, *s)).astype(dtype) for s in block.input_shapes
    ]
    mx.eval(arrays)
    return arrays


def kernel_backend(setting: str) -> str:
    """The gather backend a block runs on under ``MLX_ATTENTION_KERNELS=setting``."""
    try:
        from .kernels import resolve_backend
    except ImportError:
        return "ops"
    with kernel_setting(setting):
        try:
            return resolve_backend()
        except ValueError as exc:
            return f"unavailable ({exc})"


@contextlib.contextmanager
def kernel_setting(setting: str):
    """``MLX_ATTENTION_KERNELS=setting`` inside the block, the previous value restored after."""
    previous = os.environ.get("MLX_ATTENTION_KERNELS")
    os.environ["MLX_ATTENTION_KERNELS"] = setting
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("MLX_ATTENTION_KERNELS", None)
        else:
            os.environ["MLX_ATTENTION_KERNELS"] = previous


def _time_callable(fn: Callable, inputs: list[mx.array], mode: str, protocol: Protocol) -> Timing:
    call = mx.compile(fn) if mode == "compiled" else fn
    return measure(lambda: call(*inputs), protocol)


def timing_fields(prefix: str, timing: Timing) -> dict:
    """The fields of a record that hold ``timing``, named ``<prefix>_ms`` and so on."""
    fields = {} if timing.peak_bytes is None else {f"{prefix}_peak_mb": timing.peak_bytes / 2**20}
    return {
        **fields,
        f"{prefix}_ms": timing.median_ms,
        f"{prefix}_q1_ms": timing.q1_ms,
        f"{prefix}_q3_ms": timing.q3_ms,
        f"{prefix}_calls": timing.calls,
        f"{prefix}_other_cores": timing.other_cores,
        f"{prefix}_attempt_other_cores": timing.attempt_other_cores,
        f"{prefix}_contaminated": timing.contaminated,
    }


def run(
    blocks: Sequence[Block],
    batches: Sequence[int] = (1, 8),
    dtypes: Sequence[str] = ("float32",),
    modes: Sequence[str] = ("eager",),
    kernels: Sequence[str] = ("auto",),
    protocol: Protocol = FULL,
    floors: bool = True,
    progress: Progress | None = None,
) -> list[dict]:
    """Measure every combination; one record per (block, batch, dtype, mode, kernels)."""
    records = []
    for block in blocks:
        for dtype_name in dtypes:
            for setting in kernels:
                with kernel_setting(setting):
                    for record in _measure_block(
                        block, dtype_name, batches, modes, protocol, floors
                    ):
                        record["kernels"] = setting
                        records.append(record)
                        if progress is not None:
                            progress.step(f"{block.key} b{record['batch']} {dtype_name} "
                                          f"{record['mode']}")  # fmt: skip
    return records


def _measure_block(block, dtype_name, batches, modes, protocol, floors):
    """Records of one block at one dtype, under the current kernel setting."""
    module, status = build_block(block, DTYPES[dtype_name])
    floor = build_floor(block, DTYPES[dtype_name]) if floors else None
    for batch in batches:
        inputs = make_inputs(block, batch, DTYPES[dtype_name])
        for mode in modes:
            yield _measure_row(block, module, status, floor, inputs, batch, dtype_name, mode,
                               protocol)  # fmt: skip


def _measure_row(block, module, status, floor, inputs, batch, dtype, mode, protocol):
    record = {
        "block": block.key, "kecam": block.kecam, "shape": block.shape_text,
        "source": block.source, "batch": batch, "dtype": dtype, "mode": mode,
        "backend": kernel_backend(os.environ.get("MLX_ATTENTION_KERNELS", "auto")),
        "mflops": block.flops * batch / 1e6, "status": status,
    }  # fmt: skip
    if module is not None:
        try:
            timing = _time_callable(module, inputs, mode, protocol)
            record.update(timing_fields("ours", timing), ours_spread=timing.spread)
            record["ours_gflops"] = block.flops * batch / timing.median_ms / 1e6
        except Exception as exc:  # report the failure in the row, keep measuring the others
            record["status"] = f"error: {type(exc).__name__}: {exc}"
    if floor is not None:
        record.update(timing_fields("floor", _time_callable(floor, inputs[:1], mode, protocol)))
        if "ours_ms" in record:
            record["ratio_floor"] = record["ours_ms"] / record["floor_ms"]
    return record


# --- whole models ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelRow:
    """One whole-model row: a model of ``mlx_attention.models`` at its default input size.

    Args:
        key: row name.
        name: the registry name (``"NAT_Mini"``; a family builder such as ``"nat.NAT"`` for a
            reduced configuration).
        kwargs: constructor arguments (kecam's), e.g. ``input_shape``.
    """

    key: str
    name: str
    kwargs: dict = field(default_factory=dict)


# The families that carry the fused neighbourhood kernel, then one model per other family,
# at kecam's default 224x224.
MODEL_ROWS: tuple[ModelRow, ...] = (
    ModelRow("NAT_Mini", "NAT_Mini"),
    ModelRow("DiNAT_Mini", "DiNAT_Mini"),
    ModelRow("LeViT128S", "LeViT128S"),
    ModelRow("EfficientViT_M0", "EfficientViT_M0"),
    ModelRow("SwinTransformerV2Tiny_window8", "SwinTransformerV2Tiny_window8"),  # at 256
    ModelRow("BotNet26T", "BotNet26T"),  # the AotNet template, at 256
    ModelRow("HaloNet26T", "HaloNet26T"),  # at 256
    ModelRow("CotNet50", "CotNet50"),
    ModelRow("ResNest50", "ResNest50"),
    ModelRow("BeitBasePatch16", "BeitBasePatch16"),
    ModelRow("DaViT_T", "DaViT_T"),
    ModelRow("CoAtNet0", "CoAtNet0"),
    ModelRow("EdgeNeXt_XX_Small", "EdgeNeXt_XX_Small"),  # at 256
    ModelRow("CMTTiny_torch", "CMTTiny_torch"),  # at 160
    ModelRow("UniformerSmall32", "UniformerSmall32"),
    ModelRow("EfficientViT_B0", "EfficientViT_B0"),
    ModelRow("VOLO_d1", "VOLO_d1"),
    ModelRow("CoaTLiteTiny", "CoaTLiteTiny"),
)


def select_models(names: str | Sequence[str] | None) -> list[ModelRow]:
    """Model rows by key (comma-separated or a list); all rows for ``None``/``"all"``."""
    if names is None or names == "all":
        return list(MODEL_ROWS)
    wanted = [n.strip() for n in names.split(",")] if isinstance(names, str) else list(names)
    by_key = {row.key.lower(): row for row in MODEL_ROWS}
    unknown = [n for n in wanted if n.lower() not in by_key]
    if unknown:
        raise ValueError(
            f"unknown model rows {unknown}; known: {', '.join(r.key for r in MODEL_ROWS)}"
        )
    return [by_key[n.lower()] for n in wanted]


def build_model(row: ModelRow, dtype=mx.float32):
    """``(model, status)`` with kecam's random initialisation, parameters evaluated."""
    from . import models

    try:
        model = models.create_model(row.name, dtype=dtype, **row.kwargs)
    except Exception as exc:  # a row must not stop the run; the table says what happened
        return None, f"error: {type(exc).__name__}: {exc}"
    mx.eval(model.parameters())
    return model, "ok"


def run_models(
    models: Sequence[ModelRow],
    batches: Sequence[int] = (1, 8),
    dtypes: Sequence[str] = ("float32",),
    modes: Sequence[str] = ("eager",),
    kernels: Sequence[str] = ("auto",),
    protocol: Protocol = FULL,
    progress: Progress | None = None,
) -> list[dict]:
    """Measure whole models; one record per (model, batch, dtype, mode, kernels)."""
    records = []
    for row in models:
        for dtype_name in dtypes:
            for setting in kernels:
                with kernel_setting(setting):
                    model, status = build_model(row, DTYPES[dtype_name])
                    for batch in batches:
                        for mode in modes:
                            record = _measure_model(row, model, status, batch, dtype_name, mode,
                                                    protocol)  # fmt: skip
                            record["kernels"] = setting
                            records.append(record)
                            if progress is not None:
                                progress.step(f"{row.key} b{batch} {dtype_name} {mode}")
                    del model  # free its weights before the next row is built
    return records


def _measure_model(row, model, status, batch, dtype, mode, protocol) -> dict:
    record = {
        "model": row.key, "name": row.name, "batch": batch, "dtype": dtype, "mode": mode,
        "backend": kernel_backend(os.environ.get("MLX_ATTENTION_KERNELS", "auto")),
        "status": status,
    }  # fmt: skip
    if model is None:
        return record
    record.update(
        kecam=model.pretrained_cfg["kecam"], shape="x".join(map(str, model.input_shape)),
        params_m=model.count_params() / 1e6,
    )  # fmt: skip
    mx.random.seed(0)
    x = mx.random.normal((batch, *model.input_shape)).astype(DTYPES[dtype])
    mx.eval(x)
    try:
        timing = _time_callable(model, [x], mode, protocol)
    except Exception as exc:  # report the failure in the row, keep measuring the others
        record["status"] = f"error: {type(exc).__name__}: {exc}"
        return record
    record.update(timing_fields("ours", timing), ours_spread=timing.spread)
    record["ours_images_per_s"] = batch * 1e3 / timing.median_ms
    return record


def environment() -> dict:
    """Machine, MLX version, device, BLAS and kernel back-ends of this run."""
    info = {
        "machine": platform.machine(),
        "platform": platform.platform(),
        "processor": _cpu_name(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "mlx": mx.__version__,
        "device": str(mx.default_device()),
        "metal": mx.metal.is_available(),
        "cuda": mx.cuda.is_available(),
        "blas": cpu_blas()[0],
        "kernels_env": os.environ.get("MLX_ATTENTION_KERNELS", "auto"),
    }
    try:
        from .kernels import backend_report
    except ImportError:
        info["backends"] = "mlx_attention.kernels.backend_report() not available"
    else:
        info["backends"] = [list(row) for row in backend_report()]
    return info


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


# The fix for MLX's slow Linux CPU BLAS, said wherever the library reports on speed.
OPENBLAS_HINT = (
    "MLX's Linux CPU wheel links a reference BLAS, which makes matrix products 15-25x slower "
    "than OpenBLAS. Install OpenBLAS and preload it when you run: "
    "`apt-get install libopenblas0-pthread`, then `LD_PRELOAD=libopenblas.so.0 mlx-attention ...` "
    "(or `LD_PRELOAD=libopenblas.so.0 python ...`)"
)


def cpu_blas() -> tuple[str, str | None]:
    """The BLAS behind MLX's CPU matrix products, and a hint where it is the slow one.

    Read from the libraries mapped into this process: MLX's Linux wheel links its own reference
    BLAS (``mlx_cpu.libs/libblas-*.so``); a preloaded ``libopenblas`` takes its symbols first.
    """
    if platform.system() == "Darwin":
        return "Accelerate", None
    try:
        with open("/proc/self/maps") as f:
            maps = f.read()
    except OSError:
        return "unknown", None
    # numpy's own libscipy_openblas has a suffixed interface that MLX does not use
    if "/libopenblas" in maps:
        return "OpenBLAS (preloaded)", None
    if "mlx_cpu.libs/libblas" in maps:
        on_cpu = mx.default_device() == mx.cpu  # a GPU default does its matrix products itself
        return "reference BLAS of the mlx wheel (slow)", OPENBLAS_HINT if on_cpu else None
    return "unknown", None


# --- output ---------------------------------------------------------------------------------


def fmt(value: float | None, digits: int = 3) -> str:
    """``digits`` significant digits, whole numbers above that; ``–`` for no value."""
    if value is None:
        return "–"
    return f"{value:.{digits}g}" if value < 10**digits else f"{value:.0f}"


def text_table(rows: Sequence[Sequence[str]], header: Sequence[str]) -> str:
    """Columns padded to their widest cell."""
    cells = [list(map(str, header)), *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def summary_rows(records: Sequence[dict]) -> tuple[list[str], list[list[str]]]:
    """The terminal table of :func:`main`: time, spread, peak memory and the floor ratio."""
    header = ["block", "shape", "b", "dtype", "mode", "kernels", "MFLOP", "ms", "IQR%", "MB",
              "GFLOP/s", "floor ms", "x floor"]  # fmt: skip
    rows = []
    for r in records:
        rows.append([
            r["block"], r["shape"], r["batch"], r["dtype"], r["mode"], kernels_cell(r),
            fmt(r["mflops"]),
            time_cell(r, "ours", spread=False) if r["status"] == "ok" else r["status"][:40],
            fmt(100 * r["ours_spread"], 2) if "ours_spread" in r else "–",
            fmt(r.get("ours_peak_mb")), fmt(r.get("ours_gflops")),
            time_cell(r, "floor", spread=False), fmt(r.get("ratio_floor"), 2),
        ])  # fmt: skip
    return header, rows


def model_summary_rows(records: Sequence[dict]) -> tuple[list[str], list[list[str]]]:
    """The terminal table of :func:`main` for whole models: time, spread, peak memory, images/s."""
    header = ["model", "input", "params M", "b", "dtype", "mode", "kernels", "ms", "IQR%", "MB",
              "images/s"]  # fmt: skip
    rows = []
    for r in records:
        rows.append([
            r["model"], r.get("shape", "–"), fmt(r.get("params_m"), 4), r["batch"], r["dtype"],
            r["mode"], kernels_cell(r),
            time_cell(r, "ours", spread=False) if r["status"] == "ok" else r["status"][:40],
            fmt(100 * r["ours_spread"], 2) if "ours_spread" in r else "–",
            fmt(r.get("ours_peak_mb")), fmt(r.get("ours_images_per_s")),
        ])  # fmt: skip
    return header, rows


def kernels_cell(record: dict) -> str:
    """The kernel setting and the backend that actually ran under it, e.g. ``auto: ops``."""
    return f"{record['kernels']}: {record['backend']}"


def time_cell(record: dict, prefix: str, spread: bool = True) -> str:
    """``median (q1–q3)``, with ``*`` when other processes disturbed every attempt."""
    if f"{prefix}_ms" not in record:
        return "–"
    text = fmt(record[f"{prefix}_ms"])
    if spread:
        text += f" ({fmt(record[f'{prefix}_q1_ms'])}–{fmt(record[f'{prefix}_q3_ms'])})"
    return text + (" *" if record.get(f"{prefix}_contaminated") else "")


def noise_summary(records: Sequence[dict], protocol: Protocol) -> str:
    """How many measurements were repeated because of other load, and how many stayed so."""
    attempts = [r[k] for r in records for k in r if k.endswith("_attempt_other_cores")]
    loads = [load for a in attempts for load in a if load is not None]
    if not loads:
        return (
            f"Noise: other processes' CPU not measured ({len(attempts)} measurements; it needs "
            f"/proc/stat and timed windows of at least {_MIN_TICKS} clock ticks, 0.1 s on Linux)."
        )
    repeated = sum(len(a) > 1 for a in attempts)
    dirty = sum(bool(r[k]) for r in records for k in r if k.endswith("_contaminated"))
    retry = (
        f"{repeated} repeated (up to {protocol.retries} more attempts, the cleanest kept)"
        if protocol.retries
        else "none repeated in this mode"
    )
    return (
        f"Noise: {len(attempts)} measurements, {retry}; {dirty} with other processes using "
        f"> {protocol.max_other_cores} core throughout (marked *); other load median "
        f"{statistics.median(loads):.2f}, max {max(loads):.2f} core."
    )


def main(argv: list[str] | None = None) -> int:
    """``mlx-attention bench``: this library's blocks (or whole models with ``--models``),
    quick mode unless ``--full``."""
    parser = argparse.ArgumentParser(
        prog="mlx-attention bench",
        description="Time and peak memory of every attention block at a real model-stage shape. "
        "Quick mode by default; bench/run.py in the repository adds kecam/TensorFlow and "
        "natten-mlx side by side, and a plot.",
    )
    add_arguments(parser, full_batches="1", modes="eager")
    parser.add_argument("--full", action="store_true", help="the full protocol (>= 20 calls, 1 s)")
    parser.add_argument("--json", metavar="PATH", help="also write the records as JSON")
    args = parser.parse_args(argv)
    if args.list:
        print(row_table(models=bool(args.models)))
        return 0
    quick = args.quick or not args.full
    options = options_from_args(args, quick)
    if args.json:
        check_writable(args.json)
    protocol = QUICK if quick else MODEL_FULL if "models" in options else FULL
    measure_rows = run_models if "models" in options else run
    records = measure_rows(**options, protocol=protocol, progress=Progress(planned(options)))
    env = environment()
    print(f"MLX {env['mlx']} on {env['device']} ({env['processor']}, {env['cpus']} CPUs, "
          f"BLAS: {env['blas']}); protocol: {'quick' if quick else 'full'}")  # fmt: skip
    header, rows = (model_summary_rows if "models" in options else summary_rows)(records)
    print(text_table(rows, header))
    print(noise_summary(records, protocol))
    hint = cpu_blas()[1]
    if hint:
        print(f"Slow BLAS: {hint}.")
    if args.json:
        write_json(args.json, records, env, protocol)
    return 0


def row_table(models: bool = False) -> str:
    """``--list``: the block rows, or the whole-model rows."""
    if models:
        return text_table([(r.key, r.name, r.kwargs or "") for r in MODEL_ROWS],
                          ("model row", "registry name", "arguments"))  # fmt: skip
    return text_table([(b.key, b.kecam, b.shape_text, b.source) for b in BLOCKS],
                      ("block", "kecam", "input", "model stage"))  # fmt: skip


def add_arguments(parser: argparse.ArgumentParser, full_batches: str, modes: str) -> None:
    """The options :func:`main` and ``bench/run.py`` share."""
    parser.add_argument("--blocks", default="all", help="comma-separated row keys or kecam names")
    parser.add_argument(
        "--models", nargs="?", const="all", metavar="ROWS",
        help="time whole models instead of blocks (a table of their own): all rows, or "
        f"comma-separated keys of {', '.join(r.key for r in MODEL_ROWS)}",
    )  # fmt: skip
    default = (
        QUICK_BATCHES
        if QUICK_BATCHES == full_batches
        else f"{QUICK_BATCHES} in quick mode, else {full_batches}"
    )
    parser.add_argument("--batch", help=f"comma-separated batch sizes (default {default})")
    parser.set_defaults(full_batches=full_batches)
    parser.add_argument("--dtype", default="float32", help="float32,float16,bfloat16")
    parser.add_argument("--mode", default=modes, help=f"eager,compiled (default {modes})")
    parser.add_argument("--kernels", default="auto", help="auto,off (MLX_ATTENTION_KERNELS)")
    parser.add_argument(
        "--no-floor", action="store_true", help="skip the straightforward MLX floor"
    )
    parser.add_argument("--quick", action="store_true", help="the short protocol (under a minute)")
    parser.add_argument("--list", action="store_true", help="list the rows and exit")


def options_from_args(args: argparse.Namespace, quick: bool) -> dict:
    """Validated keyword arguments of :func:`run` from :func:`add_arguments`'s options."""

    def choices(text: str, allowed: Sequence[str], what: str) -> list[str]:
        values = [v.strip() for v in text.split(",") if v.strip()]
        bad = [v for v in values if v not in allowed]
        if bad or not values:
            raise SystemExit(f"--{what}: {bad or text!r} not in {', '.join(allowed)}")
        return values

    batch_text = args.batch or (QUICK_BATCHES if quick else args.full_batches)
    try:
        batches = [int(b) for b in batch_text.split(",")]
    except ValueError:
        raise SystemExit(f"--batch: {batch_text!r} is not a list of integers") from None
    if any(b < 1 for b in batches):
        raise SystemExit(f"--batch: {batch_text!r}: every batch size must be at least 1")
    settings = {
        "batches": batches,
        "dtypes": choices(args.dtype, list(DTYPES), "dtype"),
        "modes": choices(args.mode, MODES, "mode"),
        "kernels": choices(args.kernels, KERNEL_SETTINGS, "kernels"),
    }
    try:
        if getattr(args, "models", None):
            if args.blocks != "all":
                raise ValueError("--models and --blocks select different tables: give one")
            return {"models": select_models(args.models), **settings}
        return {"blocks": select_blocks(args.blocks), **settings, "floors": not args.no_floor}
    except ValueError as exc:
        raise SystemExit(str(exc)) from None


def planned(options: dict) -> int:
    """How many records :func:`run` makes with these options (for the progress bar)."""
    rows = "models" if "models" in options else "blocks"
    sizes = (len(options[k]) for k in (rows, "batches", "dtypes", "modes", "kernels"))
    return math.prod(sizes)


def check_writable(path: str | os.PathLike) -> None:
    """Fail before a run, not after it, when its output file cannot be written (the folder is
    made if missing)."""
    path = os.fspath(path)
    try:
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        existed = os.path.exists(path)
        with open(path, "a"):
            pass
        if not existed:
            os.remove(path)
    except OSError as err:
        raise SystemExit(f"cannot write {path}: {err.strerror or err}") from None


def write_json(path: str, records: Sequence[dict], env: dict, protocol: Protocol, **extra) -> None:
    """Records, environment and protocol in one JSON document."""
    directory = os.path.dirname(path)
    if directory:
        os.makedirs(directory, exist_ok=True)
    document = {"environment": env, "protocol": asdict(protocol), **extra, "records": records}
    with open(path, "w") as f:
        json.dump(document, f, indent=1)
