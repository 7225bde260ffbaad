"""Test set-up: the live kecam reference, loaded only when a ``reference`` test asks for it."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from helpers import GXX_REASON, REFERENCE_REASON, require_reference

# kecam runs on tf-keras (Keras 2); these must be set before TensorFlow is first imported.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def kecam_live():
    """``(tensorflow, kecam attention_layers, build)`` or a skip when TF/kecam are absent."""
    require_reference()
    sys.path.insert(0, str(ROOT / "tools"))
    import make_fixtures

    version = make_fixtures.kecam_version()
    if version != "1.4.3":
        pytest.skip(f"{REFERENCE_REASON} (found kecam {version})")
    tf, attention_layers = make_fixtures.import_kecam(version)
    return tf, attention_layers, make_fixtures.build


@pytest.fixture
def kernel_emulator():
    """``backend="emulated"`` runs the g++ builds of the Metal and CUDA kernels (on the CPU)."""
    from tests import kernel_harness

    if kernel_harness.GXX is None:
        pytest.skip(GXX_REASON)
    kernel_harness.register()
    yield
    kernel_harness.unregister()


@pytest.fixture(params=["off", "emulated"])
def kernels_mode(request, monkeypatch):
    """Run a test twice: kernels off (pure ``ops``), and with ``MLX_ATTENTION_KERNELS=emulated``,
    the g++ builds of the Metal and CUDA kernel bodies run on the CPU (tests/kernel_harness)."""
    if request.param == "emulated":
        request.getfixturevalue("kernel_emulator")
    monkeypatch.setenv("MLX_ATTENTION_KERNELS", request.param)
    return request.param
