"""The pieces every kecam attention block shares: head layouts, argument checks and the core
``softmax(q k^T * scale + bias) v``, fused through ``mx.fast.scaled_dot_product_attention``
whenever nothing needs the scores themselves."""

from __future__ import annotations

from collections.abc import Callable

import mlx.core as mx
import mlx.nn as nn

from .base import KerasLayer, KerasModule
from .utils import check_bools, check_float, check_int, check_size

ScoresFn = Callable[[mx.array], mx.array]


class Dropout(nn.Dropout):
    """``nn.Dropout`` that remembers its rate, so a block can skip it (and keep the fused
    attention kernel) when it is off."""

    def __init__(self, rate: float = 0.0, *, what: str = "dropout"):
        rate = check_float(rate, what, minimum=0, below=1)
        super().__init__(rate)
        self.rate = rate

    @property
    def active(self) -> bool:
        """Whether a call changes anything (training mode and a positive rate)."""
        return self.training and self.rate > 0


def l2_normalize(x: mx.array, axis: int = -1) -> mx.array:
    """TF's ``l2_normalize(x, axis, epsilon=1e-6)``: ``x * rsqrt(max(sum x^2, 1e-6))``.

    The statistic is computed in float32 and the result cast back: for a zero vector (the
    padding of a shifted-window map) the gradient of ``rsqrt`` at ``1e-6`` overflows float16,
    and the zero that ``maximum`` passes to the sum turns that ``inf`` into NaN.
    """
    wide = x.astype(mx.float32)
    norm = mx.rsqrt(mx.maximum(mx.sum(mx.square(wide), axis=axis, keepdims=True), 1e-6))
    return (wide * norm).astype(x.dtype)


def attend(
    query: mx.array,
    key: mx.array,
    value: mx.array,
    *,
    scale: float,
    bias: mx.array | None = None,
    scores_fn: ScoresFn | None = None,
    dropout: Dropout | None = None,
) -> mx.array:
    """``softmax(query @ key^T * scale + bias) @ value`` over the last axis of the scores.

    The fused kernel runs unless ``scores_fn`` (a kecam ``pos_emb`` callable applied to the
    scaled scores) needs them or ``dropout`` is active (training mode). Softmax accumulates in
    float32 on either path.

    Args:
        query: ``[B, heads, Nq, D]``.
        key: ``[B, heads, Nk, D]``.
        value: ``[B, heads, Nk, Dv]``.
        scale: multiplies ``query @ key^T`` (before ``bias``).
        bias: an additive term broadcast against the scores ``[B, heads, Nq, Nk]``.
        scores_fn: applied to the scaled (and biased) scores before the softmax.
        dropout: dropout on the attention probabilities (active in training mode).

    Shape:
        ``-> [B, heads, Nq, Dv]``
    """
    if bias is not None:
        bias = bias.astype(query.dtype)
    dropping = dropout is not None and dropout.active
    if scores_fn is None and not dropping:
        return mx.fast.scaled_dot_product_attention(query, key, value, scale=scale, mask=bias)
    scores = (query @ key.swapaxes(-1, -2)) * scale
    if bias is not None:
        scores = scores + bias
    if scores_fn is not None:
        scores = scores_fn(scores)
    return attend_scores(scores, value, dropout)


def attend_scores(scores: mx.array, value: mx.array, dropout: Dropout | None = None) -> mx.array:
    """``softmax(scores) @ value``, the softmax accumulating in float32, with ``dropout`` on the
    probabilities (active in training mode)."""
    probs = mx.softmax(scores, axis=-1, precise=True)
    if dropout is not None and dropout.active:
        probs = dropout(probs)
    return probs @ value


def split_heads(x: mx.array, num_heads: int) -> mx.array:
    """Head-major channels (``c = h * d + i``) into heads: ``[B, N, heads * d]`` to
    ``[B, heads, N, d]``."""
    batch, tokens, channels = x.shape
    return x.reshape(batch, tokens, num_heads, channels // num_heads).transpose(0, 2, 1, 3)


def merge_heads(x: mx.array) -> mx.array:
    """The inverse of ``split_heads``: ``[B, heads, N, d] -> [B, N, heads * d]``."""
    batch, heads, tokens, dims = x.shape
    return x.transpose(0, 2, 1, 3).reshape(batch, tokens, heads * dims)


def check_block(what: str, dims: int, **flags: bool) -> int:
    """A block's input channels (a positive int, returned) and its boolean arguments."""
    check_bools(what, **flags)
    return check_int(dims, "dims", minimum=1, what=what)


def check_dense(what: str, in_dims: int, out_dims: int, sized_by: str) -> None:
    """Refuse a projection of more than 2^31 weights before allocating it; ``sized_by`` names
    the arguments that size it."""
    check_size(in_dims * out_dims, f"{what}: a {in_dims} x {out_dims} projection ({sized_by})")


def head_key_dim(dims: int, num_heads: int, key_dim: int) -> int:
    """kecam's per-head key width: ``key_dim`` if positive, else ``dims // num_heads``."""
    num_heads = check_int(num_heads, "num_heads", minimum=1)
    kd = check_int(key_dim, "key_dim")
    kd = kd if kd > 0 else dims // num_heads
    if kd < 1:
        raise ValueError(
            f"num_heads={num_heads} with key_dim={key_dim} on {dims} channels: the per-head key "
            f"width {dims} // {num_heads} is 0 (kecam's projection gets 0 units)"
        )
    return kd


def output_dims(dims: int, out_shape: int | None, out_weight: bool) -> int:
    """kecam's ``out_shape``: the input channels unless an output projection gives another."""
    if out_shape is None or not out_weight:
        return dims
    return check_int(out_shape, "out_shape", minimum=1)


def value_dims(dims: int, out_shape: int | None, out_weight: bool, num_heads: int) -> int:
    """The value width of a block whose value is split into heads: ``output_dims``, divisible
    by ``num_heads`` (kecam reshapes it into heads and fails otherwise)."""
    out = output_dims(dims, out_shape, out_weight)
    if out % num_heads:
        raise ValueError(
            f"out_shape={out} (the value width) must be divisible by num_heads={num_heads}: "
            f"kecam reshapes the value into heads of {out} // {num_heads} channels"
        )
    return out


def qkv_output_layers(block: KerasModule, *, with_output: bool = True) -> list[KerasLayer]:
    """The Keras layers of a block with a Dense ``qkv`` and (``with_output``) a Dense
    ``output``."""
    layers = [KerasLayer(block.sub("qkv"), "Dense", block.qkv)]
    if with_output:
        layers.append(KerasLayer(block.sub("output"), "Dense", block.output))
    return layers


def split_pos_emb(pos_emb) -> tuple[nn.Module | None, ScoresFn | None]:
    """A kecam ``pos_emb``: a module (kept as a child, so its weights load) or a plain callable."""
    if pos_emb is None:
        return None, None
    if isinstance(pos_emb, nn.Module):
        return pos_emb, None
    if callable(pos_emb):
        return None, pos_emb
    raise ValueError(
        f"pos_emb must be an MLX module, a callable on the scores or None, got {pos_emb!r}"
    )


__all__ = [
    "Dropout",
    "attend",
    "check_block",
    "check_dense",
    "head_key_dim",
    "merge_heads",
    "output_dims",
    "qkv_output_layers",
    "value_dims",
    "split_heads",
    "split_pos_emb",
]
