"""The ``mlx-attention`` command: demo, info, inspect."""

from __future__ import annotations

import math

import mlx.core as mx
import pytest
from cases import cases
from helpers import RELATIVE_TOLERANCE

from mlx_attention import attention_layers, benchmarks, cli
from mlx_attention.demo import EXAMPLES, run_all


def test_info_names_every_backend_and_kernel(capsys):
    assert cli.main(["info"]) == 0
    out = capsys.readouterr().out
    for backend in ("metal", "cuda", "ops"):
        assert backend in out
    assert "emulated" not in out  # the test suite's emulator, listed only while registered
    assert "unfold" in out and "fold" in out
    assert "runs here" in out


@pytest.mark.parametrize("setting", ["bogus", "AUTO", " Off "])
def test_info_shows_the_table_for_any_kernel_setting(capsys, monkeypatch, setting):
    monkeypatch.setenv("MLX_ATTENTION_KERNELS", setting)
    assert cli.main(["info"]) == 0
    out = capsys.readouterr().out
    assert "backend  available  selected" in out and "pure MLX gathers" in out
    valid = setting.strip().lower() != "bogus"
    assert ("<- runs here" in out) == valid
    assert ("'bogus' is not one of auto, off" in out) == (not valid)


def test_info_says_how_to_fix_a_slow_cpu_blas(capsys, monkeypatch):
    monkeypatch.setattr(benchmarks, "cpu_blas", lambda: ("slow one", benchmarks.OPENBLAS_HINT))
    assert cli.main(["info"]) == 0
    out = capsys.readouterr().out
    assert "CPU BLAS: slow one" in out and "LD_PRELOAD=libopenblas.so.0" in out


def test_inspect_lists_layers_weights_and_shapes(capsys):
    case = next(c for c in cases("common") if c.id == "bn_hswish_eps")
    assert cli.main(["inspect", str(case.weights_path)]) == 0
    out = capsys.readouterr().out
    assert "b_bn/moving_variance:0" in out and "(8,)" in out


def test_inspect_bad_file_is_a_message_not_a_traceback(capsys, tmp_path):
    path = tmp_path / "bad.h5"
    path.write_bytes(b"not hdf5")
    assert cli.main(["inspect", str(path)]) == 2
    assert "corrupt or truncated" in capsys.readouterr().err


def test_inspect_filters_by_prefix_and_lists_kecam_blocks(capsys):
    case = next(c for c in cases("local") if c.id == "nat_square_k3")
    assert cli.main(["inspect", str(case.weights_path), "--prefix", "nat_q"]) == 0
    out = capsys.readouterr().out
    assert "nat_qkv/kernel:0" in out and "nat_output" not in out
    assert "1 layers under the prefix 'nat_q'" in out
    assert cli.main(["inspect", str(case.weights_path), "--blocks"]) == 0
    out = capsys.readouterr().out
    rows = [" ".join(line.split()) for line in out.splitlines()]
    assert "nat_ neighborhood_attention output (Dense), pos (Weights), qkv (Dense)" in rows


def test_demo_runs_what_exists_and_matches_kecam(capsys):
    assert cli.main(["demo"]) == 0
    out = capsys.readouterr().out
    assert f"of {len(EXAMPLES)} examples ran" in out
    assert out.count("within the exactness bound") == len(EXAMPLES) and "OVER" not in out
    for result in run_all():
        implemented = hasattr(attention_layers, result.example.kecam)
        assert (result.status == "ok") == implemented, result.status
        if implemented:
            bound = RELATIVE_TOLERANCE[mx.float32] * result.kecam_scale
            assert math.isfinite(result.max_diff) and result.max_diff <= bound


def test_bench_hands_its_options_to_the_benchmark_runner(capsys):
    assert cli.main(["bench", "--list"]) == 0
    assert "neighborhood_attention" in capsys.readouterr().out
