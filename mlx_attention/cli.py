"""The ``mlx-attention`` command: ``demo``, ``info``, ``inspect FILE``, ``bench``."""

from __future__ import annotations

import argparse
import os
import platform
import sys
from collections.abc import Sequence

import mlx.core as mx


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
    commands.add_parser("bench", help="time each block (quick mode; bench --help for options)")
    args = parser.parse_args(argv)
    handler = {"demo": demo, "info": info, "inspect": inspect}[args.command]
    try:
        return handler(args)
    except ValueError as err:  # a bad file or argument: say what, without a traceback
        print(f"mlx-attention {args.command}: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
