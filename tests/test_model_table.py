"""``docs/models.md`` is the table ``tools/make_model_table.py`` generates from the registry."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from mlx_attention import models

TOOL = Path(__file__).resolve().parents[1] / "tools" / "make_model_table.py"


@pytest.fixture(scope="module")
def tool():
    spec = importlib.util.spec_from_file_location("make_model_table", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_docs_models_md_is_current(tool):
    current = tool.DOC.read_text() if tool.DOC.exists() else ""
    # no pytest diff of a long file: the message says what to run
    same = current == tool.render()
    assert same, f"docs/models.md is out of date with the registry: run {tool.COMMAND}"


def test_every_registered_model_has_a_row(tool):
    text = tool.DOC.read_text()
    for name in models.list_models():
        entry = models.get_entry(name)
        assert f"| `{name}` | `{entry.kecam}` |" in text, name


def test_status_is_measured_on_the_fixtures(tool, monkeypatch):
    checks = tool.family_checks()
    assert checks["nat"]["exact"] and len(checks["nat"]["cases"]) >= 5
    monkeypatch.setattr(tool, "_max_excess", lambda model, arrays: 1.5)  # over the bound
    assert not tool.family_checks()["nat"]["exact"]
    assert "| differs |" in tool.render() and "| exact |" not in tool.render()


def test_check_mode_says_which_command_regenerates(tool, monkeypatch, tmp_path, capsys):
    stale = tmp_path / "models.md"
    stale.write_text("old table\n")
    monkeypatch.setattr(tool, "DOC", stale)
    assert tool.main(["--check"]) == 1
    assert tool.COMMAND in capsys.readouterr().err
    assert tool.main([]) == 0 and tool.main(["--check"]) == 0
