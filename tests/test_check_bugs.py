"""Bugs of issue 12 in `check` / `compress`, each with the test that failed before its fix."""

from __future__ import annotations

import json
import textwrap
from types import SimpleNamespace

import numpy as np
import pytest

from devicefit.cli import main

MLP = textwrap.dedent(
    """
    import pathlib
    import torch

    MARKER = pathlib.Path(__file__).with_suffix(".loaded")


    def make_model():
        MARKER.write_text("loaded")
        torch.manual_seed(0)
        net = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.ReLU(), torch.nn.Linear(16, 7))
        return net.eval(), torch.zeros(1, 6)
    """
)


@pytest.fixture
def mlp(tmp_path):
    path = tmp_path / "mlp.py"
    path.write_text(MLP)
    return path


def _one_line_exit_2(argv, capsys) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def test_output_dir_that_is_a_file_fails_before_any_work(mlp, tmp_path, capsys):
    existing = tmp_path / "report.txt"
    existing.write_text("mine")
    err = _one_line_exit_2(["check", str(mlp), "-o", str(existing)], capsys)
    assert "is a file" in err
    assert not mlp.with_suffix(".loaded").exists()  # the model was never even loaded
    assert existing.read_text() == "mine"


def test_json_dash_goes_to_stdout(mlp, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["check", str(mlp), "--samples", "2", "--json", "-", "--fail-on", "convert.ok=false"]) == 0
    out, err = capsys.readouterr()
    report = json.loads(out)  # stdout holds the JSON only; the summary went to stderr
    assert report["convert"]["ok"] is True
    assert "devicefit check" in err
    assert not (tmp_path / "-").exists()


def test_terminal_says_which_data_the_numerics_used(mlp, tmp_path, capsys):
    np.savez(tmp_path / "d.npz", input=np.ones((3, 1, 6), dtype=np.float32))
    main(["check", str(mlp), "--data", str(tmp_path / "d.npz"), "--fail-on", "convert.ok=false"])
    out = capsys.readouterr().out
    assert f"Numerics on: 3 sample(s) from {tmp_path / 'd.npz'}" in " ".join(out.split())


def test_memory_verdict_without_any_known_budget_is_not_a_pass(mlp, tmp_path):
    main(["check", str(mlp), "--samples", "2", "--target", "ipad-air-3rd-gen", "--json", str(tmp_path / "r.json"),
          "--fail-on", "convert.ok=false"])  # fmt: skip
    memory = json.loads((tmp_path / "r.json").read_text())["verdicts"]["memory"]
    assert memory["status"] == "skipped" and "fits all 0" not in memory["reason"]
    assert "no device" in memory["reason"]


def test_fp32_ops_typo_is_an_error_with_a_suggestion(mlp, capsys):
    err = _one_line_exit_2(["check", str(mlp), "--precision", "mixed", "--fp32-ops", "lineer"], capsys)
    assert "'lineer' is neither an op name nor an op type" in err and "did you mean linear" in err


def test_fp32_ops_accepts_op_types_and_names(mlp, tmp_path):
    argv = ["check", str(mlp), "--samples", "2", "--precision", "mixed", "--fp32-ops", "linear",
            "--json", str(tmp_path / "r.json"), "--fail-on", "convert.ok=false"]  # fmt: skip
    assert main(argv) == 0


def _verdicts(**kw):
    from devicefit.check.verdicts import decide

    base = dict(
        convert=SimpleNamespace(ok=True, rescued=[], unsupported=[], error=None),
        data_findings=[],
        bad_samples=[],
        fp16=SimpleNamespace(passed=True, headline=lambda: ""),
        fp32=None,
        questions={},
        divergence=None,
        trained=None,
        repair=None,
        fits=[SimpleNamespace(fits=True)],
        extras={},
    )
    base.update(kw)
    return decide(SimpleNamespace(**base))


def test_rescued_ops_are_explained_not_a_warning():
    v = _verdicts(convert=SimpleNamespace(ok=True, rescued=["new_ones"], unsupported=[], error=None))[
        "convert"
    ]
    assert v.status == "pass" and "devicefit's own translations used for new_ones" in v.reason
    assert "(coremltools has no translation)" in v.reason
    fixed = _verdicts(convert=SimpleNamespace(ok=True, rescued=["zeros_like"], unsupported=[], error=None))
    assert "zeros_like (coremltools' own mishandles the case)" in fixed["convert"].reason


def test_values_flushed_to_zero_with_outputs_in_tolerance_are_harmless():
    from devicefit.compare.divergence import Divergence, OpError

    relu = OpError(3, "relu_0", "relu", "relu_0", 1e-3, underflow=2)
    div = Divergence([relu], 1e-2, underflow_ops=[relu])
    v = _verdicts(divergence=div)["numerics"]
    assert v.status == "pass" and "2 tiny value(s) flushed to zero in fp16, harmless here" in v.reason


def test_compress_unmet_budget_shows_enough_digits():
    from devicefit.report.compress_view import distinct

    assert distinct(0.99999997, 1.0) == "0.99999997 (needs >= 1)"
    assert distinct(0.9, 0.99) == "0.9 (needs >= 0.99)"


def test_unbounded_range_is_refused_before_any_work(mlp, capsys):
    # coremltools rejects an unbounded RangeDim for ML Programs: `..inf` used to fail after loading and
    # tracing the model, with the error buried in both frontends' failures
    err = _one_line_exit_2(["check", str(mlp), "--range", "input:1=2..inf"], capsys)
    assert "finite upper bound" in err and "input:1=2..4096" in err
    assert not mlp.with_suffix(".loaded").exists()


def test_compress_json_dash_writes_stdout(tmp_path, capsys, monkeypatch):
    """`compress --json -` streams JSON to stdout (tables to stderr) instead of creating a file named '-'."""
    import json

    from devicefit.cli import main

    monkeypatch.chdir(tmp_path)
    args = ["compress", "--budget", "accuracy>=-5%", "--samples", "8", "--holdout", "0", "--bits", "8"]
    code = main([*args, "--min-elements", "64", "--json", "-"])
    captured = capsys.readouterr()
    assert code in (0, 1), captured.err
    assert not (tmp_path / "-").exists()
    result = json.loads(captured.out)  # nothing but the JSON on stdout
    assert "chosen" in result and "met" in result
    assert "budget" in captured.err  # the human-readable tables moved to stderr
