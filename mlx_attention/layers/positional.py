"""kecam's positional-embedding layers, channels-last, exact to kecam 1.4.3.

Every index table and sin/cos buffer is computed once, in numpy, in the constructor and kept
in an attribute whose name starts with ``_``: it is neither a parameter nor saved. The kecam
"xy" meshgrid flattening (``n % height``, ``n // height``) is reproduced as kecam has it: it
matches torch only for square grids, and the weights were trained with it.

Layers whose table depends on the input size (``RelativePositionalEmbedding``,
``MultiHeadRelativePositionalEmbedding``, ``MultiHeadPositionalEmbedding``,
``BiasPositionalEmbedding``, ``PositionalEmbedding``) also load a table saved at another size
with ``load_resized_weights(source, method="bilinear")``, kecam 1.4.3's resize semantics, and
``convert.load_keras_weights(..., resize=True)`` does the same from a Keras file.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence

import mlx.core as mx
import numpy as np

from .base import KerasLayer, KerasLayouts, KerasModule
from .common import Conv2d, relu
from .utils import (
    check_bool,
    check_bools,
    check_float,
    check_int,
    check_int_list,
    check_pair,
    check_size,
    check_sizes,
)

RESIZE_METHODS = ("nearest", "bilinear", "bicubic")


# --- tf.image.resize (antialias=False), the resize every kecam load_resized_weights uses -----


def _cubic_weights(frac: np.ndarray) -> np.ndarray:
    """Keys cubic (a = -0.5) weights of the taps at offsets -1, 0, 1, 2."""
    a = -0.5
    dist = np.abs(np.stack([frac + 1, frac, 1 - frac, 2 - frac], axis=-1))
    near = ((a + 2) * dist - (a + 3)) * dist * dist + 1
    far = ((a * dist - 5 * a) * dist + 8 * a) * dist - 4 * a
    return np.where(dist <= 1, near, np.where(dist < 2, far, 0.0))


def _resize_axis(x: np.ndarray, size: int, axis: int, method: str) -> np.ndarray:
    n = x.shape[axis]
    if n == size:
        return x
    # TF computes the source coordinate in float32; nearest depends on its exact rounding.
    scale = np.float32(n) / np.float32(size)
    dst = np.arange(size, dtype=np.float32)
    shape = [1] * x.ndim
    shape[axis] = size
    if method == "nearest":
        src = np.minimum(np.floor((dst + np.float32(0.5)) * scale).astype(np.int64), n - 1)
        return np.take(x, src, axis=axis)
    src = ((dst + np.float32(0.5)) * scale - np.float32(0.5)).astype(np.float64)
    low = np.floor(src)
    frac = src - low
    if method == "bilinear":
        lo = np.clip(low, 0, n - 1).astype(np.int64)
        hi = np.clip(low + 1, 0, n - 1).astype(np.int64)
        w = frac.reshape(shape)
        return np.take(x, lo, axis=axis) * (1 - w) + np.take(x, hi, axis=axis) * w
    # bicubic: TF reads the weights from a 1024-step table of the fractional offset; taps
    # outside the image get weight 0 and the rest are renormalised.
    taps = low[:, None].astype(np.int64) + np.arange(-1, 3)
    weights = _cubic_weights(np.rint(frac * 1024) / 1024) * ((taps >= 0) & (taps < n))
    weights /= weights.sum(axis=1, keepdims=True)
    out = 0
    for t in range(4):
        w = weights[:, t].reshape(shape)
        out = out + np.take(x, np.clip(taps[:, t], 0, n - 1), axis=axis) * w
    return out


def tf_resize(image: np.ndarray, size: Sequence[int], method: str = "bilinear") -> np.ndarray:
    """``tf.image.resize(image, size, method)`` (antialias off) in numpy, for weight loading.

    Args:
        image: ``[..., H, W, C]``.
        size: ``(height, width)`` of the result.
        method: ``"nearest"`` (half-pixel centres, exact), ``"bilinear"`` or ``"bicubic"``.

    Shape:
        ``[..., H, W, C] -> [..., height, width, C]`` (float32)
    """
    if method not in RESIZE_METHODS:
        raise ValueError(f"method={method!r}: expected one of {RESIZE_METHODS}")
    height, width = (int(s) for s in size)
    if min(height, width) < 1:
        raise ValueError(f"cannot resize to {(height, width)}")
    x = np.asarray(image, np.float64)
    x = _resize_axis(x, height, x.ndim - 3, method)
    return _resize_axis(x, width, x.ndim - 2, method).astype(np.float32)


def _isqrt(value: float) -> int:
    """kecam's ``int(sqrt(n))``: floors."""
    return int(float(value) ** 0.5)


