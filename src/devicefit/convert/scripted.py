"""``torch.jit.script``-ed modules specialized to the example input before tracing.

A scripted module's graph keeps the Python control flow of every module it calls: BatchNorm's
``if input.dim() != 4: raise ValueError(f"expected 4D input (got {input.dim()}D input)")`` alone brings
``prim::If``, ``prim::RaiseException`` and ``aten::format``, which coremltools cannot convert, where tracing the
eager module would have resolved the check at the example. The specialized graph is the frozen module's (parameters and
attributes become constants, ``self.training`` False), its inputs typed with the example's shapes, and
TorchScript's own passes fold what those decide (``aten::dim`` of a known rank, the branches it picks); it runs
as a function, which tracing inlines.
Branches on tensor *values* stay: those are what scripting is for, and conversion names them.
"""

from __future__ import annotations

from typing import Any

# graph nodes that show a scripted module kept Python-side control flow
_CONTROL_FLOW = ("prim::If", "prim::Loop", "prim::RaiseException")


def specialized(module: Any, examples: tuple[Any, ...]) -> Any:
    """An ``nn.Module`` running the scripted ``module``'s graph specialized to ``examples`` (positional tensors);
    ``module`` itself when it is not a ScriptModule with control flow, or when TorchScript cannot specialize it.
    ``module`` is left as it was (its graph belongs to its class, shared by every instance)."""
    import torch

    if not isinstance(module, torch.jit.ScriptModule) or not _has_control_flow(module):
        return module
    if not examples or not all(isinstance(e, torch.Tensor) for e in examples):
        return module
    try:
        graph = torch.jit.freeze(module.eval()).graph.copy()  # parameters and attributes become constants
        if next(iter(graph.inputs())).uses():  # self still read: something freezing could not fold
            return module
        graph.eraseInput(0)
        inputs = list(graph.inputs())
        if len(inputs) != len(examples):
            return module
        for value, example in zip(inputs, examples, strict=True):
            value.setType(torch._C.TensorType.create_from_tensor(example))
        for _ in range(3):  # NOTE: shapes stop at a branch; each folded branch lets them reach the next one
            torch._C._jit_pass_constant_propagation(graph)  # branches on constants are inlined
            torch._C._jit_pass_dce(graph)
            torch._C._jit_pass_propagate_shapes_on_graph(graph)
            torch._C._jit_pass_peephole(graph, False)  # shape peepholes on: aten::dim of a known rank folds
        torch._C._jit_pass_constant_propagation(graph)
        torch._C._jit_pass_dce(graph)
        function = torch._C._create_function_from_graph("specialized_forward", graph)
    except Exception:  # NOTE: the original module converts or fails with its own, fuller message
        return module
    return _specialized_module(function)


def _has_control_flow(module: Any) -> bool:
    try:
        graph = module.inlined_graph
    except Exception:
        return False
    return any(graph.findAllNodes(kind) for kind in _CONTROL_FLOW)


def _specialized_module(function: Any) -> Any:
    from torch import nn

    class Specialized(nn.Module):
        """Calls the specialized graph; tracing it records that graph's ops (a function call is inlined)."""

        def __init__(self) -> None:
            super().__init__()
            self.function = function

        def forward(self, *args: Any) -> Any:
            return self.function(*args)

    return Specialized()
