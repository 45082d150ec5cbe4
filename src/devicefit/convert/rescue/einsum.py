"""``torch.einsum`` equations with an ellipsis or an implicit output, written out before coremltools builds them.

coremltools 9.0's einsum parser reads each ``.`` as a subscript: ``'...i,ij->...j'`` of a rank-4 operand matched
its ``'abcd,cde->abe'`` pattern and gave a (1, 2) result where PyTorch gives (1, 3, 4, 2), with no error (found by
the differential fuzzer, tests/interp/difffuzz.py, seed 2076); other ranks failed without naming the cause, and
an implicit output (``'ij,jk'``) was refused. Here the ellipsis becomes letters the equation does not use (as many
as the operands' extra axes) and an implicit output PyTorch's: the subscripts used once, in alphabetical order,
after the ellipsis' axes. coremltools then builds the explicit equation (or refuses it, naming the op).
"""

from __future__ import annotations

import string
from typing import Any

from devicefit.convert.rescue._registry import rescue


def explicit_equation(equation: str, ranks: list[int]) -> str:
    """``equation`` without ``...`` and with its output written out, for operands of ``ranks``."""
    equation = equation.replace(" ", "")
    inputs, arrow, output = equation.partition("->")
    terms = inputs.split(",")
    used = set(equation) - {".", ",", "-", ">"}
    spare = [c for c in string.ascii_letters if c not in used]
    width = max((rank - len(t.replace("...", "")) for t, rank in zip(terms, ranks) if "..." in t), default=0)
    ellipsis = "".join(spare[:width])
    expanded = []
    for term, rank in zip(terms, ranks):
        if "..." in term:
            extra = rank - len(term.replace("...", ""))
            term = term.replace("...", ellipsis[width - extra :])  # broadcast axes align on the right
        expanded.append(term)
    if not arrow:
        letters = "".join(expanded)
        singles = sorted(c for c in set(letters) if letters.count(c) == 1 and c not in ellipsis)
        output = ellipsis + "".join(singles)
    else:
        output = output.replace("...", ellipsis)
    return ",".join(expanded) + "->" + output


@rescue(
    "einsum",
    "override: coremltools 9.0 reads an ellipsis as subscripts ('...i,ij->...j' of a rank-4 operand gave a wrong "
    "shape, no error) and refuses implicit outputs; the equation is written out, then built by coremltools",
    override=True,
)
def einsum(context: Any, node: Any) -> None:
    """``torch.einsum(equation, *operands)`` with the equation made explicit."""
    from coremltools.converters.mil.frontend import _utils
    from coremltools.converters.mil.frontend.torch.ops import TorchFrontend, promote_input_dtypes

    if context.frontend == TorchFrontend.TORCHSCRIPT:
        operands = promote_input_dtypes(context[node.inputs[1]])
        equation = context[node.inputs[0]].val
    else:
        equation = node.inputs[0]
        if isinstance(equation, str) and equation in context:
            equation = context[equation].val
        names = node.inputs[1]
        operands = (
            context[names] if isinstance(names, str) and names in context else [context[n] for n in names]
        )
    written = explicit_equation(str(equation), [v.rank for v in operands])
    context.add(_utils.build_einsum_mil(list(operands), written, node.name))
