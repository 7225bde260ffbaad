"""CoaT (kecam ``coat/coat.py``): the family builder ``CoaT`` and five models.

Four serial stages (a patch conv, a class token and ``serial_block``\\ s whose convolutional
positional encodings ``cpe{i}_`` / ``crpe{i}_`` are shared by the stage's blocks), then, for
CoaTTiny and CoaTMini, ``parallel_depth`` parallel blocks over stages 2-4 that mix their
attention outputs across scales with ``tf.image.resize(bilinear)``. Lite models classify
``out_ln``'s class token; the parallel ones the three stages' normalised class tokens through
a ``Conv1D(1, 1)`` (``aggregate``). ``factor_attention_conv_relative_positional_encoding`` is
kecam's block function (a face over ``layers.FactorAttention``).

kecam's ``drop_connect_rate`` reaches no block (kecam's ``CoaT`` does not pass it on): it is
taken and changes nothing, as in kecam.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import mlx.core as mx
import mlx.nn as nn

from .. import attention_layers
from ..layers import (
    Activation,
    ClassToken,
    CoaTConvPositionalEncoding,
    CoaTConvRelativePositionalEncoding,
    ConvRelativePositionalEncoding,
    FactorAttention,
    KerasLayer,
    KerasModule,
)
from ..layers.utils import check_input_shape
from ..ops.resize import resize_bilinear
from ._base import ImageClassifier, channels_last
from ._glue import ClassifierHead, conv_output_size
from ._registry import Family, ModelSpec, register_family

# kecam 1.4.3 coat/coat.py PRETRAINED_DICT: {model.name: {tag: md5}}.
PRETRAINED_DICT = {
    "coat_lite_tiny": {"imagenet": "e45487e7bfb44faac97b1af51f8bbd01"},
    "coat_lite_mini": {"imagenet": "e5e3f5e4b86765ee75f8bf03973d70a0"},
    "coat_lite_small": {"imagenet": "eddffc46a64eb0a21b7ecc057f231756"},
    "coat_tiny": {"imagenet": "6418d9580ad9ea0a6755c77d8d7bad49"},
    "coat_mini": {"imagenet": "dc284967f6bd32df8e1e03074b2d773d"},
}


def _square_grid(patches: int, what: str) -> tuple[int, int]:
    """kecam's grid of a positional encoding built without ``input_height``: ``floor(sqrt(N))``
    rows and ``N // rows`` columns, which must hold every patch token (kecam reshapes)."""
    height = int(float(patches) ** 0.5)
    width = patches // max(height, 1)
    if height < 1 or height * width != patches:
        raise ValueError(
            f"{what}: {patches} patch tokens are not a {height} x {width} grid (kecam infers "
            "the grid as floor(sqrt(N)) rows; with use_shared_cpe/use_shared_crpe False the "
            "input must be square)"
        )
    return height, width


def factor_attention_conv_relative_positional_encoding(
    input_shape, shared_crpe=None, num_heads=8, qkv_bias=True, name=""
) -> FactorAttention:
    """kecam ``coat.factor_attention_conv_relative_positional_encoding`` on tokens
    ``input_shape = (1 + h * w, C)``; see ``layers.FactorAttention``. ``shared_crpe`` is a
    ``ConvRelativePositionalEncoding`` (``attention_layers.ConvRelativePositionalEncoding``),
    whose grid is the block's; without it the block builds its own (``name + "crpe_"``), on
    kecam's grid of ``floor(sqrt(h * w))`` rows."""
    what = "factor_attention_conv_relative_positional_encoding"
    tokens, channels = check_input_shape(input_shape, 2, what)
    if shared_crpe is not None:
        if not isinstance(shared_crpe, ConvRelativePositionalEncoding):
            raise TypeError(
                f"{what}: shared_crpe must be a ConvRelativePositionalEncoding or None, got "
                f"{type(shared_crpe).__name__}"
            )
        height, width = shared_crpe.height, shared_crpe.width
        if height * width != tokens - 1:
            raise ValueError(
                f"{what}: shared_crpe's {height} x {width} grid does not hold the "
                f"{tokens - 1} patch tokens of input_shape={tuple(input_shape)}"
            )
    else:
        height, width = _square_grid(tokens - 1, what)
    module = FactorAttention(
        channels, height, width, num_heads=num_heads, qkv_bias=qkv_bias, crpe=shared_crpe,
        name=name,
    )  # fmt: skip
    module.expect_input_shape(tuple(input_shape))
    return module


