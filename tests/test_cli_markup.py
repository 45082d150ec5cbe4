"""CLI output survives user text that looks like rich markup; numeric options are validated up front."""

from __future__ import annotations

import torch

from devicefit.cli import main
from tests.helpers import convert


def test_lint_and_profile_paths_with_brackets(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "400")  # no wrapping: the checks look for whole strings
    folder = tmp_path / "weird[red]"
    folder.mkdir()
    path = folder / "m.mlpackage"
    convert(torch.nn.Embedding(10, 4), torch.tensor([[1, 2]]), precision="fp16").save(str(path))
    assert main(["lint", str(path)]) == 0
    out = capsys.readouterr().out
    assert "weird[red]" in out and "ANE-GATHER" in out
    rc = main(
        ["profile", str(path), "--reps", "5", "--requests", "4", "--batch-sizes", "1", "--max-in-flight", "1"]
    )
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert "weird[red]" in captured.out


def test_compress_rejects_non_positive_samples(capsys):
    assert main(["compress", "--budget", "accuracy>=-1%", "--samples", "-5"]) == 2
    assert "--samples must be at least 1" in capsys.readouterr().err


def test_catalog_lint_and_cache_outputs_read_at_80_columns(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.setenv("DEVICEFIT_CACHE_DIR", str(tmp_path / "cache"))
    assert main(["devices", "--catalog"]) == 0
    out = capsys.readouterr().out
    assert "budget" in out and "iphone-12" in out and "secondary source" in out
    assert "…" not in out  # no column squeezed into ellipses
    path = tmp_path / "clean.mlpackage"
    convert(
        torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU()),
        torch.randn(1, 3, 8, 8),
        precision="fp16",
    ).save(str(path))
    assert main(["lint", str(path)]) == 0
    assert "no op flagged" in capsys.readouterr().out
    assert main(["cache", "ls"]) == 0
    assert "empty" in capsys.readouterr().out
