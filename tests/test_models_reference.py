"""Real named kecam models against ours, live: kecam 1.4.3 builds NAT_Mini, DiNAT_Mini and
NAT_Tiny at default, smaller, non-square and odd sizes, every variable re-randomised (the
fixture tool's scheme), saves them; we load the files and compare logits, ``forward_features``
and the stage probes. Also: a NAT_Tiny file refused by NAT_Mini, half precision on a full-size
NAT_Mini, and the peak memory of loading a whole file.

Marked ``reference``: needs TensorFlow and kecam 1.4.3 (skips cleanly without them). Slow
(minutes on two cores). ``-s`` prints the measured numbers.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import live
import mlx.core as mx
import numpy as np
import pytest
from test_models import PEAK_RSS, needs_proc

from mlx_attention import models
from mlx_attention.convert import WeightMismatchError

pytestmark = [pytest.mark.reference, pytest.mark.slow]


def nat_probes(model) -> list[str]:
    """``stem_ln``, every block's output, ``pre_output_ln``."""
    blocks = [layer.name for layer in model.layers if layer.name.endswith("_2_output")]
    return ["stem_ln", *blocks, "pre_output_ln"]


def kecam_file(folder: Path, name: str, shape, save: str = "model") -> live.KecamRun:
    """kecam's ``name``, re-randomised and saved to ``folder``, probed at :func:`nat_probes`."""
    return live.kecam_run(f"nat.{name}", folder, input_shape=shape, save=save,
                          probes=nat_probes, classifier_activation=None)  # fmt: skip


CASES = [
    ("NAT_Mini", (224, 224, 3), "model"),
    ("DiNAT_Mini", (224, 224, 3), "model"),
    ("DiNAT_Mini", (160, 160, 3), "weights"),
    ("NAT_Tiny", (192, 256, 3), "model"),
    ("DiNAT_Mini", (97, 131, 3), "weights"),
    ("NAT_Mini", (97, 131, 3), "model"),
    ("NAT_Mini", (32, 32, 3), "weights"),
    ("DiNAT_Mini", (32, 32, 3), "model"),
]
LIVE_MODELS = [(name, shape) for name, shape, _ in CASES]  # docs/models.md's "live at"


@pytest.mark.parametrize(
    "name, shape, save", CASES, ids=[f"{n}-{s[0]}x{s[1]}" for n, s, _ in CASES]
)
def test_real_model_matches_kecam(kecam_live, tmp_path, name, shape, save):
    run = kecam_file(tmp_path, name, shape, save)
    model = models.create_model(name, pretrained=str(run.path), input_shape=shape,
                                classifier_activation=None)  # fmt: skip
    live.assert_live(model, run, features="pre_output_ln")


def test_nat_tiny_file_into_nat_mini_raises(kecam_live, tmp_path):
    run = kecam_file(tmp_path, "NAT_Tiny", (64, 64, 3), "weights")
    with pytest.raises(WeightMismatchError, match="stack3_block7_"):
        models.NAT_Mini(input_shape=(64, 64, 3), pretrained=str(run.path))


def test_half_precision_on_full_size_nat_mini(kecam_live, tmp_path):
    """Reported, not a tolerance: max relative logit error and top-1 agreement of float16 and
    bfloat16 against float32 (same weights, 8 random images)."""
    path = kecam_file(tmp_path, "NAT_Mini", (224, 224, 3)).path
    x = mx.array(np.random.default_rng(1).uniform(-2, 2, (8, 224, 224, 3)).astype(np.float32))
    reference = np.array(models.NAT_Mini(pretrained=str(path), classifier_activation=None)(x))
    for dtype, bound in ((mx.float16, 0.05), (mx.bfloat16, 0.2)):
        model = models.NAT_Mini(pretrained=str(path), classifier_activation=None, dtype=dtype)
        logits = np.array(model(x))
        relative = float(np.abs(logits - reference).max() / np.abs(reference).max())
        agree = float(np.mean(logits.argmax(-1) == reference.argmax(-1)))
        print(
            f"\nNAT_Mini {dtype}: max relative logit error {relative:.3g}, "
            f"top-1 agreement {agree:.3f}"
        )
        assert relative < bound and agree >= 0.75


MEASURE = (
    PEAK_RSS
    + """
import sys, mlx.core as mx
from mlx.utils import tree_flatten
from mlx_attention import models
name, path = sys.argv[1], sys.argv[2]
import h5py  # noqa: F401  (imported by the first .h5 load: 10 MB once, not the load's)
model = models.create_model(name)  # lazy: nothing allocated yet
mx.eval(mx.zeros(1))
before = peak_rss()
model = models.create_model(name, pretrained=path)
mx.eval(model.parameters())
weights = sum(v.nbytes for _, v in tree_flatten(model.parameters()))
print(peak_rss() - before, weights, mx.get_peak_memory())
"""
)


@needs_proc
@pytest.mark.parametrize("name", ["NAT_Mini", "DiNAT_Mini", "NAT_Base"])
def test_loading_peak_memory(kecam_live, tmp_path, name):
    """Issue 13: loading a whole file costs at most about 1.3x the weights: the peak RSS of a
    fresh process (h5py imported) grows by that from before the load to after it (weights
    evaluated), plus a fixed ~16 MB (HDF5's and numpy's buffers, the model's index tables;
    NAT_Mini 1.37x, NAT_Base 1.24x here)."""
    path = kecam_file(tmp_path, name, (224, 224, 3)).path
    done = subprocess.run(
        [sys.executable, "-c", MEASURE, name, str(path)], capture_output=True, text=True, check=True
    )
    grown, weights, mlx_peak = map(int, done.stdout.split())
    print(f"\n{name}: peak RSS grew {grown / 2**20:.1f} MB for {weights / 2**20:.1f} MB of weights "
          f"({grown / weights:.2f}x; MLX's own peak {mlx_peak / weights:.2f}x)")  # fmt: skip
    assert grown <= 1.3 * weights + 16 * 2**20
