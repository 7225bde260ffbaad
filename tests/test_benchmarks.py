"""The benchmark table and protocol are well-formed; nothing here asserts a speed."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import time
from pathlib import Path

import mlx.core as mx
import numpy as np
import pytest

from mlx_attention import benchmarks

SEED = Path(__file__).resolve().parents[2] / "shared" / "reference" / "attention_layers_seed.md"
RUN_PY = Path(__file__).resolve().parents[1] / "bench" / "run.py"

# Names of the seed list (reference/attention_layers_seed.md), kept here so the test runs
# without the shared folder.
SEED_NAMES = {
    "BiasPositionalEmbedding", "ConvPositionalEncoding", "ConvRelativePositionalEncoding",
    "MultiHeadPositionalEmbedding", "MultiHeadRelativePositionalKernelBias",
    "MultiHeadRelativePositionalEmbedding", "PairWiseRelativePositionalEmbedding",
    "PositionalEmbedding", "PositionalEncodingFourier", "RelativePositionalEmbedding",
    "cot_attention", "cross_covariance_attention", "halo_attention",
    "light_mhsa_with_multi_head_relative_position_embedding", "mhsa_with_multi_head_position",
    "mhsa_with_multi_head_position_and_strides",
    "mhsa_with_multi_head_relative_position_embedding", "mhsa_with_relative_position_embedding",
    "neighborhood_attention", "multi_head_self_attention", "multi_head_self_attention_channel",
    "outlook_attention", "outlook_attention_simple", "shifted_window_attention",
    "split_attention_conv2d", "window_attention",
    "window_mhsa_with_pair_wise_positional_embedding",
}  # fmt: skip

# MFLOP at batch 1 of the matrix products, counted by hand for the first benchmark plan (and
# there compared with torch's FlopCounter and TensorFlow's profiler where they count the same)
ANCHOR_MFLOPS = {
    "nat": 142.1, "swinv2_win": 403.8, "volo_outlook": 158.3, "halo": 217.6,
    "botnet_mhsa": 397.8, "coatnet_mhsa": 290.2, "levit_mhsa": 34.0, "cmt_lmhsa": 21.3,
    "uniformer_mhsa": 209.7, "davit_win": 290.2, "davit_chan": 269.7, "edgenext_xca": 80.2,
    "cotnet": 127.3, "resnest_sa": 231.2, "coat_factor_crpe": 121.3, "coat_cpe": 3.6,
}  # fmt: skip


def test_every_seed_name_has_a_row():
    if SEED.exists():  # the shared reference, when present, is the authority
        text = SEED.read_text()
        names = set(re.findall(r"^  - \*\*(\w+)\*\* from", text, flags=re.M))
        assert names == SEED_NAMES
    assert SEED_NAMES <= {b.kecam for b in benchmarks.BLOCKS}


def test_rows_are_well_formed():
    keys = [b.key for b in benchmarks.BLOCKS]
    assert len(keys) == len(set(keys))
    for block in benchmarks.BLOCKS:
        assert block.flops > 0, block.key
        assert block.source and block.input_shapes, block.key
        assert all(d > 0 for shape in block.input_shapes for d in shape), block.key
        assert block.floor is None or block.floor[0] in benchmarks.FLOORS, block.key


@pytest.mark.parametrize("key", sorted(ANCHOR_MFLOPS))
def test_flops_match_the_hand_counts(key):
    (block,) = benchmarks.select_blocks(key)
    assert block.flops / 1e6 == pytest.approx(ANCHOR_MFLOPS[key], abs=0.06)


def test_select_blocks_by_key_or_kecam_name():
    rows = benchmarks.select_blocks("nat,multi_head_self_attention")
    assert [b.key for b in rows] == ["nat", "uniformer_mhsa"]
    with pytest.raises(ValueError, match="unknown blocks"):
        benchmarks.select_blocks("nope")


def test_measure_follows_the_protocol():
    x = mx.ones((64, 64))
    protocol = benchmarks.Protocol(warmup=1, min_calls=7, min_seconds=0.0, max_calls=50)
    timing = benchmarks.measure(lambda: x @ x + 1, protocol)
    assert timing.calls == 7 == len(timing.times_ms)
    assert timing.min_ms <= timing.q1_ms <= timing.median_ms <= timing.q3_ms <= timing.max_ms
    assert timing.peak_bytes >= 64 * 64 * 4  # at least the output


class _FakeLoad:
    """Stands in for :class:`benchmarks.OtherLoad`: each attempt sees the next load."""

    loads: list[float] = []

    def cores(self) -> float:
        return _FakeLoad.loads.pop(0)


@pytest.mark.parametrize(
    "loads, attempts, reported, contaminated",
    [
        ([0.1], 1, 0.1, False),  # clean: one attempt
        ([0.9, 0.1], 2, 0.1, False),  # disturbed, then clean
        ([0.9, 0.5, 0.7], 3, 0.5, True),  # disturbed throughout: the cleanest, marked
    ],
)
def test_time_calls_repeats_when_other_processes_disturb(
    monkeypatch, loads, attempts, reported, contaminated
):
    monkeypatch.setattr(benchmarks, "OtherLoad", _FakeLoad)
    _FakeLoad.loads = list(loads)
    protocol = benchmarks.Protocol(warmup=0, min_calls=3, min_seconds=0.0, max_calls=3)
    timing = benchmarks.time_calls(lambda: None, protocol)
    assert timing.attempt_other_cores == loads[:attempts]
    assert timing.other_cores == reported and timing.contaminated is contaminated
    assert timing.calls == 3 and timing.peak_bytes is None
    fields = benchmarks.timing_fields("kecam", timing)
    assert fields["kecam_contaminated"] is contaminated and "kecam_peak_mb" not in fields
    record = {**fields, "kecam_ms": 1.0, "kecam_q1_ms": 0.5, "kecam_q3_ms": 2.0}
    assert benchmarks.time_cell(record, "kecam") == "1 (0.5–2)" + (" *" if contaminated else "")


def test_other_load_is_measured_on_linux_over_windows_it_can_resolve():
    load = benchmarks.OtherLoad()
    assert load.cores() is None  # shorter than /proc/stat's 10 ms ticks can resolve
    time.sleep(0.15)
    cores = load.cores()
    if Path("/proc/stat").exists():
        assert cores is not None and 0.0 <= cores <= os.cpu_count()
    else:
        assert cores is None


@pytest.mark.parametrize("batch", ["-1", "0", "1,0"])
def test_batch_sizes_must_be_positive(batch):
    parser = benchmarks.argparse.ArgumentParser()
    benchmarks.add_arguments(parser, full_batches="1", modes="eager")
    with pytest.raises(SystemExit, match="at least 1"):
        benchmarks.options_from_args(parser.parse_args(["--batch", batch]), quick=True)


def test_help_names_one_default_batch_when_both_modes_agree(capsys):
    with pytest.raises(SystemExit):
        benchmarks.main(["--help"])
    out = capsys.readouterr().out
    assert "default 1)" in " ".join(out.split()) and "else 1" not in out


def test_an_unwritable_json_path_fails_before_the_run(tmp_path, monkeypatch):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    monkeypatch.setattr(benchmarks, "run", lambda **_: pytest.fail("ran before checking --json"))
    with pytest.raises(SystemExit, match="cannot write"):
        benchmarks.main(["--blocks", "nat", "--json", str(blocker / "out.json")])
    missing = tmp_path / "new" / "dir" / "out.json"
    benchmarks.check_writable(missing)  # a missing folder is made; the file is not left behind
    assert missing.parent.is_dir() and not missing.exists()


def test_mhsa_floor_keeps_the_token_shape():
    (block,) = benchmarks.select_blocks("uniformer_mhsa")
    mx.random.seed(1)
    floor = benchmarks.build_floor(block)
    x = mx.random.normal((2, 196, 320))
    out = np.array(floor(x))
    assert out.shape == (2, 196, 320) and np.isfinite(out).all()


def test_neighborhood_floor_matches_a_loop():
    """The floor's gather: every query attends to the k x k window clamped inside the image."""
    mx.random.seed(2)
    heads, k, dims = 2, 3, 8
    floor = benchmarks.FLOORS["neighborhood"](dims, mx.float32, heads, k, dims)
    w_qkv, w_out = (np.array(a) for a in _closure_arrays(floor))
    x = np.random.default_rng(0).normal(size=(1, 5, 4, dims)).astype(np.float32)
    q, kk, v = np.split(x @ w_qkv, 3, axis=-1)
    expected = np.zeros((1, 5, 4, dims), np.float32)
    kd = dims // heads
    for y in range(5):
        for xx in range(4):
            y0, x0 = min(max(y - 1, 0), 5 - k), min(max(xx - 1, 0), 4 - k)
            for h in range(heads):
                sl = slice(h * kd, (h + 1) * kd)
                keys = kk[0, y0 : y0 + k, x0 : x0 + k, sl].reshape(-1, kd)
                vals = v[0, y0 : y0 + k, x0 : x0 + k, sl].reshape(-1, kd)
                s = keys @ q[0, y, xx, sl] / np.sqrt(kd)
                p = np.exp(s - s.max())
                expected[0, y, xx, sl] = (p / p.sum()) @ vals
    np.testing.assert_allclose(np.array(floor(mx.array(x))), expected @ w_out, atol=1e-4)


