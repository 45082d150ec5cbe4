"""``devicefit lint``: predict which ops are likely to fall back from the Neural Engine."""

from __future__ import annotations

import argparse
from pathlib import Path

from devicefit.cli._common import add_json_argument

NAME = "lint"
ORDER = 40
HELP = (
    "predict Neural Engine fallbacks from published constraints (not a measurement); exit 1 on check's "
    "neural_engine fail (the model barred from the NE, or most of its FLOPs off it)"
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", type=Path, help="the .mlpackage folder or .mlmodel file")
    p.add_argument("--function", default=None, help="function of a multi-function package")
    add_json_argument(p, "the full report")
    p.add_argument("--all", action="store_true", help="list every op, not only flagged ones")
    p.add_argument("--force", action="store_true", help="overwrite --json if it exists")


def main(args: argparse.Namespace) -> int:
    import json
    import sys

    from rich.console import Console

    from devicefit.analyze import ane_lint
    from devicefit.cli._common import check_output_path, is_stdout, refuse_overlaps, write_text_output
    from devicefit.errors import printable
    from devicefit.report.devices import ane_section, ane_verdict
    from devicefit.report.lint_view import render_lint

    refuse_overlaps({"--json": args.json}, {"the model": args.model})
    if args.json is not None:
        check_output_path(args.json, args.force, flag="--json", package=False, stdout_ok=True)
    report = ane_lint.lint(args.model, function=args.function)
    # NOTE: the same verdict `check` gives the same package (its neural_engine area): a model `check` fails
    # for the Neural Engine must not pass `lint` with exit 0.
    status, reason = ane_verdict(ane_section(report))
    console = Console(stderr=is_stdout(args.json))  # `--json -`: stdout carries the JSON alone
    render_lint(report, args.model, console, show_all=args.all)
    data = {**report.to_dict(), "verdict": {"status": status, "reason": reason}}
    if args.json is not None and write_text_output(args.json, json.dumps(data, indent=2)):
        console.print(f"wrote {args.json}")
    if status == "fail":
        print(f"devicefit lint: neural_engine failed: {printable(reason)}", file=sys.stderr)
        return 1
    return 0
