"""``devicefit cache``: list or clear the specialization cache."""

from __future__ import annotations

import argparse
from pathlib import Path

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
        _refuse_foreign_root(cache.root)
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


# What the cache writes at its root (see devicefit.engines.cache); anything else is not ours.
_CACHE_PARTS = {"entries", "hashes", "locks", "tmp"}


def _refuse_foreign_root(root: Path) -> None:
    """Refuse to clear a cache root that holds files devicefit did not write.

    ``clear`` deletes ``hashes/`` and every damaged folder under ``entries/``: with ``$DEVICEFIT_CACHE_DIR``
    pointing at a folder in use (a home or project folder that has its own ``entries`` or ``hashes``), that
    would delete the user's files.

    Raises:
        InputError: naming the first foreign file and what to do.
    """
    from devicefit.errors import InputError
    from devicefit.sources.untrusted_files import shown

    try:
        foreign = sorted(p.name for p in root.iterdir() if p.name not in _CACHE_PARTS)
        hashes = root / "hashes"
        if hashes.is_dir():
            foreign += sorted(f"hashes/{p.name}" for p in hashes.iterdir() if p.suffix != ".json")
    except FileNotFoundError:
        return
    except OSError as e:
        raise InputError(f"cache folder {shown(root)} cannot be read: {e.strerror or e}") from None
    if foreign:
        raise InputError(
            f"cache folder {shown(root)} holds {shown(foreign[0])}, which devicefit did not write; `cache clear` "
            "clears only a folder used for devicefit's cache alone: point $DEVICEFIT_CACHE_DIR at a folder of "
            "its own"
        )
