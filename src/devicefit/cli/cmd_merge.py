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
    import os

    # NOTE: tqdm reads TQDM_DISABLE once, when imported: it must be set before coremltools is, as check and
    # compress do, or saving the merged package prints coremltools' per-pass progress bars.
    os.environ.setdefault("TQDM_DISABLE", "1")
    from rich.console import Console

    from devicefit.compress.verbs import quiet
    from devicefit.convert.merge import merge
    from devicefit.report.terminal_views import merge_renderables
    from devicefit.sources.coreml_package import check_package

    # NOTE: merge hands each path to coremltools, which follows Manifest.json anywhere and trusts weight
    # offsets: a crafted package would hang it (a FIFO) or crash it (exit 3), so each is checked first.
    for model in args.models:
        check_package(model)
    names = args.names.split(",") if args.names else None
    with quiet():  # and its info logging
        result = merge(args.models, args.output, names=names, default=args.default, force=args.force)
    console = Console()
    for renderable in merge_renderables(result, args.models):
        console.print(renderable)
    return 0
