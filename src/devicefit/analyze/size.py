"""Weight sizes: at each storage precision, as stored on disk, and by layer.

A *weight* is a float constant of two or more elements that an op of the program reads (constants folded
from ``constexpr_*`` decompression count once, as their decompressed tensor). Sizes at lower precisions are
what Core ML's compression would store (``coremltools.optimize.coreml``):

* fp32 / fp16: 4 / 2 bytes per element.
* int8 (linear quantization, per output channel): 1 byte per element + one fp16 scale per output channel.
* 6-bit / 4-bit (palettization, per tensor): ``ceil(bits * n / 8)`` bytes of indices + a lookup table of
  ``2**bits`` fp16 entries.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from devicefit import dtypes

if TYPE_CHECKING:
    from devicefit.convert.provenance import Origin, Provenance

PRECISIONS = ("fp32", "fp16", "int8", "6bit", "4bit")


def tensor_bytes(numel: int, shape: tuple[int, ...], precision: str) -> int:
    """Bytes one weight tensor takes when stored at ``precision`` (see the module docstring)."""
    if precision in ("fp32", "fp16"):
        return dtypes.tensor_bytes(precision, numel)
    if precision == "int8":
        channels = shape[0] if len(shape) >= 2 else 1
        return numel + 2 * channels
    bits = {"6bit": 6, "4bit": 4}.get(precision)
    if bits is None:
        raise ValueError(f"unknown precision {precision!r}; expected one of {PRECISIONS}")
    return math.ceil(bits * numel / 8) + 2 * 2**bits


@dataclass
class Weight:
    """One weight tensor and the op that reads it first.

    Attributes:
        consumers: ``(op name, op type, input name)`` of every op (nested blocks included) that reads it
            as a named constant input: where a compressed version is substituted.
        stored_as: ``"const"``, or the ``constexpr_*`` op type that decompresses it (already compressed).
    """

    name: str
    shape: tuple[int, ...]
    dtype: str
    op: str
    op_type: str
    consumers: list[tuple[str, str, str]] = field(default_factory=list)
    stored_as: str = "const"

    @property
    def numel(self) -> int:
        return int(np.prod(self.shape)) if self.shape else 1

    @property
    def layer(self) -> str:
        """A readable name: the first reading op and its type."""
        return f"{self.op} ({self.op_type})"

    @property
    def stored_bytes(self) -> int:
        return dtypes.tensor_bytes(self.dtype, self.numel)


@dataclass
class LayerSize:
    """Weight bytes of one op (at the program's declared dtypes) and the PyTorch module it came from."""

    op: str
    op_type: str
    parameters: int
    bytes: int
    origin: Origin | None = None

    @property
    def where(self) -> str:
        """PyTorch module, type and line first, the MIL op in parentheses (the MIL name alone if unknown)."""
        from devicefit.convert.provenance import where

        return where(self.origin, self.op)


@dataclass
class SizeReport:
    """Weight counts and sizes.

    Attributes:
        parameters: total weight elements.
        weight_bytes: weight bytes at the program's declared dtypes.
        bytes_at: precision -> total weight bytes if stored at that precision.
        package_bytes: size of the model package on disk (None for a model never saved).
        layers: per-op weight sizes, in program order.
    """

    parameters: int
    weight_bytes: int
    bytes_at: dict[str, int]
    package_bytes: int | None
    layers: list[LayerSize] = field(default_factory=list)
    weights: list[Weight] = field(default_factory=list)


def declared_dtypes(program: Any) -> dict[str, str]:
    """MIL dtype of every const / op output the pymil function declares (constants included)."""
    from coremltools.converters.mil.mil import types

    out: dict[str, str] = {}

    def visit(block: Any) -> None:
        for op in block.operations:
            for v in op.outputs:
                try:
                    if types.is_tensor(v.sym_type) or types.is_scalar(v.sym_type):
                        out[v.name] = types.builtin_to_string(v.dtype)
                except Exception:  # state / list types have no dtype
                    continue
            for inner in op.blocks:
                visit(inner)

    fn = program.pymil_function
    if fn is not None:
        visit(fn)
    return out


def _referenced(steps: list[Any]) -> list[tuple[Any, str]]:
    """(step, value name) for every input of every step, nested blocks attributed to their outer step."""
    refs: list[tuple[Any, str]] = []
    for step in steps:
        refs.extend((step, n) for n in step.reads())
    return refs


def _producers(program: Any) -> dict[str, str]:
    """Value name -> type of the pymil op producing it (``const``, ``constexpr_*``...)."""
    out: dict[str, str] = {}

    def visit(block: Any) -> None:
        for op in block.operations:
            for v in op.outputs:
                out[v.name] = op.op_type
            for inner in op.blocks:
                visit(inner)

    if program.pymil_function is not None:
        visit(program.pymil_function)
    return out


def _consumers(steps: list[Any]) -> dict[str, list[tuple[str, str, str]]]:
    """Value name -> (op, op type, input name) of each step reading it as a named (non-variadic) input."""
    out: dict[str, list[tuple[str, str, str]]] = {}
    for step in steps:
        for param, src in step.ctx.input_names.items():
            if isinstance(src, str):
                out.setdefault(src, []).append((step.name, step.op_type, param))
        for block in step.ctx.blocks:
            for name, readers in _consumers(block.steps).items():
                out.setdefault(name, []).extend(readers)
    return out


def find_weights(program: Any) -> list[Weight]:
    """The program's weights (see the module docstring), each attributed to the first op reading it.

    This is the one weight discovery: ``compress`` picks what it compresses from it.
    """
    constants = program.plan.constants
    dtypes = declared_dtypes(program)
    consumers = _consumers(program.plan.block.steps)
    producers = _producers(program)
    seen: set[str] = set()
    weights: list[Weight] = []
    for step, name in _referenced(program.plan.block.steps):
        value = constants.get(name)
        if name in seen or value is None or not hasattr(value, "shape"):
            continue
        if not getattr(value, "is_floating_point", lambda: False)() or int(np.prod(value.shape)) < 2:
            continue
        seen.add(name)
        weights.append(
            Weight(
                name,
                tuple(value.shape),
                dtypes.get(name, "fp32"),
                step.name,
                step.op_type,
                consumers.get(name, []),
                producers.get(name, "const"),
            )
        )
    return weights


def const_bytes(op: Any) -> int:
    """Bytes a pymil ``const`` op stores: its elements at its declared bit width (sub-byte types packed).

    The width comes from the MIL type (``devicefit.dtypes``), so compressed ``uint4`` / ``int8`` constants are
    not over-counted; a value of an unknown type falls back to its numpy item size.
    """
    from coremltools.converters.mil.mil import types

    var = op.outputs[0]
    val = var.val
    numel = int(np.size(val)) if val is not None else 0
    try:
        return dtypes.tensor_bytes(types.builtin_to_string(var.dtype), numel)
    except Exception:  # no MIL dtype (lists, states): count what numpy holds
        return numel * (np.asarray(val).dtype.itemsize if val is not None else 0)


def package_bytes(path: str | os.PathLike[str] | None) -> int | None:
    """Total size of a file or folder (an ``.mlpackage``) on disk; None when there is none."""
    if path is None:
        return None
    p = Path(path)
    if p.is_file():
        return p.stat().st_size
    if not p.is_dir():
        return None
    return sum(f.stat().st_size for f in p.rglob("*") if f.is_file())


def analyze_size(
    program: Any, package_path: str | os.PathLike[str] | None = None, provenance: Provenance | None = None
) -> SizeReport:
    """Weight sizes of ``program`` and the on-disk size of its package.

    Args:
        program: an :class:`devicefit.interp.Program`.
        package_path: the saved ``.mlpackage`` (or ``.mlmodel``), when there is one.
        provenance: MIL name -> PyTorch origin (default: what the package's metadata holds, if anything).
    """
    if provenance is None:
        from devicefit.convert.provenance import load_from_package

        provenance = load_from_package(program)
    outputs = {s.name: s.outputs for s in program.plan.block.steps}
    weights = find_weights(program)
    layers: dict[str, LayerSize] = {}
    for w in weights:
        origin = provenance.find(*outputs.get(w.op, []), w.op, w.name) if provenance is not None else None
        layer = layers.setdefault(w.op, LayerSize(w.op, w.op_type, 0, 0, origin))
        layer.parameters += w.numel
        layer.bytes += w.stored_bytes
    return SizeReport(
        parameters=sum(w.numel for w in weights),
        weight_bytes=sum(w.stored_bytes for w in weights),
        bytes_at={p: sum(tensor_bytes(w.numel, w.shape, p) for w in weights) for p in PRECISIONS},
        package_bytes=package_bytes(package_path),
        layers=list(layers.values()),
        weights=weights,
    )