class CoaTBlock(KerasModule):
    """kecam's ``serial_block`` (``cpe_norm_crpe`` then ``res_mlp_block``); a parallel block
    runs the two halves apart (``attend``, then ``mlp`` on the mixed attention).

    Args:
        dims: channels.
        height, width: the stage's patch grid.
        cpe: the stage's shared ``ConvPositionalEncoding``, or ``None`` for the block's own
            (``name + "cpe_"``, kecam's square grid).
        crpe: the stage's shared ``ConvRelativePositionalEncoding``, or ``None`` (the
            attention's own, kecam's square grid).
        num_heads, mlp_ratio, activation: kecam's arguments.
        head_splits, head_kernel_size: the own ``crpe``'s.
        name: kecam's block prefix (``"serial1_block1_"``, ``"parallel1_2_"``).

    Shape:
        ``[B, 1 + H*W, dims] -> [B, 1 + H*W, dims]``
    """

    def __init__(
        self, dims: int, height: int, width: int, *, cpe: nn.Module | None,
        crpe: ConvRelativePositionalEncoding | None, num_heads: int, mlp_ratio: float,
        activation: str, head_splits: Sequence[int], head_kernel_size: Sequence[int], name: str,
    ):  # fmt: skip
        super().__init__(name)
        shape = (1 + height * width, dims)
        if cpe is None:
            own = _square_grid(height * width, "ConvPositionalEncoding")
            cpe = CoaTConvPositionalEncoding(
                dims, *own, name=self.sub("cpe_"), legacy_name=self.sub("cpe")
            )
        self.cpe = cpe
        self.norm1 = attention_layers.layer_norm(shape, name=self.sub("norm1"))
        attn_grid = (
            (crpe.height, crpe.width)
            if crpe is not None
            else _square_grid(height * width, "ConvRelativePositionalEncoding")
        )
        self.attn = FactorAttention(
            dims, *attn_grid, num_heads=num_heads, crpe=crpe, head_splits=head_splits,
            head_kernel_size=head_kernel_size, name=self.sub("factoratt_crpe_"),
        )  # fmt: skip
        self.norm2 = attention_layers.layer_norm(shape, name=self.sub("norm2"))
        hidden = int(dims * mlp_ratio)  # Keras's Dense truncates a float width
        self.mlp_dense_0 = nn.Linear(dims, hidden)
        self.mlp_act = Activation(activation, dims=hidden, name=self.sub("mlp_"))
        self.mlp_dense_1 = nn.Linear(hidden, dims)

    def keras_layers(self):
        return (
            KerasLayer(self.sub("mlp_dense_0"), "Dense", self.mlp_dense_0),
            KerasLayer(self.sub("mlp_dense_1"), "Dense", self.mlp_dense_1),
        )

    @property
    def output_name(self) -> str:
        return self.sub("output")

    def attend(self, x: mx.array) -> tuple[mx.array, mx.array]:
        """kecam's ``cpe_norm_crpe``: ``(cpe(x), attention(norm1(cpe(x))))``."""
        cpe_out = self.cpe(x)
        return cpe_out, self.attn(self.norm1(cpe_out))

    def mlp(self, cpe_out: mx.array, crpe_out: mx.array) -> mx.array:
        """kecam's ``res_mlp_block``: the residual sum, then the MLP residual."""
        x = cpe_out + crpe_out
        return x + self.mlp_dense_1(self.mlp_act(self.mlp_dense_0(self.norm2(x))))

    def __call__(self, x: mx.array) -> mx.array:
        return self.mlp(*self.attend(x))


Record = Callable[[str, mx.array], None]


