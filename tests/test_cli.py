"""The ``mlx-attention`` command: demo, info, inspect."""

from __future__ import annotations

import math

import mlx.core as mx
from cases import cases
from helpers import RELATIVE_TOLERANCE

from mlx_attention import attention_layers, cli
from mlx_attention.demo import EXAMPLES, run_all


def test_info_names_every_backend_and_kernel(capsys):
    assert cli.main(["info"]) == 0
    out = capsys.readouterr().out
    for backend in ("metal", "cuda", "ops", "emulated"):
        assert backend in out
    assert "unfold" in out and "fold" in out
    assert "runs here" in out


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


def test_demo_runs_what_exists_and_matches_kecam(capsys):
    assert cli.main(["demo"]) == 0
    out = capsys.readouterr().out
    assert f"of {len(EXAMPLES)} examples ran" in out
    for result in run_all():
        implemented = hasattr(attention_layers, result.example.kecam)
        assert (result.status == "ok") == implemented, result.status
        if implemented:
            bound = RELATIVE_TOLERANCE[mx.float32] * result.kecam_scale
            assert math.isfinite(result.max_diff) and result.max_diff <= bound


def test_bench_hands_its_options_to_the_benchmark_runner(capsys):
    assert cli.main(["bench", "--list"]) == 0
    assert "neighborhood_attention" in capsys.readouterr().out
