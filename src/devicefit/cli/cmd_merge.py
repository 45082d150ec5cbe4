"""``devicefit merge``: several .mlpackage files -> one multi-function package with shared weights."""

from __future__ import annotations

import argparse
from pathlib import Path

NAME = "merge"
ORDER = 60
HELP = "merge .mlpackage models into one multi-function package (shared weights stored once)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("models", type=Path, nargs="+", help="two or more .mlpackage folders")
    p.add_argument("-o", "--output", type=Path, required=True, help="the merged .mlpackage to write")
    p.add_argument("--names", default=None, help="comma-separated function names, one per model")
    p.add_argument("--default", default=None, help="default function (default: the first name)")
    p.add_argument("--force", action="store_true", help="overwrite the output if it exists")


def main(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from devicefit.convert.merge import merge

    names = args.names.split(",") if args.names else None
    result = merge(args.models, args.output, names=names, default=args.default, force=args.force)
    console = Console()
    table = Table(title=f"merged into {result.output} (default function: {result.default_function})")
    table.add_column("function")
    table.add_column("from")
    table.add_column("weight bytes", justify="right")
    for (name, size), path in zip(result.input_weight_bytes.items(), args.models):
        table.add_row(name, str(path), f"{size:,}")
    table.add_row("[bold]merged", str(result.output), f"[bold]{result.merged_weight_bytes:,}")
    console.print(table)
    total = sum(result.input_weight_bytes.values())
    share = result.saved_bytes / total if total else 0.0
    console.print(f"shared weights saved {result.saved_bytes:,} bytes ({share:.0%} of the inputs' weights)")
    return 0
