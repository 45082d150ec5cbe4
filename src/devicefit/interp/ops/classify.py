"""classify: the classifier head added by ``ct.ClassifierConfig``.

Returns the top class label and a ``{label: probability}`` dict, as Core ML's classifier outputs do. The
loop stores both unchanged (their MIL types are not tensors) and ``Program.run`` returns them as they are.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from devicefit.interp.registry import raw, register


def _labels(classes: Any) -> list[Any]:
    # Loaded as a coremltools mil_list (``.ls``) of numpy str / int64 scalars.
    items = getattr(classes, "ls", classes)
    if isinstance(items, np.ndarray):
        items = items.tolist()
    return [i.item() if isinstance(i, np.generic) else i for i in items]


@register("classify", attrs={"classes": raw})
def classify(probabilities: torch.Tensor, classes: Any) -> tuple[Any, dict[Any, float]]:
    labels = _labels(classes)
    probs = probabilities.reshape(-1).to(torch.float64).tolist()
    table = dict(zip(labels, probs))
    top = labels[int(np.argmax(probs))]
    return top, table
