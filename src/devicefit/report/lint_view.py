"""``devicefit lint`` results for the terminal: the flagged ops (PyTorch module first), what to do once per rule,
then the summary line and the disclaimer."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from devicefit.analyze.ane_lint import Finding, LintReport

_STYLE = {"fallback": "red", "maybe": "yellow", "ne": "green"}


def _table(report: LintReport, title: str, show_all: bool) -> tuple[Any, dict[str, Finding]]:
    """The findings table and the first finding of each rule that fired (for its fix line)."""
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=escape(title))
    # readable at 80 columns: short cells never wrap, long ones wrap between words (by row)
    table.add_column("#", no_wrap=True, justify="right")
    table.add_column("where (PyTorch module, then MIL op)", overflow="fold", ratio=3)
    table.add_column("verdict", no_wrap=True)
    table.add_column("rule", no_wrap=True)
    table.add_column("why", overflow="fold", ratio=3)
    fired: dict[str, Finding] = {}
    for f in report.program:
        fired.setdefault(f.rule, f)
        table.add_row(
            "",
            "(whole program)",
            f"[{_STYLE.get(f.severity, 'yellow')}]{f.severity}",
            f.rule,
            escape(f.reason),
        )
    for op in report.ops if show_all else report.flagged():
        verdict = f"[{_STYLE[op.verdict]}]{op.verdict_text}"
        where = escape(f"{op.where} [{op.op_type}]")
        if not op.findings:
            table.add_row(str(op.index), where, verdict, "", "")
        for i, x in enumerate(op.findings):
            fired.setdefault(x.rule, x)
            first = i == 0
            table.add_row(
                str(op.index) if first else "",
                where if first else "",
                verdict if first else "",
                x.rule,
                escape(x.reason),
            )
    return table, fired


def render_lint(report: LintReport, model: object, console: Any, show_all: bool = False) -> None:
    """Print a lint report: the table (or a one-line all-clear), fixes once per rule, summary, disclaimer.

    Args:
        report: what ``analyze.ane_lint.lint`` returned.
        model: the model path as the user gave it (shown in the title).
        console: the rich console to print on.
        show_all: list every op, not only the flagged ones (``--all``).
    """
    from rich.markup import escape

    table, fired = _table(report, f"Neural Engine lint · {model} · function {report.function}", show_all)
    if table.row_count:
        console.print(table)
        # what to do, once per rule (not repeated on every op)
        for rule, finding in fired.items():
            console.print(
                escape(f"{rule} {finding.title}: fix: {finding.fix} (source: {finding.source})"),
                highlight=False,
            )
    else:
        console.print(
            "no op flagged: every op is likely to run on the Neural Engine (use --all to list them)"
        )
    s = report.summary
    barred = f" · NE barred by {', '.join(s.ne_barred_by)}" if s.ne_barred_by else ""
    console.print(
        f"{s.ops} ops · likely fallback: {s.fallback_ops} ops ({s.fallback_op_share:.0%}), "
        f"{s.fallback_flops_share:.0%} of FLOPs · may fall back: {s.maybe_ops} ops · "
        f"Neural Engine <-> CPU/GPU transitions: {s.transitions}{barred}"
    )
    console.print(f"[dim]{report.disclaimer}[/dim]")
