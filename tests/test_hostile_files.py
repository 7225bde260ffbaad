"""Hostile and damaged weight files (issue 12): the loader reads nothing but its file, never
reads what it does not need, and every failure is a ``KerasFileError`` or a
``WeightMismatchError`` that names the file, layer and weight.

Every hostile file is made here, in ``tmp_path``. Tests that could hang (a FIFO) or exhaust
memory (a memory bomb) load in a subprocess with a timeout and an address-space limit, so a
regression fails instead of hanging or killing the run.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import struct
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest
from cases import cases
from mlx.utils import tree_flatten
from parity import build_module

from mlx_attention import cli
from mlx_attention.convert import (
    KerasFileError,
    KerasH5,
    WeightMismatchError,
    load_keras_weights,
    read_keras_h5,
)

TESTS = Path(__file__).parent
CONV = next(c for c in cases("common") if c.id == "conv_same_s2")  # name "c_", kernel (3,3,4,6)
DW = next(c for c in cases("common") if c.id == "dw_same")  # name "dw_", (3, 3, 6, 1)
KERNEL = "c_conv/c_conv/kernel:0"
BOMB = (60000, 60000)  # 13.4 GB of float32


def copy_fixture(case, tmp_path, name="weights.h5") -> Path:
    path = tmp_path / name
    shutil.copy(case.weights_path, path)
    return path


def replace_dataset(path: Path, dataset: str, **create) -> None:
    with h5py.File(path, "a") as f:
        del f[dataset]
        f.create_dataset(dataset, **create)


def params(module) -> dict[str, np.ndarray]:
    return {k: np.array(v) for k, v in tree_flatten(module.parameters())}


def add_layer(path: Path, name: str, **create) -> None:
    """Add a layer ``name`` holding one dataset ``name/kernel:0``."""
    with h5py.File(path, "a") as f:
        f.attrs["layer_names"] = [n.encode() for n in f.attrs["layer_names"]] + [name.encode()]
        group = f.create_group(name)
        group.create_dataset(f"{name}/kernel:0", **create)
        group.attrs["weight_names"] = [f"{name}/kernel:0".encode()]


def _limit_address_space() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))


def run_limited(code: str) -> str:
    """Run ``code`` in a fresh interpreter with 2 GiB of address space and 60 s; its stdout."""
    prelude = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(TESTS)!r})
        from cases import cases
        from parity import build_module
        from mlx_attention import cli
        from mlx_attention.convert import load_keras_weights
        CONV = next(c for c in cases("common") if c.id == "conv_same_s2")
        def attempt(fn, *args, **kwargs):
            try:
                print("RESULT", repr(fn(*args, **kwargs)))
            except Exception as err:
                print("RESULT", type(err).__name__, err)
    """)
    done = subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=_limit_address_space,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


# --- data from outside the file ----------------------------------------------------------------


@pytest.mark.parametrize("target", ["/etc/hostname", "/proc/self/environ"])
def test_external_storage_is_refused(tmp_path, target, capsys):
    if not os.path.exists(target):
        pytest.skip(f"needs {target} (absent here)")
    path = copy_fixture(CONV, tmp_path)
    replace_dataset(path, KERNEL, shape=(3, 3, 4, 6), dtype="f4", external=[(target, 0, 864)])
    module = build_module(CONV)
    before = params(module)
    with pytest.raises(KerasFileError, match=f"{path}.*'c_conv'.*kernel.*external storage"):
        load_keras_weights(module, path)
    assert all(np.array_equal(before[k], v) for k, v in params(module).items())
    assert cli.main(["inspect", str(path)]) == 2
    assert "external storage" in capsys.readouterr().err


def test_external_link_and_soft_link_are_refused(tmp_path):
    source = tmp_path / "other.h5"
    with h5py.File(source, "w") as f:
        f["data"] = np.ones((3, 3, 4, 6), np.float32)
    path = copy_fixture(CONV, tmp_path)
    with h5py.File(path, "a") as f:
        del f[KERNEL]
        f[KERNEL] = h5py.ExternalLink(str(source), "/data")
    with pytest.raises(KerasFileError, match="external link.*reads nothing outside its file"):
        load_keras_weights(build_module(CONV), path)
    with h5py.File(path, "a") as f:
        del f[KERNEL]
        f["elsewhere"] = np.ones((3, 3, 4, 6), np.float32)
        f[KERNEL] = h5py.SoftLink("/elsewhere")
    with pytest.raises(KerasFileError, match="soft link"):
        load_keras_weights(build_module(CONV), path)


def test_virtual_dataset_is_refused(tmp_path):
    source = tmp_path / "other.h5"
    with h5py.File(source, "w") as f:
        f["data"] = np.ones((3, 3, 4, 6), np.float32)
    path = copy_fixture(CONV, tmp_path)
    with h5py.File(path, "a") as f:
        del f[KERNEL]
        layout = h5py.VirtualLayout(shape=(3, 3, 4, 6), dtype="f4")
        layout[...] = h5py.VirtualSource(str(source), "data", shape=(3, 3, 4, 6))
        f.create_virtual_dataset(KERNEL, layout)
    with pytest.raises(KerasFileError, match="'c_conv'.*virtual dataset"):
        load_keras_weights(build_module(CONV), path)


