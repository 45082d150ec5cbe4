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
    from rich.table import Table

    from devicefit.cli._common import check_output_path, is_stdout, write_text_output

    if args.json is not None:
        check_output_path(args.json, args.force)
    console = Console(stderr=is_stdout(args.json))  # `--json -`: stdout carries the JSON alone
    if args.catalog:
        rows = _catalog_rows()
        # the table shows the short scalar fields; sources, notes and nested data go to --json
        # the figures people compare, readable at 80 columns; every field (sources included) goes to --json
        shown = [
            ("id", "device", None),
            ("chip", "chip", None),
            ("ram_gb", "RAM", None),
            ("app_memory_budget_mb", "budget", None),
            ("ne_tops", "NE", None),
            ("gpu_fp32_tflops", "GPU", None),
            ("mem_bandwidth_gbps", "BW", None),
        ]
        table = Table(
            title=f"Apple device catalog · {len(rows)} devices",
            caption="RAM: GB; budget: per-app memory budget, MB; NE: Neural Engine TOPS; GPU: FP32 TFLOPS; "
            "BW: memory bandwidth, GB/s; * secondary source (press, aggregator, community); † Core ML cannot "
            "use this Neural Engine; - not published. Sources and derivations: --json PATH",
        )
        # at 80 columns: ids and numbers never split (no_wrap), the chip name wraps between words
        for key, header, _ in shown:
            if key == "chip":
                table.add_column(header, overflow="fold", ratio=1, min_width=8)
            else:
                table.add_column(header, no_wrap=True, justify="left" if key == "id" else "right")
        for r in rows:
            secondary = set(r.get("secondary") or ())
            cells = []
            for key, _, _ in shown:
                value = r.get(key)
                text = "-" if value is None else (f"{value:g}" if isinstance(value, float) else str(value))
                mark = "*" if key in secondary and value is not None else ""
                if key == "ne_tops" and not r.get("ne_usable_by_core_ml", True):
                    mark += "†"
                cells.append(text + mark)
            table.add_row(*cells)
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
    if args.json is not None and write_text_output(args.json, json.dumps(rows, indent=1, default=str)):
        console.print(f"wrote {args.json}")
    return 0
