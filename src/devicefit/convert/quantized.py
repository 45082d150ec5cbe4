"""Modules quantized by PyTorch itself (``torch.ao.quantization``), which Core ML cannot run.

``quantize_dynamic`` / ``convert`` replace ``nn.Linear`` / ``nn.LSTM`` / ``nn.Conv2d`` with modules holding packed
int8 weights (``DynamicQuantizedLinear``, ``QuantizedConv2d``...): coremltools translates few of their ops and
asserts on others (a quantized LSTM's packed parameters). Naming them turns an ``AssertionError`` into what to do:
convert the float model and shrink the Core ML model with ``devicefit compress``.
"""

from __future__ import annotations

from typing import Any

# where PyTorch keeps its quantized module classes (torch.nn.quantized re-exports torch.ao.nn.quantized)
_PACKAGES = ("torch.ao.nn.quantized", "torch.nn.quantized", "torch.ao.nn.intrinsic.quantized")


def torch_quantized_modules(module: Any) -> list[str]:
    """``"path (ClassName)"`` for each module of ``module`` that PyTorch quantized (outermost first)."""
    if module is None or not hasattr(module, "named_modules"):
        return []
    found: list[str] = []
    outer: list[str] = []
    for path, sub in module.named_modules():
        if any(path.startswith(f"{o}.") for o in outer):  # a quantized LSTM's packed parameters: its own
            continue
        if type(sub).__module__.startswith(_PACKAGES):
            name = sub._get_name() if hasattr(sub, "_get_name") else type(sub).__name__
            found.append(f"{path or 'the model'} ({name})")
            outer.append(path)
    return found


def quantized_hint(module: Any) -> str | None:
    """One line naming the PyTorch-quantized modules and what to do instead; None when there are none."""
    found = torch_quantized_modules(module)
    if not found:
        return None
    more = f" (+{len(found) - 3} more)" if len(found) > 3 else ""
    return (
        f"PyTorch-quantized module(s) Core ML cannot run: {', '.join(found[:3])}{more}; convert the float model "
        "(before torch.ao.quantization) and shrink the Core ML model with devicefit compress (int8 or "
        "palettized weights)"
    )
