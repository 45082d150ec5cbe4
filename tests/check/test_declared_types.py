"""`check` reports a value the converted program computes with another shape than it declares: the interpreter
follows the values (its numerics are right), a device plans from the declared type. A deliberately mistyped
``relu`` translation stands in for a rescue with the bug (select(mask of (B, D), ones of (1, D), 0) is
declared (1, D) by coremltools, which types a select by its a and b alone)."""

from __future__ import annotations

import json
import textwrap
from typing import Any

import numpy as np
import pytest

from devicefit.check import CheckOptions, run_check
from devicefit.cli import main
from devicefit.convert.rescue import RESCUES
from devicefit.convert.rescue._registry import Rescue
from devicefit.interp import STRICT_TYPES_ENV

MODEL = textwrap.dedent(
    """
    import torch


    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.proj = torch.nn.Linear(6, 6)

        def forward(self, x):
            return torch.relu(self.proj(x)) * 2.0  # LINE_RELU


    def make_model():
        return Net().eval(), torch.randn(3, 6)
    """
)


def _mistyped_relu(context: Any, node: Any) -> None:
    from coremltools.converters.mil.frontend.torch import ops
    from coremltools.converters.mil.mil import Builder as mb

    (x,) = ops._get_inputs(context, node, min_expected=1)[:1]
    keep = mb.select(cond=mb.greater(x=x, y=0.0), a=np.ones((1, x.shape[-1]), np.float32), b=np.float32(0))
    context.add(mb.mul(x=x, y=keep, name=node.name), torch_name=node.name)


@pytest.fixture
def mistyped_relu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(
        RESCUES, "relu", Rescue("relu", _mistyped_relu, "test: mistyped on purpose", override=True)
    )
    monkeypatch.setenv(STRICT_TYPES_ENV, "0")  # a user's run: the check reports, it does not stop


def test_check_names_the_line_whose_value_is_declared_narrower(tmp_path, mistyped_relu):
    path = tmp_path / "model.py"
    path.write_text(MODEL)
    result = run_check(CheckOptions(model=f"{path}:make_model", samples=2, repair=False))
    (found,) = result.extras["declared_type_mismatches"]
    assert (found["op"], found["declared"], found["computed"]) == ("select", [1, 6], [3, 6])
    line = next(i for i, text in enumerate(MODEL.splitlines(), 1) if "LINE_RELU" in text)
    assert f"model.py:{line}" in found["where"], found
    verdict = result.verdicts["convert"]
    assert verdict.status == "warn", verdict.reason
    assert "declares a 1x6 value where it computes 3x6" in verdict.reason, verdict.reason
    assert f"model.py:{line}" in verdict.reason and "refuse to load" in verdict.reason, verdict.reason
    assert result.verdicts["numerics"].status == "pass"  # the interpreter follows the values


def test_a_mistyped_value_warns_and_exits_0(tmp_path, mistyped_relu):
    path = tmp_path / "model.py"
    path.write_text(MODEL)
    report = tmp_path / "r.json"
    assert main(["check", f"{path}:make_model", "--samples", "2", "--json", str(report)]) == 0
    verdicts = json.loads(report.read_text())["verdicts"]
    assert verdicts["convert"]["status"] == "warn", verdicts["convert"]


def test_a_correctly_typed_model_has_no_finding(tmp_path, monkeypatch):
    monkeypatch.setenv(STRICT_TYPES_ENV, "0")
    path = tmp_path / "model.py"
    path.write_text(MODEL)
    result = run_check(CheckOptions(model=f"{path}:make_model", samples=2, repair=False))
    assert "declared_type_mismatches" not in result.extras
    assert result.verdicts["convert"].status == "pass"
