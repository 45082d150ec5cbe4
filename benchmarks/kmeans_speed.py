"""k-means palettization speed: coremltools' default k-means vs devicefit's fast 1-D k-means.

Builds a >= 20M-parameter MLP (random weights, no download), converts it to an fp16 iOS18 ML Program and
palettizes every weight at ``--bits`` with both paths through ``coremltools.optimize.coreml``. Prints the
time ratio and the weight reconstruction error (relative squared error, weighted over all weights), plus
the output cosine of both compressed models against the uncompressed one (run by devicefit's interpreter).

    .venv/bin/python benchmarks/kmeans_speed.py [--layers 5] [--width 2048] [--bits 4]
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=5)
    parser.add_argument("--width", type=int, default=2048)
    parser.add_argument("--bits", type=int, default=4)
    args = parser.parse_args()

    import torch

    from devicefit import compress, interp
    from devicefit._lazy import coremltools
    from devicefit.compress.verbs import quiet

    ct = coremltools()
    torch.manual_seed(0)
    torch.set_num_threads(1)
    layers = []
    for _ in range(args.layers):
        layers += [torch.nn.Linear(args.width, args.width), torch.nn.ReLU()]
    model = torch.nn.Sequential(*layers).eval()
    params = sum(p.numel() for p in model.parameters())
    x = torch.randn(1, args.width)
    with torch.no_grad(), quiet():
        traced = torch.jit.trace(model, x)
        ml = ct.convert(
            traced,
            inputs=[ct.TensorType(name="x", shape=x.shape)],
            convert_to="mlprogram",
            minimum_deployment_target=ct.target.iOS18,
            compute_precision=ct.precision.FLOAT16,
            skip_model_load=True,
        )
    base = interp.load(ml)
    weights = {w.name: w for w in compress.find_weights(ml, 2048)}
    feed = {"x": x.numpy()}
    ref = base.run(feed, precision="fp16")
    steps = {s.name: s for s in base.plan.block.steps}
    originals = {
        n: steps[w.consumers[0][0]].consts[w.consumers[0][2]].double().numpy() for n, w in weights.items()
    }
    print(
        f"model: {args.layers} x Linear({args.width}, {args.width}) = {params / 1e6:.1f}M parameters, {args.bits}-bit"
    )
    results = {}
    for mode in ("kmeans", "fast_kmeans"):
        start = time.perf_counter()
        out = compress.palettize(
            ml, compress.PalettizeConfig(nbits=args.bits, mode=mode, weight_threshold=2048)
        )
        seconds = time.perf_counter() - start
        prog = interp.load(out)
        csteps = {s.name: s for s in prog.plan.block.steps}
        num = den = 0.0
        for n, w in weights.items():
            op, _, param = w.consumers[0]
            approx = csteps[op].consts[param].double().numpy()
            num += float(np.sum((originals[n] - approx) ** 2))
            den += float(np.sum(originals[n] ** 2))
        got = prog.run(feed, precision="fp16")
        name = next(iter(ref))
        a, b = ref[name].astype(np.float64).ravel(), got[name].astype(np.float64).ravel()
        cosine = float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))
        results[mode] = (seconds, num / den, cosine)
        print(
            f"{mode:12s} {seconds:8.2f} s   weight rel. sq. error {num / den:.6f}   output cosine {cosine:.6f}"
        )
    (t_ct, e_ct, _), (t_fast, e_fast, _) = results["kmeans"], results["fast_kmeans"]
    print(f"speedup {t_ct / t_fast:.1f}x; error ratio fast/default {e_fast / e_ct:.4f} (<= 1 is no worse)")


if __name__ == "__main__":
    main()
