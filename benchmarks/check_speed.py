"""How much slower is `devicefit check` than doing the bare minimum by hand?

The baseline is plain coremltools conversion (trace + ``ct.convert``) plus a plain validation loop (PyTorch
reference and one fp16 interpreter run per sample, max-abs error) on the same model and samples. ``check``
additionally runs fp32, keeps intermediates for the divergence search, and measures size and memory.
Prints each model's wall times and the ratio (target <= 1.5x). Usage: ``python benchmarks/check_speed.py``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

SAMPLES = 200


def baseline(module: torch.nn.Module, feeds: list[dict[str, np.ndarray]], input_name: str) -> float:
    from devicefit import interp
    from devicefit._lazy import coremltools

    ct = coremltools()
    start = time.perf_counter()
    example = torch.from_numpy(feeds[0][input_name])
    traced = torch.jit.trace(module.eval(), example)
    ml = ct.convert(
        traced,
        inputs=[ct.TensorType(name=input_name, shape=example.shape)],
        convert_to="mlprogram",
        minimum_deployment_target=ct.target.iOS17,
        compute_precision=ct.precision.FLOAT16,
    )
    prog = interp.load(ml)
    worst = 0.0
    with torch.no_grad():
        for f in feeds:
            ref = module(torch.from_numpy(f[input_name])).numpy()
            out = next(iter(prog.run(f, precision="fp16").values()))
            worst = max(worst, float(np.abs(out.astype(np.float64) - ref).max()))
    return time.perf_counter() - start


def timed_check(options) -> tuple[float, dict[str, float]]:
    from devicefit.check import run_check

    start = time.perf_counter()
    result = run_check(options)
    return time.perf_counter() - start, result.timings


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--samples", type=int, default=SAMPLES)
    p.add_argument(
        "--threads", type=int, default=1, help="torch threads for both sides (same for a fair ratio)"
    )
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    from devicefit import demo
    from devicefit.check import CheckOptions

    module = demo.load_module()
    feeds = demo.held_out(args.samples).feeds
    # warm up imports and kernels on both sides so neither pays one-off costs
    baseline(module, feeds[:2], demo.INPUT_NAME)
    timed_check(CheckOptions(samples=2))
    base = baseline(module, feeds, demo.INPUT_NAME)
    full, stages = timed_check(CheckOptions(samples=args.samples))
    print(f"demo digits CNN, {args.samples} samples")
    print(f"  plain coremltools convert + validation loop: {base:7.2f} s")
    print(f"  devicefit check (library, no report files):  {full:7.2f} s")
    print("  check stages: " + ", ".join(f"{k} {v:.2f} s" for k, v in stages.items() if k != "total"))
    print(f"  ratio check / plain: {full / base:.2f}x (target <= 1.5x)")


if __name__ == "__main__":
    main()
