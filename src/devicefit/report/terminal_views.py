"""Terminal tables of the small commands (``run``, ``devices``, ``cache ls``, ``merge``).

The commands hand these functions the library's results (dicts, dataclasses, arrays) and print what they return:
the look of every table lives in :mod:`devicefit.report`, never in the CLI. rich is imported inside each function
so importing this module stays cheap.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

# The catalog figures people compare, readable at 80 columns: (field, header). Every field, sources included,
# goes to `devices --catalog --json`.
CATALOG_COLUMNS = (
    ("id", "device"),
    ("chip", "chip"),
    ("ram_gb", "RAM"),
    ("app_memory_budget_mb", "budget"),
    ("ne_tops", "NE"),
    ("gpu_fp32_tflops", "GPU"),
    ("mem_bandwidth_gbps", "BW"),
)
CATALOG_CAPTION = (
    "RAM: GB; budget: per-app memory budget, MB; NE: Neural Engine TOPS; GPU: FP32 TFLOPS; "
    "BW: memory bandwidth, GB/s; * secondary source (press, aggregator, community); † Core ML cannot "
    "use this Neural Engine; - not published. Sources and derivations: --json PATH"
)


def run_outputs_table(title: str, names: Sequence[str], outputs: Mapping[str, Any]) -> Any:
    """``run``: one row per output (and state) with its dtype, shape, min / max / mean and non-finite count.

    Args:
        title: the table title (model, function, precision).
        names: the outputs to show, in order.
        outputs: value per name, as the interpreter returned them (non-arrays get a type-only row).
    """
    import numpy as np
    from rich.table import Table

    table = Table(title=title)
    for col in ("output", "dtype", "shape", "min", "max", "mean", "non-finite"):
        table.add_column(col)
    for name in names:
        v = outputs[name]
        if isinstance(v, np.ndarray) and v.dtype.kind in "fiub" and v.size:
            f = v.astype(np.float64)
            table.add_row(
                name,
                str(v.dtype),
                "x".join(map(str, v.shape)),
                *_summary(f),
                str(int((~np.isfinite(f)).sum())),
            )
        else:
            table.add_row(name, type(v).__name__, "", "", "", "", "")
    return table


def _summary(values: Any) -> tuple[str, str, str]:
    """(min, max, mean) of the values that are not NaN; "all NaN" when none are.

    NOTE: computed on the non-NaN values rather than with np.nanmin & co: those warn "All-NaN slice
    encountered" on stderr for exactly the outputs a user runs ``run`` to look at.
    """
    import numpy as np

    known = values[~np.isnan(values)]
    if not known.size:
        return "all NaN", "-", "-"
    with np.errstate(invalid="ignore", over="ignore"):  # inf + -inf in the mean is NaN, quietly
        return f"{known.min():.4g}", f"{known.max():.4g}", f"{known.mean():.4g}"


def catalog_table(rows: Sequence[Mapping[str, Any]]) -> Any:
    """``devices --catalog``: the short scalar fields of each Apple device (``*`` secondary source, ``†`` Neural
    Engine Core ML cannot use, ``-`` not published).

    Args:
        rows: one dict per device (the catalog entry's fields, ``secondary`` and ``ne_usable_by_core_ml``).
    """
    from rich.table import Table

    table = Table(title=f"Apple device catalog · {len(rows)} devices", caption=CATALOG_CAPTION)
    # at 80 columns: ids and numbers never split (no_wrap), the chip name wraps between words
    for key, header in CATALOG_COLUMNS:
        if key == "chip":
            table.add_column(header, overflow="fold", ratio=1, min_width=8)
        else:
            table.add_column(header, no_wrap=True, justify="left" if key == "id" else "right")
    for r in rows:
        secondary = set(r.get("secondary") or ())
        cells = []
        for key, _ in CATALOG_COLUMNS:
            value = r.get(key)
            text = "-" if value is None else (f"{value:g}" if isinstance(value, float) else str(value))
            mark = "*" if key in secondary and value is not None else ""
            if key == "ne_tops" and not r.get("ne_usable_by_core_ml", True):
                mark += "†"
            cells.append(text + mark)
        table.add_row(*cells)
    return table


def engines_table(rows: Sequence[Mapping[str, Any]]) -> Any:
    """``devices``: each engine, whether it is available here, its devices and version, or why not.

    Args:
        rows: ``dataclasses.asdict`` of each ``engines.availability()`` entry.
    """
    from rich.table import Table

    table = Table(title="engines on this host")
    for c in ("engine", "available", "devices", "version", "why not"):
        table.add_column(c)
    for r in rows:
        ok = "[green]yes[/green]" if r["available"] else "[red]no[/red]"
        table.add_row(r["engine"], ok, ", ".join(r["devices"]), r["version"], r["reason"])
    return table


def cache_table(root: Path, entries: Sequence[Any], size_bytes: int, max_bytes: int) -> Any:
    """``cache ls``: one row per prepared model (key, engine, options, size, last use).

    Args:
        root: the cache folder.
        entries: the cache's entries (``key``, ``engine``, ``options``, ``size_bytes``, ``last_used``).
        size_bytes: what the cache holds now.
        max_bytes: the cache's cap.
    """
    import datetime
    import json

    from rich.table import Table

    table = Table(
        title=f"{root} · {len(entries)} entries · {size_bytes / 1e6:.1f} of {max_bytes / 1e6:.0f} MB"
    )
    for col in ("key", "engine", "options", "size", "last used"):
        table.add_column(col)
    for e in entries:
        used = datetime.datetime.fromtimestamp(e.last_used).strftime("%Y-%m-%d %H:%M:%S")
        table.add_row(
            e.key[:16], e.engine, json.dumps(e.options, default=str), f"{e.size_bytes / 1e6:.2f} MB", used
        )
    return table


def merge_renderables(result: Any, models: Sequence[Path]) -> list[Any]:
    """``merge``: the weight bytes of each function and of the merged package, then what sharing saved.

    Args:
        result: the ``convert.merge.merge`` result.
        models: the input packages, in function order.
    """
    from rich.table import Table

    table = Table(title=f"merged into {result.output} (default function: {result.default_function})")
    table.add_column("function")
    table.add_column("from")
    table.add_column("weight bytes", justify="right")
    for (name, size), path in zip(result.input_weight_bytes.items(), models):
        table.add_row(name, str(path), f"{size:,}")
    table.add_row("[bold]merged", str(result.output), f"[bold]{result.merged_weight_bytes:,}")
    total = sum(result.input_weight_bytes.values())
    share = result.saved_bytes / total if total else 0.0
    return [table, f"shared weights saved {result.saved_bytes:,} bytes ({share:.0%} of the inputs' weights)"]
