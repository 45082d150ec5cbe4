"""``devicefit devices``: what each engine can run on here, or the Apple device catalog."""

from __future__ import annotations

import argparse

from devicefit.cli._common import add_json_argument

NAME = "devices"
ORDER = 65
HELP = "list engines and compute devices available on this host (--catalog: the Apple device catalog)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--catalog", action="store_true", help="print the Apple device catalog instead")
    add_json_argument(p, "the listing")
    p.add_argument("--force", action="store_true", help="overwrite --json if it exists")


def _catalog_rows() -> list[dict]:
    import dataclasses

    from devicefit.errors import DevicefitError

    try:
        from devicefit.analyze.catalog import load_catalog
    except ImportError as e:
        raise DevicefitError(
            f"the device catalog is not available in this build ({e}); install a devicefit that ships "
            "devicefit.analyze.catalog"
        ) from e
    rows = []
    for d in load_catalog():
        row = dataclasses.asdict(d)
        # sets are not JSON: a sorted list, so the file is stable and diffable
        row["secondary"] = sorted(row.get("secondary") or ())
        row["ne_usable_by_core_ml"] = d.ne_usable_by_core_ml
        rows.append(row)
    return rows


def main(args: argparse.Namespace) -> int:
    import dataclasses
    import json

    from rich.console import Console

    from devicefit.cli._common import check_output_path, is_stdout, write_text_output
    from devicefit.report.terminal_views import catalog_table, engines_table

    if args.json is not None:
        check_output_path(args.json, args.force, flag="--json", package=False, stdout_ok=True)
    console = Console(stderr=is_stdout(args.json))  # `--json -`: stdout carries the JSON alone
    if args.catalog:
        rows = _catalog_rows()
        table = catalog_table(rows)  # the short scalar fields; every field goes to --json
    else:
        from devicefit.engines import availability

        rows = [dataclasses.asdict(a) for a in availability()]
        table = engines_table(rows)
    console.print(table)
    if args.json is not None and write_text_output(args.json, json.dumps(rows, indent=1, default=str)):
        console.print(f"wrote {args.json}")
    return 0