def _closure_arrays(fn):
    cells = {
        name: cell.cell_contents for name, cell in zip(fn.__code__.co_freevars, fn.__closure__)
    }
    return cells["w_qkv"], cells["w_out"]


def test_main_quick_writes_json(tmp_path, capsys):
    path = tmp_path / "out.json"
    argv = ["--quick", "--blocks", "levit_pos,uniformer_mhsa", "--mode", "eager,compiled"]
    assert benchmarks.main([*argv, "--json", str(path)]) == 0
    document = json.loads(path.read_text())
    assert document["environment"]["mlx"] == mx.__version__
    records = document["records"]
    assert [(r["block"], r["mode"]) for r in records] == [
        ("levit_pos", "eager"), ("levit_pos", "compiled"),
        ("uniformer_mhsa", "eager"), ("uniformer_mhsa", "compiled"),
    ]  # fmt: skip
    for record in records:
        assert record["status"] == "ok" or record["status"] == "pending", record["status"]
        assert (record["status"] == "ok") == ("ours_ms" in record)
    assert all("floor_ms" in r for r in records if r["block"] == "uniformer_mhsa")
    assert "uniformer_mhsa" in capsys.readouterr().out


def test_bench_says_how_to_fix_a_slow_cpu_blas(monkeypatch, capsys):
    monkeypatch.setattr(benchmarks, "cpu_blas", lambda: ("slow one", benchmarks.OPENBLAS_HINT))
    assert benchmarks.main(["--quick", "--blocks", "levit_pos", "--no-floor"]) == 0
    assert "Slow BLAS: MLX's Linux CPU wheel" in capsys.readouterr().out
    monkeypatch.setattr(benchmarks, "cpu_blas", lambda: ("OpenBLAS (preloaded)", None))
    assert benchmarks.main(["--quick", "--blocks", "levit_pos", "--no-floor"]) == 0
    assert "Slow BLAS" not in capsys.readouterr().out


