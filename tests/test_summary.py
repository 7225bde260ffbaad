"""``KerasModule.summary()``: the Keras layers a block loads, against kecam's fixture files."""

from __future__ import annotations

import dataclasses
import re

import pytest
from cases import CASES
from mlx.utils import tree_flatten
from parity import build_module

from mlx_attention.convert import KerasH5, load_keras_weights

# a few kecam faces: a block, a block with a stored constant, a layer class with two layouts
# (kecam 1.4.3 and 1.3.1 names), a positional layer of kecam's own variables, a convolution
CASE_IDS = [
    "halo_rect_h2_bias",
    "halo_ratio_no_out",
    "outlook_odd_rect",
    "crpe_default",
    "v131_crpe",
    "volo_image",
    "conv_same_odd",
]
CASE = {case.id: case for case in CASES}


def table(text: str) -> tuple[list[list[str]], int]:
    """The rows (cells split on two spaces or more) and the total of a summary."""
    lines = text.splitlines()
    rules = [i for i, line in enumerate(lines) if line and set(line) == {"-"}]
    assert len(rules) == 3, text
    rows = [re.split(r"\s{2,}", line.strip()) for line in lines[rules[1] + 1 : rules[2]]]
    total = re.fullmatch(r"Total params: ([\d,]+)", lines[-1])
    assert total, lines[-1]
    return rows, int(total[1].replace(",", ""))


def rows_for(rows: list[list[str]], version: str) -> list[list[str]]:
    """The rows of the layout a file of this kecam version stores (rows of a single layout
    carry no version)."""
    return [row for row in rows if "[kecam" not in row[1] or f"[kecam {version} file]" in row[1]]


def weighted_layers(path) -> set[str]:
    with KerasH5(path) as f:
        return {layer.name for layer in f.layers if layer.weights}


@pytest.mark.parametrize("case_id", CASE_IDS)
def test_listed_names_are_the_fixture_files_layers_and_what_the_loader_reads(case_id):
    case = CASE[case_id]
    module = build_module(case)
    rows, _ = table(module.summary(print_fn=None))
    listed = {row[0] for row in rows_for(rows, case.version)}
    assert listed == weighted_layers(case.weights_path)
    assert listed == set(load_keras_weights(module, case.weights_path).loaded)


@pytest.mark.parametrize("case_id", CASE_IDS)
def test_counts_add_up_to_the_total_the_modules_parameter_sizes(case_id):
    module = build_module(CASE[case_id])
    rows, total = table(module.summary(print_fn=None))
    assert total == sum(v.size for _, v in tree_flatten(module.parameters()))
    # one layout's counts (an alternative layout repeats none), constants not counted
    counted = [row[-1] for row in rows if len(row) == 5 and row[-1] != "constant"]
    assert sum(int(c.replace(",", "")) for c in counted) == total


def test_rows_name_the_keras_type_module_path_shapes_and_mark_constants():
    rows, _ = table(build_module(CASE["outlook_odd_rect"]).summary(print_fn=None))
    by_name = {row[0]: row for row in rows}
    assert by_name["ol_attn"] == [
        "ol_attn",
        "Dense",
        "attn",
        "weight (243, 16), bias (243,)",
        "4,131",
    ]
    assert by_name["ol_fold_convtrans"] == [
        "ol_fold_convtrans",
        "Constant",
        "-",
        "(3, 3, 1, 9)",
        "constant",
    ]
    rows, _ = table(build_module(CASE["crpe_default"]).summary(print_fn=None))
    assert [row[1] for row in rows] == [
        *["DepthwiseConv2D [kecam 1.4.3 file]"] * 3, "Weights [kecam 1.3.1 file]"
    ]  # fmt: skip
    assert [row[2] for row in rows] == ["convs.0", "convs.1", "convs.2", "(self)"]


def test_without_name_the_names_follow_the_loaders_prefix(capsys):
    case = CASE["conv_same_odd"]
    named = build_module(case)
    module = build_module(dataclasses.replace(case, kwargs={**case.kwargs, "name": None}))
    text = module.summary()
    assert capsys.readouterr().out == text + "\n"
    assert "prefix=" in text.splitlines()[0]
    rows, _ = table(text)
    assert [row[0] for row in rows] == ["<prefix>conv"]
    # the same file loads with the named block's name= as the prefix
    load_keras_weights(module, case.weights_path, prefix=named.name)
    assert "prefix=" not in named.summary(print_fn=None).splitlines()[0]
