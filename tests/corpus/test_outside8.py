"""What must hold for every round-8 outside model (tests/corpus/outside8*.py) through ``devicefit check``.

The contract of rounds 3-7 (tests/corpus/test_outside3.py): each model goes through the CLI as a user runs it
(``FILE.py:make_x``, ``-o DIR``) and its verdicts are held to errors measured here, independently of check's
metrics, on the samples check used: it converts or the refusal names a source line; the ``numerics`` verdict
agrees with those errors and a FAIL names where; the exit code is the verdicts'; no verdict leads with a Core
ML value name.

The fast subset runs in the default suite (the quickest small plain-PyTorch models); the rest is marked slow.
The round's fixes have their own fast tests (tests/test_check_sweep8.py, tests/convert/test_rescue_sdpa_mask.py).
"""

from __future__ import annotations

import pytest

from tests.corpus.outside8 import OUTSIDE8
from tests.corpus.test_outside3 import check_holds

# the quickest small models through the whole check and the direct measurement, one per fix of the round
# (~1.5-2 s each on 2 shared cores; the fixes' own fast tests are in tests/test_check_sweep8.py)
FAST = {
    "Silero-style VAD (conv STFT, LSTMCell state)",
    "SDPA enable_gqa with scale",
    "torch.ao dynamic int8 quantization (quantize_dynamic)",
}


def _params() -> list:
    return [pytest.param(m, id=m.name, marks=() if m.name in FAST else (pytest.mark.slow,)) for m in OUTSIDE8]


def test_the_fast_subset_names_round_8_models():
    assert FAST <= {m.name for m in OUTSIDE8}, FAST - {m.name for m in OUTSIDE8}


@pytest.mark.parametrize("model", _params())
def test_check_verdicts_hold_on_outside8_models(model, tmp_path, capsys):
    check_holds(model, tmp_path, capsys, fail_names_place=True)
