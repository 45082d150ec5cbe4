"""What must hold for every round-4 outside model (tests/corpus/outside4*.py) through ``devicefit check``.

The same contract as round 3 (tests/corpus/test_outside3.py): each model goes through the CLI as a user runs it
(``FILE.py:make_x``, ``-o DIR``), then is checked against errors measured here, independently of check's
metrics, on the samples check used (a float32 conversion made here, and the package check saved, each run in
float32 by the interpreter beside PyTorch):

* it converts, or the refusal names a source line (``file.py:N``);
* the ``numerics`` verdict agrees with those errors: a faithful conversion is not called a conversion problem,
  an unfaithful one is not passed, nor a package whose fp16 weights alone exceed check's fp16 bound;
* a numerics FAIL names where (``file.py:N``);
* the exit code is the verdicts' (1 when one fails, else 0), or, for a model whose example input Core ML cannot
  take, 2 with a one-line message naming the input;
* no verdict leads with a Core ML value name (``..._cast_fp16``).

The fast subset runs in the default suite (under 30 s on 2 shared cores); the rest is marked slow.
"""

from __future__ import annotations

import pytest

from tests.corpus.outside4 import OUTSIDE4
from tests.corpus.test_outside3 import check_holds

# small plain-PyTorch models, ~1-2 s each through the whole check and the direct measurement (2 shared cores)
# (the fast suite's 15-minute budget, 2026-12-02: 8 models a round; the others run in the slow tier, and
# each round's fixes have their own fast tests)
FAST = {
    "causal linear attention (cumsum)",
    "T5 relative position buckets",
    "log-mel front end (torch.stft)",
    "spatial transformer (affine_grid, grid_sample)",
    "temperature-scaled logits (fp16 overflow)",
    "hashed int64 ids beyond int32",
    "in-place ops on the input",
    "box post-processing (in-place slice updates)",
}


def _params() -> list:
    return [pytest.param(m, id=m.name, marks=() if m.name in FAST else (pytest.mark.slow,)) for m in OUTSIDE4]


@pytest.mark.parametrize("model", _params())
def test_check_verdicts_hold_on_outside4_models(model, tmp_path, capsys):
    check_holds(model, tmp_path, capsys, fail_names_place=True)
