"""Values the converted program computes with another shape than it declares: a conversion finding.

The interpreter follows the values, so its numerics are right; the Core ML runtime plans memory and the ops
that read a value from its declared type, so on a device such a program may compute another shape (garbage) or
refuse to load. The shapes come for free from the validation's op-by-op run of the first sample
(``Runs.divergence_shapes``); only top-level ops are seen there (a loop body's values are not kept).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["declared_type_findings"]


def declared_type_findings(program: Any, shapes: Mapping[str, tuple]) -> list[dict[str, Any]]:
    """One finding per mismatched value, in program order: where it comes from in PyTorch and both shapes.

    Args:
        program: the converted :class:`devicefit.interp.Program`.
        shapes: value name -> the shape a run computed for it.
    """
    from devicefit.convert.provenance import load_from_package
    from devicefit.interp.step import type_mismatches

    mismatches = type_mismatches(program.plan, shapes)
    if not mismatches:
        return []
    try:
        provenance = load_from_package(program)
    except Exception:  # NOTE: naming is a convenience: the finding stands without it
        provenance = None
    found = []
    for m in mismatches:
        origin = provenance.find(m.value, m.op_name) if provenance is not None else None
        found.append(
            {
                "where": origin.label() if origin is not None else f"{m.op_type} ({m.value})",
                "value": m.value,
                "op": m.op_type,
                "declared": list(m.declared),
                "computed": list(m.computed),
            }
        )
    return found
