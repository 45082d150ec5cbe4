"""Absurd numbers on the command line: one line, exit 2, before any model is loaded."""

from __future__ import annotations

from devicefit.cli import main


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0, err
    return err


def test_compress_negative_seed_is_bad_input_not_an_internal_error(tmp_path, capsys):
    """--seed -1 reached numpy's generator and came back as 'internal error: ValueError' (exit 3)."""
    model = tmp_path / "absent.py"  # refused before the model is read
    assert main(["compress", f"{model}:make", "--budget", "cosine>=0.99", "--seed", "-1"]) == 2
    err = _one_line_error(capsys)
    assert "seed" in err and "-1" in err and "internal error" not in err
