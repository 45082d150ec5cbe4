"""The plain check of a random-weight LM does not fail fp16 on near-tied logits (a wrong FAIL is worse than none).

A tiny random BLOOM's 96 logits per position (std 2) are near-tied at hundreds of positions; fp16 compute
(SNR 47.7 dB, passing) swapped the 5th and 6th of some and the old top-5 window, one fp16 step of the top
score, called it a failure: top-5 agreement 0.9883 < 0.99 (docs/language-models.md, the coverage table).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.lm.families import tiny_lm


@pytest.mark.slow
def test_random_bloom_plain_check_passes_fp16_top5(tmp_path: Path) -> None:
    from devicefit.check.pipeline import run_check
    from devicefit.check.types import CheckOptions

    tiny_lm("bloom").save_pretrained(tmp_path / "bloom")
    result = run_check(CheckOptions(model=str(tmp_path / "bloom"), samples=4, repair=False))
    compute = result.questions["compute_precision"].comparison
    top5 = compute.outputs[0].metrics["top5_agreement"]
    assert top5.value >= 0.99, top5
    assert result.verdicts["numerics"].status != "fail", result.verdicts["numerics"].reason
    # the window widened by the noise fp16 compute measurably left (~0.007), not by a fixed allowance
    assert top5.details["noise"] > 0.002
