"""Compile a pymil function into the interpreter's flat plan.

Every op is bound to its kernel, constant inputs are converted once, and ``const`` / ``constexpr_*`` ops
are evaluated now (they are compile-time constants on device too). Running the plan is then one flat loop
(``run.py``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from devicefit.errors import KernelMissingError, ModelLoadError
from devicefit.interp import dtypes
from devicefit.interp.features import agree_with_program, feature_spec, function_description
from devicefit.interp.plan import Block, FunctionPlan, Step, TensorSpec
from devicefit.interp.registry import OpContext, OpSignature, get_kernel, opset_number
from devicefit.interp.step import call_step

# coremltools.target values (Core ML specification versions) -> the iOS release of that opset.
_IOS_NAME = {6: "iOS15", 7: "iOS16", 8: "iOS17", 9: "iOS18", 10: "iOS26"}

KERNELS_HOME = "src/devicefit/interp/ops/ (register a function with @register(op_type, since=...))"


def _mil_dtype_name(var: Any) -> str | None:
    from coremltools.converters.mil.mil import types

    sym = var.sym_type
    if types.is_state(sym):
        sym = sym.wrapped_type()
    if types.is_tensor(sym) or types.is_scalar(sym):
        dt = var.dtype
        name = types.builtin_to_string(dt)
        return "bool" if name == "bool" else name
    if types.is_str(sym):
        return "string"
    return None


def _static_shape(var: Any) -> tuple | None:
    from coremltools.converters.mil.mil import types

    sym = var.sym_type
    if types.is_state(sym):
        sym = sym.wrapped_type()
    if not (types.is_tensor(sym) or types.is_scalar(sym)):
        return None
    if any(types.symbolic.is_variadic(d) for d in var.shape):
        return None  # unknown rank
    return tuple(int(d) if isinstance(d, (int, np.integer)) else None for d in var.shape)


def _const_value(var: Any) -> Any:
    """The loaded value of a const var: a held torch tensor, or a Python str."""
    val = var.val
    dt = _mil_dtype_name(var)
    if isinstance(val, str) or dt == "string":
        return val
    if dt is None:  # a list constant (classify's classes): not a tensor, kept as loaded
        return val
    tensor = dtypes.to_held_tensor(val, dt if dt in dtypes.HELD_TORCH else None)
    # Weights loaded from the blob file are numpy views at arbitrary offsets; oneDNN convolutions on
    # misaligned weights measured markedly slower, so copy those into torch's 64-byte-aligned storage.
    if tensor.numel() > 1 and tensor.data_ptr() % 64:
        tensor = tensor.clone()
    return tensor


class _Compiler:
    """Turns a pymil Function into a FunctionPlan."""

    def __init__(self, opset: int, function_name: str):
        self.opset = opset
        self.function_name = function_name
        self.constants: dict[str, Any] = {}
        self.raw_constants: dict[str, Any] = {}
        self.missing: list[tuple[str, str]] = []
        self.op_counts: dict[str, int] = {}

    def block(self, pymil_block: Any, inputs: list[Any]) -> Block:
        steps: list[Step] = []
        for op in pymil_block.operations:
            self.op_counts[op.op_type] = self.op_counts.get(op.op_type, 0) + 1
            if op.op_type == "const":
                out = op.outputs[0]
                self.constants[out.name] = _const_value(out)
                self.raw_constants[out.name] = out.val
                continue
            step = self.step(op)
            if step is None:
                continue
            if op.op_type.startswith("constexpr_") and all(name in self.constants for _, name in step.dyn):
                self._fold(step)
                continue
            steps.append(step)
        return Block(
            inputs=[v.name for v in inputs],
            steps=steps,
            outputs=[v.name for v in pymil_block.outputs],
            input_dtypes=[_mil_dtype_name(v) for v in inputs],
        )

    def _fold(self, step: Step) -> None:
        """Evaluate a constexpr op now: its outputs become constants, stored in their declared types."""
        env = dict(self.constants)
        outs = call_step(step, env, precision="fp32", run_block=None, states=None)
        for i, (name, value) in enumerate(zip(step.outputs, outs)):
            if i in step.round_fp16:
                value = dtypes.round_fp16(value)
            self.constants[name] = value
            self.raw_constants[name] = value

    def step(self, op: Any) -> Step | None:
        kernel = get_kernel(op.op_type, self.opset)
        out_names = [v.name for v in op.outputs]
        if kernel is None:
            self.missing.append((op.op_type, out_names[0] if out_names else op.name))
            return None
        consts: dict[str, Any] = {}
        dyn: list[tuple[str, str]] = []
        dyn_attrs: list[tuple[str, Any]] = []
        variadic: list[tuple[str, list[tuple[str | None, Any]]]] = []
        input_names: dict[str, Any] = {}
        for param, var in op.inputs.items():
            if param not in kernel.params:
                raise ModelLoadError(
                    f"op {op.op_type!r} ({out_names[0]}) has input {param!r} that kernel {kernel.where} "
                    f"does not accept; update the kernel in {KERNELS_HOME}"
                )
            if isinstance(var, (list, tuple)):
                items: list[tuple[str | None, Any]] = []
                for v in var:
                    if v.name in self.constants:
                        items.append((None, self.constants[v.name]))
                    else:
                        items.append((v.name, None))
                variadic.append((param, items))
                input_names[param] = [v.name for v in var]
                continue
            input_names[param] = var.name
            conv = kernel.attrs.get(param)
            if var.name in self.constants:
                if conv is not None:
                    consts[param] = conv(self.raw_constants[var.name])
                else:
                    consts[param] = self.constants[var.name]
            else:
                dyn.append((param, var.name))
                if conv is not None:
                    dyn_attrs.append((param, conv))
        out_dtypes = [_mil_dtype_name(v) for v in op.outputs]
        blocks = [self.block(b, list(b.inputs)) for b in op.blocks]
        ctx = OpContext(
            op_type=op.op_type,
            name=op.name,
            output_names=out_names,
            output_dtypes=out_dtypes,
            output_shapes=[_static_shape(v) for v in op.outputs],
            blocks=blocks,
            input_names=input_names,
        )
        if kernel.check is not None:
            shapes = {p: _static_shape(v) for p, v in op.inputs.items() if not isinstance(v, (list, tuple))}
            kernel.check(OpSignature(op.op_type, out_names[0], shapes, ctx.output_shapes, consts))
        return Step(
            kernel=kernel,
            op_type=op.op_type,
            name=op.name,
            consts=consts,
            dyn=dyn,
            dyn_attrs=dyn_attrs,
            variadic=variadic,
            outputs=out_names,
            round_fp16=[i for i, d in enumerate(out_dtypes) if d == "fp16"],
            ctx=ctx,
            held=[dtypes.HELD_TORCH.get(d) if d else None for d in out_dtypes],
            declared_shapes=ctx.output_shapes,
        )


def compile_function(prog: Any, spec: Any, name: str) -> FunctionPlan:
    """Compile one pymil function into a FunctionPlan."""
    from coremltools.converters.mil.mil import types

    fn = prog.functions[name]
    # pymil stores the opset as a coremltools.target member (iOS15 ... iOS18, macOS*, tvOS*, watchOS*).
    target = fn.opset_version
    value = getattr(target, "value", None)
    opset_name = _IOS_NAME.get(value, "iOS15") if isinstance(value, int) else "iOS15"
    opset = opset_number(opset_name)
    comp = _Compiler(opset, name)
    block = comp.block(fn, list(fn.inputs.values()))
    if comp.missing:
        seen: dict[str, str] = {}
        for op_type, out in comp.missing:
            seen.setdefault(op_type, out)
        listing = ", ".join(f"{t} (first output {o!r})" for t, o in seen.items())
        raise KernelMissingError(
            f"no interpreter kernel for: {listing}, at opset {opset_name}; kernels live in {KERNELS_HOME}"
        )
    description = function_description(spec, name)
    in_features = {f.name: f for f in description.input} if description is not None else {}
    out_features = {f.name: f for f in description.output} if description is not None else {}
    state_features = {f.name: f for f in description.state} if description is not None else {}
    inputs: list[TensorSpec] = []
    states: list[TensorSpec] = []
    for in_name, var in fn.inputs.items():
        dt = _mil_dtype_name(var)
        if types.is_state(var.sym_type):
            feat = state_features.get(in_name)
            st = (
                feature_spec(feat, dt)
                if feat is not None
                else TensorSpec(in_name, dt, _static_shape(var), kind="state")
            )
            st.kind = "state"
            agree_with_program(st, _static_shape(var))
            states.append(st)
            continue
        feat = in_features.get(in_name)
        if feat is not None:
            ts = feature_spec(feat, dt)
            agree_with_program(ts, _static_shape(var))
            inputs.append(ts)
        else:
            inputs.append(TensorSpec(in_name, dt, _static_shape(var)))
    outputs = []
    for var in fn.outputs:
        feat = out_features.get(var.name)
        ts = TensorSpec(var.name, _mil_dtype_name(var), _static_shape(var))
        if feat is not None and feat.type.WhichOneof("Type") not in ("multiArrayType", None):
            ts.kind = feat.type.WhichOneof("Type")
        outputs.append(ts)
    return FunctionPlan(
        name=name,
        opset=opset,
        opset_name=opset_name,
        inputs=inputs,
        outputs=outputs,
        states=states,
        block=block,
        constants=comp.constants,
        op_counts=comp.op_counts,
        pymil_function=fn,
    )
