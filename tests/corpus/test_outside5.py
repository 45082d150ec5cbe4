"""What must hold for every round-5 outside model (tests/corpus/outside5*.py) through ``devicefit check``.

The contract of rounds 3 and 4 (tests/corpus/test_outside3.py): each model goes through the CLI as a user
runs it (``FILE.py:make_x``, ``-o DIR``) and its verdicts are held to errors measured here, independently of
check's metrics, on the samples check used: it converts or the refusal names a source line; the ``numerics``
verdict agrees with those errors and a FAIL names where; the exit code is the verdicts'; no verdict leads with
a Core ML value name.

The fast subset runs in the default suite (8 models, about 1-2 s each on 2 shared cores); the rest is
marked slow.
"""

from __future__ import annotations

import pytest

from tests.corpus.outside5 import OUTSIDE5
from tests.corpus.test_outside3 import check_holds

# small plain-PyTorch models, ~1-2 s each through the whole check and the direct measurement (2 shared cores)
# (the fast suite's 15-minute budget, 2026-12-02: 8 models a round; the others run in the slow tier, and
# each round's fixes have their own fast tests)
FAST = {
    "RetNet retention (decay mask)",
    "ALiBi causal LM",
    "sparsemax (sort, cumsum, gather)",
    "DLRM (EmbeddingBag offsets, triu interactions)",
    "NamedTuple output",
    "fp16 example input, fp32 model",
    "optional mask input left None",
    "bf16 autocast region in forward",
}


def _params() -> list:
    return [pytest.param(m, id=m.name, marks=() if m.name in FAST else (pytest.mark.slow,)) for m in OUTSIDE5]


@pytest.mark.parametrize("model", _params())
def test_check_verdicts_hold_on_outside5_models(model, tmp_path, capsys):
    check_holds(model, tmp_path, capsys, fail_names_place=True)
