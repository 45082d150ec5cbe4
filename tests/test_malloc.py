"""glibc allocator tuning: applied where glibc is, skippable by environment variable."""

from __future__ import annotations

import platform

import pytest

from devicefit._malloc import tune_malloc


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_tune_malloc_applies_on_glibc(monkeypatch):
    monkeypatch.delenv("DEVICEFIT_NO_MALLOC_TUNING", raising=False)
    assert tune_malloc() is True


def test_tune_malloc_can_be_disabled(monkeypatch):
    monkeypatch.setenv("DEVICEFIT_NO_MALLOC_TUNING", "1")
    assert tune_malloc() is False