def test_quick_mode_is_batch_1_unless_asked():
    parser = benchmarks.argparse.ArgumentParser()
    benchmarks.add_arguments(parser, full_batches="1,8", modes="eager")
    assert benchmarks.options_from_args(parser.parse_args([]), quick=True)["batches"] == [1]
    assert benchmarks.options_from_args(parser.parse_args([]), quick=False)["batches"] == [1, 8]
    args = parser.parse_args(["--batch", "2"])
    assert benchmarks.options_from_args(args, quick=True)["batches"] == [2]


def _run_py():
    spec = importlib.util.spec_from_file_location("bench_run", RUN_PY)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_run_py_quick_writes_json_and_markdown(tmp_path, capsys):
    run_py = _run_py()
    argv = ["--quick", "--blocks", "levit_pos", "--kernels", "auto,off", "--out", str(tmp_path)]
    assert run_py.main(argv) == 0
    (json_path,) = tmp_path.glob("*.json")
    document = json.loads(json_path.read_text())
    assert document["peers"] == []  # quick mode: no peers unless asked
    records = document["records"]
    assert [(r["batch"], r["kernels"]) for r in records] == [(1, "auto"), (1, "off")]
    from mlx_attention.kernels import resolve_backend

    assert records[0]["backend"] == resolve_backend("auto")
    assert records[1]["backend"] == "ops"
    text = next(tmp_path.glob("*.md")).read_text()
    assert "Noise:" in text and "| kernels |" in text and "off: ops" in text
    assert "levit_pos" in capsys.readouterr().out


def test_run_py_peers_named_but_missing_fail_before_the_run(monkeypatch, capsys):
    run_py = _run_py()
    monkeypatch.setattr(run_py, "_installed", lambda *modules: "natten_mlx" not in modules)
    with pytest.raises(SystemExit, match="natten_mlx: pip install natten-mlx"):
        run_py.peers_to_run("kecam,natten_mlx", quick=False)
    assert run_py.peers_to_run(None, quick=False) == {"kecam"}  # by default: say, and go on
    assert "peers skipped, not installed (natten_mlx" in capsys.readouterr().err
    assert run_py.peers_to_run(None, quick=True) == set()
    with pytest.raises(SystemExit, match="not in kecam, natten_mlx, none"):
        run_py.peers_to_run("timm", quick=False)


def test_attach_peers_copies_the_peer_fields_and_ratios():
    run_py = _run_py()
    records = [
        {"block": "nat", "batch": 1, "dtype": "float32", "ours_ms": 6.0, "ours_peak_mb": 2.0},
        {"block": "nat", "batch": 1, "dtype": "float16", "ours_ms": 3.0},
    ]
    peer = {"status": "ok", "kecam_ms": 3.0, "kecam_peak_mb": 4.0, "kecam_contaminated": True}
    run_py.attach_peers(records, {"kecam": {("nat", 1): peer}})
    assert records[0]["ratio_kecam"] == 2.0 and records[0]["mem_ratio_kecam"] == 0.5
    assert records[0]["kecam_contaminated"] is True
    assert "kecam_ms" not in records[1]  # the peer runs float32 only


def test_profile_names_the_mlx_primitive():
    spec = importlib.util.spec_from_file_location("bench_profile", RUN_PY.with_name("profile.py"))
    profile = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(profile)
    symbol = (
        "mlx::core::(anonymous namespace)::slow_conv_2D<float>(mlx::core::array const&, "
        "std::vector<int, std::allocator<int> > const&, bool)::{lambda()#1}::operator()"
    )
    assert profile.short_name(symbol, "libmlx.so") == "slow_conv_2D"
    assert profile.short_name("sgemm_kernel_HASWELL", "libopenblas.so.0") == (
        "BLAS sgemm_kernel_HASWELL"
    )
