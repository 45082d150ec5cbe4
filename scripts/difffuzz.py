"""Run the differential fuzzer (tests/interp/difffuzz.py) on many seeds and print disagreements by category.

    PYTHONPATH=src python scripts/difffuzz.py --seeds 300 [--start 0] [--no-fp16] [--no-compiled] [--show ok,...]

Every seed is a random PyTorch program converted with devicefit.convert and run on the interpreter (fp32 plain,
compiled exact and default builds, fp16 emulation) against PyTorch eager. Prints one line per seed that is not
``ok`` (with the program for the categories that need triage), then a table: category, count, seeds.
About 0.7 s a seed on one core.
"""

from __future__ import annotations

import argparse
import collections
import logging
import os
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# categories that fail the run and whose programs are printed in full: they need a person to look at them
TRIAGE = {"fp32_mismatch", "compiled_mismatch", "interp_error", "fp16_error", "fp16_mismatch"}
# accepted, but printed in full too: NaN / inf placement has hidden real conversion bugs (nearest-exact as a
# one-hot product, one-sided clamp) behind the known coremltools ones
SHOWN = {*TRIAGE, "nonfinite"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=100, help="number of seeds to run")
    parser.add_argument("--start", type=int, default=0, help="first seed")
    parser.add_argument("--no-fp16", action="store_true", help="skip the fp16 conversion and emulation")
    parser.add_argument("--no-compiled", action="store_true", help="skip the compiled-path checks")
    parser.add_argument("--quiet", action="store_true", help="only the summary table")
    args = parser.parse_args(argv)
    os.environ.setdefault("TQDM_DISABLE", "1")
    logging.disable(logging.WARNING)
    warnings.simplefilter("ignore")

    from tests.interp.difffuzz import CATEGORIES, run_case

    by_category: dict[str, list[int]] = collections.defaultdict(list)
    start = time.perf_counter()
    for seed in range(args.start, args.start + args.seeds):
        try:
            result = run_case(seed, fp16=not args.no_fp16, compiled=not args.no_compiled)
        except Exception as e:  # the fuzzer's own failure: report it and go on
            print(f"seed {seed}: harness error: {type(e).__name__}: {e}", flush=True)
            by_category["harness_error"].append(seed)
            continue
        by_category[result.category].append(seed)
        if result.category != "ok" and not args.quiet:
            print(f"seed {seed}: {result.category}: {result.detail}", flush=True)
            if result.category in SHOWN:
                print("    " + result.program.replace("\n", "\n    "), flush=True)
    elapsed = time.perf_counter() - start
    print(f"\n{args.seeds} programs (seeds {args.start}..{args.start + args.seeds - 1}) in {elapsed:.0f} s\n")
    width = max(len(c) for c in CATEGORIES)
    print(f"{'category':<{width}}  {'count':>5}  seeds / meaning")
    for category, meaning in {
        **CATEGORIES,
        "harness_error": "the fuzzer itself failed (a bug in difffuzz)",
    }.items():
        seeds = by_category.get(category, [])
        shown = ", ".join(map(str, seeds[:12])) + (" ..." if len(seeds) > 12 else "")
        print(f"{category:<{width}}  {len(seeds):>5}  {shown or '-'}   ({meaning})")
    return 1 if any(by_category.get(c) for c in (*TRIAGE, "harness_error")) else 0


if __name__ == "__main__":
    sys.exit(main())
