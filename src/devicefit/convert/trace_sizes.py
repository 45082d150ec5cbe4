"""Python numbers read from tensor sizes while tracing: told apart from numbers read from tensor values.

TorchScript's tracer warns whenever a tensor becomes a Python number ("Converting a tensor to a Python float
might cause the trace to be incorrect"): the number is frozen into the trace. ``math.sqrt(q.shape[-1])`` in
every hand-written attention is such a number, traced from ``aten::size``; every input of the converted shape
has the same size, so only a conversion with flexible shapes can go wrong there. ``float(x.max())`` is frozen
data. The conversion is wrapped during tracing and the traced value's producers decide which it is.
"""

from __future__ import annotations

import contextlib
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

SIZE_AS_NUMBER = "a tensor size read as a Python number"

# ops a Python number traced from sizes alone is computed with (``math.sqrt(q.shape[-1])``, ``int(h * 0.5)``)
_SIZE_ARITHMETIC = {
    "aten::size", "aten::numel", "aten::dim", "prim::NumToTensor", "prim::Constant", "aten::Int", "aten::Float",
    "aten::ScalarImplicit", "aten::mul", "aten::div", "aten::add", "aten::sub", "aten::floor_divide",
    "aten::floordiv", "aten::remainder", "aten::neg", "aten::pow", "aten::sqrt", "aten::rsub", "aten::to",
    "aten::floor", "aten::ceil", "aten::round", "aten::detach", "aten::clone",
}  # fmt: skip


def _from_sizes_only(value: Any) -> bool:
    """Whether a traced value is computed from tensor sizes and constants alone (no tensor's data)."""
    seen, todo = set(), [value]
    while todo:
        node = todo.pop().node()
        if node in seen:
            continue
        seen.add(node)
        kind = node.kind()
        if kind not in _SIZE_ARITHMETIC:
            return False
        if kind in ("aten::size", "aten::numel", "aten::dim"):
            continue  # reads the shape of its input, not its values
        todo.extend(node.inputs())
    return True


@contextlib.contextmanager
def sizes_read_as_numbers(marked: list[str]) -> Iterator[None]:
    """While tracing: a tensor turned into a Python number (``float`` / ``int`` / an index) that the tracer
    computed from sizes alone is converted without torch's TracerWarning and noted in ``marked`` as
    ``file.py:N: a tensor size read as a Python number`` (every input of the converted shape has that size;
    whether it matters is the caller's to say: it does with flexible shapes)."""
    import torch

    originals = {name: getattr(torch.Tensor, name) for name in ("__float__", "__int__", "__index__")}

    def wrap(name: str, convert: Any) -> Any:
        def converted(self: Any) -> Any:
            if not torch._C._is_tracing():  # another thread, or a value read outside the trace
                return convert(self)
            try:
                sized = _from_sizes_only(torch._C._get_value_trace(self))  # type: ignore[attr-defined]
            except Exception:  # NOTE: not a traced value (a constant made in forward): torch's warning stands
                sized = False
            caller = sys._getframe(1)
            if not sized:  # torch's warning, placed at the caller's line as without this wrapper
                with warnings.catch_warnings(record=True) as raised:
                    warnings.simplefilter("always")
                    result = convert(self)
                for w in raised:
                    warnings.warn_explicit(w.message, w.category, caller.f_code.co_filename, caller.f_lineno)
                return result
            entry = f"{Path(caller.f_code.co_filename).name}:{caller.f_lineno}: {SIZE_AS_NUMBER}"
            if entry not in marked:
                marked.append(entry)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", torch.jit.TracerWarning)
                return convert(self)

        converted.__name__ = name
        return converted

    for name, convert in originals.items():
        setattr(torch.Tensor, name, wrap(name, convert))
    try:
        yield
    finally:
        for name, convert in originals.items():
            setattr(torch.Tensor, name, convert)
