"""Constants beyond the fp16 range: find them in any ML Program, and a conversion pass that makes them safe.

PyTorch code masks attention with ``torch.finfo(torch.float32).min`` (``masked_fill``, additive masks) or
``-inf``. Cast to fp16 these become ``-inf``; a fully masked (padded) row then turns softmax into NaN, and
the NaN spreads to every row in the next layer. The pass, run just before coremltools' fp16 cast, maps:

- values beyond ``±65504`` (±inf, ``finfo.min``, but also HF Funnel's ``1e6`` or the common ``-1e9``) to
  ``±32752``, half the fp16 range: ``exp()`` of it underflows to 0 exactly as ``exp(finfo.min)`` does, and two
  such masks added (causal + padding) give ``-65504``, still finite, so a fully masked row stays finite
  (uniform, as in PyTorch) instead of NaN;
- when every consumer uses the value as a bound (``clip``, ``maximum``, ``minimum``), to ``±65504``, the fp16
  extreme, which is the same bound for every fp16 value.

NOTE: a finite value beyond fp16 was once mapped to ``±65504``, the nearest fp16 value. No fp16 computation can
hold such a constant, and where one is used it is a "minus infinity" fill: ``score - 65504 * (1 - mask)``
overflows to -inf on every negative score (HF Funnel: check failed fp16 compute on a model whose outputs were
within tolerance). Half the range leaves the headroom a fill needs.

NaN constants are left alone (no value keeps their meaning) and only reported.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

FP16_MAX = float(np.finfo(np.float16).max)  # 65504
SAFE_SENTINEL = 32752.0  # FP16_MAX / 2 rounded to an fp16 value
_BOUND_OPS = {"clip", "maximum", "minimum"}
PASS_NAME = "devicefit::fp16_safe_constants"


@dataclass(frozen=True)
class UnsafeConstant:
    """A float constant an fp16 computation cannot hold (non-finite, or beyond ±65504), and who reads it.

    Attributes:
        name: the constant's MIL value name.
        value: a short summary of the offending values, e.g. ``"-inf (x16 of 16)"``.
        dtype: the constant's dtype (``"fp16"`` / ``"fp32"``).
        consumer_op: the op type reading it (``"select"``), ``""`` if none.
        consumer_output: the name of that op's first output (its MIL value name), ``""`` if none.
    """

    name: str
    value: str
    dtype: str
    consumer_op: str
    consumer_output: str


@dataclass(frozen=True)
class ConstantFix:
    """One constant the fp16-safe pass rewrote (reported in ``ConversionResult.fp16_constant_fixes``)."""

    name: str
    before: str
    after: float
    consumers: tuple[str, ...]

    def describe(self) -> str:
        used = ", ".join(self.consumers) or "no consumer"
        return f"{self.name}: {self.before} -> {self.after:g} (read by {used})"


def find_unsafe_constants(model: Any) -> list[UnsafeConstant]:
    """Every float constant outside the fp16 range, once per op that reads it.

    Args:
        model: a ``coremltools.models.MLModel`` (converted or loaded), a path to an ``.mlpackage``, or a
            coremltools MIL ``Program``.

    Returns:
        One UnsafeConstant per (constant, consuming op), in program order.
    """
    found = []
    for op in _const_ops(_program_of(model)):
        summary = _unsafe_summary(op.outputs[0].val)
        if summary is None:
            continue
        dtype = _dtype_name(op.outputs[0])
        consumers = list(op.outputs[0].child_ops) or [None]
        for consumer in consumers:
            found.append(
                UnsafeConstant(
                    name=op.outputs[0].name,
                    value=summary,
                    dtype=dtype,
                    consumer_op=consumer.op_type if consumer is not None else "",
                    consumer_output=consumer.outputs[0].name
                    if consumer is not None and consumer.outputs
                    else "",
                )
            )
    return found


def make_fp16_safe(program: Any) -> list[ConstantFix]:
    """Rewrite out-of-range float constants of a MIL program in place (see the module docstring)."""
    from coremltools.converters.mil.mil import Builder as mb

    fixes = []
    for op in list(_const_ops(program)):
        var = op.outputs[0]
        value = var.val
        if _unsafe_summary(value) is None or np.isnan(np.asarray(value, dtype=np.float64)).all():
            continue
        consumers = list(var.child_ops)
        if not consumers:
            continue  # a program output: nothing computes with it
        bound = all(c.op_type in _BOUND_OPS for c in consumers)
        fixed, target = _safe_values(np.asarray(value), bound)
        with op.enclosing_block:
            new = mb.const(val=fixed, before_op=op, name=f"{var.name}_fp16safe")
        op.enclosing_block.replace_uses_of_var_after_op(
            anchor_op=new.op, old_var=var, new_var=new, no_check_var_types=True
        )
        op.enclosing_block.remove_ops([op])
        fixes.append(
            ConstantFix(var.name, _unsafe_summary(value) or "", target, tuple(c.op_type for c in consumers))
        )
    return fixes


@contextlib.contextmanager
def fp16_safe_pass(fixes: list[ConstantFix]) -> Iterator[str]:
    """Register the pass in coremltools' pass registry while the block runs; rewrites append to ``fixes``.

    Yields:
        The pass name, to insert into a ``PassPipeline`` just before ``common::add_fp16_cast``.
    """
    from coremltools.converters.mil.mil.passes.graph_pass import AbstractGraphPass
    from coremltools.converters.mil.mil.passes.pass_registry import PASS_REGISTRY

    class _Fp16SafeConstants(AbstractGraphPass):
        def apply(self, prog: Any) -> None:
            fixes.extend(make_fp16_safe(prog))

    previous = PASS_REGISTRY.passes.get(PASS_NAME)
    PASS_REGISTRY.passes[PASS_NAME] = _Fp16SafeConstants
    try:
        yield PASS_NAME
    finally:
        if previous is None:
            PASS_REGISTRY.passes.pop(PASS_NAME, None)
        else:
            PASS_REGISTRY.passes[PASS_NAME] = previous


def pipeline_with_pass(ct: Any, pass_name: str) -> Any:
    """coremltools' default pipeline with ``pass_name`` right before the fp16 cast."""
    pipeline = ct.PassPipeline.DEFAULT
    names = list(pipeline.passes)
    index = names.index("common::add_fp16_cast") if "common::add_fp16_cast" in names else len(names)
    pipeline.insert_pass(index, pass_name)
    return pipeline


