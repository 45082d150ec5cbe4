"""`devicefit check` exit codes: 1 when any verdict fails (unless --fail-on gates decide), and the fp16 fix."""

from __future__ import annotations

import json
import textwrap

import numpy as np
import pytest

from devicefit.cli import main
from devicefit.cli.cmd_check import exit_code

# fp16 overflows in three separate places (three modules): |x| * 300 squared goes past 65504 before the
# square root brings it back. Keeping the first place in fp32 only moves the overflow to the next one.
OVERFLOW3 = textwrap.dedent(
    """
    import torch
    from torch import nn


    class Square(nn.Module):
        def forward(self, x):
            h = x * 300.0
            return torch.sqrt(h * h + 1.0) / 300.0


    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.fc = nn.Linear(6, 6)
            self.a, self.b, self.c = Square(), Square(), Square()

        def forward(self, x):
            y = self.fc(x)
            return self.a(y[:, 0:2]) + self.b(y[:, 2:4]) * 2.0 + self.c(y[:, 4:6]) * 3.0


    def make_model():
        return Net().eval(), torch.ones(1, 6)
    """
)

MLP = textwrap.dedent(
    """
    import torch

    def make_model():
        torch.manual_seed(0)
        net = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.ReLU(), torch.nn.Linear(16, 7))
        return net.eval(), torch.zeros(1, 6)
    """
)

# The branch depends on the input's width: tracing bakes in the example's branch, so the 24-wide enumerated
# shape computes something else than PyTorch.
SHAPE_BRANCH = textwrap.dedent(
    """
    import torch


    class Net(torch.nn.Module):
        def forward(self, x):
            y = torch.relu(x).mean(dim=(2, 3))
            if x.shape[-1] > 16:
                return y * 2.0
            return y


    def make_model():
        return Net().eval(), torch.rand(1, 3, 16, 16)
    """
)


def _write(tmp_path, name: str, text: str):
    path = tmp_path / f"{name}.py"
    path.write_text(text)
    return path


def test_exit_code_rule():
    failing = {"numerics": {"status": "fail"}, "size": {"status": "pass"}}
    passing = {"numerics": {"status": "warn"}, "size": {"status": "pass"}}
    assert exit_code(failing, [], []) == 1
    assert exit_code(passing, [], []) == 0
    assert exit_code(failing, [], ["a gate"]) == 0  # the user's gates decide
    assert exit_code(passing, ["tripped"], ["a gate"]) == 1


@pytest.fixture(scope="module")
def overflow_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("ovf")
    model = _write(root, "ovf", OVERFLOW3)
    code = main(["check", str(model), "--samples", "8", "--json", str(root / "r.json")])
    return code, json.loads((root / "r.json").read_text())


def test_fp16_overflow_fails_with_exit_1_and_the_fix_needs_all_three_places(overflow_run, capsys):
    code, report = overflow_run
    assert code == 1
    numerics = report["verdicts"]["numerics"]
    assert numerics["status"] == "fail" and "fp16 overflow" in numerics["reason"]
    overflow = [o["op"] for o in report["numerics"]["divergence"]["overflow"]]
    assert len(overflow) >= 3
    fix = report["numerics"]["repair"]
    assert fix["passed"] and fix["metric_after"] >= fix["threshold"] and fix["metric_before"] < 0.5
    kept = {o["name"] for o in fix["ops"]}
    # every one of the three overflowing squares is in the fix (the fp16 program names its ops NAME_cast_fp16)
    squares = [o["op"].removesuffix("_cast_fp16") for o in report["numerics"]["divergence"]["overflow"]]
    assert set(squares) <= kept
    assert (
        fix["cli"].startswith("--precision mixed --fp32-ops ")
        and "op_selector=lambda op" in fix["op_selector"]
    )
    # verified: the repaired package, run in fp16, matches PyTorch
    assert fix["verified"]["passed"] is True and fix["verified"]["samples"] == 8
    assert "fix: keep" in numerics["reason"] and "--fp32-ops" in numerics["reason"]
    # named as PyTorch modules: the three Square modules a, b and c, with their source line
    modules = {o["origin"].split(" ")[0] for o in fix["ops"]}
    assert modules == {"a", "b", "c"} and all("(Square) at " in o["origin"] for o in fix["ops"])
    assert "fp16 overflow at a (Square) at " in numerics["reason"]
    assert report["summary"]["fp16.repair_ops"] == len(fix["ops"])


def test_the_fix_works_when_applied(overflow_run, tmp_path):
    _, report = overflow_run
    fix = report["numerics"]["repair"]
    model = _write(tmp_path, "ovf", OVERFLOW3)
    argv = ["check", str(model), "--samples", "8", "--json", str(tmp_path / "r.json"), *fix["cli"].split()]
    assert main(argv) == 0
    after = json.loads((tmp_path / "r.json").read_text())
    assert after["verdicts"]["numerics"]["status"] != "fail"
    assert after["summary"]["fp16.overflow_ops"] == 0


def test_gates_decide_when_given(tmp_path, capsys):
    model = _write(tmp_path, "ovf", OVERFLOW3)
    argv = [
        "check",
        str(model),
        "--samples",
        "2",
        "--fail-on",
        "convert.ok=false",
        "--json",
        str(tmp_path / "r.json"),
    ]
    assert main(argv) == 0
    assert json.loads((tmp_path / "r.json").read_text())["verdicts"]["numerics"]["status"] == "fail"


def test_nan_data_exits_1(tmp_path, capsys):
    model = _write(tmp_path, "mlp", MLP)
    x = np.ones((3, 1, 6), dtype=np.float32)
    x[1, 0, 0] = np.nan
    np.savez(tmp_path / "d.npz", input=x)
    assert main(["check", str(model), "--data", str(tmp_path / "d.npz")]) == 1
    err = capsys.readouterr().err
    assert "data failed: bad data" in err and "conversion problem" not in err


def test_fp32_package_barred_from_the_neural_engine_exits_1(tmp_path, capsys):
    model = _write(tmp_path, "mlp", MLP)
    argv = ["check", str(model), "--samples", "2", "--precision", "fp32", "--json", str(tmp_path / "r.json")]
    assert main(argv) == 1
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["verdicts"]["neural_engine"]["status"] == "fail"
    assert "neural_engine failed" in capsys.readouterr().err


def test_failing_enumerated_shape_fails_a_verdict_and_exits_1(tmp_path, capsys):
    model = _write(tmp_path, "branch", SHAPE_BRANCH)
    argv = ["check", str(model), "--samples", "2", "--enumerated", "x=1x3x16x16,1x3x24x24",
            "--json", str(tmp_path / "r.json")]  # fmt: skip
    assert main(argv) == 1
    report = json.loads((tmp_path / "r.json").read_text())
    verdict = report["verdicts"]["flexible_shapes"]
    assert verdict["status"] == "fail" and "1 of 2 shape checks failed (x=1x3x24x24" in verdict["reason"]


def test_no_fix_skips_the_repair(tmp_path):
    model = _write(tmp_path, "ovf", OVERFLOW3)
    argv = ["check", str(model), "--samples", "2", "--no-fix", "--json", str(tmp_path / "r.json")]
    assert main(argv) == 1
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["numerics"]["repair"] is None and "fp16_repair" not in report["timings"]