def test_fifo_is_refused_without_hanging(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    path = copy_fixture(CONV, tmp_path)
    replace_dataset(path, KERNEL, shape=(3, 3, 4, 6), dtype="f4", external=[(str(fifo), 0, 864)])
    out = run_limited(f"""
        attempt(load_keras_weights, build_module(CONV), {str(path)!r})
        attempt(load_keras_weights, build_module(CONV), {str(fifo)!r})
        attempt(cli.main, ["inspect", {str(path)!r}])
        attempt(cli.main, ["inspect", {str(fifo)!r}])
    """)
    results = [line for line in out.splitlines() if line.startswith("RESULT")]
    assert "KerasFileError" in results[0] and "external storage" in results[0]
    assert "KerasFileError" in results[1] and "not a regular file" in results[1]
    assert results[2:] == ["RESULT 2", "RESULT 2"]


# --- memory bombs: declared sizes are checked before anything is read ------------------------


def _bomb(**extra) -> dict:
    return dict(shape=BOMB, dtype="f4", chunks=(1000, 1000), compression="gzip", **extra)


def test_memory_bomb_in_a_used_layer_is_refused_unread(tmp_path):
    path = copy_fixture(CONV, tmp_path)
    replace_dataset(path, KERNEL, **_bomb())
    assert path.stat().st_size < 100_000
    out = run_limited(f"""
        attempt(load_keras_weights, build_module(CONV), {str(path)!r})
        report = load_keras_weights(build_module(CONV), {str(path)!r}, strict=False)
        print("MISMATCHED", report.mismatched)
    """)
    assert "RESULT WeightMismatchError" in out and "(60000, 60000)" in out
    assert "MISMATCHED (('c_conv'," in out


def test_memory_bomb_in_an_unused_layer_is_never_read(tmp_path, capsys):
    path = copy_fixture(CONV, tmp_path)
    add_layer(path, "zz_other", **_bomb())  # another model's layer
    scoped = copy_fixture(CONV, tmp_path, "scoped.h5")
    add_layer(scoped, "c_big", **_bomb())  # under the block's name: unexpected, still unread
    out = run_limited(f"""
        report = load_keras_weights(build_module(CONV), {str(path)!r})
        print("LOADED", report.loaded, report.ok)
        attempt(cli.main, ["inspect", {str(path)!r}])
        attempt(load_keras_weights, build_module(CONV), {str(scoped)!r})
        report = load_keras_weights(build_module(CONV), {str(scoped)!r}, strict=False)
        print("SCOPED", report.loaded, report.unexpected)
    """)
    assert "LOADED ('c_conv',) True" in out
    assert "(60000, 60000)" in out and "RESULT 2" not in out  # inspect printed the shape
    assert "RESULT WeightMismatchError" in out and "unexpected Keras layer 'c_big'" in out
    assert "SCOPED ('c_conv',) ('c_big',)" in out


def test_memory_bomb_table_is_not_read_to_be_resized(tmp_path):
    case = next(c for c in cases("positional") if c.id == "resize_rel")
    path = copy_fixture(case, tmp_path)
    replace_dataset(path, "pe/pe/r_height:0", **_bomb())
    out = run_limited(f"""
        case = next(c for c in cases("positional") if c.id == "resize_rel")
        attempt(load_keras_weights, build_module(case), {str(path)!r}, resize=True)
    """)
    assert "RESULT WeightMismatchError" in out and "not resized" in out


# --- float widths and byte orders; data that is not float --------------------------------------


@pytest.mark.parametrize("dtype", [">f4", ">f8", "<f8", "<f2", ">f2"])
def test_other_float_widths_and_byte_orders_load(tmp_path, dtype):
    native = build_module(CONV)
    load_keras_weights(native, CONV.weights_path)
    path = copy_fixture(CONV, tmp_path)
    with h5py.File(path, "r") as f:
        kernel = f[KERNEL][()]
    replace_dataset(path, KERNEL, data=kernel.astype(dtype))
    module = build_module(CONV)
    load_keras_weights(module, path)
    expected = params(native)["conv.weight"]
    if dtype.endswith("f2"):
        expected = expected.astype(np.float16).astype(np.float32)
    np.testing.assert_array_equal(params(module)["conv.weight"], expected)
    with KerasH5(path) as f:
        assert f.read("c_conv", 0).dtype.isnative


@pytest.mark.parametrize(
    "data",
    [
        np.ones((3, 3, 4, 6), np.int32),
        np.ones((3, 3, 4, 6), np.complex64),
        np.full((3, 3, 4, 6), b"abcd", "S4"),
        np.zeros((3, 3, 4, 6), [("re", "f4"), ("im", "f4")]),
        np.ones((3, 3, 4, 6), bool),
    ],
    ids=["int32", "complex64", "string", "compound", "bool"],
)
def test_non_float_weights_are_refused_naming_file_layer_and_weight(tmp_path, data, capsys):
    path = copy_fixture(CONV, tmp_path)
    replace_dataset(path, KERNEL, data=data)
    match = f"{path}: layer 'c_conv', weight 'c_conv/kernel:0' holds .* floating-point"
    with pytest.raises(KerasFileError, match=match):
        load_keras_weights(build_module(CONV), path, strict=False)
    with pytest.raises(KerasFileError, match=match):
        read_keras_h5(path)
    assert cli.main(["inspect", str(path)]) == 0  # metadata only: lists it with its dtype
    assert str(data.dtype) in capsys.readouterr().out or data.dtype.kind in "SV"


# --- damaged files --------------------------------------------------------------------------


@pytest.mark.parametrize("fill", [0x00, 0xFF])
def test_damaged_metadata_is_a_keras_file_error(tmp_path, fill):
    """Overwrite 32 bytes at every offset of a real file with zeros (or 0xFF), the global heap
    of ``layer_names`` included (HDF5 itself loops forever on a zeroed or wrapping heap
    object): every load ends, loaded or with one of the library's errors."""
    data = CONV.weights_path.read_bytes()
    heap = data.index(b"GCOL")
    out = run_limited(f"""
        data = open({str(CONV.weights_path)!r}, "rb").read()
        for offset in [*range(0, len(data), 32), {heap + 16}]:
            damaged = bytearray(data)
            damaged[offset : offset + 32] = bytes([{fill}]) * 32
            open({str(tmp_path / "z.h5")!r}, "wb").write(damaged)
            try:
                load_keras_weights(build_module(CONV), {str(tmp_path / "z.h5")!r})
                print("OFFSET", offset, "ok")
            except Exception as err:
                print("OFFSET", offset, type(err).__name__)
    """)
    outcomes = dict(line.split()[1:] for line in out.splitlines() if line.startswith("OFFSET"))
    assert set(outcomes.values()) <= {"ok", "KerasFileError", "WeightMismatchError"}
    assert outcomes[str(heap + 16)] == "KerasFileError"
    assert list(outcomes.values()).count("KerasFileError") > 10


@pytest.mark.parametrize(
    "case, dataset", [(CONV, KERNEL), (DW, "dw_dw_conv/dw_dw_conv/depthwise_kernel:0")]
)
def test_rank3_conv_kernel_names_layer_and_weight(tmp_path, case, dataset):
    path = copy_fixture(case, tmp_path)
    with h5py.File(path, "r") as f:
        kernel = f[dataset][()]
    replace_dataset(path, dataset, data=kernel.reshape(*kernel.shape[:2], -1))
    layer = dataset.split("/")[0]
    weight = dataset.rsplit("/", 1)[1].split(":")[0]
    with pytest.raises(WeightMismatchError, match=f"'{layer}'/{weight}: shape .* \\(rank 4") as err:
        load_keras_weights(build_module(case), path)
    assert "not filled" not in str(err.value)


def test_keras3_archive_gets_a_resave_hint(tmp_path, capsys):
    path = tmp_path / "model.keras"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("config.json", "{}")
        archive.writestr("model.weights.h5", b"")
    with pytest.raises(KerasFileError, match=r"Keras-3 '\.keras' archive.*save_weights"):
        load_keras_weights(build_module(CONV), path)
    assert cli.main(["inspect", str(path)]) == 2
    assert "corrupt" not in capsys.readouterr().err


# --- what is not a weight file ----------------------------------------------------------------


def test_inspect_says_directory_and_permission_denied(tmp_path, capsys, monkeypatch):
    assert cli.main(["inspect", str(tmp_path)]) == 2
    assert "is a directory" in capsys.readouterr().err
    path = copy_fixture(CONV, tmp_path)
    if os.geteuid() != 0:
        path.chmod(0)
    else:  # root reads anything: make the open fail as it would for a user
        real_open = os.open

        def denied(file, *args, **kwargs):
            if str(file) == str(path):
                raise PermissionError(13, "Permission denied", str(file))
            return real_open(file, *args, **kwargs)

        monkeypatch.setattr(os, "open", denied)
    assert cli.main(["inspect", str(path)]) == 2
    err = capsys.readouterr().err
    assert "permission denied" in err and "corrupt" not in err


# --- safetensors: the header is checked before anything is allocated -------------------------


def _write_safetensors(path: Path, header: dict, data: bytes) -> None:
    text = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(text)) + text + data)


def test_safetensors_header_claiming_a_huge_tensor_is_refused_unread(tmp_path):
    from mlx_attention.convert import load_safetensors

    path = tmp_path / "bomb.safetensors"
    header = {
        "conv.weight": {"dtype": "F32", "shape": list(BOMB), "data_offsets": [0, 4 * BOMB[0] ** 2]}
    }
    _write_safetensors(path, header, bytes(64))
    out = run_limited(f"""
        from mlx_attention.convert import load_safetensors
        attempt(load_safetensors, build_module(CONV), {str(path)!r})
    """)
    assert "RESULT KerasFileError" in out and "byte range" in out
    with pytest.raises(KerasFileError, match="byte range"):
        load_safetensors(build_module(CONV), path)
