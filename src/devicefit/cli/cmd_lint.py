"""``devicefit lint``: predict which ops are likely to fall back from the Neural Engine."""

from __future__ import annotations

import argparse
from pathlib import Path

NAME = "lint"
ORDER = 40
HELP = "predict Neural Engine fallbacks from published constraints (not a measurement)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", type=Path, help="the .mlpackage folder or .mlmodel file")
    p.add_argument("--function", default=None, help="function of a multi-function package")
    p.add_argument(
        "--json", type=Path, default=None, metavar="PATH", help="also write the full report as JSON"
    )
    p.add_argument("--all", action="store_true", help="list every op, not only flagged ones")
    p.add_argument("--force", action="store_true", help="overwrite --json if it exists")


def main(args: argparse.Namespace) -> int:
    import json

    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from devicefit.analyze import ane_lint
    from devicefit.cli._common import check_output_path
    from devicefit.io import atomic_write_text

    if args.json is not None:
        check_output_path(args.json, args.force)
    report = ane_lint.lint(args.model, function=args.function)
    console = Console()
    table = Table(title=escape(f"Neural Engine lint · {args.model} · function {report.function}"))
    for col in (
        "#",
        "where (PyTorch module, then MIL op)",
        "op",
        "verdict",
        "rule",
        "reason",
        "fix",
        "source",
    ):
        table.add_column(col, overflow="fold")
    style = {"fallback": "red", "maybe": "yellow", "ne": "green"}
    for f in report.program:
        table.add_row(
            "",
            "(whole program)",
            "",
            f"[{style.get(f.severity, 'yellow')}]{f.severity}",
            *(escape(str(v)) for v in (f.rule, f.reason, f.fix, f.source)),
        )
    for op in report.ops if args.all else report.flagged():
        rows = [tuple(escape(str(v)) for v in (x.rule, x.reason, x.fix, x.source)) for x in op.findings] or [
            ("", "", "", "")
        ]
        for i, row in enumerate(rows):
            first = i == 0
            verdict = f"[{style[op.verdict]}]{op.verdict_text}"
            table.add_row(
                str(op.index) if first else "",
                escape(op.where) if first else "",
                op.op_type if first else "",
                verdict if first else "",
                *row,
            )
    if table.row_count:
        console.print(table)
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
    if args.json is not None:
        atomic_write_text(args.json, json.dumps(report.to_dict(), indent=2))
        console.print(f"wrote {args.json}")
    return 0
