"""The LM check's HTML page: a table per run and per-step charts with the first differing step marked."""

from __future__ import annotations

from devicefit.analyze.kv_cache import lm_memory
from devicefit.check.lm import LMCheckResult
from devicefit.compare.generation import GenerationCheck, GenerationRun
from devicefit.convert.lm_wrapper import lm_shape
from devicefit.report.lm_view import lm_html
from tests.lm.families import tiny_lm


def test_lm_html_shows_runs_charts_and_memory() -> None:
    shape = lm_shape(tiny_lm("llama"))
    runs = [
        GenerationRun("fp32", 1.0, None, [1.0, 1.0, 1.0], [1.0, 1.0, 1.0], 10.0, 10.0),
        GenerationRun(
            "int4", 0.5, 1, [0.99, 0.9, 0.8], [1.0, 0.6, 0.4], 12.0, 10.0, verdict="warn", reason="int4 <b>"
        ),
    ]
    memory = lm_memory(shape, 24, 1000, 500, 128, devices=[])
    result = LMCheckResult("llama", 24, 500, {"fp16": 1000}, GenerationCheck(3, 1, 20, runs), memory, [])
    html = lm_html(result.to_json())
    assert html.count("<svg") == 4  # cosine + top-5 per run
    assert "first differing token" in html and "WARN" in html
    assert "KV cache at 24 tokens" in html
    assert "int4 &lt;b&gt;" in html  # reasons are escaped
