"""Figures for docs/language-models.md: every covered family, tiny random-init config, 64 greedy steps.

For each family: convert (fp32 and fp16 packages, context 80), compress the fp16 one to int4 per-block 32,
and compare greedy generation with PyTorch (2 prompts x 64 steps) and held-out perplexity (random ids).
Prints one JSON line per family. Run: PYTHONPATH=src:. python scripts/lm_family_figures.py [FAMILY...]
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import numpy as np


def main() -> None:
    from devicefit.check.lm import INT4_PLAN
    from devicefit.compare.generation import check_generation
    from devicefit.compress.lm import compress_lm
    from devicefit.convert.merge import weight_bytes
    from devicefit.convert.stateful import convert_causal_lm
    from devicefit.engines.lm_session import InterpLM, TorchLM
    from tests.lm.families import FAMILIES, VOCAB, tiny_lm

    for family in sys.argv[1:] or FAMILIES:
        model = tiny_lm(family)
        with tempfile.TemporaryDirectory() as tmp:
            p32, p16, p4 = (Path(tmp) / f"{n}.mlpackage" for n in ("fp32", "fp16", "int4"))
            convert_causal_lm(model, p32, max_context=80, precision="fp32")
            convert_causal_lm(model, p16, max_context=80, precision="fp16")
            compress_lm(p16, INT4_PLAN, p4)
            rng = np.random.default_rng(0)
            prompts = [rng.integers(0, VOCAB, 8), rng.integers(0, VOCAB, 3)]
            runners = {"fp32": InterpLM(p32), "fp16": InterpLM(p16, "fp16"), "int4": InterpLM(p4, "fp16")}
            result = check_generation(TorchLM(model, 80), runners, prompts, 64, rng.integers(0, VOCAB, 72))
            row = {"family": family, "fp16_bytes": weight_bytes(p16), "int4_bytes": weight_bytes(p4)}
            for r in result.runs:
                row[r.name] = {
                    "tokens": round(r.token_agreement, 4),
                    "first_diff": r.first_diff_step,
                    "min_cos": round(min(r.step_cosine), 5),
                    "ppl_change": None if r.perplexity_change is None else round(r.perplexity_change, 5),
                }
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