class CoaTSerialStage(KerasModule):
    """A serial stage: kecam's ``patch_embed`` (a ``patch_size`` conv with bias, VALID, the
    patches as tokens, ``serial{i}_patch_ln``), ``serial{i}_class_token``, the stage's shared
    ``cpe{i}_`` / ``crpe{i}_`` (1.3.1: ``cpe_{i}`` / ``crpe_{i}``) and ``depth`` ``CoaTBlock``.

    Args:
        input_shape: ``(H, W, C)`` of the image or of the previous stage's patch grid.
        stage: kecam's 1-based stage index.
        shared_used: whether any block uses the stage's shared encodings (kecam creates their
            weights on the first call: a stage of no blocks that no parallel block reads has
            none).
        Others: kecam's ``CoaT`` arguments for the stage.

    Shape:
        ``[B, H, W, C]`` (stage 1) or the previous stage's ``[B, 1 + H*W, C]`` ->
        ``[B, 1 + h*w, embed_dim]``
    """

    def __init__(
        self, input_shape: tuple[int, int, int], embed_dim: int, *, stage: int, depth: int,
        patch_size: int, use_shared_cpe: bool, use_shared_crpe: bool, shared_used: bool,
        num_heads: int, mlp_ratio: float, head_splits: Sequence[int],
        head_kernel_size: Sequence[int], activation: str,
    ):  # fmt: skip
        super().__init__(f"serial{stage}_")
        height, width, channels = input_shape
        self.grid_in = (height, width)
        self.patch = attention_layers.conv2d_no_bias(
            input_shape, embed_dim, patch_size, strides=patch_size, use_bias=True,
            name=self.sub("patch_"),
        )  # fmt: skip
        self.height, self.width = conv_output_size(self.patch, height, width)
        self.dims = embed_dim
        tokens = self.height * self.width
        self.patch_ln = attention_layers.layer_norm((tokens, embed_dim), name=self.sub("patch_"))
        self.class_token = ClassToken(embed_dim, name=self.sub("class_token"))
        if embed_dim % num_heads:
            raise ValueError(
                f"num_heads={num_heads} must divide embed_dims[{stage - 1}]={embed_dim} "
                "(kecam reshapes the attention's channels into heads)"
            )
        grid = (self.height, self.width)
        splits = {"head_splits": head_splits, "head_kernel_size": head_kernel_size}
        self.cpe, self.crpe = None, None
        if use_shared_cpe and shared_used:
            self.cpe = CoaTConvPositionalEncoding(
                embed_dim, *grid, name=f"cpe{stage}_", legacy_name=f"cpe_{stage}"
            )
        if use_shared_crpe and shared_used:
            self.crpe = CoaTConvRelativePositionalEncoding(
                num_heads, embed_dim // num_heads, *grid, **splits, name=f"crpe{stage}_",
                legacy_name=f"crpe_{stage}",
            )  # fmt: skip
        self.blocks = [
            CoaTBlock(
                embed_dim,
                *grid,
                cpe=self.cpe,
                crpe=self.crpe,
                num_heads=num_heads,
                mlp_ratio=mlp_ratio,
                activation=activation,
                **splits,
                name=self.sub(f"block{index + 1}_"),
            )
            for index in range(depth)
        ]

    @property
    def recorded_names(self) -> list[str]:
        """The Keras names of the outputs its call records, in order."""
        names = [self.patch_ln.sub("ln"), self.class_token.name]
        return names + [block.output_name for block in self.blocks]

    def __call__(self, x: mx.array, record: Record | None = None) -> mx.array:
        if x.ndim == 3:  # the previous stage's tokens: its class token dropped
            x = x[:, 1:].reshape(x.shape[0], *self.grid_in, x.shape[-1])
        x = self.patch(x)
        x = self.patch_ln(x.reshape(x.shape[0], -1, x.shape[-1]))
        outputs = [(self.patch_ln.sub("ln"), x)]
        x = self.class_token(x)
        outputs.append((self.class_token.name, x))
        for block in self.blocks:
            x = block(x)
            outputs.append((block.output_name, x))
        if record is not None:
            for name, value in outputs:
                record(name, value)
        return x


# kecam's parallel_block adds each branch's attention to the other two resampled to its grid,
# in this order (branch: the two others, as kecam writes the sums)
_MIX_ORDER = ((1, 2), (2, 0), (1, 0))


