"""The whole-model benchmark (``--models``) is well-formed; nothing here asserts a speed.

The runs use a reduced NAT through kecam's family builder (``nat.NAT``) in place of the real
rows, so they take seconds.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from helpers import require_reference

from mlx_attention import benchmarks, cli, models

RUN_PY = Path(__file__).resolve().parents[1] / "bench" / "run.py"
TINY = benchmarks.ModelRow(
    "tiny_nat",
    "nat.NAT",
    {
        "num_blocks": [1, 1, 1, 1], "out_channels": [8, 8, 8, 8], "num_heads": [1, 1, 1, 1],
        "input_shape": [32, 40, 3], "num_classes": 10, "use_every_other_dilations": True,
    },
)  # fmt: skip


@pytest.fixture
def tiny_rows(monkeypatch):
    monkeypatch.setattr(benchmarks, "MODEL_ROWS", (TINY,))


def _run_py():
    spec = importlib.util.spec_from_file_location("bench_run", RUN_PY)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_model_rows_are_registered_models_at_their_default_size():
    assert [r.key for r in benchmarks.MODEL_ROWS][:2] == ["NAT_Mini", "DiNAT_Mini"]
    family = lambda name: models.get_entry(name).family.module  # noqa: E731
    every = {family(name) for name in models.list_models()}
    assert {family(r.name) for r in benchmarks.MODEL_ROWS} == every, "one row per family"
    for row in benchmarks.MODEL_ROWS:
        entry = models.get_entry(row.name)
        assert entry.listed and not row.kwargs
    assert benchmarks.select_models("dinat_mini") == [benchmarks.MODEL_ROWS[1]]
    assert benchmarks.select_models(None) == list(benchmarks.MODEL_ROWS)
    with pytest.raises(ValueError, match="unknown model rows"):
        benchmarks.select_models("NAT_Mini,Swin")


def test_bench_models_quick_writes_its_own_records(tiny_rows, tmp_path, capsys):
    path = tmp_path / "out.json"
    argv = ["--models", "--mode", "eager,compiled", "--batch", "1,2", "--json", str(path)]
    assert benchmarks.main(argv) == 0
    document = json.loads(path.read_text())
    assert document["protocol"] == json.loads(json.dumps(vars(benchmarks.QUICK)))
    records = document["records"]
    assert [(r["model"], r["batch"], r["mode"]) for r in records] == [
        ("tiny_nat", 1, "eager"), ("tiny_nat", 1, "compiled"),
        ("tiny_nat", 2, "eager"), ("tiny_nat", 2, "compiled"),
    ]  # fmt: skip
    expected_params = models.create_model(TINY.name, **TINY.kwargs).count_params() / 1e6
    for record in records:
        assert record["status"] == "ok", record["status"]
        assert "block" not in record and record["shape"] == "32x40x3"
        assert record["kecam"] == "nat.NAT" and record["params_m"] == expected_params
        assert record["ours_peak_mb"] > 0 and record["ours_calls"] == benchmarks.QUICK.min_calls
        images_per_s = record["batch"] * 1e3 / record["ours_ms"]
        assert record["ours_images_per_s"] == pytest.approx(images_per_s)
    out = capsys.readouterr().out
    assert "tiny_nat" in out and "images/s" in out and "neighborhood_attention" not in out


def test_full_model_protocol_is_shorter_than_the_blocks(tiny_rows, tmp_path, monkeypatch):
    seen = {}

    def fake_run_models(**options):
        seen.update(options)
        return []

    monkeypatch.setattr(benchmarks, "run_models", fake_run_models)
    assert benchmarks.main(["--models", "--full", "--json", str(tmp_path / "x.json")]) == 0
    assert seen["protocol"] is benchmarks.MODEL_FULL and seen["batches"] == [1]
    assert seen["models"] == [TINY] and "floors" not in seen
    assert benchmarks.MODEL_FULL.min_calls < benchmarks.FULL.min_calls


def test_models_and_blocks_are_separate_tables():
    with pytest.raises(SystemExit, match="--models and --blocks"):
        benchmarks.main(["--models", "--blocks", "nat"])
    with pytest.raises(SystemExit, match="unknown model rows"):
        benchmarks.main(["--models", "ResNet50"])


def test_cli_bench_models_lists_the_rows(capsys):
    assert cli.main(["bench", "--models", "--list"]) == 0
    out = capsys.readouterr().out
    assert "NAT_Mini" in out and "DiNAT_Mini" in out and "neighborhood_attention" not in out


@pytest.mark.parametrize("models_flag", [[], ["--models"]])
def test_run_py_list_lists_and_runs_nothing(monkeypatch, capsys, models_flag):
    run_py = _run_py()
    monkeypatch.setattr(benchmarks, "run", lambda **_: pytest.fail("--list ran the blocks"))
    monkeypatch.setattr(benchmarks, "run_models", lambda **_: pytest.fail("--list ran models"))
    assert run_py.main(["--list", *models_flag]) == 0
    assert capsys.readouterr().out.strip() == benchmarks.row_table(models=bool(models_flag))


def test_run_py_models_quick_writes_json_and_markdown(tiny_rows, tmp_path, capsys):
    run_py = _run_py()
    assert run_py.main(["--models", "--quick", "--out", str(tmp_path)]) == 0
    (json_path,) = tmp_path.glob("bench-models-*.json")
    document = json.loads(json_path.read_text())
    assert document["peers"] == []  # quick mode: no peers unless asked
    (record,) = document["records"]
    assert record["model"] == "tiny_nat" and record["batch"] == 1 and "ours_ms" in record
    text = json_path.with_suffix(".md").read_text()
    assert "| model | input | params M | b | ours ms | ours MB | ours img/s |" in text
    assert "| tiny_nat | 32x40x3 |" in text
    assert "tiny_nat" in capsys.readouterr().out
    assert not list(tmp_path.glob("*.png"))  # the plot is the blocks'


def test_attach_peers_by_model():
    run_py = _run_py()
    records = [{"model": "NAT_Mini", "batch": 8, "dtype": "float32", "ours_ms": 10.0}]
    peer = {"status": "ok", "kecam_ms": 5.0}
    run_py.attach_peers(records, {"kecam": {("NAT_Mini", 8): peer}}, key="model")
    assert records[0]["ratio_kecam"] == 2.0


@pytest.mark.slow
@pytest.mark.reference
def test_run_py_models_beside_kecam_on_tensorflow(tiny_rows, tmp_path):
    require_reference()
    run_py = _run_py()
    argv = ["--models", "--quick", "--batch", "1,2", "--peers", "kecam", "--out", str(tmp_path)]
    assert run_py.main(argv) == 0
    (json_path,) = tmp_path.glob("bench-models-*.json")
    document = json.loads(json_path.read_text())
    assert document["peers"] == ["kecam"] and "TensorFlow" in document["environment"]["kecam"]
    for record in document["records"]:
        assert record["kecam_ms"] > 0 and record["kecam_peak_mb"] > 0, record
        assert record["ratio_kecam"] == pytest.approx(record["ours_ms"] / record["kecam_ms"])
    assert "| x kecam | TF MB |" in json_path.with_suffix(".md").read_text()
