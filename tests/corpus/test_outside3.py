"""What must hold for every round-3 outside model (tests/corpus/outside3*.py) through ``devicefit check``.

Each model goes through the CLI as a user runs it (``FILE.py:make_x``, ``-o DIR``), then is checked against
errors measured here, independently of check's metrics, on the samples check used: a float32 conversion made
here and the package check saved (fp16 weights), each run in float32 by the interpreter beside PyTorch. What
must hold:

* it converts, or the refusal names a source line (``file.py:N``);
* the ``numerics`` verdict agrees with those errors: a faithful conversion is not called a conversion problem,
  an unfaithful one is not passed, nor a package whose fp16 weights alone exceed check's fp16 bound;
* the exit code is the verdicts' (1 when one fails, else 0);
* no verdict leads with a Core ML value name (``..._cast_fp16``).

The fast subset runs in the default suite (about 2 s a model on 2 cores); the rest is marked slow.
"""

from __future__ import annotations

import json
import math
import re
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.corpus.outside3 import OUTSIDE3

# small plain-PyTorch models, ~1-2 s each through the whole check (measured on 2 shared cores)
FAST = {
    "ESPCN (PixelShuffle, PReLU)",
    "VAE decoder",
    "PointNet (T-Net, max over points)",
    "TCN (weight norm, dilated causal)",
    "nn.MultiheadAttention need_weights",
    "QAT fake-quant ops left in",
    "0-d output beside a tensor",
    "VAE head (exp of wide log-variances)",
}
PLACE = re.compile(r"\b[\w.-]+\.py:\d+")


def _params() -> list:
    return [pytest.param(m, id=m.name, marks=() if m.name in FAST else (pytest.mark.slow,)) for m in OUTSIDE3]


def spec_of(model) -> str:
    return f"{Path(sys.modules[model.build.__module__].__file__)}:{model.build.__name__}"


def _worst_error(source, dataset, program, precision: str = "fp32") -> tuple[float, str]:
    """The program in ``precision`` (float32 by default) vs PyTorch on ``dataset``: the worst output's relative RMS error (for integer
    outputs, the share of elements that differ) and which output it is."""
    from devicefit.check import program_feeds
    from devicefit.compare.validate import match_outputs

    worst, which = 0.0, ""
    for feeds in dataset.feeds:
        ref = source.reference(feeds)
        got = program.run(program_feeds(feeds, {}, program), precision=precision)
        for r_name, c_name in match_outputs(list(ref), list(got)):
            r, c = np.asarray(ref[r_name]), np.asarray(got[c_name])
            assert r.size == c.size, (r_name, r.shape, c.shape)
            r, c = r.reshape(-1), c.reshape(-1)
            if r.dtype.kind in "iub":  # labels / token ids
                err = float(np.mean(r.astype(np.int64) != c.astype(np.int64)))
            elif (np.isfinite(r) != np.isfinite(c)).any():  # inf/NaN on one side only: no agreement
                err = math.inf
            else:  # NOTE: NaN compared as a number failed every `>=`, so it counted as no error at all
                both = np.isfinite(r)
                r64, c64 = r[both].astype(np.float64), c[both].astype(np.float64)
                scale = float(np.sqrt(np.mean(r64**2))) if r64.size else 0.0
                err = float(np.sqrt(np.mean((r64 - c64) ** 2))) / (scale or 1.0) if r64.size else 0.0
            if err >= worst:
                worst, which = err, r_name
    return worst, which


def direct_errors(spec: str, package: Path, samples: int = 2) -> dict[str, tuple[float, str]]:
    """Errors measured here on the samples check used: ``fidelity``, a float32 conversion made here; ``storage``,
    the package check wrote (its weights in fp16), both run in float32."""
    from devicefit import interp
    from devicefit.check import CheckOptions
    from devicefit.check.sources import load_dataset
    from devicefit.convert import ConvertOptions, convert
    from devicefit.sources import load_source

    source = load_source(spec)
    dataset = load_dataset(source, CheckOptions(model=spec, samples=samples))
    fp32 = interp.load(convert(source, ConvertOptions(precision="fp32")).mlmodel)
    return {
        "fidelity": _worst_error(source, dataset, fp32),
        "storage": _worst_error(source, dataset, interp.load(str(package))),
    }


# relative RMS error bounds: check's own (SNR 60 dB for float32 fidelity, 30 dB for fp16 weight storage)
FIDELITY, STORAGE = 1e-3, 10 ** (-30 / 20)


def check_holds(model, tmp_path, capsys=None, fail_names_place: bool = False, samples: int = 2):  # type: ignore[no-untyped-def]
    """Run ``devicefit check`` on ``model`` as a user does and hold its verdicts to errors measured here (the
    module's doc); ``fail_names_place``: a numerics FAIL must name where (``file.py:N``). ``samples``: 2 keeps
    the suite fast (check's default 16 doubles each model's time); returns the errors measured here."""
    from devicefit.cli import main

    spec, out = spec_of(model), tmp_path / "out"
    code = main(
        ["check", spec, "--samples", str(samples), "--target", "iphone-12", "--no-fix", "-o", str(out)]
    )
    if (
        getattr(model, "exit", None) is not None
    ):  # stopped before any verdict: the message says which input, why
        assert code == model.exit and capsys is not None
        message = capsys.readouterr().err.strip().splitlines()[-1]
        assert message.startswith("devicefit check: error: input "), message
        assert not (out / "report.json").exists()
        return
    verdicts = json.loads((out / "report.json").read_text())["verdicts"]
    assert code == (1 if any(v["status"] == "fail" for v in verdicts.values()) else 0), verdicts
    assert verdicts["convert"]["status"] == model.convert, verdicts["convert"]["reason"]
    for verdict in verdicts.values():  # a finding never leads with an internal Core ML value name
        assert "_cast_fp16" not in verdict["reason"].split(" (")[0], verdict["reason"]
    if model.convert == "fail":
        assert PLACE.search(verdicts["convert"]["reason"]), verdicts["convert"]["reason"]
        return
    errors = direct_errors(spec, out / "model.mlpackage", samples)
    numerics = verdicts["numerics"]
    if errors["fidelity"][0] < FIDELITY:  # a faithful conversion is not called a conversion problem
        assert not numerics["reason"].startswith("conversion problem"), (errors, numerics["reason"])
    else:  # ...and an unfaithful one is not passed
        assert numerics["status"] == "fail", (errors, numerics["reason"])
    if errors["storage"][0] > STORAGE:
        assert numerics["status"] == "fail", (errors, numerics["reason"])
    allowed = {"pass", "warn"} if model.numerics == "pass" else {model.numerics}
    assert numerics["status"] in allowed, numerics["reason"]
    if fail_names_place and numerics["status"] == "fail":
        assert PLACE.search(numerics["reason"]), numerics["reason"]
    return errors


@pytest.mark.parametrize("model", _params())
def test_check_verdicts_hold_on_outside3_models(model, tmp_path):
    check_holds(model, tmp_path)
