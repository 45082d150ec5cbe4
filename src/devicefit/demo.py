"""The bundled demo: a small CNN trained on scikit-learn's 8x8 digits.

``devicefit check`` with no model runs on it, so a first run shows every part of the report without any
download. The module is defined here in code; its trained weights ship as a plain ``.npz`` (no pickle) in
``devicefit/data/demo/digits_cnn.npz``, written by ``scripts/train_demo.py`` (seeded, reproducible).
Validation uses the digits the training script held out, with their labels, so the report shows a real
task accuracy.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

INPUT_NAME = "image"
INPUT_SHAPE = (1, 1, 8, 8)
OUTPUT_NAME = "logits"
NUM_CLASSES = 10
SPLIT_SEED = 0
TEST_FRACTION = 0.2
WEIGHTS_FILE = "digits_cnn.npz"


def build_module() -> Any:
    """The demo network (untrained): two 3x3 convs, average pooling, one linear layer.

    Returns:
        A ``torch.nn.Module`` mapping ``(N, 1, 8, 8)`` float images in [0, 1] to ``(N, 10)`` logits.
    """
    import torch
    from torch import nn

    class DigitsCNN(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
            self.conv2 = nn.Conv2d(8, 16, 3, padding=1)
            self.pool = nn.AvgPool2d(2)
            self.fc = nn.Linear(16 * 4 * 4, NUM_CLASSES)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = torch.relu(self.conv1(x))
            x = self.pool(torch.relu(self.conv2(x)))
            return self.fc(torch.flatten(x, 1))

    return DigitsCNN()


def weights_path() -> Path:
    """Where the shipped demo weights live (inside the installed package)."""
    return Path(__file__).resolve().parent / "data" / "demo" / WEIGHTS_FILE


def load_module() -> Any:
    """The demo network with its shipped trained weights, in eval mode."""
    import torch

    module = build_module()
    with np.load(weights_path(), allow_pickle=False) as npz:
        state = {k: torch.from_numpy(np.array(npz[k])) for k in npz.files if not k.startswith("meta_")}
    module.load_state_dict(state)
    return module.eval()


def digits_split() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """scikit-learn's digits as ``(x_train, y_train, x_test, y_test)``; images ``(N, 1, 8, 8)`` in [0, 1].

    The split is the one ``scripts/train_demo.py`` trained on (fixed seed, stratified).
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = (digits.images.astype(np.float32) / 16.0)[:, None, :, :]
    y = digits.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(
        x, y, test_size=TEST_FRACTION, random_state=SPLIT_SEED, stratify=y
    )
    return x_tr, y_tr, x_te, y_te


@dataclass
class DemoData:
    """Held-out demo samples: one feed dict per sample (batch 1) and the labels."""

    feeds: list[dict[str, np.ndarray]]
    labels: np.ndarray


def held_out(samples: int | None = None) -> DemoData:
    """The held-out digits as batch-1 feeds for the demo's input, with labels.

    Args:
        samples: keep only the first ``samples`` (all when None).
    """
    _, _, x_te, y_te = digits_split()
    if samples is not None:
        x_te, y_te = x_te[:samples], y_te[:samples]
    return DemoData([{INPUT_NAME: x[None]} for x in x_te], y_te)


def demo_source() -> Any:
    """The demo as a :class:`devicefit.sources.SourceModel` (the trained module and example inputs)."""
    from devicefit.sources import InputSpec, SourceModel

    module = load_module()
    data = held_out(1)
    return SourceModel(
        kind="python",
        origin="devicefit demo (digits CNN)",
        module=module,
        exported=None,
        mlmodel=None,
        input_specs=[InputSpec(INPUT_NAME, INPUT_SHAPE, "float32")],
        example_inputs=dict(data.feeds[0]),
        output_names=[OUTPUT_NAME],
        labels=None,
    )
