"""``ImageClassifier``: what every whole kecam model has (timm's and kecam's model API)."""

from __future__ import annotations

import copy
from collections.abc import Sequence

import mlx.core as mx
import mlx.nn as nn

from .. import attention_layers
from ..layers import KerasModule
from ..layers.base import ModuleTree
from ._glue import ClassifierHead


def _output_shape(y) -> tuple | list:
    """Keras's output shape, ``(None, ...)``, or a list of them for several outputs."""
    if isinstance(y, (tuple, list)):
        return [_output_shape(v) for v in y]
    return (None, *y.shape[1:])


def _param_count(module: nn.Module) -> int:
    """Every weight once, as kecam's ``count_params``: a module several blocks share (a stage's
    positional table) counts once."""
    return sum(v.size for v in ModuleTree.of(module).parameters.values())


class ImageClassifier(KerasModule):
    """A kecam image classifier: feature layers in order, then ``ClassifierHead``.

    The root has no Keras name (kecam's model name lives in ``pretrained_cfg``), so the
    loader checks every layer of a whole-model file. Subclasses build ``self.layers`` (the
    feature layers in the order they run, each with the Keras name of its output in
    ``self.output_names``) and call ``_finish``.

    Attributes:
        num_features: channels of ``forward_features``'s output.
        pretrained_cfg: name, kecam constructor, input shape, classes, preprocessing and the
            release files of the model (see ``mlx_attention.models``).
        load_report: what the last weight file filled, when the loader reports it.

    Shape:
        ``[B, H, W, 3] -> [B, num_classes]`` (the feature map for ``num_classes=0``)
    """

    def __init__(self, input_shape: Sequence[int]):
        super().__init__(None)
        self.expect_input_shape(tuple(int(v) for v in input_shape))
        self.layers: list[nn.Module] = []
        object.__setattr__(self, "output_names", [])
        object.__setattr__(self, "pretrained_cfg", {})
        object.__setattr__(self, "load_report", None)
        object.__setattr__(self, "_dtype", mx.float32)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self._input_shape

    def add(self, module: nn.Module, output_name: str) -> None:
        """Append a feature layer whose output kecam names ``output_name``."""
        self.layers.append(module)
        self.output_names.append(output_name)

    def add_layer_norm(self, shape: tuple[int, int, int], name: str) -> None:
        """kecam's ``layer_norm(name=name)`` as the next feature layer (output ``name + "ln"``)."""
        norm = attention_layers.layer_norm(shape, name=name)
        self.add(norm, norm.sub("ln"))

    def _finish(self, head: ClassifierHead) -> None:
        self.head = head
        self.num_features = head.num_features

    # --- forward ---------------------------------------------------------------------------

    def _as_input(self, x: mx.array) -> mx.array:
        self.check_input(x)
        dtype = self.dtype
        return x if x.dtype == dtype else x.astype(dtype)

    @property
    def dtype(self) -> mx.Dtype:
        """The dtype the feature layers compute in (the head stays float32, as kecam's)."""
        return self._dtype

    def set_dtype(self, dtype: mx.Dtype, predicate=lambda d: mx.issubdtype(d, mx.floating)):
        """Cast the feature layers' parameters; the head stays float32 (kecam forces it)."""
        super().set_dtype(dtype, predicate)
        self.head.set_dtype(mx.float32, predicate)
        object.__setattr__(self, "_dtype", dtype)

    def forward_features(self, x: mx.array) -> mx.array:
        """What kecam's model built with ``num_classes=0`` returns (the map before pooling)."""
        x = self._as_input(x)
        for layer in self.layers:
            x = layer(x)
        return x

    def forward_intermediates(self, x: mx.array) -> dict[str, mx.array]:
        """Every feature layer's output, keyed by kecam's Keras name of it (e.g. ``stem_ln``,
        ``stack1_block2_2_output``, ``pre_output_ln``), in order."""
        x = self._as_input(x)
        outputs = {}
        for layer, name in zip(self.layers, self.output_names):
            x = layer(x)
            outputs[name] = x
        return outputs

    def forward_head(self, features: mx.array) -> mx.array:
        """The classifier on ``forward_features``'s output: kecam's ``output_block``."""
        return self.head(features)

    def __call__(self, x: mx.array) -> mx.array:
        return self.forward_head(self.forward_features(x))

    # --- model API -------------------------------------------------------------------------

    def reset_classifier(self, num_classes: int, classifier_activation=...) -> None:
        """A new, randomly initialised ``predictions`` layer for ``num_classes`` (``0``: none).

        Args:
            num_classes: classes of the new head.
            classifier_activation: its activation; by default the current one.
        """
        if classifier_activation is ...:
            classifier_activation = self.pretrained_cfg.get("classifier_activation", "softmax")
        self.head.reset(num_classes, classifier_activation)
        self.pretrained_cfg.update(
            num_classes=num_classes, classifier_activation=classifier_activation
        )

    def count_params(self) -> int:
        """Every weight, as kecam's ``count_params`` (BatchNorm statistics included)."""
        return _param_count(self)

    def summary(self, print_fn=print) -> str:
        """kecam-like table of the layers, their output shapes and parameters; printed with
        ``print_fn`` (``None``: not printed) and returned. Computes shapes only (nothing runs)."""
        x = mx.zeros((1, *self.input_shape), dtype=self.dtype)
        rows = [("input", "Input", (None, *self.input_shape), 0)]
        for layer, name in zip(self.layers, self.output_names):
            x = layer(x)
            rows.append((name, type(layer).__name__, _output_shape(x), _param_count(layer)))
        if self.head.predictions is not None or self.head.features is not None:
            x = self.head(x)
            rows.append(("predictions", type(self.head).__name__, _output_shape(x),
                         _param_count(self.head)))  # fmt: skip
        widths = [max(len(str(r[i])) for r in rows) for i in range(3)]
        name = self.pretrained_cfg.get("name", type(self).__name__)
        lines = [f'Model: "{name}"', "-" * (sum(widths) + 24)]
        lines += [
            f"{n:<{widths[0]}}  {t:<{widths[1]}}  {str(s):<{widths[2]}}  {p:>12,}"
            for n, t, s, p in rows
        ]
        total = self.count_params()
        lines += ["-" * (sum(widths) + 24), f"Total params: {total:,}"]
        text = "\n".join(lines)
        if print_fn is not None:
            print_fn(text)
        return text

    def preprocess_input(self, image, **kwargs):
        """kecam's ``model.preprocess_input``: see ``mlx_attention.imagenet.preprocess_input``."""
        from .. import imagenet

        return imagenet.preprocess_input(image, self.pretrained_cfg, **kwargs)

    def decode_predictions(self, preds, top: int = 5):
        """kecam's ``model.decode_predictions``: ``[(wnid, label, score), ...]`` per row."""
        from .. import imagenet

        return imagenet.decode_predictions(preds, top=top)


