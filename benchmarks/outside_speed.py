"""The compiled path on models from outside the zoo: agreement with the interpreter and speed vs PyTorch eager.

For every model of the outside sweeps (``tests/corpus/outside.py`` and ``outside2.py``: Hugging Face vision / text
/ audio / video / detection models as their own classes, plus plain user-style models) that converts, it converts the model the way
``devicefit check`` does (``devicefit.sources`` -> ``devicefit.convert``, rescues included) at fp32 and fp16
compute precision, then:

* **agreement** ("random" where two interpreter runs differ: the model draws random numbers): the compiled path (``interp.compile_program``, what the interp engine runs) against the plain
  interpreter on the model's example inputs, in both precisions: the largest difference relative to each output's
  largest magnitude, and the signatures that fell back to the interpreter (with the reason);
* **speed**: eager, the plain interpreter and the compiled path called in turn, round after round, the order
  rotating (``interp_speed.interleaved``); medians of the paired ratios x / eager, and their geometric means.

The zoo benchmark (``interp_speed.py``) holds the issue-13 targets; this one says whether they carry over to
models nobody tuned for.

    .venv/bin/python benchmarks/outside_speed.py [--threads 1] [--rounds 15] [--models DeiT,PVT] [--json out.json]
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import math
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
warnings.filterwarnings("ignore")


def worst_relative(got: dict, ref: dict) -> float:
    """Largest |got - ref| over the float outputs, relative to each output's largest magnitude."""
    import numpy as np

    worst = 0.0
    for name, want in ref.items():
        want = np.asarray(want)
        if want.dtype.kind != "f" or not want.size:
            continue
        diff = np.abs(np.asarray(got[name], np.float64) - want.astype(np.float64))
        scale = float(np.nanmax(np.abs(want))) or 1.0
        worst = max(worst, float(np.nanmax(diff)) / scale)
    return worst


def _eager(source: Any, tensors: list[Any]) -> None:
    """One PyTorch eager call of the source module on its example inputs, as check calls it (structured
    arguments rebuilt from the call template)."""
    import torch

    from devicefit.sources.spec import call_module

    names = list(source.example_inputs)
    with torch.inference_mode():
        call_module(source.module, names, tensors, source.call_by_keyword, source.call_template)


def _agreement(value: float) -> str:
    return f"{'random':>10s}" if math.isnan(value) else f"{value:10.1e}"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--models", default="", help="comma-separated outside-sweep names (default: all)")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    import torch

    from benchmarks.interp_speed import interleaved
    from devicefit import interp
    from devicefit._malloc import tune_malloc
    from devicefit.convert import ConvertOptions, convert
    from devicefit.sources.module import from_module
    from tests.corpus.outside import OUTSIDE
    from tests.corpus.outside2 import OUTSIDE2

    logging.disable(logging.WARNING)  # coremltools' and the compiled path's chatter
    tune_malloc()
    torch.set_num_threads(args.threads)
    wanted = {m for m in args.models.split(",") if m}
    rows = []
    print(f"torch threads={args.threads}; ratio = median of paired x/eager over rounds (order rotating)")
    print(
        f"{'model':40s} {'eager ms':>8s} {'interp':>7s} {'compiled':>8s} {'comp16':>7s} "
        f"{'agree fp32':>10s} {'agree fp16':>10s}  fallbacks"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for index, entry in enumerate([*OUTSIDE, *OUTSIDE2]):
            if (wanted and entry.name not in wanted) or entry.convert != "pass":
                continue
            net, example = entry.build()
            source = from_module(entry.name, "python", net, example, None)
            programs = {}
            try:
                for precision in ("fp32", "fp16"):
                    path = Path(tmp) / f"{index}-{precision}.mlpackage"
                    convert(source, ConvertOptions(target="iOS17", precision=precision)).save(str(path))
                    programs[precision] = interp.load(path)
            except Exception as e:  # a model the sweep expects to convert and that did not: say so
                print(f"{entry.name:40s} conversion failed: {type(e).__name__}: {str(e)[:80]}")
                continue
            declared = {s.name for s in programs["fp32"].inputs}
            feeds = {k: v for k, v in source.example_inputs.items() if k in declared}
            compiled = {p: interp.compile_program(prog, p) for p, prog in programs.items()}
            try:
                agree = {
                    p: worst_relative(compiled[p].run(feeds), programs[p].run(feeds, precision=p))
                    for p in programs
                }
                # a model that draws random numbers (ViTMAE's masking) differs from itself: nothing to agree on
                if worst_relative(programs["fp32"].run(feeds), programs["fp32"].run(feeds)) > 0:
                    agree = {p: math.nan for p in agree}
            except (
                Exception
            ) as e:  # the interpreter refuses the example (the sweep's expected verdicts say why)
                print(f"{entry.name:40s} interpreter failed: {type(e).__name__}: {str(e)[:80]}")
                continue
            tensors = [torch.from_numpy(source.example_inputs[n]) for n in source.example_inputs]
            eager = functools.partial(_eager, source, tensors)

            r = interleaved(
                {
                    "eager": eager,
                    "interp_fp32": lambda p=programs["fp32"], f=feeds: p.run(f, precision="fp32"),
                    "compiled_fp32": lambda c=compiled["fp32"], f=feeds: c.run(f),
                    "compiled_fp16": lambda c=compiled["fp16"], f=feeds: c.run(f),
                },
                args.rounds,
            )
            fallbacks = [f.describe() for c in compiled.values() for f in c.fallbacks]
            row = {"model": entry.name, **r, "agree_fp32": agree["fp32"], "agree_fp16": agree["fp16"]}
            row["fallbacks"] = fallbacks
            rows.append(row)
            print(
                f"{entry.name[:40]:40s} {r['eager_ms']:8.3f} {r['interp_fp32_ratio']:6.2f}x "
                f"{r['compiled_fp32_ratio']:7.2f}x {r['compiled_fp16_ratio']:6.2f}x "
                f"{_agreement(agree['fp32'])} {_agreement(agree['fp16'])}  {'; '.join(fallbacks)[:60] or '-'}",
                flush=True,
            )
    if rows:

        def geo(key: str) -> float:
            return math.exp(sum(math.log(row[key]) for row in rows) / len(rows))

        worst = max(rows, key=lambda row: row["compiled_fp32_ratio"])
        print(
            f"geometric mean over {len(rows)} models: interpreter {geo('interp_fp32_ratio'):.2f}x, compiled fp32 "
            f"{geo('compiled_fp32_ratio'):.2f}x, compiled fp16 {geo('compiled_fp16_ratio'):.2f}x eager; slowest "
            f"compiled: {worst['model']} {worst['compiled_fp32_ratio']:.2f}x"
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
