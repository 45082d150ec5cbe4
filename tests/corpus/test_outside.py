"""``check`` gives each outside model (tests/corpus/outside.py, round 2 in outside2.py) the verdicts measured for
it, exit code included.

Slow: one check per model (5-40 s each on 2 cores). scripts/sweep_check.py renders the same runs into
docs/coverage.md with independently measured errors.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.corpus.outside import OUTSIDE
from tests.corpus.outside2 import OUTSIDE2


def factory_spec(model) -> str:
    """``FILE.py:make_x`` of an outside model, as a user names a factory on the command line."""
    return f"{Path(sys.modules[model.build.__module__].__file__)}:{model.build.__name__}"


@pytest.mark.slow
@pytest.mark.parametrize("model", OUTSIDE + OUTSIDE2, ids=lambda m: m.name)
def test_check_verdicts_on_outside_models(model, tmp_path):
    import json

    from devicefit.cli import main

    report = tmp_path / "report.json"
    argv = ["check", factory_spec(model), "--samples", "4", "--target", "iphone-12", "--no-fix"]
    code = main([*argv, "--json", str(report)])
    verdicts = json.loads(report.read_text())["verdicts"]
    assert verdicts["convert"]["status"] == model.convert, verdicts["convert"]["reason"]
    numerics = verdicts["numerics"]
    allowed = {"pass", "warn"} if model.numerics == "pass" else {model.numerics}
    assert numerics["status"] in allowed, numerics["reason"]
    assert code == (1 if any(v["status"] == "fail" for v in verdicts.values()) else 0)
    for verdict in verdicts.values():  # a finding never leads with an internal Core ML value name
        assert "_cast_fp16" not in verdict["reason"].split(" (")[0], verdict["reason"]
