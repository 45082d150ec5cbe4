"""`devicefit check` end to end on saved folders of the families added last (slow: three conversions each)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from devicefit.cli import main
from tests.lm.families import tiny_lm


@pytest.mark.slow
@pytest.mark.parametrize("family", ["mpt", "codegen", "llama4_text", "afmoe", "lfm2", "lfm2_moe"])
def test_check_with_int4_on_a_saved_folder(family: str, tmp_path: Path) -> None:
    """fp32 exact, and the int4 package compresses every weight group: MPT's MLP is `ffn` and Llama 4's
    `feed_forward`, which no group pattern matched (their weights, most of the model, stayed fp16)."""
    folder = tmp_path / family
    tiny_lm(family).save_pretrained(folder)
    report = tmp_path / "r.json"
    code = main(["check", str(folder), "--steps", "4", "--max-context", "24", "--json", str(report)])
    data = json.loads(report.read_text())
    assert data["family"] == tiny_lm(family).config.model_type
    runs = {r["name"]: r for r in data["generation"]["runs"]}
    assert set(runs) == {"fp32", "fp16", "int4"}
    assert runs["fp32"]["token_agreement"] == 1.0 and runs["fp32"]["verdict"] == "pass"
    assert data["summary"]["lm.int4.weight_mb"] < 0.4 * data["summary"]["lm.fp16.weight_mb"]
    assert code == 0
