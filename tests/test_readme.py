"""The README's seed table says truthfully what exists, and its seed example runs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mlx_attention import attention_layers, layers

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()
ROW = re.compile(r"^\| `(\w+)` \|[^|]+\|([^|]*)\| (done|partial|pending) \|$", re.M)
ROWS = ROW.findall(README)


def test_table_has_every_seed_item():
    names = {name for name, _, _ in ROWS}
    assert len(names) == len(ROWS) >= 40
    assert {"neighborhood_attention", "RelativePositionalEmbedding", "ClassToken"} <= names


@pytest.mark.parametrize("name,cls,status", ROWS, ids=[r[0] for r in ROWS])
def test_status_matches_the_code(name, cls, status):
    exists = hasattr(attention_layers, name)
    assert exists == (status != "pending"), f"{name}: README says {status}"
    match = re.fullmatch(r"`(\w+)`", cls.strip())
    if status != "pending" and match:
        assert hasattr(layers, match.group(1)), f"{name}: no layers.{match.group(1)}"


def test_model_count_is_the_registrys():
    from mlx_attention import models

    (count,) = re.findall(r"(\d+) in\s+all", README)
    assert int(count) == len(models.list_models())
