"""scripts/coverage.py writes a stock-coremltools failure as the op with no translation, not cut-off error text."""

from __future__ import annotations

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "coverage.py"


def _script():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("devicefit_coverage_script", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_missing_translation_is_named_by_its_op():
    text = _script().stock_error_text(
        "NotImplementedError: PyTorch convert function for op 'new_ones' not implemented."
    )
    assert text == "`new_ones`: no translation"


def test_other_errors_are_kept_short_and_table_safe():
    text = _script().stock_error_text("ValueError: a | b " + "x" * 200)
    assert "|" not in text and len(text) <= 70 and text.startswith("ValueError: a / b")