class DistilledClassifier(ImageClassifier):
    """A model with kecam's BatchNorm classifier and optional distillation head (LeViT,
    EfficientViT-M)."""

    def switch_to_deploy(self) -> DistilledClassifier:
        """kecam's ``switch_to_deploy``: a new model whose head is the fused one (each
        BatchNorm folded into its Dense, the distillation head averaged in), one output; it
        shares the feature layers' (immutable) arrays with this one."""
        deployed = copy.copy(self)
        deployed.head = self.head.fused()
        return deployed


def channels_last(input_shape: Sequence[int]) -> tuple[int, int, int]:
    """kecam's ``align_input_shape_by_image_data_format`` for channels-last: the smallest of
    the three sizes is the channels, moved last (``(3, 224, 160)`` -> ``(224, 160, 3)``)."""
    shape = tuple(input_shape)
    if len(shape) != 3 or any(not isinstance(v, int) or v < 1 for v in shape):
        raise ValueError(
            f"input_shape={input_shape!r} must be three positive sizes (H, W, C); dynamic (None) "
            "sizes are not supported: a model is built for its input size"
        )
    channel_axis = min(range(3), key=lambda i: (shape[i], -i))
    if channel_axis == 2:
        return shape
    return tuple(v for i, v in enumerate(shape) if i != channel_axis) + (shape[channel_axis],)
