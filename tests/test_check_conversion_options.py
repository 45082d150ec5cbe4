"""`devicefit check` conversion options: image inputs, flexible shapes, output names."""

from __future__ import annotations

import json

import numpy as np
import pytest

from devicefit.check import program_feeds
from devicefit.cli import main
from devicefit.cli._convert_args import parse_flexible, parse_image_input, parse_output_names
from devicefit.errors import InputError

MODEL = """
import torch
from torch import nn

def make_model():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 5))
    return net.eval(), (torch.randn(1, 3, 16, 16),)
"""


@pytest.fixture
def model_file(tmp_path):
    path = tmp_path / "net.py"
    path.write_text(MODEL)
    return path


def test_image_input_enumerated_shapes_and_output_names(model_file, tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["check", f"{model_file}:make_model", "-o", str(out), "--samples", "3",
            "--image-input", "input:scale=0.0078125:bias=-1,-0.5,0:layout=BGR",
            "--enumerated", "input=1x3x16x16,1x3x24x24", "--output-names", "logits"]  # fmt: skip
    assert main(argv) == 0, capsys.readouterr().err
    report = json.loads((out / "report.json").read_text())
    # the model was fed pixels and still matches PyTorch on the normalised data
    assert report["summary"]["fp32.max_rel_error"] < 1e-2
    flex = report["extras"]["flexible"]
    assert flex["all_ok"] and [c["shapes"]["input"] for c in flex["checks"]] == [
        [1, 3, 16, 16],
        [1, 3, 24, 24],
    ]
    from devicefit import interp

    prog = interp.load(out / "model.mlpackage")
    assert prog.inputs[0].kind == "image"
    assert prog.inputs[0].enumerated_shapes == [(1, 3, 16, 16), (1, 3, 24, 24)]
    assert [o.name for o in prog.outputs] == ["logits"]


def test_range_input_warns_about_the_neural_engine(model_file, tmp_path, capsys):
    argv = ["check", f"{model_file}:make_model", "--json", str(tmp_path / "r.json"), "--samples", "2",
            "--range", "input:2=16..32", "--range", "input:3=16..32"]  # fmt: skip
    assert main(argv) == 0, capsys.readouterr().err
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["extras"]["flexible"]["all_ok"]
    assert len(report["extras"]["flexible"]["checks"]) >= 2  # the range's ends (and default)
    assert any("default shape" in w or "Neural Engine" in w for w in report["warnings"])


def test_program_feeds_turns_normalised_data_into_pixels():
    img = parse_image_input("x:scale=0.5:bias=1,2,3")[1]
    x = np.arange(6, dtype=np.float32).reshape(1, 3, 1, 2)
    pixels = program_feeds({"x": x, "other": np.ones(2)}, {"x": img})
    np.testing.assert_allclose(pixels["x"] * 0.5 + np.array([1, 2, 3]).reshape(1, 3, 1, 1), x)
    assert pixels["other"] is not None and program_feeds({"x": x}, {}) == {"x": x}


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: parse_image_input("x:scale=abc"), "cannot read"),
        (lambda: parse_image_input("x:layout=CMYK"), "layout"),
        (lambda: parse_flexible(["ids:1=8-512"], []), "NAME:AXIS=LO..HI"),
        (lambda: parse_flexible(["ids:1=64..8"], []), "LO <= HI"),
        (lambda: parse_flexible([], ["x=1x3xa"]), "NAME=SHAPE"),
        (lambda: parse_flexible(["x:1=2..4"], ["x=1x2"]), "twice"),
        (lambda: parse_output_names("a,,b"), "distinct"),
        (lambda: parse_output_names("a,a"), "distinct"),
    ],
)
def test_bad_conversion_arguments_are_one_line_errors(call, message):
    with pytest.raises(InputError, match=message) as e:
        call()
    assert "\n" not in str(e.value)


def test_parsers_accept_good_values():
    name, img = parse_image_input("px:scale=0.25:bias=0.5:layout=G")
    assert (name, img.scale, img.bias, img.color_layout) == ("px", 0.25, [0.5], "G")
    flex = parse_flexible(["ids:1=8..512"], ["x=1x3x8x8,1x3x16x16"])
    assert flex["ids"].ranges == {1: (8, 512)} and flex["x"].enumerated == [(1, 3, 8, 8), (1, 3, 16, 16)]
    assert parse_output_names("a, b") == ["a", "b"] and parse_output_names(None) is None


def test_frontends_reported_first_by_default_and_all_on_request(model_file, tmp_path, capsys):
    report_path = tmp_path / "r.json"
    base = ["check", f"{model_file}:make_model", "--samples", "2", "--json", str(report_path), "--force"]
    assert main(base) == 0
    statuses = {f["name"]: f["status"] for f in json.loads(report_path.read_text())["convert"]["frontends"]}
    assert statuses == {"torchscript": "converted", "torch.export": "not tried"}
    assert main([*base, "--frontends", "all"]) == 0
    frontends = json.loads(report_path.read_text())["convert"]["frontends"]
    assert {f["name"]: f["status"] for f in frontends} == {
        "torchscript": "converted",
        "torch.export": "converted",
    }
    assert all(f["seconds"] > 0 for f in frontends)
    assert "torch.export converted" in capsys.readouterr().out
