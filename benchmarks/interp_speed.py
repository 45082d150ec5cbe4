"""Interpreter latency vs PyTorch eager on the zoo models, interleaved call by call in one run.

For each zoo model and batch size (1 and 16) it converts the model with coremltools (fp32 and fp16 compute
precision), then, with the same torch thread count, calls in turn, round after round (the order rotating):
  * PyTorch eager (``torch.inference_mode``),
  * the plain interpreter in fp32 and in fp16 emulation (``Program.run``),
  * the compiled path in fp32 and in fp16 emulation (``interp.compile_program``; what the interp engine runs:
    the default build, with the rewrites of interp/rewrites.py within their stated tolerance),
and reports the median latency of each and the median over rounds of the paired ratio x / eager (each ratio
taken within one round, so load from other processes hits both sides alike). Targets (issue 13): compiled fp32
<= 1.0x eager as a geometric mean over the zoo at batch 1 and at batch 16, worst model <= 1.2x; fp16 emulation
<= 1.5x.

    .venv/bin/python benchmarks/interp_speed.py [--threads 1] [--models resnet,vit] [--rounds 40] [--json out.json]
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

COLUMNS = ("eager", "interp_fp32", "compiled_fp32", "interp_fp16", "compiled_fp16")


def interleaved(fns: dict, rounds: int, min_seconds: float = 0.5) -> dict:
    """Median ms per function and median paired ratio to ``eager``, calling the functions in turn."""
    names = list(fns)
    for fn in fns.values():  # warm-up (compiles the compiled path's graph, fills allocator caches)
        fn()
        fn()
    times: dict[str, list[float]] = {n: [] for n in names}
    ratios: dict[str, list[float]] = {n: [] for n in names}
    start = time.perf_counter()
    r = 0
    while r < rounds or (time.perf_counter() - start < min_seconds and r < 20 * rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        got = {}
        for n in order:
            t0 = time.perf_counter()
            fns[n]()
            got[n] = time.perf_counter() - t0
        for n in names:
            times[n].append(got[n] * 1e3)
            ratios[n].append(got[n] / got["eager"])
        r += 1
    return {
        **{f"{n}_ms": statistics.median(times[n]) for n in names},
        **{f"{n}_ratio": statistics.median(ratios[n]) for n in names if n != "eager"},
        "rounds": r,
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--models", default="", help="comma-separated zoo names (default: all)")
    parser.add_argument("--batches", default="1,16")
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--target", default="iOS18", help="deployment target of the conversions")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    import torch

    from devicefit import interp
    from devicefit._malloc import tune_malloc
    from devicefit.interp.compiled import compile_program
    from tests.helpers import convert
    from tests.zoo import ZOO, build

    tuned = tune_malloc()  # process-wide: eager and the interpreter share the allocator settings
    torch.set_num_threads(args.threads)
    wanted = {m for m in args.models.split(",") if m}
    rows = []
    print(
        f"torch threads={args.threads}, {args.target}, glibc malloc tuned={tuned}; median ms, ratio = median of paired x/eager"
    )
    print(
        f"{'model':13s} {'b':>2s} {'ops':>4s} {'eager':>7s} | {'interp32':>8s} {'ratio':>6s} {'compiled32':>10s} {'ratio':>6s} | "
        f"{'interp16':>8s} {'ratio':>6s} {'compiled16':>10s} {'ratio':>6s}"
    )
    for entry in ZOO:
        if wanted and entry.name not in wanted:
            continue
        for batch in [int(b) for b in args.batches.split(",")]:
            model, inputs = build(entry, batch=batch)
            feeds = {n: t.numpy() for n, t in zip(entry.input_names, inputs)}
            names = entry.input_names
            p32 = interp.load(convert(model, inputs, target=args.target, precision="fp32", input_names=names))
            p16 = interp.load(convert(model, inputs, target=args.target, precision="fp16", input_names=names))
            c32, c16 = compile_program(p32, "fp32"), compile_program(p16, "fp16")

            def eager(model=model, inputs=inputs):
                with torch.inference_mode():
                    model(*inputs)

            r = interleaved(
                {
                    "eager": eager,
                    "interp_fp32": lambda p=p32, f=feeds: p.run(f, precision="fp32"),
                    "compiled_fp32": lambda c=c32, f=feeds: c.run(f),
                    "interp_fp16": lambda p=p16, f=feeds: p.run(f, precision="fp16"),
                    "compiled_fp16": lambda c=c16, f=feeds: c.run(f),
                },
                args.rounds,
            )
            fallbacks = [f.describe() for f in c32.fallbacks + c16.fallbacks]
            specs = {"fp32": c32.specializations, "fp16": c16.specializations}
            row = {
                "model": entry.name,
                "batch": batch,
                "ops": sum(v for k, v in p32.op_counts.items() if k != "const"),
                **r,
                # per precision: seconds to specialise, rewrite, trace and check one input shape
                **{f"compile_{p}_s": round(s[0].compile_s, 3) if s else None for p, s in specs.items()},
                **{
                    f"graph_nodes_{p}": s[0].passes.nodes_after if s and s[0].passes else None
                    for p, s in specs.items()
                },
                "rewritten": [p for p, s in specs.items() if s and (s[0].rewrites or s[0].half_ops)],
                "fallbacks": fallbacks,
            }
            rows.append(row)
            print(
                f"{entry.name:13s} {batch:2d} {row['ops']:4d} {r['eager_ms']:7.3f} | "
                f"{r['interp_fp32_ms']:8.3f} {r['interp_fp32_ratio']:5.2f}x {r['compiled_fp32_ms']:10.3f} "
                f"{r['compiled_fp32_ratio']:5.2f}x | {r['interp_fp16_ms']:8.3f} {r['interp_fp16_ratio']:5.2f}x "
                f"{r['compiled_fp16_ms']:10.3f} {r['compiled_fp16_ratio']:5.2f}x | "
                f"compile {row['compile_fp32_s']} / {row['compile_fp16_s']} s"
                + (f" rewritten {','.join(row['rewritten'])}" if row["rewritten"] else "")
                + (f"  FALLBACK: {'; '.join(fallbacks)}" if fallbacks else ""),
                flush=True,
            )
    for batch in sorted({r["batch"] for r in rows}):
        sel = [r for r in rows if r["batch"] == batch]
        parts = []
        for col in COLUMNS[1:]:
            vals = [r[f"{col}_ratio"] for r in sel]
            worst = max(sel, key=lambda r, c=col: r[f"{c}_ratio"])
            parts.append(
                f"{col} geomean {statistics.geometric_mean(vals):.2f}x worst {worst[f'{col}_ratio']:.2f}x ({worst['model']})"
            )
        print(f"batch {batch}: " + "; ".join(parts))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
