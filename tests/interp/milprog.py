"""Build a one-function MIL program with coremltools' builder and run it through the interpreter.

Conformance tests use this to reach ops and attribute combinations no PyTorch model emits. The program is
converted by ``ct.convert`` (the real serialisation path), then loaded back by ``devicefit.interp``.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Mapping
from typing import Any
from unittest import mock

import numpy as np

from devicefit import interp

_MIL_DTYPE = {
    np.dtype(np.float32): "fp32",
    np.dtype(np.float16): "fp16",
    np.dtype(np.int32): "int32",
    np.dtype(np.bool_): "bool",
}


def convert(
    fn: Callable[..., Any],
    inputs: Mapping[str, np.ndarray],
    target: str = "iOS17",
    precision: str = "fp32",
    shapes: Mapping[str, tuple] | None = None,
) -> Any:
    """Convert the MIL program ``fn`` (its parameters named like ``inputs``, in order) to an MLModel.

    Args:
        fn: builds the body with ``mb.*`` calls; returns the output var(s).
        inputs: example inputs, which give each input's shape and dtype.
        target: deployment target (``"iOS15"`` ... ``"iOS18"``).
        precision: the package's compute precision (``"fp16"`` inserts casts around fp32 ops).
        shapes: per-input shapes overriding the examples' (symbols for flexible dims).
    """
    import coremltools as ct
    from coremltools.converters.mil import Builder as mb
    from coremltools.converters.mil.mil import types

    opset = getattr(ct.target, target)
    specs = [
        mb.TensorSpec(
            shape=(shapes or {}).get(name, np.shape(value)),
            dtype=types.string_to_builtin(_MIL_DTYPE[np.asarray(value).dtype]),
        )
        for name, value in inputs.items()
    ]
    prog = mb.program(input_specs=specs, opset_version=opset)(fn)
    # NOTE: ct.convert ends with a full gc.collect(), ~85% of its time in a test process that holds torch;
    # these programs free nothing worth collecting, so the tests skip it.
    with mock.patch.object(gc, "collect", lambda *args: 0):
        return ct.convert(
            prog,
            convert_to="mlprogram",
            minimum_deployment_target=opset,
            compute_precision=ct.precision.FLOAT32 if precision == "fp32" else ct.precision.FLOAT16,
        )


def build(fn: Callable[..., Any], inputs: Mapping[str, np.ndarray], **kwargs: Any) -> interp.Program:
    """:func:`convert`, then load the model with ``devicefit.interp``."""
    return interp.load(convert(fn, inputs, **kwargs))


def with_const(mlmodel: Any, const_name: str, values: list) -> Any:
    """A copy of ``mlmodel`` whose inline constant ``const_name`` holds ``values`` (a mutated program)."""
    import coremltools as ct

    spec = mlmodel.get_spec()
    for block in spec.mlProgram.functions["main"].block_specializations.values():
        for op in block.operations:
            if op.type == "const" and op.outputs[0].name == const_name:
                tensor = op.attributes["val"].immediateValue.tensor
                getattr(tensor, tensor.WhichOneof("value")).values[:] = values
                return ct.models.MLModel(spec, weights_dir=mlmodel.weights_dir, skip_model_load=True)
    raise KeyError(const_name)


def run(
    fn: Callable[..., Any],
    inputs: Mapping[str, np.ndarray],
    target: str = "iOS17",
    precision: str = "fp32",
    op: str | None = None,
    **kwargs: Any,
) -> np.ndarray | list[np.ndarray]:
    """Build with :func:`build`, run strictly once; the single output (or the list of outputs).

    ``op`` asserts that the loaded program still holds that op (the converter's passes did not fold it).
    """
    prog = build(fn, inputs, target=target, precision=precision, **kwargs)
    if op is not None:
        assert prog.op_counts.get(op), f"{op} was folded away: {prog.op_counts}"
    outs = list(prog.run(dict(inputs), precision=precision, strict=True).values())
    return outs[0] if len(outs) == 1 else outs


def named(build: Callable[..., Any], names: list[str]) -> Callable[..., Any]:
    """``build(mb, *vars)`` as a function with one parameter per input name (the builder reads the names)."""
    from coremltools.converters.mil import Builder as mb

    args = ", ".join(names)
    scope = {"build": build, "mb": mb}
    exec(f"def prog({args}):\n    return build(mb, {args})", scope)
    return scope["prog"]
