"""``devicefit devices``: what each engine can run on here, or the Apple device catalog."""

from __future__ import annotations

import argparse
from pathlib import Path

NAME = "devices"
ORDER = 65
HELP = "list engines and compute devices available on this host (--catalog: the Apple device catalog)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--catalog", action="store_true", help="print the Apple device catalog instead")
    p.add_argument("--json", type=Path, default=None, metavar="PATH", help="also write the listing as JSON")
    p.add_argument("--force", action="store_true", help="overwrite --json if it exists")


def _catalog_rows() -> list[dict]:
    import dataclasses

    from devicefit.errors import DevicefitError

    try:
        from devicefit.analyze.catalog import load_catalog  # type: ignore[import-not-found]
    except ImportError as e:
        raise DevicefitError(
            f"the device catalog is not available in this build ({e}); install a devicefit that ships "
            "devicefit.analyze.catalog"
        ) from e
    return [dataclasses.asdict(d) if dataclasses.is_dataclass(d) else dict(vars(d)) for d in load_catalog()]


def main(args: argparse.Namespace) -> int:
    import dataclasses
    import json

    from rich.console import Console
    from rich.table import Table

    from devicefit.cli._common import check_output_path
    from devicefit.io import atomic_write_text

    if args.json is not None:
        check_output_path(args.json, args.force)
    console = Console()
    if args.catalog:
        rows = _catalog_rows()
        # the table shows the short scalar fields; sources, notes and nested data go to --json
        cols = [
            c
            for c in (list(rows[0]) if rows else [])
            if c in ("id", "name")
            or all(
                isinstance(r.get(c), (int, float, type(None)))
                or (isinstance(r.get(c), str) and len(r[c]) <= 32)
                for r in rows
            )
        ]
        hidden = len(rows[0]) - len(cols) if rows else 0
        table = Table(
            title=f"Apple device catalog · {len(rows)} devices"
            + (f" · {hidden} more fields in --json" if hidden else "")
        )
        for c in cols:
            table.add_column(c)
        for r in rows:
            table.add_row(
                *[", ".join(map(str, r[c])) if isinstance(r[c], (list, tuple)) else str(r[c]) for c in cols]
            )
    else:
        from devicefit.engines import availability

        rows = [dataclasses.asdict(a) for a in availability()]
        table = Table(title="engines on this host")
        for c in ("engine", "available", "devices", "version", "why not"):
            table.add_column(c)
        for r in rows:
            ok = "[green]yes[/green]" if r["available"] else "[red]no[/red]"
            table.add_row(r["engine"], ok, ", ".join(r["devices"]), r["version"], r["reason"])
    console.print(table)
    if args.json is not None:
        atomic_write_text(args.json, json.dumps(rows, indent=1, default=str))
        console.print(f"wrote {args.json}")
    return 0
