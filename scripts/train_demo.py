"""Train the bundled demo CNN on scikit-learn's digits and write its weights (seeded, reproducible).

Usage: ``python scripts/train_demo.py [--out src/devicefit/data/demo/digits_cnn.npz] [--epochs 60]``.
Weights are saved as a plain ``.npz`` of float32 arrays (no pickle), named like the module's state_dict.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from devicefit import demo
from devicefit.io import atomic_save_npz

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "src/devicefit/data/demo" / demo.WEIGHTS_FILE


def train(epochs: int, seed: int = 0) -> tuple[torch.nn.Module, float]:
    torch.manual_seed(seed)
    x_tr, y_tr, x_te, y_te = demo.digits_split()
    module = demo.build_module()
    opt = torch.optim.Adam(module.parameters(), lr=3e-3)
    xt, yt = torch.from_numpy(x_tr), torch.from_numpy(y_tr)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        module.train()
        perm = torch.randperm(len(xt), generator=gen)
        for i in range(0, len(xt), 64):
            idx = perm[i : i + 64]
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(module(xt[idx]), yt[idx])
            loss.backward()
            opt.step()
    module.eval()
    with torch.no_grad():
        acc = float((module(torch.from_numpy(x_te)).argmax(1).numpy() == y_te).mean())
    return module, acc


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    p.add_argument("--epochs", type=int, default=60)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    torch.set_num_threads(1)
    module, acc = train(args.epochs, args.seed)
    arrays = {k: v.detach().numpy().astype(np.float32) for k, v in module.state_dict().items()}
    arrays["meta_test_accuracy"] = np.array(acc, dtype=np.float32)
    arrays["meta_seed"] = np.array(args.seed, dtype=np.int64)
    atomic_save_npz(args.out, arrays)
    print(f"held-out accuracy {acc:.4f}; wrote {args.out} ({args.out.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