class CoaTParallelBlock(KerasModule):
    """kecam's ``parallel_block``: stages 2-4 (branches ``name + "2_"`` ... ``"4_"``, sharing
    the serial stages' ``cpe`` / ``crpe``) attend apart; each branch's attention is added to
    the other two's, bilinearly resized to its grid (``coat.resample``: TF's
    ``tf.image.resize``, the class tokens added as they are), then each runs its MLP. Stage 1
    passes through.

    Args:
        stages: the serial stages (their grids, channels and shared encodings).
        mlp_ratios: kecam's per-stage ratios.
        num_heads, activation, head_splits, head_kernel_size: kecam's arguments.
        name: ``"parallel{p}_"``.

    Shape:
        four ``[B, 1 + h_i*w_i, C_i]`` -> the same four
    """

    def __init__(
        self, stages: Sequence[CoaTSerialStage], *, mlp_ratios: Sequence[int], num_heads: int,
        activation: str, head_splits: Sequence[int], head_kernel_size: Sequence[int], name: str,
    ):  # fmt: skip
        super().__init__(name)
        self.grids = [(s.height, s.width) for s in stages[1:]]
        self.branches = [
            CoaTBlock(
                stage.dims,
                stage.height,
                stage.width,
                cpe=stage.cpe,
                crpe=stage.crpe,
                num_heads=num_heads,
                mlp_ratio=ratio,
                activation=activation,
                head_splits=head_splits,
                head_kernel_size=head_kernel_size,
                name=self.sub(f"{index + 2}_"),
            )
            for index, (stage, ratio) in enumerate(zip(stages[1:], mlp_ratios[1:]))
        ]

    @property
    def recorded_names(self) -> list[str]:
        """The Keras names of the outputs its call records, in order."""
        return [branch.output_name for branch in self.branches]

    def _resample(self, tokens: mx.array, source: int, target: int) -> mx.array:
        """kecam's ``resample``: branch ``source``'s patch tokens resized to ``target``'s grid,
        its class token in front."""
        image = tokens[:, 1:].reshape(tokens.shape[0], *self.grids[source], tokens.shape[-1])
        image = resize_bilinear(image, self.grids[target])
        image = image.reshape(tokens.shape[0], -1, tokens.shape[-1])
        return mx.concatenate([tokens[:, :1], image], axis=1)

    def __call__(self, xs: Sequence[mx.array], record: Record | None = None) -> list[mx.array]:
        attended = [branch.attend(x) for branch, x in zip(self.branches, xs[1:])]
        crpe = [out for _, out in attended]
        outs = [xs[0]]
        for target, ((cpe_out, _), branch) in enumerate(zip(attended, self.branches)):
            first, second = _MIX_ORDER[target]
            mixed = crpe[target] + self._resample(crpe[first], first, target)
            mixed = mixed + self._resample(crpe[second], second, target)
            outs.append(branch.mlp(cpe_out, mixed))
            if record is not None:
                record(branch.output_name, outs[-1])
        return outs


class CoaTPool(KerasModule):
    """kecam's CoaT head before ``predictions``: Lite models ``out_ln(stage 4)[:, 0]``; the
    parallel ones the class tokens of ``out_1_ln`` ... ``out_3_ln`` (stages 2-4) weighted by
    ``Conv1D(1, 1, name="aggregate")``.

    Shape:
        four ``[B, 1 + h_i*w_i, C]`` -> ``[B, C]``
    """

    def __init__(self, stages: Sequence[CoaTSerialStage], *, parallel: bool):
        super().__init__("")
        self.parallel = parallel
        shapes = [(1 + s.height * s.width, s.dims) for s in stages]
        if parallel:
            self.out_lns = [
                attention_layers.layer_norm(shape, name=f"out_{index + 1}_")
                for index, shape in enumerate(shapes[1:])
            ]
            self.aggregate = nn.Conv1d(len(self.out_lns), 1, 1)
        else:
            self.out_ln = attention_layers.layer_norm(shapes[-1], name="out_")

    def keras_layers(self):
        return (KerasLayer("aggregate", "Conv1D", self.aggregate),) if self.parallel else ()

    @property
    def recorded_names(self) -> list[str]:
        """The Keras names of the outputs its call records, in order."""
        if not self.parallel:
            return [self.out_ln.sub("ln")]
        return [norm.sub("ln") for norm in self.out_lns] + ["aggregate"]

    def __call__(self, xs: Sequence[mx.array], record: Record | None = None) -> mx.array:
        record = record or (lambda name, value: None)
        if not self.parallel:
            x = self.out_ln(xs[-1])
            record(self.out_ln.sub("ln"), x)
            return x[:, 0]
        tokens = []
        for norm, x in zip(self.out_lns, xs[1:]):
            x = norm(x)
            record(norm.sub("ln"), x)
            tokens.append(x[:, :1])
        x = self.aggregate(mx.concatenate(tokens, axis=1).swapaxes(1, 2))  # [B, C, 1]
        record("aggregate", x)
        return x[:, :, 0]


