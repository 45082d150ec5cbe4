"""Time of a full ``compress`` search on zoo models: one interpreter run per sample vs batched evaluation.

For each model, after a discarded warm-up search, the two modes run in turn (per-sample then batched, then
batched then per-sample, ...; ``--rounds`` pairs) in one process, so both see the same machine load; it prints the median total and per-stage seconds, the batching
mode the probe chose and why, and whether both modes chose the same plan.

    PYTHONPATH=src python benchmarks/compress_search.py --models mobilenet_v2,vit --samples 64
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="mobilenet_v2,resnet,vit")
    parser.add_argument("--samples", type=int, default=64, help="calibration + held-out samples")
    parser.add_argument("--budget", default="cosine>=0.999")
    parser.add_argument("--rounds", type=int, default=2, help="pairs of (per-sample, batched) searches")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    args = parser.parse_args()

    import numpy as np
    import torch

    from devicefit import compress, interp
    from tests import zoo
    from tests.helpers import convert

    torch.set_num_threads(args.threads)
    rows = []
    for name in args.models.split(","):
        entry = zoo.BY_NAME[name]
        module, inputs = zoo.build(entry)
        ml = convert(module, inputs, target="iOS18", input_names=entry.input_names)
        specs = interp.load(ml).inputs
        rng = np.random.default_rng(0)
        # floats: standard normal; integers (token ids, masks): the zoo's own generator, seeded per sample
        feeds = [
            {
                s.name: rng.standard_normal(tuple(t.shape)).astype(np.float32)
                if t.is_floating_point()
                else t[:1].numpy()
                for s, t in zip(specs, entry.inputs(i + 1))
            }
            for i in range(args.samples)
        ]
        runs: dict[bool, list] = {False: [], True: []}
        # warm-up, discarded: lazy imports, coremltools' pass registry, allocator caches
        compress.search(ml, feeds[:8], compress.SearchOptions(args.budget, bits=(4, 8)))
        for r in range(args.rounds):
            for batch in (False, True) if r % 2 == 0 else (True, False):
                options = compress.SearchOptions(args.budget, bits=(4, 8), batch=batch)
                start = time.perf_counter()
                result = compress.search(ml, feeds, options)
                runs[batch].append((time.perf_counter() - start, result))
        row = {"model": name, "samples": args.samples, "budget": args.budget}
        for batch, label in ((False, "per_sample"), (True, "batched")):
            results = [r for _, r in runs[batch]]
            row[f"{label}_s"] = statistics.median(t for t, _ in runs[batch])
            stages = sorted({k for r in results for k in r.timings})
            row[f"{label}_stages"] = {
                k: statistics.median(r.timings.get(k, 0.0) for r in results) for k in stages
            }
            row[f"{label}_heldout_met"] = all(r.heldout_met is not False for r in results)
        last = runs[True][-1][1]
        row["batching"] = last.batching.to_dict()
        row["speedup"] = row["per_sample_s"] / row["batched_s"]
        plans = {json.dumps(r.chosen.assignment, sort_keys=True) for b in runs for _, r in runs[b]}
        row["same_plan"] = len(plans) == 1
        rows.append(row)
        print(
            f"{name:14s} {args.samples} samples: per-sample {row['per_sample_s']:.2f} s, batched "
            f"{row['batched_s']:.2f} s ({row['speedup']:.2f}x), mode {last.batching.mode} x{last.batching.chunk}, "
            f"same plan {row['same_plan']}",
            flush=True,
        )
        for label in ("per_sample", "batched"):
            print(f"    {label:10s} " + ", ".join(f"{k} {v:.2f}" for k, v in row[f"{label}_stages"].items()))
        print(f"    why: {last.batching.reason}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
