"""``devicefit cache``: list or clear the specialization cache."""

from __future__ import annotations

import argparse

NAME = "cache"
ORDER = 70
HELP = "list (ls) or clear the on-disk cache of prepared models ($DEVICEFIT_CACHE_DIR or ~/.cache/devicefit)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=["ls", "clear"], help="ls: list entries; clear: remove them all")
    p.add_argument(
        "--json",
        nargs="?",
        const="-",
        default=None,
        metavar="PATH",
        help="ls: write the entries as JSON to PATH instead of a table ('-' or no PATH: stdout)",
    )
    p.add_argument("--force", action="store_true", help="overwrite the --json file")


def main(args: argparse.Namespace) -> int:
    import json

    from rich.console import Console

    from devicefit.cli._common import check_output_path, write_text_output
    from devicefit.engines.cache import SpecializationCache
    from devicefit.report.terminal_views import cache_table

    if args.json is not None:
        check_output_path(args.json, args.force, flag="--json", package=False, stdout_ok=True)
    cache = SpecializationCache()
    console = Console()
    if args.action == "clear":
        n = cache.clear()
        console.print(f"removed {n} cache entr{'y' if n == 1 else 'ies'} from {cache.root}")
        return 0
    entries = cache.entries()
    if args.json is not None:
        rows = [
            {
                "key": e.key,
                "engine": e.engine,
                "options": e.options,
                "size_bytes": e.size_bytes,
                "created": e.created,
                "last_used": e.last_used,
                "path": str(e.path),
            }
            for e in entries
        ]
        text = json.dumps({"root": str(cache.root), "max_bytes": cache.max_bytes, "entries": rows}, indent=1)
        if write_text_output(args.json, text):
            console.print(f"wrote {args.json}")
        return 0
    if not entries:
        print(f"{cache.root}: empty (cap {cache.max_bytes / 1e6:.0f} MB)")
        return 0
    table = cache_table(cache.root, entries, cache.size_bytes(), cache.max_bytes)
    console.print(table)
    return 0
