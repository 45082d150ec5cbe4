"""``devicefit lint``: predict which ops are likely to fall back from the Neural Engine."""

from __future__ import annotations

import argparse
from pathlib import Path

from devicefit.cli._common import add_json_argument

NAME = "lint"
ORDER = 40
HELP = "predict Neural Engine fallbacks from published constraints (not a measurement)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", type=Path, help="the .mlpackage folder or .mlmodel file")
    p.add_argument("--function", default=None, help="function of a multi-function package")
    add_json_argument(p, "the full report")
    p.add_argument("--all", action="store_true", help="list every op, not only flagged ones")
    p.add_argument("--force", action="store_true", help="overwrite --json if it exists")


def main(args: argparse.Namespace) -> int:
    import json

    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from devicefit.analyze import ane_lint
    from devicefit.cli._common import check_output_path, is_stdout, write_text_output

    if args.json is not None:
        check_output_path(args.json, args.force)
    report = ane_lint.lint(args.model, function=args.function)
    console = Console(stderr=is_stdout(args.json))  # `--json -`: stdout carries the JSON alone
    table = Table(title=escape(f"Neural Engine lint · {args.model} · function {report.function}"))
    # readable at 80 columns: short cells never wrap, long ones wrap between words (by row)
    table.add_column("#", no_wrap=True, justify="right")
    table.add_column("where (PyTorch module, then MIL op)", overflow="fold", ratio=3)
    table.add_column("verdict", no_wrap=True)
    table.add_column("rule", no_wrap=True)
    table.add_column("why", overflow="fold", ratio=3)
    style = {"fallback": "red", "maybe": "yellow", "ne": "green"}
    fired: dict[str, ane_lint.Finding] = {}
    for f in report.program:
        fired.setdefault(f.rule, f)
        table.add_row(
            "",
            "(whole program)",
            f"[{style.get(f.severity, 'yellow')}]{f.severity}",
            f.rule,
            escape(f.reason),
        )
    for op in report.ops if args.all else report.flagged():
        verdict = f"[{style[op.verdict]}]{op.verdict_text}"
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
    if args.json is not None and write_text_output(args.json, json.dumps(report.to_dict(), indent=2)):
        console.print(f"wrote {args.json}")
    return 0
