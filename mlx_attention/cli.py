"""The ``mlx-attention`` command: ``demo``, ``info``, ``inspect FILE``, ``bench``, and for whole
kecam models ``models [PATTERN]``, ``predict IMAGE... --model NAME --weights FILE|TAG``,
``convert NAME FILE.h5 -o OUT.safetensors`` and ``evaluate --model NAME --weights FILE|TAG
--data DIR|LIST`` (data-parallel under ``mlx.launch``)."""

from __future__ import annotations

import argparse
import os
import platform
import sys
from collections.abc import Sequence

import mlx.core as mx

from .benchmarks import DTYPES


def _table(rows: Sequence[Sequence[str]], header: Sequence[str]) -> str:
    rows = [[str(c) for c in row] for row in rows]
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)
    ]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths))]
    lines.append("  ".join("-" * w for w in widths))
    lines.extend("  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in rows)
    return "\n".join(line.rstrip() for line in lines)


# DESIGN.md's "exact" for float32: max |ours - kecam| <= EXACT * max(1, max |kecam|)
EXACT = 1e-4


def demo(args: argparse.Namespace) -> int:
    from .demo import run_all

    results = run_all()
    for result in results:
        example = result.example
        print(f"{example.id}: {example.call}")
        if result.status != "ok":
            print(f"    {result.status}")
            continue
        bound = EXACT * result.kecam_scale
        verdict = "within" if result.max_diff <= bound else "OVER"
        print(
            f"    {result.module}: {result.input_shape} -> {result.output_shape} in "
            f"{result.time_ms:.2f} ms; max |ours - kecam| = {result.max_diff:.2g}, {verdict} "
            f"the exactness bound {bound:.2g} (1e-4 x max(1, max |kecam|))"
        )
    ran = sum(r.status == "ok" for r in results)
    print(f"{ran} of {len(results)} examples ran; {len(results) - ran} pending")
    return 0


def info(args: argparse.Namespace) -> int:
    from . import __version__, kernels
    from .benchmarks import cpu_blas

    print(f"mlx-attention {__version__}")
    print(f"MLX {mx.__version__}, Python {platform.python_version()}, {platform.platform()}")
    print(f"default device: {mx.default_device()}")
    blas, hint = cpu_blas()
    print(f"CPU BLAS: {blas}")
    if hint:
        print(f"  {hint}")
    setting = os.environ.get(kernels.ENV_VAR, "auto")
    print(f"kernel selection: {kernels.ENV_VAR}={setting}")
    try:
        chosen = kernels.resolve_backend()
    except ValueError as err:  # still show the table: it is what tells which value would work
        chosen = None
        print(f"  {err}; blocks that use kernels raise until it is fixed or unset")
    print()
    rows = [
        (name, "yes" if ok else "no", "<- runs here" if name == chosen else "", reason)
        for name, ok, reason in kernels.backend_report()
        if ok or name != "emulated"  # the test suite's emulator: only listed while registered
    ]
    print(_table(rows, ("backend", "available", "selected", "why")))
    print()
    print(_table(kernels.kernel_list(), ("kernel", "serves")))
    return 0


def _kecam_block_suffixes() -> dict[str, dict[str, str]]:
    """``{kecam block: {suffix: Keras layer type}}`` as this library's blocks declare them
    (each block of the benchmark table, built with ``name="blk_"``)."""
    from .benchmarks import BLOCKS, build_block
    from .convert import declared_layers
    from .layers.base import KerasLayouts

    table: dict[str, dict[str, str]] = {}
    for block in BLOCKS:
        if block.is_class:  # a layer class names one layer, not a block of them
            continue
        module, _ = build_block(block)
        if module is None:
            continue
        suffixes = table.setdefault(block.kecam, {})
        for decl in declared_layers(module):
            layouts = decl.layouts if isinstance(decl, KerasLayouts) else ((decl,),)
            for layer in (layer for layout in layouts for layer in layout):
                if layer.name.startswith("blk_") and layer.kind != "Constant":
                    suffixes[layer.name[len("blk_") :]] = layer.kind
    return table


def inspect(args: argparse.Namespace) -> int:
    """Layers, weight names, shapes and dtypes from the file's metadata (no data is read)."""
    from .convert import KerasH5
    from .convert.blocks import find_blocks

    with KerasH5(args.file) as f:
        stored = [layer for layer in f.layers if layer.name.startswith(args.prefix)]
    where = f" under the prefix {args.prefix!r}" if args.prefix else ""
    if args.blocks:
        found = find_blocks((x.name for x in stored if x.weights), _kecam_block_suffixes())
        rows = [
            (b.prefix, " or ".join(b.blocks), ", ".join(f"{s} ({kind})" for s, kind in b.layers))
            for b in found
        ]
        print(_table(rows, ("name= prefix", "kecam block", "layers found (type)")))
        print(f"{len(found)} kecam blocks recognised{where} (a guess from the layer names)")
        return 0
    rows = [
        (layer.name, weight.name, weight.shape, weight.dtype)
        for layer in stored
        for weight in layer.weights
    ]
    print(_table(rows, ("layer", "weight", "shape", "dtype")))
    weightless = sum(not layer.weights for layer in stored)
    count = sum(weight.size for layer in stored for weight in layer.weights)
    print(f"{len(stored)} layers{where} ({weightless} without weights), {count:,} values")
    return 0


# --- whole kecam models ---------------------------------------------------------------------

IMAGE_INSTALL = (
    'decoding images needs Pillow: pip install -e ".[image]" in a clone of mlx-attention '
    "(or pip install pillow)"
)


def _shape_text(shape: Sequence[int]) -> str:
    return "x".join(str(v) for v in shape)


def tags_text(tags: dict) -> str:
    """kecam's release files of a model, e.g. ``imagenet21k-ft1k (224, 384), imagenet21k
    (21841 classes)``."""
    parts = []
    for tag, info in tags.items():
        notes = [", ".join(map(str, info["resolutions"]))] if info["resolutions"] else []
        if info["num_classes"] != 1000:
            notes.append(f"{info['num_classes']} classes")
        parts.append(tag + (f" ({'; '.join(notes)})" if notes else ""))
    return ", ".join(parts) or "none"


def model_rows(pattern: str | None = None) -> list[dict]:
    """One row per registered model: its name, kecam constructor and ``model.name``, default
    input, parameter count and kecam's release tags. The models are built at their default
    size but nothing is evaluated (MLX arrays are lazy), so this takes about a second.

    Args:
        pattern: an fnmatch pattern (case-insensitive); without a wildcard it matches any name
            that contains it.
    """
    from . import models

    if pattern is not None and not any(c in pattern for c in "*?["):
        pattern = f"*{pattern}*"
    rows = []
    for name in models.list_models(pattern):
        model = models.create_model(name)
        cfg = model.pretrained_cfg
        rows.append({
            "name": name, "family": models.get_entry(name).family.module, "kecam": cfg["kecam"],
            "model_name": cfg["name"], "input_shape": tuple(cfg["input_shape"]),
            "params": model.count_params(), "tags": cfg["tags"],
        })  # fmt: skip
    return rows


def models_command(args: argparse.Namespace) -> int:
    rows = model_rows(args.pattern)
    if not rows:
        raise ValueError(f"no model matches {args.pattern!r} (mlx-attention models lists them all)")
    table = [
        (r["name"], r["kecam"], r["model_name"], _shape_text(r["input_shape"]),
         f"{r['params'] / 1e6:.2f}M", tags_text(r["tags"]))
        for r in rows
    ]  # fmt: skip
    print(_table(table, ("model", "kecam constructor", "model.name", "input", "params", "weights")))
    print(
        f"{len(rows)} models. Weights: a kecam .h5 file, a .safetensors from `mlx-attention "
        "convert`, or a tag above (kecam's release file, downloaded once and cached)."
    )
    return 0


def _model_kwargs(args: argparse.Namespace) -> dict:
    """The constructor arguments given as ``--input-shape``, ``--num-classes`` and ``--kwarg``."""
    import json

    kwargs = {}
    for item in args.kwarg:
        key, sep, text = item.partition("=")
        if not sep or not key.isidentifier():
            raise ValueError(f"--kwarg {item!r}: expected KEY=VALUE, e.g. layer_scale=1e-5")
        try:
            kwargs[key] = json.loads(text)
        except json.JSONDecodeError:  # a bare word is a string: activation=relu
            kwargs[key] = text
    if args.input_shape is not None:
        try:
            sizes = tuple(int(v) for v in args.input_shape.lower().replace("x", ",").split(","))
        except ValueError:
            sizes = ()
        if len(sizes) not in (2, 3):
            raise ValueError(
                f"--input-shape {args.input_shape!r}: expected H,W or H,W,C (e.g. 160,160)"
            )
        kwargs["input_shape"] = sizes if len(sizes) == 3 else (*sizes, 3)
    if args.num_classes is not None:
        kwargs["num_classes"] = args.num_classes
    return kwargs


def _load_image(path: str):
    """The RGB pixels of an image file as a ``[H, W, 3]`` uint8 array."""
    import numpy as np

    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError:
        raise ValueError(IMAGE_INSTALL) from None
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"))
    except (OSError, UnidentifiedImageError) as err:
        raise ValueError(f"{path}: cannot read the image: {err}") from None


def predict(args: argparse.Namespace) -> int:
    """Top classes of each image: kecam's ``model.preprocess_input``, the model, and
    ``decode_predictions``; a head other than ImageNet-1k's (a fine-tuned one) has no names, so
    its classes are printed by index."""
    import numpy as np

    from . import models

    name = args.model
    if name is None:
        if not args.weights.endswith(".safetensors"):
            raise ValueError("--model is needed unless --weights is a converted .safetensors")
        name = models.read_metadata(args.weights)["model"]
    images = [_load_image(path) for path in args.images]  # before the (slower) model
    model = models.create_model(
        name, pretrained=args.weights, dtype=DTYPES[args.dtype], **_model_kwargs(args)
    )
    model = models._glue.single_output(model)  # a distillation model: kecam's deployed one
    named = model.pretrained_cfg.get("labels") == "imagenet"
    for path, image in zip(args.images, images):
        scores = model(model.preprocess_input(image))  # [1, classes], in float32 (kecam's head)
        if model.pretrained_cfg.get("classifier_activation") is None:  # logits
            scores = mx.softmax(scores, axis=-1)
        print(path)
        if named:
            (top,) = model.decode_predictions(scores, top=args.top)
            rows = [(w, label, f"{p:.4f}") for w, label, p in top]
            print(_table(rows, ("wnid", "label", "prob")))
        else:  # no names: the class indices, best first
            probs = np.array(scores[0])
            order = np.argsort(-probs, kind="stable")[: args.top]
            print(_table([(str(i), f"{probs[i]:.4f}") for i in order], ("class", "prob")))
    return 0


def convert(args: argparse.Namespace) -> int:
    """A kecam ``.h5`` as a ``.safetensors`` with the model's arguments in its metadata."""
    from pathlib import Path

    from . import models

    out = args.output or str(Path(args.file).with_suffix(".safetensors"))
    path = models.convert(args.name, args.file, out, **_model_kwargs(args))
    meta = models.read_metadata(path)
    print(
        f"wrote {path}: {meta['model']} ({_shape_text(meta['pretrained_cfg']['input_shape'])}, "
        f"{meta['pretrained_cfg']['num_classes']} classes) from {args.file} (md5 "
        f"{meta['source_md5']}); load it with create_model({meta['model']!r}, "
        f"pretrained={str(path)!r})"
    )
    return 0


def evaluate_command(args: argparse.Namespace) -> int:
    """Top-1/top-5 on a labelled image set; data-parallel when started by ``mlx.launch``."""
    from . import evaluate

    try:
        import PIL  # noqa: F401
    except ImportError:
        raise ValueError(IMAGE_INSTALL) from None
    if args.batch_size < 1 or (args.limit is not None and args.limit < 1):
        raise ValueError(
            f"--batch-size and --limit must be >= 1, got {args.batch_size} and {args.limit}"
        )
    group = mx.distributed.init()
    if args.json and group.rank() == 0:  # fail before the run, not after it
        with open(args.json, "a"):
            pass
    pairs = evaluate.scan(args.data)  # before the model: a wrong --data fails fast
    model = evaluate.build_model(
        args.model, args.weights, group, dtype=DTYPES[args.dtype], **_model_kwargs(args)
    )
    samples = evaluate.label_samples(pairs, model)[: args.limit]
    result = evaluate.evaluate(
        model, samples, batch_size=args.batch_size, resize=args.resize, group=group
    )
    if group.rank() == 0:
        print(f"{args.model} on {args.data}: {evaluate.summary(result)}")
        if args.json:
            evaluate.write_json(
                args.json, result, model=args.model, weights=args.weights, data=args.data,
                dtype=args.dtype, resize=args.resize, batch_size=args.batch_size,
                limit=args.limit,
            )  # fmt: skip
    return 0 if result.images else 1


MODEL_COMMANDS = ("models", "predict", "convert", "evaluate")


def _add_weights_arguments(parser: argparse.ArgumentParser, downloaded: str) -> None:
    """``--weights`` and ``--dtype``, as ``predict`` and ``evaluate`` share them."""
    parser.add_argument(
        "--weights", required=True, metavar="FILE|TAG",
        help="a kecam .h5, a converted .safetensors, or a tag such as imagenet (downloaded "
        f"{downloaded} and cached)",
    )  # fmt: skip
    parser.add_argument(
        "--dtype", choices=list(DTYPES), default="float32", help="the feature layers' dtype"
    )


def _add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """The constructor arguments ``predict`` and ``convert`` take (kecam's names)."""
    parser.add_argument("--input-shape", metavar="H,W[,C]", help="kecam's input_shape")
    parser.add_argument("--num-classes", type=int, metavar="N", help="kecam's num_classes")
    parser.add_argument(
        "--kwarg", action="append", default=[], metavar="KEY=VALUE",
        help="any other argument of the kecam constructor, VALUE as JSON (repeatable), "
        "e.g. --kwarg layer_scale=1e-5 --kwarg 'num_blocks=[1,1,1,1]'",
    )  # fmt: skip


def _expected_errors(command: str) -> tuple[type[Exception], ...]:
    """What a command reports in one line, without a traceback: a bad file or argument; for the
    model commands also a missing file, an argument kecam's constructor does not take, and
    weights that cannot be had (offline, a bad checksum)."""
    if command not in MODEL_COMMANDS:
        return (ValueError,)
    from .models._download import WeightsDownloadError

    return (ValueError, OSError, TypeError, WeightsDownloadError)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["bench"]:  # its own options, parsed by the benchmark runner
        from . import benchmarks

        return benchmarks.main(argv[1:])
    parser = argparse.ArgumentParser(
        prog="mlx-attention", description="kecam's vision attention layers on MLX"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser(
        "demo",
        help="run kecam's own usage examples of four blocks on kecam weights shipped in the "
        "package, and compare with kecam's outputs",
    )
    commands.add_parser("info", help="MLX, device, and which kernel back-end runs here and why")
    inspect_parser = commands.add_parser("inspect", help="list the layers and weights of a .h5")
    inspect_parser.add_argument("file", help="a Keras .h5 weight file")
    inspect_parser.add_argument(
        "--prefix", default="", help="only the layers whose name starts with this"
    )
    inspect_parser.add_argument(
        "--blocks",
        action="store_true",
        help="the kecam blocks the file holds (name= prefix, block, layers), guessed from names",
    )
    commands.add_parser(
        "bench",
        help="time each block, or whole models with --models (quick mode; bench --help for "
        "options)",
    )
    models_parser = commands.add_parser(
        "models", help="the kecam models: constructor, input, parameters, weight tags"
    )
    models_parser.add_argument(
        "pattern", nargs="?", help="fnmatch pattern or part of a name (case-insensitive)"
    )
    predict_parser = commands.add_parser(
        "predict",
        help="classify images with a kecam model (ImageNet labels, other heads by class "
        "index; needs Pillow)",
    )
    predict_parser.add_argument("images", nargs="+", metavar="IMAGE", help="image files")
    predict_parser.add_argument(
        "--model", help="kecam constructor or model.name, e.g. NAT_Mini (optional for a "
        "converted .safetensors: its metadata names it)",
    )  # fmt: skip
    _add_weights_arguments(predict_parser, "from kecam's releases")
    predict_parser.add_argument("--top", type=int, default=5, help="classes per image")
    _add_model_arguments(predict_parser)
    convert_parser = commands.add_parser(
        "convert",
        help="write a kecam .h5 as a .safetensors that create_model loads without h5py",
    )
    convert_parser.add_argument("name", help="kecam constructor or model.name, e.g. NAT_Mini")
    convert_parser.add_argument("file", help="the kecam .h5 (model.save or save_weights)")
    convert_parser.add_argument(
        "-o", "--output", metavar="OUT.safetensors", help="default: FILE with .safetensors"
    )
    _add_model_arguments(convert_parser)
    evaluate_parser = commands.add_parser(
        "evaluate",
        help="top-1/top-5 of a kecam model on a labelled image set (needs Pillow); "
        "data-parallel under mlx.launch",
    )
    evaluate_parser.add_argument(
        "--model", required=True, help="kecam constructor or model.name, e.g. NAT_Mini"
    )
    _add_weights_arguments(evaluate_parser, "once, by rank 0,")
    evaluate_parser.add_argument(
        "--data", required=True, metavar="DIR|LIST",
        help="a folder of class subfolders named by wnid (n01440764) or class index, or a "
        "text file of 'path label' lines (paths relative to it)",
    )  # fmt: skip
    evaluate_parser.add_argument("--batch-size", type=int, default=64, help="images per batch")
    evaluate_parser.add_argument(
        "--resize", choices=("eval", "kecam"), default="eval",
        help="eval: kecam's ImageNet evaluation (central crop, bicubic with antialias); "
        "kecam: model.preprocess_input's (bilinear)",
    )  # fmt: skip
    evaluate_parser.add_argument(
        "--limit", type=int, metavar="N", help="the first N images (sorted by path)"
    )
    evaluate_parser.add_argument(
        "--json", metavar="OUT", help="write images, top1, top5, skipped, images_per_s here"
    )
    _add_model_arguments(evaluate_parser)
    args = parser.parse_args(argv)
    handler = {
        "demo": demo, "info": info, "inspect": inspect, "models": models_command,
        "predict": predict, "convert": convert, "evaluate": evaluate_command,
    }[args.command]  # fmt: skip
    try:
        return handler(args)
    except _expected_errors(args.command) as err:
        print(f"mlx-attention {args.command}: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
