"""Exit codes, command by command, on small models built here (docs/cli.md has the table): every outcome
that is not a pass exits non-zero, the same code in terminal, ``--json -`` and ``--json FILE`` / ``--html``
modes, and the JSON says the same verdict the exit code does."""

from __future__ import annotations

import json
import textwrap

import pytest
import torch

from devicefit.cli import main
from tests.helpers import convert

# |x| * 300 squared overflows fp16 (65504) before the square root brings it back
OVERFLOW = textwrap.dedent(
    """
    import torch

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.fc = torch.nn.Linear(6, 4)

        def forward(self, x):
            h = self.fc(x) * 300.0
            return torch.sqrt(h * h + 1.0) / 300.0

    def make_model():
        return Net().eval(), torch.ones(1, 6)
    """
)


class Mlp(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.fc1, self.fc2 = torch.nn.Linear(16, 32), torch.nn.Linear(32, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(torch.relu(self.fc1(x)))


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("exit-codes")
    example = torch.randn(1, 16)
    convert(Mlp().eval(), example, target="iOS17", precision="fp16").save(str(root / "fp16.mlpackage"))
    convert(Mlp().eval(), example, target="iOS17", precision="fp32").save(str(root / "fp32.mlpackage"))
    (root / "overflow.py").write_text(OVERFLOW)
    return root


def _modes(argv: list[str], tmp_path) -> dict[str, list[str]]:
    """The same command in each output mode."""
    return {
        "terminal": argv,
        "json-stdout": [*argv, "--json", "-"],
        "json-file": [*argv, "--json", str(tmp_path / "r.json"), "--force"],
    }


def _json_of(mode: str, out: str, tmp_path) -> dict:
    return json.loads(out if mode == "json-stdout" else (tmp_path / "r.json").read_text())


@pytest.mark.parametrize("mode", ["terminal", "json-stdout", "json-file"])
def test_lint_exits_1_when_check_would_fail_the_neural_engine(models, tmp_path, capsys, mode):
    argv = _modes(["lint", str(models / "fp32.mlpackage")], tmp_path)[mode]
    assert main(argv) == 1  # an fp32-typed program is barred from the Neural Engine
    captured = capsys.readouterr()
    assert "devicefit lint: neural_engine failed: predicted: the whole model is barred" in captured.err
    if mode != "terminal":
        assert _json_of(mode, captured.out, tmp_path)["verdict"]["status"] == "fail"
    argv = _modes(["lint", str(models / "fp16.mlpackage")], tmp_path)[mode]
    assert main(argv) == 0
    captured = capsys.readouterr()
    if mode != "terminal":
        assert _json_of(mode, captured.out, tmp_path)["verdict"]["status"] in ("pass", "warn")


@pytest.mark.parametrize("mode", ["terminal", "json-stdout", "json-file"])
def test_compress_exits_1_when_the_budget_is_not_met(models, tmp_path, capsys, mode):
    base = [
        "compress",
        str(models / "fp32.mlpackage"),
        "--samples",
        "8",
        "--min-elements",
        "8",
        "--bits",
        "8",
    ]
    html = tmp_path / "c.html"
    argv = _modes([*base, "--budget", "psnr>=300", "--html", str(html), "--force"], tmp_path)[mode]
    assert main(argv) == 1  # fp16 weights alone keep the PSNR far below 300 dB
    captured = capsys.readouterr()
    assert "devicefit compress: budget failed: budget psnr>=300 cannot be met" in captured.err
    assert '<span class="fail">FAIL</span>' in html.read_text()
    if mode != "terminal":
        assert _json_of(mode, captured.out, tmp_path)["verdict"] == "fail"
    argv = _modes([*base, "--budget", "cosine>=0.9", "--html", str(html), "--force"], tmp_path)[mode]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert "budget failed" not in captured.err and '<span class="pass">PASS</span>' in html.read_text()
    if mode != "terminal":
        assert _json_of(mode, captured.out, tmp_path)["verdict"] == "pass"


@pytest.mark.parametrize("mode", ["terminal", "json-stdout", "json-file"])
def test_check_exits_1_on_a_failed_verdict_in_every_output_mode(models, tmp_path, capsys, mode):
    html = tmp_path / "c.html"
    argv = ["check", f"{models / 'overflow.py'}:make_model", "--samples", "2", "--no-fix", "--html", str(html),
            "--force"]  # fmt: skip
    assert main(_modes(argv, tmp_path)[mode]) == 1
    captured = capsys.readouterr()
    assert "devicefit check: numerics failed: fp16 compute precision loss" in captured.err
    assert '<span class="fail">FAIL</span>' in html.read_text()
    if mode != "terminal":
        assert _json_of(mode, captured.out, tmp_path)["verdicts"]["numerics"]["status"] == "fail"
    # a gate that holds decides: exit 0 although a verdict failed (docs/cli.md: gates decide when given)
    gated = [*_modes(argv, tmp_path)[mode], "--fail-on", "convert.ok=false"]
    assert main(gated) == 0
    # and a gate that trips exits 1
    assert main([*_modes(argv, tmp_path)[mode], "--fail-on", "convert.ok=true"]) == 1


def test_run_merge_devices_cache_have_no_verdict_and_exit_0(models, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("DEVICEFIT_CACHE_DIR", str(tmp_path / "cache"))
    pkg16, pkg32 = str(models / "fp16.mlpackage"), str(models / "fp32.mlpackage")
    assert main(["run", pkg16, "--out", str(tmp_path / "o.npz")]) == 0
    assert main(["merge", pkg16, pkg32, "-o", str(tmp_path / "m.mlpackage"), "--names", "a,b"]) == 0
    assert main(["devices", "--json", "-"]) == 0
    assert main(["cache", "ls", "--json", "-"]) == 0
    assert main(["merge", pkg16, pkg32, "-o", str(tmp_path / "m.mlpackage"), "--names", "a,b"]) == 2  # exists
    assert "--force" in capsys.readouterr().err


def test_run_shows_no_spinner_in_a_pipe(models, capsys):
    assert main(["run", str(models / "fp16.mlpackage")]) == 0
    captured = capsys.readouterr()
    assert captured.err == "" and "output" in captured.out
