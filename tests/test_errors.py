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