# --------------------------------------------------------------------------- helpers
def _safe_values(value: np.ndarray, bound: bool) -> tuple[np.ndarray, float]:
    wide = value.astype(np.float64)
    beyond = np.isinf(wide) | (np.abs(wide) > FP16_MAX)
    target = FP16_MAX if bound else SAFE_SENTINEL
    wide = np.where(beyond, np.sign(wide) * target, wide)
    return wide.astype(value.dtype), target


def _unsafe_summary(value: Any) -> str | None:
    """``None`` when every value fits fp16; else e.g. ``"-inf (x4 of 16)"`` / ``"-3.40282e+38"``."""
    if value is None:
        return None
    array = np.asarray(value)
    if array.dtype.kind != "f" or array.size == 0:
        return None
    wide = array.astype(np.float64)
    bad = ~np.isfinite(wide) | (np.abs(np.nan_to_num(wide)) > FP16_MAX)
    count = int(bad.sum())
    if not count:
        return None
    shown = sorted({f"{v:g}" for v in wide[bad].ravel()[:64]})
    text = ", ".join(shown[:3]) + (", ..." if len(shown) > 3 else "")
    return text if array.size == 1 else f"{text} (x{count} of {array.size})"


def _dtype_name(var: Any) -> str:
    from coremltools.converters.mil.mil.types.type_mapping import builtin_to_string

    return str(builtin_to_string(var.dtype))


def _const_ops(program: Any) -> Iterator[Any]:
    for function in program.functions.values():
        yield from _block_consts(function)


def _block_consts(block: Any) -> Iterator[Any]:
    for op in list(block.operations):
        if op.op_type == "const":
            yield op
        for inner in op.blocks:
            yield from _block_consts(inner)


def _program_of(model: Any) -> Any:
    """The MIL program of an MLModel / package path / Program (loaded from the spec when not kept)."""
    from devicefit._lazy import coremltools

    ct = coremltools()
    if hasattr(model, "functions"):
        return model
    if not hasattr(model, "get_spec"):
        from devicefit.sources.coreml_package import check_package

        check_package(model)  # coremltools trusts a package: Manifest.json paths, weight offsets
        model = ct.models.MLModel(str(model), skip_model_load=True)
    program = getattr(model, "_mil_program", None)
    if program is not None:
        return program
    from coremltools.converters.mil.frontend.milproto.load import load as milproto_load

    spec = model.get_spec()
    return milproto_load(spec, spec.specificationVersion, file_weights_dir=model.weights_dir or "")
