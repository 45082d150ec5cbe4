"""compress says one verdict everywhere: the exit code, the terminal table, the JSON and the HTML page.

A plan met on the calibration samples but missed on the held-out ones (or on its re-measurement) exits 1;
the table said "budget met: yes" and the page "PASS ... met" for it.
"""

from __future__ import annotations

import dataclasses
import io

import pytest
from rich.console import Console

from devicefit.convert.provenance import Origin
from devicefit.report import compress_view
from tests.report.test_views import _search_result


def _text(result) -> str:
    console = Console(file=io.StringIO(), width=100)
    for r in compress_view.summary_renderables(result, "net.py"):
        console.print(r)
    return console.file.getvalue()


@pytest.mark.parametrize(
    ("changes", "passes"),
    [
        ({}, True),
        ({"met": False}, False),
        ({"heldout_metric": 0.90, "heldout_samples": 4}, False),  # missed on samples the search never saw
        ({"heldout_metric": 0.96, "heldout_samples": 4}, True),
        ({"verified_metric": 0.94}, False),  # the built plan, re-measured, is under the bound
    ],
)
def test_one_verdict_in_every_output(changes, passes):
    result = dataclasses.replace(_search_result(), **changes)
    assert result.generalizes is passes
    assert result.to_dict()["verdict"] == ("pass" if passes else "fail")
    text = _text(result)
    assert ("verdict" in text and ("PASS" if passes else "FAIL") in text) and "budget met  " not in text
    page = compress_view.html_report(result, "net.py")
    meta = page[page.index('<p class="meta">') : page.index("</p>", page.index('<p class="meta">'))]
    word = "PASS" if passes else "FAIL"
    assert meta.endswith(word) and f'<span class="{word.lower()}">{word}</span>' in page


def test_the_pages_plan_leads_with_the_pytorch_module():
    """The plan table listed MIL weight names alone (const_2_to_fp16) on the page."""
    result = _search_result()
    result.sensitivity.layers[1].origin = Origin("classifier", "Linear", "net.py:12")
    result.chosen.assignment = {"fc_w": "pal4"}
    page = compress_view.html_report(result, "net.py")
    plan = page[page.index('<section id="plan">') :]
    assert plan.index("classifier (Linear) at net.py:12") < plan.index("fc_w")


def test_a_package_without_provenance_says_why_layers_have_mil_names():
    text = _text(_search_result())  # no layer has an origin
    assert "carries no PyTorch provenance" in " ".join(text.split())
    result = _search_result()
    result.sensitivity.layers[0].origin = Origin("features.0", "Conv2d", "net.py:3")
    assert "carries no PyTorch provenance" not in " ".join(_text(result).split())
