"""What must hold for every round-6 outside model (tests/corpus/outside6*.py) through ``devicefit check``.

The contract of rounds 3-5 (tests/corpus/test_outside3.py): each model goes through the CLI as a user runs it
(``FILE.py:make_x``, ``-o DIR``) and its verdicts are held to errors measured here, independently of check's
metrics, on the samples check used: it converts or the refusal names a source line; the ``numerics`` verdict
agrees with those errors and a FAIL names where; the exit code is the verdicts'; no verdict leads with a Core
ML value name.

The fast subset runs in the default suite (8 models, 1.7-3.2 s each on 2 shared cores); the rest is marked
slow. The round's fixes have their own fast tests
(tests/test_check_sweep6.py, tests/convert/test_inplace_on_views.py).
"""

from __future__ import annotations

import pytest

from tests.corpus.outside6 import OUTSIDE6
from tests.corpus.test_outside3 import check_holds

# small plain-PyTorch models, the quickest through the whole check and the direct measurement (2 shared cores)
# (the fast suite's 15-minute budget, 2026-12-02: 8 models a round; the others run in the slow tier, and
# each round's fixes have their own fast tests)
FAST = {
    "log-mel by conv DFT basis",
    "DCN-v2 cross network (int64 + float inputs)",
    "fully masked softmax rows (-inf, zeroed after)",
    "positions by // and %, ids by remainder",
    "int64 + float + bool inputs, dict out",
    "grouped-query attention (repeat_interleave)",
    "numeric binning (torch.bucketize)",
    "F.unfold / F.fold overlapping patches",
}


def _params() -> list:
    return [pytest.param(m, id=m.name, marks=() if m.name in FAST else (pytest.mark.slow,)) for m in OUTSIDE6]


def test_the_fast_subset_names_round_6_models():
    assert FAST <= {m.name for m in OUTSIDE6}, FAST - {m.name for m in OUTSIDE6}


@pytest.mark.parametrize("model", _params())
def test_check_verdicts_hold_on_outside6_models(model, tmp_path, capsys):
    check_holds(model, tmp_path, capsys, fail_names_place=True)
