"""Whether PyTorch's own exported graph already differs from eager PyTorch: a difference no converter can fix.

Every converter starts from a functional graph (``torch.export`` or a trace). Eager PyTorch can compute
something that graph does not: an in-place write whose source overlaps its destination
(``y[..., 1:].add_(y[..., :-1])`` reads elements it has already written, a running sum, where the graph computes
``y[1:] + y[:-1]``). Calling that a conversion problem sends the user to the converter; the fix is in the model.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

# relative RMS error above which two float32 runs of the same graph are different computations (check's
# conversion-fidelity bound, SNR 60 dB)
BOUND = 1e-3


@dataclass(frozen=True)
class ExportDivergence:
    """``torch.export``'s graph vs eager PyTorch on one sample.

    Attributes:
        eager_error: the exported graph's worst relative RMS error vs eager PyTorch.
        converted_error: the converted program's (fp32) worst relative RMS error vs the exported graph.
    """

    eager_error: float
    converted_error: float

    @property
    def explains(self) -> bool:
        """The exported graph differs from eager and the converted program follows the exported graph."""
        return self.eager_error > BOUND and self.converted_error < min(BOUND, self.eager_error / 10)


def _relative(reference: np.ndarray, candidate: np.ndarray) -> float:
    r, c = np.asarray(reference, np.float64).ravel(), np.asarray(candidate, np.float64).ravel()
    if r.shape != c.shape:
        return float("inf")
    finite = np.isfinite(r) & np.isfinite(c)
    scale = float(np.sqrt(np.mean(r[finite] ** 2))) if finite.any() else 0.0
    err = float(np.sqrt(np.mean((r[finite] - c[finite]) ** 2))) if finite.any() else 0.0
    return err / scale if scale > 0 else err


def _worst(reference: Mapping[str, Any], candidate: Mapping[str, Any]) -> float:
    from devicefit.compare.validate import match_outputs

    pairs = match_outputs(list(reference), list(candidate))
    return max((_relative(reference[r], candidate[c]) for r, c in pairs), default=0.0)


def export_divergence(
    source: Any, feeds: Mapping[str, np.ndarray], converted: Mapping[str, Any]
) -> ExportDivergence | None:
    """Run the exported graph of ``source`` on ``feeds`` beside eager PyTorch and ``converted`` (the program's
    fp32 outputs on the same feeds); None when the source cannot be exported or run that way."""
    import torch

    from devicefit.convert.frontends import export_program

    if getattr(source, "module", None) is None:
        return None
    try:
        exported = export_program(source).module()
        with torch.no_grad():
            outputs = exported(*source.to_tensors(feeds))
        if isinstance(outputs, torch.Tensor):
            outputs = (outputs,)
        graph = {
            name: t.detach().float().numpy() if t.is_floating_point() else t.numpy()
            for name, t in zip(source.output_names, outputs)
        }
        eager = source.reference(feeds)
    except Exception:  # NOTE: a diagnosis, never a new failure: without it the verdict stands as it was
        return None
    return ExportDivergence(_worst(eager, graph), _worst(graph, converted))