class CoaTModel(ImageClassifier):
    """kecam's ``CoaT`` model; arguments are those of :func:`CoaT`.

    ``forward_intermediates`` keys kecam's layer names (``serial1_patch_ln``,
    ``serial1_class_token``, ``serial1_block2_output``, ``parallel6_4_output``, ``out_ln`` or
    ``out_1_ln`` ... and ``aggregate``), then ``"features"``: what ``predictions`` reads, kecam's
    ``num_classes=0`` output (an unnamed slice in kecam); ``output_names`` lists them in that
    order. With ``out_features`` the model returns a tuple of those stages' patch tokens, as
    kecam's does (no head).

    Shape:
        ``[B, H, W, 3] -> [B, num_classes]``; ``forward_features``: ``[B, embed_dims[-1]]``
    """

    def __init__(
        self, *, serial_depths: Sequence[int], embed_dims: Sequence[int],
        mlp_ratios: Sequence[int], parallel_depth: int, patch_size: int, num_heads: int,
        head_splits: Sequence[int], head_kernel_size: Sequence[int], use_shared_cpe: bool,
        use_shared_crpe: bool, out_features: Sequence[int] | None,
        input_shape: Sequence[int], num_classes: int, activation: str,
        classifier_activation: str | None,
    ):  # fmt: skip
        input_shape = channels_last(input_shape)
        super().__init__(input_shape)
        if not len(serial_depths) == len(embed_dims) == len(mlp_ratios):
            raise ValueError(
                f"serial_depths={list(serial_depths)}, embed_dims={list(embed_dims)} and "
                f"mlp_ratios={list(mlp_ratios)} must have one entry per stage"
            )
        if parallel_depth > 0 and (len(embed_dims) != 4 or len(set(embed_dims[1:])) != 1):
            raise ValueError(
                f"parallel_depth={parallel_depth} mixes stages 2-4, which need one width: "
                f"embed_dims={list(embed_dims)} (kecam adds their attention outputs)"
            )
        self.stages = []
        shape = input_shape
        common = {
            "num_heads": num_heads, "head_splits": head_splits,
            "head_kernel_size": head_kernel_size, "activation": activation,
        }  # fmt: skip
        for index, (depth, dims, ratio) in enumerate(zip(serial_depths, embed_dims, mlp_ratios)):
            stage = CoaTSerialStage(
                shape, dims, stage=index + 1, depth=depth,
                patch_size=patch_size if index == 0 else 2, use_shared_cpe=use_shared_cpe,
                use_shared_crpe=use_shared_crpe, mlp_ratio=ratio,
                shared_used=depth > 0 or (parallel_depth > 0 and index > 0), **common,
            )  # fmt: skip
            self.stages.append(stage)
            shape = (stage.height, stage.width, dims)
        self.parallel = [
            CoaTParallelBlock(
                self.stages, mlp_ratios=mlp_ratios, name=f"parallel{index + 1}_", **common
            )
            for index in range(parallel_depth)
        ]
        for module in (*self.stages, *self.parallel):
            self.output_names.extend(module.recorded_names)
        object.__setattr__(self, "out_features", None)
        if out_features is not None:
            object.__setattr__(self, "out_features", [int(i) for i in out_features])
            self.pool = None
            self._finish(ClassifierHead(embed_dims[-1], 0))
            return
        self.pool = CoaTPool(self.stages, parallel=parallel_depth > 0)
        self.output_names.extend([*self.pool.recorded_names, "features"])
        self._finish(
            ClassifierHead(embed_dims[-1], num_classes, classifier_activation=classifier_activation)
        )

    def _forward(self, x: mx.array, record: Record | None = None):
        x = self._as_input(x)
        outs = []
        for stage in self.stages:
            x = stage(x, record)
            outs.append(x)
        for block in self.parallel:
            outs = block(outs, record)
        if self.out_features is not None:
            return tuple(outs[i][:, 1:] for i in self.out_features)
        features = self.pool(outs, record)
        if record is not None:
            record("features", features)
        return features

    def forward_features(self, x: mx.array):
        """What kecam's model built with ``num_classes=0`` returns: the pooled class token(s)
        (a tuple of patch tokens with ``out_features``)."""
        return self._forward(x)

    def forward_intermediates(self, x: mx.array) -> dict[str, mx.array]:
        outputs = {}
        self._forward(x, outputs.__setitem__)
        return outputs

    def summary(self, print_fn=print) -> str:
        """kecam-like table of ``forward_intermediates``' names and output shapes (the model is
        not a sequence of layers) and the parameter count; printed with ``print_fn`` (``None``:
        not printed) and returned. Computes shapes only (nothing runs)."""
        x = mx.zeros((1, *self.input_shape), dtype=self.dtype)
        rows = [("input", (None, *self.input_shape))]
        rows += [(n, (None, *v.shape[1:])) for n, v in self.forward_intermediates(x).items()]
        if self.head.predictions is not None:
            rows.append(("predictions", (None, self.head.num_classes)))
        width = max(len(name) for name, _ in rows)
        name = self.pretrained_cfg.get("name", type(self).__name__)
        lines = [f'Model: "{name}"', "-" * (width + 40)]
        lines += [f"{n:<{width}}  {str(s)}" for n, s in rows]
        lines += ["-" * (width + 40), f"Total params: {self.count_params():,}"]
        text = "\n".join(lines)
        if print_fn is not None:
            print_fn(text)
        return text


