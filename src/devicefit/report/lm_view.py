"""HTML page of a language-model check: per-run generation table, per-step logits agreement charts, memory."""

from __future__ import annotations

from html import escape
from typing import Any

from devicefit.report.charts import line_chart
from devicefit.report.page import page, section, status, table

__all__ = ["lm_html"]


def lm_html(report: dict[str, Any]) -> str:
    """The self-contained page for ``devicefit.check.lm.LMCheckResult.to_json()``."""
    gen, mem = report["generation"], report["memory"]
    rows = [
        [
            run["name"],
            run["token_agreement"],
            "none" if run["first_diff_step"] is None else run["first_diff_step"],
            min(run["step_cosine"]) if run["step_cosine"] else None,
            run["perplexity"],
            run["reference_perplexity"],
            status(run["verdict"]),
        ]
        for run in gen["runs"]
    ]
    heads = [
        "run",
        "token agreement",
        "first differing step",
        "min cosine",
        "perplexity",
        "PyTorch ppl",
        "verdict",
    ]
    reasons = "".join(f"<p>{escape(run['reason'])}</p>" for run in gen["runs"] if run["verdict"] != "pass")
    charts = []
    for run in gen["runs"]:
        charts.append(
            line_chart(
                run["step_cosine"],
                f"{run['name']}: logits cosine vs PyTorch per generated token",
                "cosine",
                marker=run["first_diff_step"],
                marker_label="first differing token",
                xlabel="generation step",
                series_label="mean over prompts",
            )
        )
        charts.append(
            line_chart(
                run["step_top5"],
                f"{run['name']}: top-5 overlap with PyTorch per generated token",
                "top-5 overlap",
                xlabel="generation step",
                series_label="mean over prompts",
            )
        )
    mb = 2**20
    memory_rows = [
        ["weights (as shipped)", mem["weight_bytes"] / mb],
        [f"KV cache at {mem['context']} tokens (fp16)", mem["kv_cache_bytes"] / mb],
        ["activations, decode step", mem["decode_activation_bytes"] / mb],
        [f"activations, prefill of {mem['context']} tokens", mem["prefill_activation_bytes"] / mb],
    ]
    ladder = [[r["name"], r["bits_per_weight"], r["weight_bytes"] / mb] for r in mem["ladder"]]
    devices = [
        [d["device"], d["budget_mb"], d["fits"], d["bandwidth_gbps"], d["tokens_per_s_bound"]]
        for d in mem["devices"]
    ]
    meta = (
        f"{report['family']} causal LM, {report['parameters']:,} parameters, context {report['max_context']}"
    )
    return page(
        "devicefit language-model check",
        meta,
        [
            section(
                "generation",
                f"Greedy generation vs PyTorch ({gen['steps']} steps x {gen['prompts']} prompts)",
                table(heads, rows) + reasons + "".join(charts),
            ),
            section(
                "memory",
                "Memory (MB)",
                table(["part", "MB"], memory_rows) + table(["format", "bits", "MB"], ladder),
            ),
            section(
                "devices",
                "Device fit and decode tokens/s upper bound (bandwidth / bytes per token)",
                table(["device", "budget MB", "fits", "GB/s", "tokens/s bound"], devices),
            ),
        ],
    )
