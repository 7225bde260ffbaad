"""Which kecam blocks a weight file holds, guessed from its layer names (for ``inspect``).

kecam names a block's Keras layers ``name + suffix`` (``stack1_block1_attn_`` + ``qkv``,
``output``, ``pos``). Given each block's declared suffixes (as this library's modules declare
them), a name prefix is reported as a block when at least two of the block's suffixes occur
under it; the block whose suffixes are matched the most completely (then the most) wins, ties
listed together. A heuristic: blocks that share their suffixes (``qkv`` + ``output``) are told
apart only by the suffixes they do not share, and a block saved with options that drop layers
may go unrecognised.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class FoundBlock:
    """A name prefix of the file and the kecam blocks whose layers it has."""

    prefix: str
    blocks: tuple[str, ...]  # kecam names, best first (ties)
    layers: tuple[tuple[str, str], ...]  # (suffix, Keras layer type) found under the prefix


def find_blocks(
    layer_names: Iterable[str], suffixes: Mapping[str, Mapping[str, str]]
) -> list[FoundBlock]:
    """The block prefixes of a file, in the order their first layer appears.

    Args:
        layer_names: the file's weighted layer names.
        suffixes: ``{kecam block name: {suffix: Keras layer type}}``.
    """
    found: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    order: dict[str, int] = {}
    for position, name in enumerate(layer_names):
        for block, table in suffixes.items():
            for suffix in table:
                if len(suffix) >= 2 and name.endswith(suffix) and len(name) > len(suffix):
                    prefix = name[: -len(suffix)]
                    found[prefix][block].add(suffix)
                    order.setdefault(prefix, position)
    results = []
    for prefix in sorted(found, key=order.__getitem__):
        scored = [
            (len(hit) / len(suffixes[block]), len(hit), block)
            for block, hit in found[prefix].items()
            if len(hit) >= 2
        ]
        if not scored:
            continue
        best = max(scored)[:2]
        blocks = tuple(sorted(b for *score, b in scored if tuple(score) == best))
        hits = sorted(found[prefix][blocks[0]])
        layers = tuple((s, suffixes[blocks[0]][s]) for s in hits)
        results.append(FoundBlock(prefix, blocks, layers))
    return results
