"""Complex constants of a traced graph split into ``complex(real, imag)`` of two real constants.

``x + 1j * y`` (Vocos' spectrum, any ``torch.polar`` written by hand) traces to a 0-d complex tensor constant,
which coremltools 9.0 cannot even read (it fails building its graph: "'torch._C.Node' object has no attribute
'cs'"), before any op translation could name where. Its complex ops (``complex``, complex ``add``, devicefit's
complex ``mul``) take the same value built from two real constants.
"""

from __future__ import annotations

from typing import Any


def split_complex_constants(traced: Any) -> int:
    """Rewrite ``traced``'s forward graph in place (inlined first, as coremltools does); returns how many
    constants were split."""
    import torch

    graph = traced.forward.graph
    torch._C._jit_pass_inline(graph)
    split = 0
    for node in list(graph.findAllNodes("prim::Constant")):
        out = node.output()
        if "value" not in node.attributeNames() or node.kindOf("value") != "t":
            continue
        value = node.t("value")
        if not value.is_complex():
            continue
        with graph.insert_point_guard(node):  # before the constant, so before every use of it
            real = graph.insertConstant(value.real.contiguous())
            imag = graph.insertConstant(value.imag.contiguous())
            built = graph.insertNode(graph.create("aten::complex", [real, imag]))
            built.output().setType(out.type())
            built.copyMetadata(node)  # its source range: findings still name the user's line
        out.replaceAllUsesWith(built.output())
        node.destroy()
        split += 1
    return split
