"""Every corpus family converts with devicefit, matches PyTorch in fp32, and stays finite and close in fp16.

The fast subset (``Family.fast``) runs in ``make test``; the rest is marked slow:
``pytest -m slow tests/corpus`` runs them all (a few minutes on 2 cores).
"""

from __future__ import annotations

import numpy as np
import pytest

from devicefit import interp
from devicefit.convert import ConvertOptions, convert
from tests.convert.helpers import source_of
from tests.corpus.families import FAMILIES, Family


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(np.float64).ravel(), b.astype(np.float64).ravel()
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def _params(families: list[Family]) -> list:
    return [pytest.param(f, id=f.name, marks=() if f.fast else pytest.mark.slow) for f in families]


@pytest.mark.parametrize("family", _params(FAMILIES))
def test_family_converts_and_matches(family: Family):
    module, example = family.build()
    source = source_of(module, example, family.name)
    reference = next(iter(source.reference(source.example_inputs).values()))
    assert np.abs(reference).mean() > 0.01, "degenerate weights: the comparison would prove nothing"
    feeds = source.coreml_feeds(source.example_inputs)

    fp32 = convert(source, ConvertOptions(precision="fp32"))
    got = next(iter(interp.load(fp32.mlmodel).run(feeds, precision="fp32").values()))
    assert got.shape == reference.shape
    rel = float(np.abs(got - reference).max() / np.abs(reference).max())
    assert rel < 1e-3 and _cosine(got, reference) > 0.9999, (rel, _cosine(got, reference))

    fp16 = convert(source, ConvertOptions(precision="fp16", frontend=fp32.frontend))
    half = next(iter(interp.load(fp16.mlmodel).run(feeds, precision="fp16").values()))
    assert np.isfinite(half).all()
    assert _cosine(half, reference) >= 0.99


@pytest.mark.parametrize("family", _params(FAMILIES))
def test_family_check_verdicts(family: Family, tmp_path):
    """``devicefit check`` on the family: converts, and the numerics verdict names the right cause."""
    from devicefit.check import CheckOptions, run_check
    from devicefit.report.schema import build_report

    factory = tmp_path / "family.py"
    factory.write_text(
        "from tests.corpus.families import FAMILIES\n\n\n"
        "def make_model():\n"
        f"    return next(f for f in FAMILIES if f.name == {family.name!r}).build()\n"
    )
    # Validate on the family's own example (right-padded masks): transformers' masking code takes
    # data-dependent branches at trace time, so random 0/1 masks legitimately make the traced model differ.
    _, example = family.build()
    data = tmp_path / "data.npz"
    np.savez(data, **{k: v.numpy() for k, v in example.items()})
    result = run_check(CheckOptions(model=f"{factory}:make_model", data=str(data), divergence_samples=1))
    verdicts = build_report(result)["verdicts"]
    assert verdicts["convert"]["status"] == "pass", verdicts["convert"]
    numerics = verdicts["numerics"]
    # Conversion is exact for every family: a "conversion problem" verdict would blame the wrong cause.
    assert "conversion problem" not in numerics["reason"], numerics
    if numerics["status"] == "fail":
        # Random weights may lose top-k on fp16 (the wrapper's output has no name saying it holds features):
        # then the verdict must name fp16 as the cause, with the conversion's own SNR far above its bound.
        assert "fp16" in numerics["reason"], numerics
