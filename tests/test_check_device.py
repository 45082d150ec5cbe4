"""`devicefit check --target DEVICE`, Neural Engine / latency gates, and the lint on a model that falls back."""

from __future__ import annotations

import json
import textwrap

import pytest

from devicefit.cli import main

TOPK_MODEL = textwrap.dedent(
    """
    import torch

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(6, 16)
            self.out = torch.nn.Linear(4, 3)

        def forward(self, x):
            return self.out(torch.topk(torch.relu(self.fc(x)), 4).values)

    def make_model():
        torch.manual_seed(0)
        return Net().eval(), torch.zeros(1, 6)
    """
)


def _exit2(argv, capsys) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def test_unknown_target_exits_2_before_any_work(tmp_path, capsys):
    out = tmp_path / "o"
    err = _exit2(["check", "--target", "iphone-99", "-o", str(out)], capsys)
    assert "unknown device 'iphone-99'" in err and "iphone-12" in err and "iphone-15-pro" in err
    assert not out.exists()
    err = _exit2(["check", "--target", "iOS17"], capsys)
    assert "--deployment-target iOS17" in err  # the old meaning of --target gets a pointer
    assert "unknown device 'ipad-99'" in _exit2(["check", "--fail-on", "latency.ipad-99.best_ms>1"], capsys)


def test_target_focuses_fit_and_latency_and_ane_gate_trips(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")  # a wide table: cells must not wrap for the text checks
    report_path = tmp_path / "r.json"
    argv = ["check", "--samples", "4", "--target", "iphone-12", "--deployment-target", "iOS16",
            "--json", str(report_path), "--fail-on", "ane.fallback_ops_share>=0",
            "--fail-on", "latency.mac-m4.best_ms>1000"]  # fmt: skip
    assert main(argv) == 1
    captured = capsys.readouterr()
    assert "gate failed: ane.fallback_ops_share>=0: ane.fallback_ops_share is 0" in captured.err
    assert "latency.mac-m4" not in captured.err  # a lower bound far below 1 s
    assert "at best" in captured.out and "on iPhone 12" in captured.out
    report = json.loads(report_path.read_text())
    assert report["options"]["devices"] == ["iphone-12"]
    assert report["options"]["deployment_target"] == "iOS16" and report["model"]["opset"] == "iOS16"
    # The fit table and bounds cover the target plus the device a gate names, nothing else.
    assert [f["device"] for f in report["memory"]["fits"]] == ["iphone-12", "mac-m4"]
    assert [e["device"] for e in report["latency"]["devices"]] == ["iphone-12", "mac-m4"]
    assert report["summary"]["latency.iphone-12.best_ms"] > 0


def test_lint_reports_fallbacks_of_a_topk_model(tmp_path):
    from devicefit.check import CheckOptions, run_check
    from devicefit.report.schema import build_report

    model = tmp_path / "topk.py"
    model.write_text(TOPK_MODEL)
    report = build_report(run_check(CheckOptions(model=str(model), samples=2, devices=["iphone-15"])))
    ane = report["ane"]
    assert ane["fallback_ops"] >= 1 and 0.0 < ane["fallback_ops_share"] < 1.0
    assert 0.0 <= ane["fallback_flops_share"] < 1.0 and ane["transitions"] >= 1
    assert ane["reasons"][0]["rule"] == "ANE-TOPK" and ane["reasons"][0]["fix"]
    assert [o["op_type"] for o in ane["per_op"] if o["verdict"] == "fallback"] == ["topk"]
    assert report["verdicts"]["neural_engine"]["status"] == "warn"
    assert "likely fall back" in report["verdicts"]["neural_engine"]["reason"]
    assert any("lint predicts 1 of" in a for a in report["latency"]["assumptions"])
    assert [e["device"] for e in report["latency"]["devices"]] == ["iphone-15"]


@pytest.mark.parametrize("ids", [["iPhone 12", "iphone-12"], ["IPHONE-12"]])
def test_device_names_resolve_to_ids(ids):
    from devicefit.check import resolve_devices

    assert [d.id for d in resolve_devices(ids)] == ["iphone-12"]