def xy_relative_index(height: int, width: int, keys: np.ndarray | None = None) -> np.ndarray:
    """kecam's pairwise relative index over an ``height x width`` grid, ``[hw, hw]`` (or the
    columns of the token ids ``keys`` only: cmt keeps a few of 1600, so the whole square is
    not built).

    Token ``n`` has coordinates ``(n % height, n // height)`` (the "xy" meshgrid flattening);
    the index points into a ``(2 height - 1) x (2 width - 1)`` table (beit, swin v2).
    """
    n = np.arange(height * width)
    k = n if keys is None else keys
    rows = (n % height)[:, None] - (k % height)[None, :] + height - 1
    cols = ((n // height)[:, None] - (k // height)[None, :] + width - 1) * (2 * height - 1)
    return (rows + cols).astype(np.int64)


# --- shared base for kecam layers whose weights are stored as used ---------------------------


class _KecamWeights(KerasModule):
    """A kecam layer class: its variables, in ``weight_names`` order, are parameters as-is.

    Subclasses set ``_weight_names``; resizable ones implement ``resized_weights``.
    """

    _weight_names: tuple[str, ...] = ()

    def keras_layers(self):
        if not self._weight_names:
            return ()
        resize = self.resized_weights if self.resizable else None
        return (KerasLayer(self.sub(""), "Weights", self, self._weight_names, resize=resize),)

    @property
    def resizable(self) -> bool:
        return type(self).resized_weights is not _KecamWeights.resized_weights

    def resized_weights(self, arrays: list[np.ndarray], method: str = "bilinear"):
        raise NotImplementedError

    def load_resized_weights(self, source, method: str = "bilinear") -> None:
        """kecam's ``load_resized_weights``: fill this layer from weights of another input size.

        Args:
            source: a dict of kecam's variables (its values are taken in order, as kecam 1.4.3
                does), a sequence of arrays in ``weight_names`` order, or a module of the same
                class.
            method: the ``tf.image.resize`` method, kecam 1.4.3's default ``"bilinear"``
                (1.3.1 used ``"nearest"``).
        """
        if not self.resizable:
            raise ValueError(f"{type(self).__name__} has no table that depends on the input size")
        if isinstance(source, _KecamWeights):
            arrays = [np.asarray(source[k]) for k in self._weight_names]
        elif isinstance(source, Mapping):
            arrays = [np.asarray(v) for v in source.values()]
        else:
            arrays = [np.asarray(v) for v in source]
        if len(arrays) != len(self._weight_names):
            raise ValueError(
                f"{type(self).__name__}: expected {len(self._weight_names)} arrays "
                f"{self._weight_names}, got {len(arrays)}"
            )
        arrays = [a.astype(np.float32) for a in self.resized_weights(arrays, method)]
        for key, value in zip(self._weight_names, arrays):
            if tuple(value.shape) != tuple(self[key].shape):
                raise ValueError(
                    f"{type(self).__name__}: resized {key} has shape {value.shape}, "
                    f"the layer needs {tuple(self[key].shape)}"
                )
        self.update({k: mx.array(v) for k, v in zip(self._weight_names, arrays)})


def _check_method(method: str) -> None:
    if method not in RESIZE_METHODS:
        raise ValueError(f"method={method!r}: expected one of {RESIZE_METHODS}")


# --- botnet / halonet --------------------------------------------------------------------------


def _rel_to_abs_index(blocks: int, positions: int) -> np.ndarray:
    """``out[i, j] = rel[i, j - i + P - 1]``: kecam's rel_to_abs flatten-and-slice, as a gather."""
    return np.arange(positions)[None, :] - np.arange(blocks)[:, None] + positions - 1


class RelativePositionalEmbedding(_KecamWeights):
    """kecam's ``RelativePositionalEmbedding`` (botnet, halonet): per-query logits over the
    key positions, from a height table and a width table.

    Relative (default): ``out[.., y, x, p, q] = q[y, x] . r_height[:, p - y + Ph - 1] +
    q[y, x] . r_width[:, q - x + Pw - 1]``; absolute: ``q . r_height[:, p] + q . r_width[:, q]``.
    The query is the unscaled one; the caller reshapes the result to ``[B, heads, H*W, Ph*Pw]``.

    Args:
        key_dim: the query channels ``d``.
        height, width: the query grid.
        position_height: the key grid height ``Ph = max(position_height, height)``.
        position_width: ``Pw = max(position_width, width)``; ``0`` means ``position_height``.
        use_absolute_pos: tables ``(d, Ph)``, ``(d, Pw)`` instead of ``(d, 2P - 1)``.
        dynamic_shape: crop the key axes to ``[:height, :width]`` (kecam's deprecated option).
        name: the Keras layer name.

    Shape:
        ``[B, heads, H, W, d] -> [B, heads, H, W, Ph, Pw]``
    """

    _weight_names = ("r_height", "r_width")

    def __init__(
        self, key_dim: int, height: int, width: int, *, position_height: int = 0,
        position_width: int = 0, use_absolute_pos: bool = False, dynamic_shape: bool = False,
        name: str | None = None,
    ):  # fmt: skip
        super().__init__(name)
        what = "RelativePositionalEmbedding"
        key_dim, height, width = check_sizes(what, key_dim=key_dim, height=height, width=width)
        position_height = check_int(position_height, "position_height", what=what)
        position_width = check_int(position_width, "position_width", what=what)
        check_bools(what, use_absolute_pos=use_absolute_pos, dynamic_shape=dynamic_shape)
        position_width = position_width if position_width > 0 else position_height
        self.height, self.width, self.key_dim = height, width, key_dim
        self.position_height = position_height if position_height > height else height
        self.position_width = position_width if position_width > width else width
        self.use_absolute_pos, self.dynamic_shape = use_absolute_pos, dynamic_shape
        ph, pw = self.position_height, self.position_width
        lh, lw = (ph, pw) if use_absolute_pos else (2 * ph - 1, 2 * pw - 1)
        sized = f"{what}: position_height={position_height}, position_width={position_width}"
        check_size(key_dim * max(lh, lw) + height * width * ph * pw, sized)  # the output too
        scale = key_dim**-0.5
        self.r_height = mx.random.normal((key_dim, lh)) * scale
        self.r_width = mx.random.normal((key_dim, lw)) * scale
        if not use_absolute_pos:
            # Broadcast over [B, heads, H, W, .]: rows by query row, columns by query column.
            self._index_h = mx.array(_rel_to_abs_index(height, ph).reshape(1, 1, height, 1, ph))
            self._index_w = mx.array(_rel_to_abs_index(width, pw).reshape(1, 1, 1, width, pw))

    def resized_weights(self, arrays, method="bilinear"):
        _check_method(method)
        targets = (self.r_height.shape[1], self.r_width.shape[1])
        out = []
        for table, length in zip(arrays, targets):
            if table.ndim != 2 or table.shape[0] != self.key_dim:
                raise ValueError(f"a table of shape {table.shape} is not ({self.key_dim}, L)")
            # kecam resizes each table as a height-1 image of d channels.
            out.append(tf_resize(table.T[None], (1, length), method)[0].T)
        return out

    def __call__(self, x: mx.array) -> mx.array:
        width_logits = x @ self.r_width.astype(x.dtype)  # [B, n, H, W, Lw]
        height_logits = x @ self.r_height.astype(x.dtype)  # [B, n, H, W, Lh]
        if not self.use_absolute_pos:
            width_logits = mx.take_along_axis(width_logits, self._index_w, axis=-1)
            height_logits = mx.take_along_axis(height_logits, self._index_h, axis=-1)
        out = width_logits[..., None, :] + height_logits[..., :, None]
        if self.dynamic_shape:
            out = out[..., : self.height, : self.width]
        return out


# --- beit / coatnet / cmt ----------------------------------------------------------------------


class MultiHeadRelativePositionalEmbedding(_KecamWeights):
    """kecam's ``MultiHeadRelativePositionalEmbedding`` (beit; coatnet, cmt): a per-head
    relative-position bias added to attention scores.

    With a class token the table has 3 extra entries (cls -> patch, patch -> cls, cls -> cls).
    When there are fewer keys than queries (cmt with ``sr_ratio > 1``) kecam keeps the **last**
    ``key_blocks`` columns of the square query index, which is not the down-sampled key
    geometry; this is what the weights were trained with, so it is reproduced.

    Args:
        num_heads: heads of the table (``1`` broadcasts over the input's heads, and an input of
            one head broadcasts over the table's).
        height, width: the patch grid, ``query_blocks = cls + height * width``.
        with_cls_token: a leading class token.
        key_blocks: keys per query (defaults to ``query_blocks``).
        name: the Keras layer name.

    Shape:
        ``[B, heads, query_blocks, key_blocks] -> [B, max(heads, num_heads), ...]``
    """

    _weight_names = ("positional_embedding",)

    def __init__(
        self, num_heads: int, height: int, width: int, *, with_cls_token: bool = True,
        key_blocks: int | None = None, name: str | None = None,
    ):  # fmt: skip
        super().__init__(name)
        what = "MultiHeadRelativePositionalEmbedding"
        num_heads, height, width = check_sizes(
            what, num_heads=num_heads, height=height, width=width
        )
        with_cls_token = check_bool(with_cls_token, "with_cls_token", what=what)
        if key_blocks is not None:
            key_blocks = check_int(key_blocks, "key_blocks", minimum=1, what=what)
        cls = 1 if with_cls_token else 0
        self.cls_pos_len = 3 if with_cls_token else 0
        self.height, self.width, self.with_cls_token = height, width, with_cls_token
        query_blocks = cls + height * width
        key_blocks = query_blocks if key_blocks is None else key_blocks
        size = (2 * height - 1) * (2 * width - 1) + self.cls_pos_len
        check_size(max(num_heads * size, query_blocks**2), f"{what}: a {height}x{width} grid")
        keys = np.arange(height * width)
        if key_blocks != query_blocks:
            keys = keys[-(key_blocks - cls) :]
        index = xy_relative_index(height, width, keys)
        if with_cls_token:
            top = np.full((1, index.shape[1]), size - 3)
            left = np.full((index.shape[0] + 1, 1), size - 2)
            left[0, 0] = size - 1
            index = np.concatenate([left, np.concatenate([top, index], axis=0)], axis=1)
        index = index[:query_blocks, :key_blocks]
        if index.shape != (query_blocks, key_blocks):
            raise ValueError(
                f"key_blocks={key_blocks}: kecam's index over a {height}x{width} grid"
                f"{' plus a class token' if cls else ''} has only {index.shape[1]} key columns"
            )
        self.query_blocks, self.key_blocks = query_blocks, key_blocks
        self.positional_embedding = mx.zeros((num_heads, size))
        self._index = mx.array(index)

    def resized_weights(self, arrays, method="bilinear"):
        _check_method(method)
        (source,) = arrays
        heads = self.positional_embedding.shape[0]
        if source.ndim != 2 or source.shape[0] != heads:
            raise ValueError(f"a table of shape {source.shape} is not ({heads}, R)")
        side = _isqrt(source.shape[1] - self.cls_pos_len)  # kecam assumes a square source
        grid = source[:, : side * side].reshape(heads, side, side).transpose(1, 2, 0)
        grid = tf_resize(grid, (2 * self.height - 1, 2 * self.width - 1), method)
        table = grid.reshape(-1, heads).T
        if self.with_cls_token:
            table = np.concatenate([table, source[:, -self.cls_pos_len :]], axis=1)
        return [table]

    def __call__(self, x: mx.array) -> mx.array:
        return x + mx.take(self.positional_embedding, self._index, axis=1).astype(x.dtype)


# --- levit -------------------------------------------------------------------------------------


class MultiHeadPositionalEmbedding(_KecamWeights):
    """kecam's ``MultiHeadPositionalEmbedding`` (levit): a bias indexed by the absolute
    offset ``|dx| + |dy| * key_height`` between a (strided) query and a key.

    Args:
        num_heads: heads; ``None`` is kecam's rank-3 single-head form (scores ``[B, Q, K]``,
            table ``(K,)``).
        query_blocks, key_blocks: ``Q`` and ``K``.
        query_height: the query grid height (``-1``: ``int(sqrt(Q))``).
        key_height: the key grid height (``-1``: derived from the stride, as kecam does).
        name: the Keras layer name.

    Shape:
        ``[B, heads, Q, K] -> same`` (``[B, Q, K]`` when ``num_heads`` is ``None``)
    """

    _weight_names = ("positional_embedding",)

    def __init__(
        self, num_heads: int | None, query_blocks: int, key_blocks: int, *,
        query_height: int = -1, key_height: int = -1, name: str | None = None,
    ):  # fmt: skip
        super().__init__(name)
        what = "MultiHeadPositionalEmbedding"
        query_blocks, key_blocks = check_sizes(
            what, query_blocks=query_blocks, key_blocks=key_blocks
        )
        if num_heads is not None:
            num_heads = check_int(num_heads, "num_heads", minimum=1, what=what)
        query_height = check_int(query_height, "query_height", what=what)
        key_height = check_int(key_height, "key_height", what=what)
        check_size(query_blocks * key_blocks * (num_heads or 1), f"{what}: the scores table")
        if query_height == -1:
            qh = qw = _isqrt(query_blocks)
        elif query_height > 0:
            qh, qw = query_height, int(query_blocks / query_height)
        else:
            raise ValueError(f"query_height={query_height} must be -1 or positive")
        strides = int(math.ceil(float(key_blocks / query_blocks) ** 0.5))
        if key_height == -1:
            kh = qh * strides
            while key_blocks % kh != 0:
                kh -= 1
            kw = int(key_blocks / kh)
        elif key_height > 0:
            kh, kw = key_height, int(key_blocks / key_height)
        else:
            raise ValueError(f"key_height={key_height} must be -1 or positive")
        if qh * qw != query_blocks or kh * kw != key_blocks:
            raise ValueError(
                f"query_height={query_height}, key_height={key_height}: kecam's grids "
                f"{qh}x{qw} and {kh}x{kw} do not cover query_blocks={query_blocks} and "
                f"key_blocks={key_blocks}"
            )
        nq, nk = np.arange(qh * qw), np.arange(kh * kw)
        dx = np.abs((nk % kh)[None, :] - (nq % qh)[:, None] * strides)
        dy = np.abs((nk // kh)[None, :] - (nq // qh)[:, None] * strides)
        index = dx + dy * kh
        if index.max() >= key_blocks:
            raise ValueError(
                f"query_height={query_height}, key_height={key_height}: query {qh}x{qw} with "
                f"stride {strides} over keys {kh}x{kw}: kecam's offset "
                f"{index.max()} is outside its {key_blocks}-entry table"
            )
        self.key_grid = (kh, kw)
        self.num_heads = num_heads
        shape = (key_blocks,) if num_heads is None else (key_blocks, num_heads)
        self.positional_embedding = mx.zeros(shape)
        self._index = mx.array(index)

    def resized_weights(self, arrays, method="bilinear"):
        _check_method(method)
        (source,) = arrays
        side = _isqrt(source.shape[0])
        if (side, side) == self.key_grid:
            return [source]
        heads = source.shape[-1] if source.ndim == 2 else 1
        if side * side * heads != source.size:
            raise ValueError(f"a table of shape {source.shape} is not a square grid of keys")
        grid = tf_resize(source.reshape(side, side, heads), self.key_grid, method)
        return [grid.reshape(self.positional_embedding.shape)]

    def __call__(self, x: mx.array) -> mx.array:
        bias = mx.take(self.positional_embedding, self._index, axis=0)  # [Q, K(, heads)]
        if self.num_heads is not None:
            bias = bias.transpose(2, 0, 1)
        return x + bias.astype(x.dtype)


# --- nat / dinat -------------------------------------------------------------------------------


def _nat_pad_bias(size: int, total: int, dilation: int) -> np.ndarray:
    """Window start of each query row, as a kernel-table row: the first ``k // 2`` rows (each
    repeated ``dilation`` times), the centre, then the last rows."""
    idx = np.arange(size)
    left = np.repeat(idx[: size // 2], dilation)
    right = np.repeat(idx[size // 2 + 1 :], dilation)
    center = np.repeat(idx[size // 2], total - left.shape[0] - right.shape[0])
    return np.concatenate([left, center, right])


class MultiHeadRelativePositionalKernelBias(_KecamWeights):
    """kecam's ``MultiHeadRelativePositionalKernelBias`` (nat; dinat with ``dilation_rate``):
    a per-head bias over each query's ``k x k`` neighbourhood, from a ``(2k - 1)^2`` table.

    The table depends only on ``kernel_size``, not on the input size.

    Args:
        num_heads: heads.
        height, width: the (padded) query grid.
        kernel_size: the neighbourhood size ``k``.
        dilation_rate: an int or ``(dh, dw)`` (DiNAT).
        is_heads_first: scores ``[B, heads, H*W, ..., k*k]`` instead of
            ``[B, H*W, heads, ..., k*k]``.
        name: the Keras layer name.

    Shape:
        ``[B, H*W, heads, ..., k*k] -> same`` (or heads first)
    """

    _weight_names = ("positional_embedding",)

    def __init__(
        self, num_heads: int, height: int, width: int, kernel_size: int, *,
        dilation_rate: int | Sequence[int] = 1, is_heads_first: bool = False,
        name: str | None = None,
    ):  # fmt: skip
        super().__init__(name)
        what = "MultiHeadRelativePositionalKernelBias"
        num_heads, height, width, kernel_size = check_sizes(
            what, num_heads=num_heads, height=height, width=width, kernel_size=kernel_size
        )
        dilation = check_pair(dilation_rate, "dilation_rate", minimum=1, what=what)
        is_heads_first = check_bool(is_heads_first, "is_heads_first", what=what)
        for what, total, d in (("height", height, dilation[0]), ("width", width, dilation[1])):
            if total < (kernel_size - 1) * d:
                raise ValueError(
                    f"{what}={total} is smaller than the dilated kernel span "
                    f"(kernel_size={kernel_size} - 1) * dilation {d} = {(kernel_size - 1) * d}"
                )
        pos_size = 2 * kernel_size - 1
        check_size(
            max(num_heads * pos_size**2, height * width * kernel_size**2), f"{what}: the table"
        )
        idx = np.arange(kernel_size)
        taps = (idx[:, None] * pos_size + idx[None, :]).reshape(-1)
        rows = _nat_pad_bias(kernel_size, height, dilation[0])
        cols = _nat_pad_bias(kernel_size, width, dilation[1])
        coords = (rows[:, None] * pos_size + cols[None, :])[:, :, None] + taps
        # kecam flips the whole query axis (torch.flip(.., [0]) in NAT).
        index = coords.reshape(-1, kernel_size * kernel_size)[::-1]
        self.num_heads, self.kernel_size = num_heads, kernel_size
        self.height, self.width, self.dilation = height, width, dilation
        self.is_heads_first = is_heads_first
        self.positional_embedding = (
            mx.random.truncated_normal(-2, 2, (num_heads, pos_size * pos_size)) * 0.02
        )
        self._index = mx.array(np.ascontiguousarray(index))  # [H*W, k*k]

    def __call__(self, x: mx.array) -> mx.array:
        if x.ndim < 4:
            raise ValueError(f"expected scores of rank >= 4, got shape {x.shape}")
        bias = mx.take(self.positional_embedding, self._index, axis=1)  # [heads, HW, kk]
        if not self.is_heads_first:
            bias = bias.transpose(1, 0, 2)
        bias = bias.reshape(*bias.shape[:2], *([1] * (x.ndim - 4)), bias.shape[-1])
        return x + bias.astype(x.dtype)


# --- cmt ---------------------------------------------------------------------------------------


class BiasPositionalEmbedding(_KecamWeights):
    """kecam's ``BiasPositionalEmbedding`` (cmt): a learned bias of the scores' shape.

    Resizing treats the table as ``[heads, query grid, key grid]`` with square source grids,
    resizing the query axes first, then the key axes (kecam's order).

    Args:
        num_heads, query_blocks, key_blocks: the table ``(heads, Q, K)``.
        attn_height: the query grid height (``-1``: ``int(sqrt(Q))``); only resizing uses it.
        shape: another table shape (kecam's ``axis`` argument); such a table does not resize.
        name: the Keras layer name.

    Shape:
        ``[B, heads, Q, K] -> same``
    """

    _weight_names = ("positional_embedding",)

    def __init__(
        self, num_heads: int, query_blocks: int, key_blocks: int, *, attn_height: int = -1,
        shape: Sequence[int] | None = None, name: str | None = None,
    ):  # fmt: skip
        super().__init__(name)
        what = "BiasPositionalEmbedding"
        num_heads, query_blocks, key_blocks = check_sizes(
            what, num_heads=num_heads, query_blocks=query_blocks, key_blocks=key_blocks
        )
        attn_height = check_int(attn_height, "attn_height", what=what)
        check_size(num_heads * query_blocks * key_blocks, f"{what}: the table")
        query_hh = _isqrt(query_blocks) if attn_height == -1 else attn_height
        if query_hh < 1:
            raise ValueError(f"attn_height={attn_height} must be -1 or positive")
        sr_ratio = int((float(query_blocks) / float(key_blocks)) ** 0.5)
        if sr_ratio < 1 or query_hh // sr_ratio < 1:
            raise ValueError(
                f"attn_height={attn_height}, query_blocks={query_blocks}, key_blocks={key_blocks}: "
                f"kecam's reduction ratio "
                f"int(sqrt(Q / K)) = {sr_ratio} leaves no key rows (it divides by zero)"
            )
        self.query_grid = (query_hh, int(float(query_blocks) / query_hh))
        kv_hh = query_hh // sr_ratio
        self.key_grid = (kv_hh, int(float(key_blocks) / kv_hh))
        self.table_shape = (num_heads, query_blocks, key_blocks)
        self.positional_embedding = mx.zeros(tuple(shape) if shape else self.table_shape)

    def resized_weights(self, arrays, method="bilinear"):
        _check_method(method)
        (source,) = arrays
        if tuple(self.positional_embedding.shape) != self.table_shape or source.ndim != 3:
            raise ValueError("only a (heads, Q, K) table resizes")
        heads = source.shape[0]
        sq, skv = _isqrt(source.shape[1]), _isqrt(source.shape[2])
        if sq * sq != source.shape[1] or skv * skv != source.shape[2]:
            raise ValueError(f"a table of shape {source.shape} has no square query and key grids")
        (qh, qw), (kh, kw) = self.query_grid, self.key_grid
        table = tf_resize(source.reshape(heads, sq, sq, skv * skv), (qh, qw), method)
        table = table.reshape(heads, qh * qw, skv, skv).transpose(0, 2, 3, 1)
        table = tf_resize(table, (kh, kw), method)
        return [table.reshape(heads, kh * kw, qh * qw).transpose(0, 2, 1)]

    def __call__(self, x: mx.array) -> mx.array:
        return x + self.positional_embedding.astype(x.dtype)


# --- coat --------------------------------------------------------------------------------------


def _depthwise(channels: int, kernel_size: int) -> Conv2d:
    return Conv2d(
        channels, channels, kernel_size, padding=kernel_size // 2, groups=channels, bias=True
    )


def _check_odd(kernel_size: int, what: str) -> None:
    if check_int(kernel_size, what) < 1 or kernel_size % 2 == 0:
        raise ValueError(
            f"{what}={kernel_size}: kecam pads k // 2 on each side, so only an odd kernel keeps "
            "the grid size"
        )


class ConvPositionalEncoding(KerasModule):
    """kecam's ``ConvPositionalEncoding`` (coat): a depthwise conv of the patch tokens added
    to them; the leading class token passes through.

    Weights: kecam 1.4.3 stores a DepthwiseConv2D ``name + "depth_conv"``; 1.3.1 stored the
    same variables in the layer ``name`` itself. Both load.

    Args:
        dims: channels.
        height, width: the patch grid (``N = 1 + height * width``).
        kernel_size: the odd depthwise kernel.
        name: kecam's ``name``.

    Shape:
        ``[B, 1 + H*W, C] -> same``
    """

    def __init__(
        self, dims: int, height: int, width: int, *, kernel_size: int = 3, name: str | None = None
    ):
        super().__init__(name)
        what = "ConvPositionalEncoding"
        dims, height, width = check_sizes(what, dims=dims, height=height, width=width)
        _check_odd(kernel_size, "kernel_size")
        check_size(dims * kernel_size * kernel_size, f"{what}: kernel_size={kernel_size}")
        self.height, self.width = height, width
        self.conv = _depthwise(dims, kernel_size)

    def keras_layers(self):
        return (
            KerasLayouts(
                (
                    (KerasLayer(self.sub("depth_conv"), "DepthwiseConv2D", self.conv),),
                    (KerasLayer(self.sub(""), "DepthwiseConv2D", self.conv),),
                ),
                ("1.4.3", "1.3.1"),
            ),
        )

    def __call__(self, x: mx.array) -> mx.array:
        batch, _, channels = x.shape
        image = x[:, 1:].reshape(batch, self.height, self.width, channels)
        image = self.conv(image) + image
        return mx.concatenate([x[:, :1], image.reshape(batch, -1, channels)], axis=1)


def _depthwise_from_keras(arrays: list[np.ndarray]) -> list[np.ndarray]:
    """1.3.1's CRPE variables (kernel, bias per conv) in MLX's depthwise layout."""
    return [a.transpose(2, 0, 1, 3) if a.ndim == 4 else a for a in arrays]


class ConvRelativePositionalEncoding(KerasModule):
    """kecam's ``ConvRelativePositionalEncoding`` (coat): ``query * dwconv(value)`` over the
    patch grid, head groups with their own kernel sizes; zeros at the class-token row.

    Weights: kecam 1.4.3 stores three DepthwiseConv2D layers ``name + "depth_conv_{i}"``;
    1.3.1 stored all six variables in the layer ``name``. Both load.

    Args:
        num_heads: heads; ``sum(head_splits)`` must equal it.
        key_dim: channels per head.
        height, width: the patch grid (``N = 1 + height * width``).
        head_splits: heads per group.
        head_kernel_size: the odd kernel of each group.
        name: kecam's ``name``.

    Shape:
        ``([B, heads, N, d], [B, heads, N, d]) -> [B, heads, N, d]``
    """

    def __init__(
        self, num_heads: int, key_dim: int, height: int, width: int, *,
        head_splits: Sequence[int] = (2, 3, 3), head_kernel_size: Sequence[int] = (3, 5, 7),
        name: str | None = None,
    ):  # fmt: skip
        super().__init__(name)
        what = "ConvRelativePositionalEncoding"
        num_heads, key_dim, height, width = check_sizes(
            what, num_heads=num_heads, key_dim=key_dim, height=height, width=width
        )
        head_splits = check_int_list(head_splits, "head_splits", what=what)
        head_kernel_size = check_int_list(head_kernel_size, "head_kernel_size", what=what)
        if len(head_splits) != len(head_kernel_size):
            raise ValueError(
                f"head_splits={head_splits} and head_kernel_size={head_kernel_size} differ in "
                "length"
            )
        if sum(head_splits) != num_heads or min(head_splits) < 1:
            raise ValueError(
                f"head_splits={head_splits} must be positive and sum to num_heads={num_heads}"
            )
        for s, k in zip(head_splits, head_kernel_size):
            _check_odd(k, "head_kernel_size")
            check_size(s * key_dim * k * k, f"{what}: head_kernel_size={head_kernel_size}")
        self.num_heads, self.key_dim, self.height, self.width = num_heads, key_dim, height, width
        self._splits = [s * key_dim for s in head_splits]
        self.convs = [_depthwise(c, k) for c, k in zip(self._splits, head_kernel_size)]

    def keras_layers(self):
        new = tuple(
            KerasLayer(self.sub(f"depth_conv_{i + 1}"), "DepthwiseConv2D", conv)
            for i, conv in enumerate(self.convs)
        )
        names = tuple(f"convs.{i}.{k}" for i in range(len(self.convs)) for k in ("weight", "bias"))
        old = (KerasLayer(self.sub(""), "Weights", self, names, transform=_depthwise_from_keras),)
        return (KerasLayouts((new, old), ("1.4.3", "1.3.1")),)

    def __call__(self, query: mx.array, value: mx.array) -> mx.array:
        batch = query.shape[0]
        value = value[:, :, 1:].transpose(0, 2, 1, 3)
        value = value.reshape(batch, self.height, self.width, self.num_heads * self.key_dim)
        bounds = np.cumsum(self._splits)[:-1].tolist()
        parts = mx.split(value, bounds, axis=-1)
        conv = mx.concatenate([c(p) for c, p in zip(self.convs, parts)], axis=-1)
        conv = conv.reshape(batch, -1, self.num_heads, self.key_dim).transpose(0, 2, 1, 3)
        return mx.pad(query[:, :, 1:] * conv, [(0, 0), (0, 0), (1, 0), (0, 0)])


# --- swin v2 -----------------------------------------------------------------------------------


def _check_finite(table: np.ndarray, what: str) -> None:
    """A constant table computed at construction: kecam computes the same NaN or inf."""
    if not np.isfinite(table).all():
        raise ValueError(f"{what}: the table is not finite (kecam returns NaN or inf)")


@functools.lru_cache(maxsize=32)
def _shared_relative_index(height: int, width: int) -> mx.array:
    """``xy_relative_index`` as one read-only array per window size, shared by every block
    (a swin v2 window of 24 has a 2.6 MB table; Base at 384 has 22 such blocks)."""
    return mx.array(xy_relative_index(height, width))


def swin_log_coords(height: int, width: int, pos_scale=-1) -> np.ndarray:
    """Swin v2's log-spaced relative coordinates, ``[(2h - 1) * (2w - 1), 2]`` float32.

    Raises:
        ValueError: when the normalisation is 0/0 or x/0 (a window or ``pos_scale`` of 1).
    """
    scale = pos_scale if isinstance(pos_scale, (list, tuple)) else (pos_scale,)
    scale = tuple(check_float(s, "pos_scale") for s in scale)
    if scale == (-1,):
        scale = (height, width)
    elif len(scale) == 1:
        scale = scale * 2
    if len(scale) != 2 or 1 in scale:
        raise ValueError(
            f"pos_scale={pos_scale!r} with a {height}x{width} window: kecam normalises by "
            f"pos_scale - 1 = {[s - 1 for s in scale]}, and a 0 there gives NaN or inf"
        )
    hh, ww = np.meshgrid(
        np.arange(-height + 1, height), np.arange(-width + 1, width), indexing="ij"
    )
    coords = np.stack([hh, ww], axis=-1).astype("float32")
    coords = coords * 8 / [float(scale[0] - 1), float(scale[1] - 1)]
    coords = np.sign(coords) * np.log(1.0 + np.abs(coords)) / (np.log(2.0) * 3.0)
    return coords.reshape(-1, 2).astype(np.float32)


class PairWiseRelativePositionalEmbedding(KerasModule):
    """kecam 1.3.1's ``PairWiseRelativePositionalEmbedding`` (swin v2): no weights; returns the
    log-spaced relative coordinate table and the pair index of a window, both constants.

    The swin v2 block feeds the table to its meta MLP (1.3.1's ``meta_dense_1`` / ``_2``) and
    gathers the result with the index; ``MlpPairwisePositionalEmbedding`` is the 1.4.3 form
    that holds that MLP.

    Args:
        height, width: the window.
        pos_scale: the window the coordinates are normalised by (``-1``: this one), an int or
            a pair.
        name: the Keras layer name.

    Shape:
        ``[B, h, w, C] -> ([(2h - 1) * (2w - 1), 2], [h*w, h*w])``
    """

    def __init__(self, height: int, width: int, *, pos_scale=-1, name: str | None = None):
        super().__init__(name)
        what = "PairWiseRelativePositionalEmbedding"
        height, width = check_sizes(what, height=height, width=width)
        check_size((height * width) ** 2, f"{what}: a {height}x{width} window")
        self.height, self.width, self.pos_scale = height, width, pos_scale
        self._coords = mx.array(swin_log_coords(height, width, pos_scale))
        self._index = mx.array(xy_relative_index(height, width).astype(np.int32))

    def __call__(self, x: mx.array | None = None) -> tuple[mx.array, mx.array]:
        return self._coords, self._index


class MlpPairwisePositionalEmbedding(_KecamWeights):
    """kecam 1.4.3's ``MlpPairwisePositionalEmbedding``: an MLP over coordinates, added.

    Relative mode (swin v2): ``x + 16 * sigmoid(MLP(log coords)[index])`` over a window's
    pairs, with zero bias for leading extra tokens. Absolute mode: ``x + MLP(coords)`` with
    coordinates ``arange / (size // 2) - 1``. ``MLP(c) = relu(c @ hidden_weight + hidden_bias)
    @ out``. Deploy mode is kecam's folded form: ``x + deploy_bias``.

    Weights: ``hidden_weight (2, hidden)``, ``hidden_bias``, ``out (hidden, heads or C)``. A
    kecam 1.3.1 swin v2 file holds the same values in the block's ``meta_dense_1`` (kernel,
    bias) and ``meta_dense_2`` (kernel); for a layer named ``<prefix>pos_emb`` those load too.

    Args:
        dims: heads (relative) or channels (absolute).
        height, width: the window (relative) or the grid (absolute).
        hidden_dim: the MLP's hidden width.
        pos_scale: as ``PairWiseRelativePositionalEmbedding``.
        use_absolute_pos: absolute mode.
        extra_tokens: relative mode: leading tokens before the ``height * width`` window.
        compressed: absolute mode on tokens ``[B, H*W, C]`` instead of ``[B, H, W, C]``.
        deploy_shape: deploy mode: the input shape without batch (``deploy_bias`` is
            ``(1, *deploy_shape)``).
        name: the Keras layer name.

    Shape:
        relative ``[B, heads, Q, Q] -> same``; absolute ``[B, H, W, C]`` or ``[B, H*W, C]``
    """

    def __init__(
        self, dims: int, height: int, width: int, *, hidden_dim: int = 512, pos_scale=-1,
        use_absolute_pos: bool = False, extra_tokens: int = 0, compressed: bool = False,
        deploy_shape: Sequence[int] | None = None, name: str | None = None,
    ):  # fmt: skip
        super().__init__(name)
        self.is_deploy_mode = deploy_shape is not None
        if self.is_deploy_mode:
            self.deploy_bias = mx.zeros((1, *deploy_shape))
            return
        what = "MlpPairwisePositionalEmbedding"
        dims, height, width, hidden_dim = check_sizes(
            what, dims=dims, height=height, width=width, hidden_dim=hidden_dim
        )
        extra_tokens = check_int(extra_tokens, "extra_tokens", minimum=0, what=what)
        check_bools(what, use_absolute_pos=use_absolute_pos, compressed=compressed)
        check_size(hidden_dim * max(dims, 2 * height * width), f"{what}: hidden_dim={hidden_dim}")
        if not use_absolute_pos:
            check_size((height * width + extra_tokens) ** 2 * dims, f"{what}: the pairwise bias")
        self.use_absolute_pos, self.extra_tokens = use_absolute_pos, extra_tokens
        if use_absolute_pos:
            if min(height, width) < 2:
                raise ValueError(
                    f"a {height}x{width} grid: kecam divides the coordinates by size // 2 = 0"
                )
            hh, ww = np.meshgrid(range(height), range(width), indexing="ij")
            coords = np.stack([hh, ww], axis=-1).astype("float32")
            coords = coords / [height // 2, width // 2] - 1
            self._coords = mx.array(coords.reshape(-1, 2) if compressed else coords, mx.float32)
        else:
            self._coords = mx.array(swin_log_coords(height, width, pos_scale))
            self._index = _shared_relative_index(height, width)
        limit = math.sqrt(6 / (2 + hidden_dim))
        self.hidden_weight = mx.random.uniform(-limit, limit, (2, hidden_dim))
        self.hidden_bias = mx.zeros((hidden_dim,))
        limit = math.sqrt(6 / (hidden_dim + dims))
        self.out = mx.random.uniform(-limit, limit, (hidden_dim, dims))

    @property
    def _weight_names(self) -> tuple[str, ...]:
        return ("deploy_bias",) if self.is_deploy_mode else ("hidden_weight", "hidden_bias", "out")

    def keras_layers(self):
        layer = super().keras_layers()
        if self.is_deploy_mode or not (self.name or "").endswith("pos_emb"):
            return layer
        prefix = self.name[: -len("pos_emb")]
        old = (
            KerasLayer(prefix + "meta_dense_1", "Weights", self, ("hidden_weight", "hidden_bias")),
            KerasLayer(prefix + "meta_dense_2", "Weights", self, ("out",)),
        )
        return (KerasLayouts((layer, old), ("1.4.3", "1.3.1")),)

    def bias(self) -> mx.array:
        """The bias the layer adds (without the batch axis)."""
        if self.is_deploy_mode:
            return self.deploy_bias[0]
        bias = relu(self._coords @ self.hidden_weight + self.hidden_bias) @ self.out
        if self.use_absolute_pos:
            return bias
        bias = mx.sigmoid(mx.take(bias, self._index, axis=0)) * 16.0  # [hw, hw, heads]
        if self.extra_tokens:
            pad = self.extra_tokens
            bias = mx.pad(bias, [(pad, 0), (pad, 0), (0, 0)])
        return bias.transpose(2, 0, 1)

    def __call__(self, x: mx.array) -> mx.array:
        return x + self.bias().astype(x.dtype)


# --- volo --------------------------------------------------------------------------------------


class PositionalEmbedding(_KecamWeights):
    """kecam's ``PositionalEmbedding`` (volo; beit/vit absolute): a learned ``x + table``.

    Image form: a ``(1, H, W, C)`` table. Token form: a ``(1, N, C)`` table whose trailing
    ``height * width`` tokens are a grid (resized as one) and whose leading tokens (class
    tokens) are copied unchanged when resizing.

    Args:
        dims: channels.
        height, width: the grid.
        num_tokens: token form with this many tokens (``None``: image form).
        name: the Keras layer name.

    Shape:
        ``[B, H, W, C] -> same`` or ``[B, N, C] -> same``
    """

    _weight_names = ("positional_embedding",)

    def __init__(
        self, dims: int, height: int, width: int, *, num_tokens: int | None = None,
        name: str | None = None,
    ):  # fmt: skip
        super().__init__(name)
        what = "PositionalEmbedding"
        dims, height, width = check_sizes(what, dims=dims, height=height, width=width)
        if num_tokens is not None:
            num_tokens = check_int(num_tokens, "num_tokens", minimum=1, what=what)
        check_size(dims * (num_tokens or height * width), f"{what}: the table")
        self.height, self.width, self.num_tokens = height, width, num_tokens
        shape = (1, height, width, dims) if num_tokens is None else (1, num_tokens, dims)
        self.positional_embedding = mx.random.truncated_normal(-2, 2, shape) * 0.2

    def resized_weights(self, arrays, method="bilinear"):
        _check_method(method)
        (source,) = arrays
        if self.num_tokens is None:
            if source.ndim != 4:
                raise ValueError(f"a table of shape {source.shape} is not (1, H, W, C)")
            return [tf_resize(source, (self.height, self.width), method)]
        if source.ndim != 3:
            raise ValueError(f"a table of shape {source.shape} is not (1, N, C)")
        side = _isqrt(source.shape[1])  # kecam assumes a square source grid
        grid = source[:, -side * side :].reshape(1, side, side, -1)
        grid = tf_resize(grid, (self.height, self.width), method)
        grid = grid.reshape(1, self.height * self.width, -1)
        return [np.concatenate([source[:, : -side * side], grid], axis=1)]

    def __call__(self, x: mx.array) -> mx.array:
        return x + self.positional_embedding.astype(x.dtype)


# --- edgenext ----------------------------------------------------------------------------------


def fourier_features(height: int, width: int, filters: int, temperature: float) -> np.ndarray:
    """EdgeNeXt's sin/cos grid ``[H, W, 2 * filters]`` (y part, then x part), float32 as
    kecam computes it."""
    epsilon, scale = 1e-6, 2 * math.acos(-1.0)
    hh, ww = np.arange(height, dtype="float32"), np.arange(width, dtype="float32")
    hh = (hh + 1) / (float(height) + epsilon) * scale
    ww = (ww + 1) / (float(width) + epsilon) * scale
    dim_t = float(temperature) ** (2 * (np.arange(filters, dtype="float32") // 2) / filters)
    pos_hh, pos_ww = hh[:, None] / dim_t, ww[:, None] / dim_t
    pos_hh = np.stack([np.sin(pos_hh[:, 0::2]), np.cos(pos_hh[:, 1::2])], axis=-1)
    pos_ww = np.stack([np.sin(pos_ww[:, 0::2]), np.cos(pos_ww[:, 1::2])], axis=-1)
    pos_hh = np.repeat(pos_hh.reshape(height, 1, -1), width, axis=1)
    pos_ww = np.repeat(pos_ww.reshape(1, width, -1), height, axis=0)
    return np.concatenate([pos_hh, pos_ww], axis=-1).astype(np.float32)


class PositionalEncodingFourier(_KecamWeights):
    """kecam's ``PositionalEncodingFourier`` (edgenext): ``x + fourier(H, W) @ ww + bb``.

    Args:
        dims: channels.
        height, width: the grid.
        filters: sin/cos features per axis (even).
        temperature: the frequency base.
        name: the Keras layer name.

    Shape:
        ``[B, H, W, C] -> same``
    """

    _weight_names = ("ww", "bb")

    def __init__(
        self, dims: int, height: int, width: int, *, filters: int = 32,
        temperature: float = 1e4, name: str | None = None,
    ):  # fmt: skip
        super().__init__(name)
        what = "PositionalEncodingFourier"
        dims, height, width = check_sizes(what, dims=dims, height=height, width=width)
        filters = check_int(filters, "filters", what=what)
        temperature = check_float(temperature, "temperature", above=0, what=what)
        check_size(2 * filters * max(dims, height * width), f"{what}: filters={filters}")
        if filters < 2 or filters % 2:
            raise ValueError(
                f"filters={filters}: kecam interleaves sin and cos pairs, so it must be a "
                f"positive even number (dims={dims}, height={height}, width={width} positive)"
            )
        grid = fourier_features(height, width, filters, temperature)
        _check_finite(grid, f"{what}: temperature={temperature}, filters={filters}")
        self._grid = mx.array(grid)
        limit = math.sqrt(6 / (2 * filters + dims))
        self.ww = mx.random.uniform(-limit, limit, (2 * filters, dims))
        self.bb = mx.zeros((dims,))

    def __call__(self, x: mx.array) -> mx.array:
        return x + (self._grid @ self.ww + self.bb).astype(x.dtype)


# --- eva02 rotary ------------------------------------------------------------------------------


def _rotary_tables(height, width, channels, num_heads, ref_feature_shape, temperature):
    hh, ww = np.arange(height, dtype="float32"), np.arange(width, dtype="float32")
    if ref_feature_shape is not None and ref_feature_shape > 0:
        hh = hh / height * ref_feature_shape
        ww = ww / width * ref_feature_shape
    heads = num_heads if num_heads > 0 else 1
    dim = channels // heads // 2
    freqs = 1.0 / (temperature ** (np.arange(0, dim, 2).astype("float32") / dim))
    freqs_h = np.repeat(hh[:, None] * freqs[None, :], 2, axis=-1)
    freqs_w = np.repeat(ww[:, None] * freqs[None, :], 2, axis=-1)
    rows, cols = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    grid = np.concatenate([freqs_h[rows], freqs_w[cols]], axis=-1).reshape(height * width, -1)
    sin, cos = np.tile(np.sin(grid), [1, heads]), np.tile(np.cos(grid), [1, heads])
    if sin.shape[-1] != channels:
        raise ValueError(
            f"channels={channels} with num_heads={num_heads}: kecam's rotary table has "
            f"{sin.shape[-1]} channels, which do not broadcast to {channels}"
        )
    sin, cos = sin.astype(np.float32), cos.astype(np.float32)
    _check_finite(sin + cos, f"temperature={temperature}, ref_feature_shape={ref_feature_shape}")
    return mx.array(sin), mx.array(cos)


def _rotate_half(x: mx.array) -> mx.array:
    """Interleaved pairs ``(x0, x1) -> (-x1, x0)``."""
    pairs = x.reshape(*x.shape[:-1], -1, 2)
    return mx.stack([-pairs[..., 1], pairs[..., 0]], axis=-1).reshape(x.shape)


class PositionalEncodingFourierRot(KerasModule):
    """kecam 1.4.3's ``PositionalEncodingFourierRot`` (eva02): 2-D rotary embedding of the
    patch tokens; leading class tokens pass through, trailing register tokens (ViT-5) get their
    own grid. No weights.

    Args:
        channels: the last axis (``heads * head_dim``), even.
        height, width: the patch grid.
        num_heads: heads the channels split into (``-1``: one).
        with_cls_token: one leading class token.
        num_reg_tokens: trailing register tokens (a square number).
        temperature, reg_temperature: frequency bases.
        ref_feature_shape, reg_ref_feature_shape: positions are scaled to this grid size.
        name: the Keras layer name.

    Shape:
        ``[B, ..., cls + H*W + reg, C] -> same``
    """

    def __init__(
        self, channels: int, height: int, width: int, *, num_heads: int = -1,
        with_cls_token: bool = True, num_reg_tokens: int = 0, temperature: float = 1e4,
        reg_temperature: float = 100, ref_feature_shape: int | None = 16,
        reg_ref_feature_shape: int | None = 14, name: str | None = None,
    ):  # fmt: skip
        super().__init__(name)
        what = "PositionalEncodingFourierRot"
        channels, height, width = check_sizes(what, channels=channels, height=height, width=width)
        num_heads = check_int(num_heads, "num_heads", what=what)
        num_reg_tokens = check_int(num_reg_tokens, "num_reg_tokens", what=what)
        with_cls_token = check_bool(with_cls_token, "with_cls_token", what=what)
        temperature = check_float(temperature, "temperature", above=0, what=what)
        reg_temperature = check_float(reg_temperature, "reg_temperature", above=0, what=what)
        for arg, value in (
            ("ref_feature_shape", ref_feature_shape),
            ("reg_ref_feature_shape", reg_ref_feature_shape),
        ):
            if value is not None:
                check_float(value, arg, what=what)
        check_size(height * width * channels, f"{what}: the rotary table")
        if min(channels, height, width) < 1 or channels % 2 or num_reg_tokens < 0:
            raise ValueError(
                f"channels={channels} must be positive and even (kecam rotates channel pairs), "
                f"height={height}, width={width} positive, num_reg_tokens={num_reg_tokens} >= 0"
            )
        self.num_cls = 1 if with_cls_token else 0
        self.num_patches, self.num_reg = height * width, num_reg_tokens
        self._sin, self._cos = _rotary_tables(
            height, width, channels, num_heads, ref_feature_shape, float(temperature)
        )
        if num_reg_tokens > 0:
            side = _isqrt(num_reg_tokens)
            if side * side != num_reg_tokens:
                raise ValueError(f"num_reg_tokens={num_reg_tokens} must be a square number")
            self._reg_sin, self._reg_cos = _rotary_tables(
                side, side, channels, num_heads, reg_ref_feature_shape, float(reg_temperature)
            )

    def __call__(self, x: mx.array) -> mx.array:
        cls, start = self.num_cls, self.num_cls + self.num_patches
        patches = x[..., cls:start, :]
        sin, cos = self._sin.astype(x.dtype), self._cos.astype(x.dtype)
        out = [x[..., :cls, :]] if cls else []
        out.append(patches * cos + _rotate_half(patches) * sin)
        if self.num_reg:
            regs = x[..., start:, :]
            sin, cos = self._reg_sin.astype(x.dtype), self._reg_cos.astype(x.dtype)
            out.append(regs * cos + _rotate_half(regs) * sin)
        return mx.concatenate(out, axis=-2) if len(out) > 1 else out[0]


__all__ = [
    "RESIZE_METHODS",
    "BiasPositionalEmbedding",
    "ConvPositionalEncoding",
    "ConvRelativePositionalEncoding",
    "MlpPairwisePositionalEmbedding",
    "MultiHeadPositionalEmbedding",
    "MultiHeadRelativePositionalEmbedding",
    "MultiHeadRelativePositionalKernelBias",
    "PairWiseRelativePositionalEmbedding",
    "PositionalEmbedding",
    "PositionalEncodingFourier",
    "PositionalEncodingFourierRot",
    "RelativePositionalEmbedding",
    "fourier_features",
    "swin_log_coords",
    "tf_resize",
    "xy_relative_index",
]