def _build(
    serial_depths=[2, 2, 2, 2], embed_dims=[64, 128, 256, 320], mlp_ratios=[8, 8, 4, 4],  # noqa: B006
    parallel_depth=0, patch_size=4, num_heads=8, head_splits=[2, 3, 3],  # noqa: B006
    head_kernel_size=[3, 5, 7], use_shared_cpe=True, use_shared_crpe=True,  # noqa: B006
    out_features=None, input_shape=(224, 224, 3), num_classes=1000, activation="gelu",
    drop_connect_rate=0, classifier_activation="softmax",
) -> CoaTModel:  # fmt: skip
    return CoaTModel(
        serial_depths=serial_depths, embed_dims=embed_dims, mlp_ratios=mlp_ratios,
        parallel_depth=parallel_depth, patch_size=patch_size, num_heads=num_heads,
        head_splits=head_splits, head_kernel_size=head_kernel_size,
        use_shared_cpe=use_shared_cpe, use_shared_crpe=use_shared_crpe,
        out_features=out_features, input_shape=input_shape, num_classes=num_classes,
        activation=activation, classifier_activation=classifier_activation,
    )  # fmt: skip


FAMILY = Family(
    module="coat",
    builder_name="CoaT",
    build=_build,
    pretrained_dict=PRETRAINED_DICT,
    pretrained_classes={},
    sub_release="coat",
    rescale_mode="torch",
    # kecam's CoaT(...) arguments past the architecture ones, in kecam's order
    builder_tail=(("pretrained", None), ("model_name", "coat"), ("kwargs", None)),
)

_PARALLEL = {"mlp_ratios": [4, 4, 4, 4], "parallel_depth": 6}
# kecam's constructors: `fixed` are the constructor's locals (kwargs may not repeat them).
MODELS = (
    ModelSpec("CoaTLiteTiny", "coat_lite_tiny"),
    ModelSpec("CoaTLiteMini", "coat_lite_mini", fixed={"embed_dims": [64, 128, 320, 512]}),
    ModelSpec(
        "CoaTLiteSmall",
        "coat_lite_small",
        fixed={"serial_depths": [3, 4, 6, 3], "embed_dims": [64, 128, 320, 512]},
    ),
    ModelSpec("CoaTTiny", "coat_tiny", fixed={"embed_dims": [152, 152, 152, 152], **_PARALLEL}),
    ModelSpec("CoaTMini", "coat_mini", fixed={"embed_dims": [152, 216, 216, 216], **_PARALLEL}),
)

# The constructor's explicit arguments (kecam's order and defaults; `pretrained` follows them).
CONSTRUCTOR_ARGS = (
    ("input_shape", (224, 224, 3)),
    ("num_classes", 1000),
    ("activation", "gelu"),
    ("classifier_activation", "softmax"),
)

CoaT, constructors = register_family(FAMILY, MODELS, CONSTRUCTOR_ARGS)
globals().update(constructors)

__all__ = [
    "MODELS", "PRETRAINED_DICT", "CoaT", "CoaTBlock", "CoaTModel", "CoaTParallelBlock",
    "CoaTPool", "CoaTSerialStage", "factor_attention_conv_relative_positional_encoding",
    *constructors,
]  # fmt: skip
