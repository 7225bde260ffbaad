"""Write ``docs/models.md``, the model table, from the registry and the committed fixtures.

Every row comes from ``mlx_attention.models`` (the same rows as ``mlx-attention models``). A
family's status is measured here, not written by hand: "exact" when every committed kecam
fixture of the family (``tests/fixtures/models``: kecam-made reduced configurations with
re-randomised weights) matches kecam's logits, ``forward_features`` and stage outputs within
DESIGN.md's bound; "differs" when one does not; "unchecked" without fixtures.
``tests/test_model_table.py`` regenerates the table and compares it with the file::

    python tools/make_model_table.py            # rewrite docs/models.md
    python tools/make_model_table.py --check    # exit 1 when docs/models.md is out of date
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections import defaultdict
from pathlib import Path

import mlx.core as mx
import numpy as np

from mlx_attention import cli, models

ROOT = Path(__file__).resolve().parents[1]
TESTS = ROOT / "tests"
FIXTURES = TESTS / "fixtures" / "models"
DOC = ROOT / "docs" / "models.md"
COMMAND = "python tools/make_model_table.py"

HEADER = f"""# Models

kecam 1.4.3's models that run here, generated from the registry by `{COMMAND}`
(`tests/test_model_table.py` keeps this file in sync). Build one with
`mlx_attention.models.create_model(name, pretrained=...)` or list them with
`mlx-attention models`; the README's "Run a kecam model" shows the calls.

- **weights**: kecam's release tags (`pretrained="imagenet"` downloads kecam's file for the
  input width and caches it); sizes in brackets where kecam has one file per resolution, and the
  number of classes where the head is not ImageNet-1k's.
- **status**: *exact* means every committed kecam fixture of the family matches kecam's numbers
  within `1e-4 x max(1, max|kecam|)` (DESIGN.md's bound), measured when this file was generated;
  the fixtures are kecam-made reduced configurations of the family builder with every weight
  re-randomised (kecam's initial weights switch residual branches off). "live" names the sizes
  at which the real model is compared too, by the `reference` tests of `tests/test_models*.py`
  (they run where TensorFlow and kecam are installed).
"""


def _shape(shape) -> str:
    return "x".join(str(v) for v in shape)


def _max_excess(model: models.ImageClassifier, arrays: dict) -> float:
    """The largest ``error / bound`` over the logits and the stage probes (``<= 1``: exact)."""
    x = mx.array(arrays["input"].astype(np.float32))
    ours = {f"probe/{k}": v for k, v in model.forward_intermediates(x).items()}
    ours["logits"] = model.forward_head(ours[f"probe/{model.output_names[-1]}"])
    worst = 0.0
    for key, theirs in arrays.items():
        if key not in ours:
            continue
        bound = cli.EXACT * max(1.0, float(np.abs(theirs).max()))
        worst = max(worst, float(np.abs(np.array(ours[key]) - theirs).max()) / bound)
    return worst


def family_checks() -> dict[str, dict]:
    """``{family: {"cases", "sizes", "kecam", "saves", "exact", "code"}}`` from the committed
    fixtures; ``code`` is where the family's builder is written (the AotNet template's fixtures
    check BoTNet, HaloNet, CotNet and ResNeSt too)."""
    sys.path.insert(0, str(TESTS))
    from test_models import fixture_model  # the fixture's model, returning logits

    index = json.loads((FIXTURES / "index.json").read_text())
    checks: dict[str, dict] = defaultdict(
        lambda: {"cases": [], "sizes": [], "kecam": set(), "saves": set(), "exact": True}
    )
    for case, entry in sorted(index.items()):
        family = models.get_entry(entry["builder"]).family
        model = fixture_model(case)
        with np.load(FIXTURES / entry["arrays"]) as data:
            arrays = {k: data[k] for k in data.files if k == "logits" or k.startswith("probe/")}
            arrays["input"] = data["input"]
        check = checks[family.module]
        check["code"] = _code(family)
        check.setdefault("builders", set()).add(entry["builder"])  # swin v2 has two
        check["cases"].append(case)
        check["sizes"].append(_shape(entry["kwargs"]["input_shape"][:2]))
        check["kecam"].add(entry["kecam"])
        check["saves"].add({"model": "`model.save`", "weights": "`save_weights`"}[entry["save"]])
        check["exact"] &= _max_excess(model, arrays) <= 1.0
    return dict(checks)


def _code(family) -> str:
    """Where a family's builder is written: families on one template share their fixtures."""
    return family.build.__module__


def live_sizes() -> dict[str, list[str]]:
    """``{model: ["224x224", ...]}``: the real models the ``reference`` tests compare with
    kecam, from the ``LIVE_MODELS`` of every ``tests/test_models*.py`` that has one."""
    sys.path.insert(0, str(TESTS))  # the test modules import the tests' helpers
    sizes: dict[str, list[str]] = defaultdict(list)
    for path in sorted(TESTS.glob("test_models*.py")):
        module = importlib.import_module(path.stem)
        for name, shape in getattr(module, "LIVE_MODELS", ()):
            sizes[name].append(_shape(shape[:2]))
    return dict(sizes)


def _family_section(family: str, check: dict) -> str:
    versions = " and ".join(sorted(check["kecam"]))
    builders = " and ".join(f"`{b}`" for b in sorted(check["builders"]))
    return (
        f"- **{family}**: {len(check['cases'])} reduced {builders} configurations at "
        f"{', '.join(check['sizes'])} (kecam {versions}; {' and '.join(sorted(check['saves']))} "
        f"files; `tests/test_models.py`), each compared on its logits, `forward_features` and "
        "every stage's output."
    )


def render() -> str:
    """The whole of ``docs/models.md``."""
    checks, live = family_checks(), live_sizes()
    by_code = {check["code"]: (family, check) for family, check in checks.items()}
    lines = [
        HEADER,
        "| family | model | kecam constructor | model.name | input | params | weights | status "
        "| checked against kecam |",
        "|---|---|---|---|---|---:|---|---|---|",
    ]
    for row in sorted(cli.model_rows(), key=lambda r: (r["family"], r["name"])):
        family, check = by_code.get(_code(models.get_entry(row["name"]).family), (None, None))
        status = "unchecked" if check is None else "exact" if check["exact"] else "differs"
        checked = [] if check is None else [f"{family} fixtures"]
        if row["name"] in live:
            checked.append(f"live at {', '.join(live[row['name']])}")
        lines.append(
            f"| {row['family']} | `{row['name']}` | `{row['kecam']}` | `{row['model_name']}` "
            f"| {_shape(row['input_shape'])} | {row['params'] / 1e6:.2f}M "
            f"| {cli.tags_text(row['tags'])} | {status} | {'; '.join(checked) or 'nothing'} |"
        )
    lines += ["", "Fixtures of each family:", ""]
    lines += [_family_section(family, check) for family, check in sorted(checks.items())]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="compare, do not write")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = DOC.read_text() if DOC.exists() else ""
        if current != text:
            print(f"{DOC} is out of date: run {COMMAND}", file=sys.stderr)
            return 1
        return 0
    DOC.parent.mkdir(parents=True, exist_ok=True)
    DOC.write_text(text)
    print(f"wrote {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
