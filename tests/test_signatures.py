"""Every kecam name we export takes kecam's arguments, in kecam's order, with kecam's defaults.

``tests/fixtures/kecam_signatures.json`` is written by ``tools/make_fixtures.py`` from the
installed kecam (1.4.3; 1.3.1 for the names 1.4.3 dropped). A kecam function's ``inputs`` is our
``input_shape``; a kecam class's constructor arguments are ours, plus keyword-only
``input_shape`` and ``name``.
"""

from __future__ import annotations

import inspect
import json

import pytest
from cases import FIXTURES, signature_rows

from mlx_attention import attention_layers

KECAM = json.loads((FIXTURES / "kecam_signatures.json").read_text())
PLAIN_FUNCTIONS = {"make_divisible"}  # value helpers: same arguments, no tensor


def expected(name: str) -> list[list]:
    kecam = [list(p) for p in KECAM[name]["params"]]
    if name[0].isupper():  # a class: drop self and **kwargs; ours adds input_shape and name
        kecam = [p for p in kecam if p[0] != "self" and p[1] != "VAR_KEYWORD"]
        ours = [["input_shape", "KEYWORD_ONLY", None]]
        if all(p[0] != "name" for p in kecam):  # coat's 1.4.3 helper classes take name= already
            ours.append(["name", "KEYWORD_ONLY", "None"])
        return kecam + ours
    if name not in PLAIN_FUNCTIONS:  # the tensor kecam takes first (inputs, patches, ...)
        kecam[0] = ["input_shape", kecam[0][1], kecam[0][2]]
    return kecam


@pytest.mark.parametrize("name", sorted(KECAM))
def test_signature_is_kecams(name):
    assert hasattr(attention_layers, name), f"{name} is recorded but no longer exported"
    assert signature_rows(getattr(attention_layers, name)) == expected(name)


def test_every_exported_kecam_name_is_recorded():
    """A name we export under kecam's spelling must have kecam's signature on record: rerun
    ``tools/make_fixtures.py`` after adding one."""
    ours = {
        name
        for name, obj in vars(attention_layers).items()
        if inspect.isfunction(obj)
        and not name.startswith("_")
        and obj.__module__ == attention_layers.__name__
    }
    ours |= PLAIN_FUNCTIONS
    assert sorted(ours - set(KECAM)) == []
