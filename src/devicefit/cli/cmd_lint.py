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

    from devicefit.analyze import ane_lint
    from devicefit.cli._common import check_output_path, is_stdout, refuse_overlaps, write_text_output
    from devicefit.report.lint_view import render_lint

    refuse_overlaps({"--json": args.json}, {"the model": args.model})
    if args.json is not None:
        check_output_path(args.json, args.force, flag="--json", package=False, stdout_ok=True)
    report = ane_lint.lint(args.model, function=args.function)
    console = Console(stderr=is_stdout(args.json))  # `--json -`: stdout carries the JSON alone
    render_lint(report, args.model, console, show_all=args.all)
    if args.json is not None and write_text_output(args.json, json.dumps(report.to_dict(), indent=2)):
        console.print(f"wrote {args.json}")
    return 0
