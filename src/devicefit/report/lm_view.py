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


def _fmt(value: Any, spec: str = ".4f") -> str:
    return "-" if value is None else format(value, spec)


def render_lm_terminal(report: dict[str, Any], console: Any) -> None:
    """``check`` on a causal LM, for the terminal: generation agreement per run, then memory and the decode
    bound per device.

    Args:
        report: the LM check report (``LMCheckResult.to_json()``).
        console: the rich console to print on.
    """
    from rich.table import Table

    gen, mem = report["generation"], report["memory"]
    console.print(
        f"[bold]{report['family']}[/] causal LM, {report['parameters']:,} parameters, context "
        f"{report['max_context']}: [bold]{report['verdict']}[/]"
    )
    table = Table(title=f"greedy generation vs PyTorch ({gen['steps']} steps x {gen['prompts']} prompts)")
    for col in (
        "run",
        "tokens agree",
        "first diff",
        "min cosine",
        "top-5",
        "perplexity",
        "vs PyTorch",
        "verdict",
    ):
        table.add_column(col)
    for run in gen["runs"]:
        change = run["perplexity_change"]
        table.add_row(
            run["name"],
            f"{run['token_agreement']:.1%}",
            "-" if run["first_diff_step"] is None else str(run["first_diff_step"]),
            _fmt(min(run["step_cosine"]) if run["step_cosine"] else None, ".5f"),
            _fmt(sum(run["step_top5"]) / len(run["step_top5"]) if run["step_top5"] else None, ".3f"),
            _fmt(run["perplexity"], ".3f"),
            "-" if change is None else f"{change:+.2%}",
            run["verdict"],
        )
    console.print(table)
    for run in gen["runs"]:
        if run["verdict"] != "pass":
            console.print(f"  {run['reason']}", highlight=False)
    mb = 2**20
    console.print(
        f"memory at {mem['context']} tokens: weights {mem['weight_bytes'] / mb:.2f} MB + KV cache "
        f"{mem['kv_cache_bytes'] / mb:.2f} MB ({mem['kv_cache_per_layer_bytes'] / 1024:.1f} KB/layer, fp16) + "
        f"activations {max(mem['decode_activation_bytes'], mem['prefill_activation_bytes']) / mb:.2f} MB",
        highlight=False,
    )
    ladder = ", ".join(f"{r['name']} {r['weight_bytes'] / mb:.2f} MB" for r in mem["ladder"])
    console.print(f"size ladder: {ladder}", highlight=False)
    bounds = [d for d in mem["devices"] if d["tokens_per_s_bound"] is not None][:8]
    if bounds:
        shown = ", ".join(f"{d['device']} {d['tokens_per_s_bound']:,.0f}" for d in bounds)
        console.print(f"decode tokens/s upper bound (bandwidth / bytes per token): {shown}", highlight=False)
    if mem["partial"]:
        console.print("(partial: some catalog devices lack a bandwidth or memory-budget figure)")
    for note in report["notes"]:
        console.print(f"note: {note}", highlight=False)


def render_lm_compress(result: Any, console: Any) -> None:
    """``compress`` on a causal LM, for the terminal: each plan of the ladder tried, then the one chosen.

    Args:
        result: the ``compress_causal_lm`` result.
        console: the rich console to print on.
    """
    mb = 2**20
    console.print(
        f"budget {result.budget}; PyTorch held-out perplexity {_fmt(result.reference_perplexity, '.3f')}"
    )
    for c in result.tried:
        mark = "meets" if c.meets else "misses"
        tokens = "" if c.token_agreement is None else f", tokens {c.token_agreement:.1%}"
        console.print(
            f"  {c.name}: {c.weight_bytes / mb:.3f} MB, perplexity {_fmt(c.perplexity, '.3f')}{tokens}: {mark}",
            highlight=False,
        )
    for line in result.skipped:
        console.print(f"  skipped {line}", highlight=False)
    if result.chosen is not None:
        console.print(
            f"chosen: {result.chosen.name} ({result.chosen.weight_bytes / mb:.3f} MB vs fp16 "
            f"{result.baseline_weight_bytes / mb:.3f} MB) -> {result.output}",
            highlight=False,
        )
