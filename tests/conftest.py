"""Test set-up: the live kecam reference, loaded only when a ``reference`` test asks for it."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

# kecam runs on tf-keras (Keras 2); these must be set before TensorFlow is first imported.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def kecam_live():
    """``(tensorflow, kecam attention_layers, build)`` or a skip when TF/kecam are absent."""
    pytest.importorskip("tensorflow", reason="the reference extra (TensorFlow) is not installed")
    pytest.importorskip("keras_cv_attention_models", reason="kecam is not installed")
    sys.path.insert(0, str(ROOT / "tools"))
    import make_fixtures

    version = make_fixtures.kecam_version()
    if version != "1.4.3":
        pytest.skip(f"live parity needs kecam 1.4.3, found {version}")
    tf, attention_layers = make_fixtures.import_kecam(version)
    return tf, attention_layers, make_fixtures.build
