"""Ops with a data-dependent output shape stay refused, and the scan says what fixed-shape rewrite to use."""

from __future__ import annotations

import re

import pytest
import torch
import torch.nn.functional as F

from devicefit.convert import scan
from tests.convert.elementwise_helpers import Fn
from tests.convert.helpers import source_of

CASES = {
    "masked_select": (lambda x: torch.masked_select(x, x > 0), r"torch\.where\(mask, x, fill\)"),
    "unique_consecutive": (lambda x: torch.unique_consecutive(x), r"x\[1:\] != x\[:-1\]"),
}


@pytest.mark.parametrize("op", sorted(CASES))
def test_data_dependent_ops_are_refused_with_a_fixed_shape_rewrite(op):
    fn, rewrite = CASES[op]
    report = scan(source_of(Fn(fn).eval(), (torch.tensor([1.0, 1.0, -2.0, 3.0, 3.0, 0.5]),)))
    assert not report.ok
    (entry,) = report.unsupported
    assert entry.op == f"aten::{op}"
    assert entry.location.startswith("test_scan_refusal_hints.py:")
    assert "fixed shape" in entry.hint
    assert re.search(rewrite, entry.hint), entry.hint


def test_fractional_max_pool_hint_names_the_deterministic_pool():
    fn = lambda x: F.fractional_max_pool2d(x, 2, output_size=(2, 2))  # noqa: E731
    (entry,) = scan(source_of(Fn(fn).eval(), (torch.randn(1, 2, 6, 6),))).unsupported
    assert "adaptive_max_pool2d" in entry.hint
