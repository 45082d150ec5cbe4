"""The kernel registry: one small pure function per MIL op, registered by (op type, opset).

A kernel is registered with::

    @register("conv", attrs={"strides": ints, "pad": ints, "groups": int_, "pad_type": str_})
    def conv(x, weight, bias=None, strides=None, pad_type="valid", pad=None, dilations=None, groups=1):
        ...

* Parameters are the MIL input names. Optional MIL inputs get the Python default.
* ``attrs`` maps an input to a converter applied once when the plan is prepared (for constants), so the
  kernel body sees plain Python values (lists of ints, strings, floats) instead of tensors.
* Tensor inputs arrive as torch tensors in the dtype ``dtypes.held_dtype`` gives (all floats as float32).
* A kernel that needs to know its output types, run nested blocks or touch state declares a parameter
  named ``ctx`` (an :class:`OpContext`).
* A kernel returns one tensor, or a tuple with one entry per MIL output; the loop checks the count.

Versions: ``since`` names the first opset the kernel applies to. For a model at opset N the newest
registration with ``since <= N`` is used (as coremltools' ``SSAOpRegistry`` and ONNX's ``load_op`` do).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

# Opset names used in ML Program protos, ordered. iOS15 == CoreML5, ..., iOS18 == CoreML8.
OPSETS: dict[str, int] = {
    "CoreML5": 15,
    "CoreML6": 16,
    "CoreML7": 17,
    "CoreML8": 18,
    "CoreML9": 19,
    "iOS15": 15,
    "iOS16": 16,
    "iOS17": 17,
    "iOS18": 18,
    "iOS26": 19,
}


def opset_number(name: str | int) -> int:
    """Map an opset name (``"CoreML7"`` or ``"iOS17"``) to its iOS number (17)."""
    if isinstance(name, int):
        return name
    try:
        return OPSETS[name]
    except KeyError:
        raise ValueError(f"unknown ML Program opset {name!r}; known: {sorted(OPSETS)}") from None


# ---------------------------------------------------------------- attribute converters
def _scalar(v: Any) -> Any:
    if isinstance(v, torch.Tensor):
        return v.item() if v.numel() == 1 else v.tolist()
    if hasattr(v, "item") and getattr(v, "ndim", 1) == 0:
        return v.item()
    return v


def _flat(v: Any) -> list:
    """Any scalar or (nested) vector -> flat Python list, row-major (``[[0, 1], [2, 3]]`` -> ``[0, 1, 2, 3]``)."""
    if isinstance(v, torch.Tensor):
        return v.reshape(-1).tolist()
    return np.asarray(v).reshape(-1).tolist()


def ints(v: Any) -> list[int]:
    """Any int scalar or tensor (torch, numpy, nested lists; e.g. 2-D paddings) -> flat list[int]."""
    return [int(i) for i in _flat(v)]


def floats(v: Any) -> list[float]:
    return [float(i) for i in _flat(v)]


def int_(v: Any) -> int:
    return int(_scalar(v))


def float_(v: Any) -> float:
    return float(_scalar(v))


def bool_(v: Any) -> bool:
    return bool(_scalar(v))


def str_(v: Any) -> str:
    v = _scalar(v)
    return v.decode() if isinstance(v, bytes) else str(v)


def raw(v: Any) -> Any:
    """Keep the constant as it was loaded (a numpy array or Python value)."""
    return v


@dataclass
class OpContext:
    """What a kernel may know beyond its inputs.

    Attributes:
        op_type: MIL op type.
        name: the op's name in the program.
        output_names: names of the op's outputs.
        output_dtypes: MIL dtype names of the outputs (``None`` for non-tensor outputs such as lists).
        output_shapes: declared shapes (ints, or ``None`` for symbolic dims).
        blocks: prepared nested blocks (control flow ops).
        precision: ``"fp32"`` or ``"fp16"`` for the current run.
        run_block: callable ``(block, inputs: list) -> list`` that executes a nested block.
        states: the state values of the current run (read_state / coreml_update_state).
        input_names: names of each MIL input's source value (None for inline constants).
    """

    op_type: str
    name: str
    output_names: list[str]
    output_dtypes: list[str | None]
    output_shapes: list[tuple | None]
    blocks: list[Any] = field(default_factory=list)
    precision: str = "fp32"
    run_block: Callable[..., list] | None = None
    states: dict[str, torch.Tensor] | None = None
    input_names: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class OpSignature:
    """What the program declares about one op, for a kernel's load-time check.

    Attributes:
        op_type: MIL op type.
        name: the op's first output name (how findings name it).
        input_shapes: declared shape of each non-variadic input (None: unknown rank; a None dim is symbolic).
        output_shapes: declared shape of each output.
        consts: the constant inputs, converted as the kernel receives them.
    """

    op_type: str
    name: str
    input_shapes: dict[str, tuple | None]
    output_shapes: list[tuple | None]
    consts: dict[str, Any]


@dataclass(frozen=True)
class Kernel:
    op_type: str
    since: int
    fn: Callable[..., Any]
    attrs: dict[str, Callable[[Any], Any]]
    wants_ctx: bool
    params: tuple[str, ...]
    variadic: frozenset[str]
    # Load-time check of the op's declared types (see OpSignature): raises ModelLoadError for a program the
    # Core ML runtime would refuse, before any input is fed.
    check: Callable[[OpSignature], None] | None = None

    @property
    def where(self) -> str:
        return f"{self.fn.__module__}.{self.fn.__name__}"


_KERNELS: dict[str, list[Kernel]] = {}


def register(
    op_type: str | Sequence[str],
    since: str | int = "iOS15",
    attrs: Mapping[str, Callable[[Any], Any]] | None = None,
    variadic: Sequence[str] = (),
    override: bool = False,
    check: Callable[[OpSignature], None] | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register ``fn`` as the kernel of ``op_type`` from opset ``since`` on.

    Args:
        op_type: MIL op type, or several that share the kernel.
        since: first opset the kernel applies to (``"iOS17"`` or 17).
        attrs: converters for inputs that are usually constants (applied once at prepare time).
        variadic: inputs that are tuples of values (``concat``'s ``values``); passed as a list.
        override: replace an existing kernel of the same ``(op_type, since)``; without it a duplicate
            registration raises (two files registering one op would otherwise depend on import order).
        check: called once at load time with the op's :class:`OpSignature`; raises ``ModelLoadError`` for
            declared types the Core ML runtime refuses (the kernel itself then never sees such a program).

    Raises:
        ValueError: ``(op_type, since)`` already has a kernel and ``override`` is False.
    """
    types = [op_type] if isinstance(op_type, str) else list(op_type)

    def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
        sig = inspect.signature(fn)
        params = tuple(p for p in sig.parameters if p != "ctx")
        for t in types:
            kernel = Kernel(
                op_type=t,
                since=opset_number(since),
                fn=fn,
                attrs=dict(attrs or {}),
                wants_ctx="ctx" in sig.parameters,
                params=params,
                variadic=frozenset(variadic),
                check=check,
            )
            versions = _KERNELS.setdefault(t, [])
            clash = next((k for k in versions if k.since == kernel.since), None)
            if clash is not None and not override:
                raise ValueError(
                    f"op {t!r} since opset {kernel.since} already has kernel {clash.where}; cannot also "
                    f"register {kernel.where} (pass override=True to replace it)"
                )
            versions[:] = [k for k in versions if k.since != kernel.since]
            versions.append(kernel)
            versions.sort(key=lambda k: k.since)
        return fn

    return deco


def lookup(op_type: str, opset: int) -> Kernel | None:
    """The newest kernel for ``op_type`` whose ``since`` is not above ``opset``."""
    best = None
    for k in _KERNELS.get(op_type, ()):
        if k.since <= opset:
            best = k
    return best


def registered_ops() -> dict[str, list[int]]:
    """Op type -> the opsets at which kernels were registered."""
    _ensure_loaded()
    return {t: [k.since for k in ks] for t, ks in sorted(_KERNELS.items())}


_LOADED = False


def _ensure_loaded() -> None:
    global _LOADED
    if not _LOADED:
        from devicefit.interp import ops  # noqa: F401  (import registers every kernel)

        _LOADED = True


def get_kernel(op_type: str, opset: int) -> Kernel | None:
    _ensure_loaded()
    return lookup(op_type, opset)
