"""Interpreter latency vs PyTorch eager on the zoo models, measured side by side in one run.

For each zoo model and batch size (1 and 16) it converts the model with coremltools (fp32 and fp16 compute
precision), then times, with the same torch thread count:
  * PyTorch eager (``torch.inference_mode``),
  * the interpreter in fp32 mode on the fp32-converted model,
  * the interpreter in fp16 emulation on the fp16-converted model,
and prints the median latencies and the ratios interpreter / eager. Targets (issue #2): fp32 <= 1.2x eager at
batch 16, fp16 emulation <= 2x.

    .venv/bin/python benchmarks/interp_speed.py [--threads 2] [--models resnet,vit] [--reps 20] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
warnings.filterwarnings("ignore")


def _median_ms(fn, reps: int, min_seconds: float = 0.3) -> float:
    fn()  # warm-up
    fn()
    samples = []
    start = time.perf_counter()
    while len(samples) < reps or time.perf_counter() - start < min_seconds:
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1e3)
        if len(samples) >= 10 * reps:
            break
    return statistics.median(samples)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--models", default="", help="comma-separated zoo names (default: all)")
    parser.add_argument("--batches", default="1,16")
    parser.add_argument("--reps", type=int, default=15)
    parser.add_argument(
        "--target",
        default="iOS18",
        help="deployment target of the conversions (iOS18 fuses attention into sdpa)",
    )
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    import torch
    from rich.console import Console
    from rich.table import Table

    from devicefit import interp
    from devicefit._malloc import tune_malloc
    from tests.helpers import convert
    from tests.zoo import ZOO, build

    # process-wide, so eager and the interpreter run under the same allocator settings (see _malloc.py)
    tuned = tune_malloc()
    torch.set_num_threads(args.threads)
    wanted = {m for m in args.models.split(",") if m}
    rows = []
    console = Console()
    for entry in ZOO:
        if wanted and entry.name not in wanted:
            continue
        for batch in [int(b) for b in args.batches.split(",")]:
            model, inputs = build(entry, batch=batch)
            feeds = {n: t.numpy() for n, t in zip(entry.input_names, inputs)}
            try:
                p32 = interp.load(
                    convert(
                        model, inputs, target=args.target, precision="fp32", input_names=entry.input_names
                    )
                )
                p16 = interp.load(
                    convert(
                        model, inputs, target=args.target, precision="fp16", input_names=entry.input_names
                    )
                )
            except Exception as e:  # report, keep going
                console.print(f"[red]{entry.name} b{batch}: {type(e).__name__}: {str(e)[:120]}")
                continue

            def eager(model=model, inputs=inputs):
                with torch.inference_mode():
                    model(*inputs)

            t_eager = _median_ms(eager, args.reps)
            t32 = _median_ms(lambda p=p32, f=feeds: p.run(f, precision="fp32"), args.reps)
            t16 = _median_ms(lambda p=p16, f=feeds: p.run(f, precision="fp16"), args.reps)
            rows.append(
                {
                    "model": entry.name,
                    "batch": batch,
                    "ops": sum(v for k, v in p32.op_counts.items() if k != "const"),
                    "eager_ms": t_eager,
                    "interp_fp32_ms": t32,
                    "interp_fp16_ms": t16,
                    "fp32_ratio": t32 / t_eager,
                    "fp16_ratio": t16 / t_eager,
                }
            )
    table = Table(
        title=f"interpreter vs PyTorch eager, {args.target}, torch threads={args.threads}, glibc malloc tuned={tuned} "
        "(median ms; ratio = interp/eager)"
    )
    for col in ("model", "batch", "ops", "eager", "interp fp32", "ratio", "interp fp16", "ratio"):
        table.add_column(col, justify="right" if col != "model" else "left")
    for r in rows:
        ok32 = r["fp32_ratio"] <= 1.2 or r["batch"] != 16
        ok16 = r["fp16_ratio"] <= 2.0 or r["batch"] != 16
        table.add_row(
            r["model"],
            str(r["batch"]),
            str(r["ops"]),
            f"{r['eager_ms']:.3f}",
            f"{r['interp_fp32_ms']:.3f}",
            f"[{'green' if ok32 else 'red'}]{r['fp32_ratio']:.2f}x",
            f"{r['interp_fp16_ms']:.3f}",
            f"[{'green' if ok16 else 'red'}]{r['fp16_ratio']:.2f}x",
        )
    console.print(table)
    b16 = [r for r in rows if r["batch"] == 16]
    if b16:
        gm32 = statistics.geometric_mean([r["fp32_ratio"] for r in b16])
        gm16 = statistics.geometric_mean([r["fp16_ratio"] for r in b16])
        console.print(
            f"batch 16 geometric mean: fp32 {gm32:.2f}x (target <= 1.2x), fp16 {gm16:.2f}x (target <= 2x)"
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
