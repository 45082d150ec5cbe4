"""first_line: the one-line form of error messages used in every one-line report."""

from __future__ import annotations

import pytest

from devicefit.errors import first_line


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (ValueError("bad shape\nmore detail"), "bad shape"),
        (ValueError("\n  leading blank lines\nrest"), "leading blank lines"),
        (KeyError(), "KeyError"),
        (RuntimeError("   \n "), "RuntimeError"),
        ("torchscript: failed\nstack", "torchscript: failed"),
        ("", ""),
    ],
)
def test_first_line(error, expected):
    assert first_line(error) == expected


def test_first_line_limit():
    assert first_line(ValueError("x" * 50 + "\nmore"), limit=10) == "x" * 10 + "..."
    assert first_line("short", limit=10) == "short"


def test_messages_quoting_odd_file_names_stay_one_line(tmp_path, capsys):
    """A file name with a newline or a terminal escape in it: still one line, and no raw ESC reaches stderr."""
    from devicefit.cli import main
    from devicefit.errors import printable

    assert printable("a\nb\x1b[31mc\té") == "a\\nb\\x1b[31mc\\té"
    for name in ("bad\nname.mlpackage", "red\x1b[31m.mlpackage", "x\rover.npy"):
        assert main(["run", str(tmp_path / name)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "\x1b" not in err and "\r" not in err, repr(err)


def test_torchscript_cause_is_the_last_line_without_its_type():
    from devicefit.errors import torchscript_cause

    trace = (
        "The following operation failed in the TorchScript interpreter.\nTraceback of TorchScript:\n  File x\n"
        "RuntimeError: mat1 and mat2 shapes cannot be multiplied (1x5 and 4x2)\n"
    )
    assert torchscript_cause(trace) == "mat1 and mat2 shapes cannot be multiplied (1x5 and 4x2)"
    assert torchscript_cause("RuntimeError: something else\nmore") is None
