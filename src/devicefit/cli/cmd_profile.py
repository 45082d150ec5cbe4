"""``devicefit profile``: load times, latency percentiles, throughput and peak memory per engine."""

from __future__ import annotations

import argparse
from pathlib import Path

NAME = "profile"
ORDER = 60
HELP = "time a model: uncached / cached load, first and warm latency (p50/p90/p99), throughput, peak RSS"
BOUND_CAPTION = (
    "roofline rows: lower bounds for the Apple device from published peaks (at best), not measurements; "
    "the other rows are measured on this host"
)


def _ints(text: str) -> list[int]:
    from devicefit.errors import InputError

    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise InputError(f"expected comma-separated integers like 1,4,8, got {text!r}") from None
    if not values or min(values) < 1:
        raise InputError(f"expected positive integers like 1,4,8, got {text!r}")
    return values


def _bound_row(entry: dict) -> list[str]:
    """A table row for a device's roofline bound: the p50 column holds "at best X ms" (not measured)."""
    from rich.markup import escape

    best = entry["best"]
    if best is None:
        return [f"roofline · {escape(entry['name'])}", "-", "-", "", "", "", "no bound (no catalog figure)"]
    partial = " (partial)" if best["partial"] else ""
    return [
        f"roofline · {escape(entry['name'])}",
        best["unit_name"],
        "-",
        "",
        "",
        "",
        f"at best {best['at_best_ms']:.3g} ms{partial} (lower bound)",
        "",
        "",
        "",
        "",
    ]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", type=Path, help=".mlpackage, .mlmodel, .onnx or TorchScript .pt")
    p.add_argument(
        "--engine",
        "-e",
        action="append",
        default=None,
        help="engine (repeatable): auto, interp, onnxruntime, torch, coreml",
    )
    p.add_argument(
        "--compute-units", "-c", action="append", default=None, help="all, cpu_only, cpu_and_gpu, cpu_and_ne"
    )
    p.add_argument("--precision", action="append", default=None, choices=["fp32", "fp16"])
    p.add_argument(
        "--reps", type=int, default=500, help="timed warm predictions (a p99 confidence interval needs ~500)"
    )
    p.add_argument("--batch-sizes", default="1,4,8", help="batch sizes for predict_batch throughput")
    p.add_argument(
        "--max-in-flight", type=int, default=4, help="async throughput is measured for 1..N in flight"
    )
    p.add_argument("--requests", type=int, default=64, help="requests per throughput point")
    p.add_argument("--target", dest="devices", action="append", default=[], metavar="DEVICE",
                   help="Apple device id from the catalog (repeatable): add its roofline 'at best' latency "
                   "lower bound next to the measured numbers (Core ML models only)")  # fmt: skip
    p.add_argument("--json", type=Path, default=None, help="write the full profile (raw samples) as JSON")
    p.add_argument("--html", type=Path, default=None, help="write a self-contained HTML report")
    p.add_argument("--force", action="store_true", help="overwrite --json / --html outputs")


def main(args: argparse.Namespace) -> int:
    import json

    from rich.console import Console
    from rich.markup import escape
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from devicefit.cli._common import check_output_path
    from devicefit.errors import InputError
    from devicefit.io import atomic_write_text
    from devicefit.profile import profile
    from devicefit.profile.bounds import check_targets
    from devicefit.profile.html import render_html

    for out in (args.json, args.html):
        if out is not None:
            check_output_path(out, args.force)
    if not args.model.exists():
        raise InputError(
            f"model not found: {args.model}; pass a .mlpackage, .mlmodel, .onnx or TorchScript file"
        )
    if args.reps < 1 or args.max_in_flight < 1 or args.requests < 1:
        raise InputError("--reps, --max-in-flight and --requests must be positive integers")
    check_targets(args.model, args.devices)
    console = Console(stderr=True)
    with Progress(
        SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=console
    ) as bar:
        task = bar.add_task("profiling", total=None)
        report = profile(
            args.model,
            engines=args.engine or ["auto"],
            compute_units=args.compute_units or ["all"],
            precisions=args.precision or ["fp32"],
            reps=args.reps,
            batch_sizes=_ints(args.batch_sizes),
            max_in_flight=args.max_in_flight,
            throughput_requests=args.requests,
            progress=lambda msg: bar.update(task, description=msg),
            devices=args.devices,
        )
    table = Table(
        title=escape(f"profile · {args.model}"), caption=BOUND_CAPTION if report.device_bounds else None
    )
    for col in (
        "engine",
        "units",
        "prec",
        "load uncached",
        "load cached",
        "first",
        "p50 [95% CI]",
        "p90",
        "p99",
        "best /s",
        "peak RSS",
    ):
        table.add_column(col)
    for p in report.profiles:
        if p.error:
            table.add_row(
                p.engine, p.compute_units, p.precision, f"[red]{escape(str(p.error))}[/red]", *[""] * 7
            )
            continue
        lat = p.latency
        assert lat.p50 and lat.p90 and lat.p99
        ci = (
            f"[{lat.p50.ci_low:.3g}, {lat.p50.ci_high:.3g}]"
            if lat.p50.ci_low is not None and lat.p50.ci_high is not None
            else ""
        )
        best = max((t for t in p.throughput), key=lambda t: t.per_second, default=None)
        table.add_row(
            p.engine,
            p.compute_units,
            p.precision,
            f"{p.uncached_load_s:.3f} s",
            f"{p.cached_load_s:.4f} s",
            f"{p.first_predict_ms:.2f} ms",
            f"{lat.p50.value:.3f} ms {ci}",
            f"{lat.p90.value:.3f} ms",
            f"{lat.p99.value:.3f} ms" + ("" if lat.p99.ci_high is not None else " (CI needs more reps)"),
            f"{best.per_second:.0f} ({best.mode} {best.level})" if best else "",
            f"{p.peak_rss_mb:.0f} MB",
        )
    for entry in report.device_bounds:
        table.add_row(*_bound_row(entry))
    out = Console()
    out.print(table)
    for entry in report.device_bounds:
        if entry["best"] is not None:
            out.print(f"{entry['name']}: {entry['best']['key_assumption']}", style="dim", markup=False)
    if args.json is not None:
        atomic_write_text(args.json, json.dumps(report.to_dict(), indent=1, default=str))
        console.print(f"wrote {args.json}")
    if args.html is not None:
        atomic_write_text(args.html, render_html(report))
        console.print(f"wrote {args.html}")
    return 1 if all(p.error for p in report.profiles) else 0
