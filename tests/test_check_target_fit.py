"""`check --target A --target B`: a model too big for one of the devices the user asked about fails the memory
verdict (exit 1); it was "fits 1 of 2 devices" (warn, exit 0). Without --target the fit table is the whole
catalog, and fitting only the newer devices stays a warning."""

from __future__ import annotations

from types import SimpleNamespace

from devicefit.analyze.memory import DeviceFit
from devicefit.check.verdicts import _memory

FITS = [
    DeviceFit("iphone-8", "iPhone 8", 1400.0, 1.3, False),
    DeviceFit("iphone-15-pro", "iPhone 15 Pro", 5000.0, 0.4, True),
]


def _result(devices: list[str]) -> SimpleNamespace:
    return SimpleNamespace(fits=FITS, options=SimpleNamespace(devices=devices))


def test_a_target_the_model_does_not_fit_fails():
    verdict = _memory(_result(["iPhone-8", "iphone-15-pro"]))  # ids or names, any case, like --target
    assert verdict.status == "fail" and "iPhone 8" in verdict.reason and "--target" in verdict.reason


def test_without_targets_a_partial_fit_stays_a_warning():
    verdict = _memory(_result([]))
    assert verdict.status == "warn" and "fits 1 of 2" in verdict.reason


def test_targets_that_all_fit_pass_even_if_other_devices_do_not():
    assert _memory(_result(["iphone-15-pro"])).status == "warn"  # the table still holds iPhone 8 here
