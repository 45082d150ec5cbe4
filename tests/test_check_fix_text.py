"""What `check` says about the computed fp16 fix when the repair cannot fix what fails (issue 12: "the fix,
computed"). The repair searches for cosine >= its bound; a failure the cosine does not see (per-pixel argmaxes
flipped at cosine 0.9999) must not read as a fix, nor as "nothing to do"."""

from __future__ import annotations

from types import SimpleNamespace

from devicefit.check.repair import Fp16Fix, Fp32Op
from devicefit.check.verdicts import _fix


class _Verified:
    def __init__(self, passed: bool, headline: str) -> None:
        self.passed = passed
        self._headline = headline

    def headline(self) -> str:
        return self._headline


def _result(fix: Fp16Fix) -> SimpleNamespace:
    return SimpleNamespace(repair=fix)


def test_no_op_set_for_a_failure_the_cosine_does_not_see():
    fix = Fp16Fix([], passed=True, metric_before=0.99995, metric_after=0.99995, threshold=0.9995)
    fix.verified = _Verified(False, "top-1 agreement 0.937 per position (>= 0.99)")
    text = _fix(_result(fix))
    assert "cosine >= 0.9995, which fp16 already meets" in text and "--precision fp32" in text
    assert "fix: keep" not in text


def test_an_op_set_that_meets_the_cosine_but_not_the_check_is_not_called_a_fix():
    ops = [Fp32Op("conv_3", "head.conv (Conv2d) at net.py:12")]
    fix = Fp16Fix(ops, passed=True, metric_before=0.99, metric_after=0.9999, threshold=0.9995)
    fix.verified = _Verified(False, "top-1 agreement 0.95 per position (>= 0.99)")
    text = _fix(_result(fix))
    assert "meets the repair's cosine bound but not the check" in text
    assert "head.conv (Conv2d) at net.py:12" in text and "--precision fp32" in text
    assert "; fix: keep" not in text


def test_a_verified_op_set_is_the_fix():
    ops = [Fp32Op("conv_3", "head.conv (Conv2d) at net.py:12")]
    fix = Fp16Fix(ops, passed=True, metric_before=0.99, metric_after=0.9999, threshold=0.9995)
    fix.verified = _Verified(True, "SNR 41 dB")
    text = _fix(_result(fix))
    assert text.startswith("; fix: keep 1 op(s) in fp32 (head.conv (Conv2d) at net.py:12)")
    assert "--fp32-ops conv_3" in text and "verified: SNR 41 dB" in text
