"""Load an ML Program (``.mlpackage``, ``.mlmodel`` or an in-memory ``MLModel``) into a prepared plan.

Loading goes through coremltools' MIL proto loader (it works on Linux; weights come from the package's
weight file). The pymil program is then *compiled* into our own flat plan: every op is bound to its kernel,
constant inputs are converted once, and ``const`` / ``constexpr_*`` ops are evaluated at prepare time
(they are compile-time constants on device too). Running the plan is then one flat loop (``run.py``).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from devicefit._lazy import coremltools
from devicefit.errors import KernelMissingError, ModelLoadError, first_line
from devicefit.interp import dtypes
from devicefit.interp.registry import Kernel, OpContext, get_kernel, opset_number

# coremltools.target values (Core ML specification versions) -> the iOS release of that opset.
_IOS_NAME = {6: "iOS15", 7: "iOS16", 8: "iOS17", 9: "iOS18", 10: "iOS26"}

KERNELS_HOME = "src/devicefit/interp/ops/ (register a function with @register(op_type, since=...))"


@dataclass
class TensorSpec:
    """An input, output or state of a function.

    Attributes:
        name: feature name.
        dtype: MIL dtype name (``"fp32"``, ``"fp16"``, ``"int32"``...).
        shape: the default / fixed shape.
        kind: ``"tensor"``, ``"image"`` or ``"state"``.
        shape_range: per-dimension ``(lower, upper)`` bounds (upper -1 = unbounded) for RangeDim inputs.
        enumerated_shapes: the allowed shapes for EnumeratedShapes inputs.
    """

    name: str
    dtype: str | None
    shape: tuple[int, ...] | None
    kind: str = "tensor"
    shape_range: list[tuple[int, int]] | None = None
    enumerated_shapes: list[tuple[int, ...]] | None = None

    @property
    def is_flexible(self) -> bool:
        return bool(self.shape_range or self.enumerated_shapes)

    def describe(self) -> str:
        if self.enumerated_shapes:
            shape = " | ".join("x".join(map(str, s)) for s in self.enumerated_shapes)
        elif self.shape_range:
            shape = "x".join(
                f"{lo}" if lo == hi else f"{lo}..{'inf' if hi < 0 else hi}" for lo, hi in self.shape_range
            )
        else:
            shape = "x".join(map(str, self.shape or ()))
        return f"{self.name}: {self.dtype}[{shape}]"


@dataclass
class Step:
    """One op of the plan, bound to its kernel."""

    kernel: Kernel
    op_type: str
    name: str
    consts: dict[str, Any]
    dyn: list[tuple[str, str]]
    dyn_attrs: list[tuple[str, Any]]
    variadic: list[tuple[str, list[tuple[str | None, Any]]]]
    outputs: list[str]
    round_fp16: list[int]
    ctx: OpContext
    held: list[torch.dtype | None]
    declared_shapes: list[tuple | None]
    # Derived once, read by the hot loop (run.py): the kernel function, whether arguments are only
    # constants + environment lookups (no conversions, variadics or context), and the single-output shape.
    fn: Any = field(init=False, repr=False)
    simple: bool = field(init=False, repr=False)
    single: bool = field(init=False, repr=False)
    out0: str = field(init=False, repr=False)
    held0: torch.dtype | None = field(init=False, repr=False)
    round0: bool = field(init=False, repr=False)

    def reads(self) -> list[str]:
        """Names of every value this op reads, including the reads of ops in its nested blocks."""
        found: list[str] = []
        for src in self.ctx.input_names.values():
            found.extend(src if isinstance(src, list) else [src])
        for block in self.ctx.blocks:
            for inner in block.steps:
                found.extend(inner.reads())
        return found

    def __post_init__(self) -> None:
        self.fn = self.kernel.fn
        self.simple = not (self.dyn_attrs or self.variadic or self.kernel.wants_ctx)
        self.single = len(self.outputs) == 1
        self.out0 = self.outputs[0] if self.outputs else ""
        self.held0 = self.held[0] if self.held else None
        self.round0 = 0 in self.round_fp16


@dataclass
class Block:
    """A sequence of steps with named inputs (bound per call) and outputs."""

    inputs: list[str]
    steps: list[Step]
    outputs: list[str]
    input_dtypes: list[str | None] = field(default_factory=list)


@dataclass
class FunctionPlan:
    name: str
    opset: int
    opset_name: str
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    states: list[TensorSpec]
    block: Block
    constants: dict[str, Any]
    op_counts: dict[str, int]
    pymil_function: Any = None


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
        from devicefit.interp.run import call_step

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


def _read_spec(source: Any) -> tuple[Any, str | None, str]:
    """(spec, weights_dir, origin) from a path or an in-memory MLModel."""
    ct = coremltools()
    if isinstance(source, ct.models.MLModel):
        return source.get_spec(), source.weights_dir, "<in-memory MLModel>"
    path = Path(os.fspath(source))
    origin = str(path)
    if not path.exists():
        raise ModelLoadError(f"model not found: {path} (expected a .mlpackage folder or .mlmodel file)")
    if path.is_dir():
        if not (path / "Manifest.json").exists():
            raise ModelLoadError(
                f"{path} is a folder but not an .mlpackage (no Manifest.json); pass the .mlpackage folder itself"
            )
        spec, weights_dir = _read_package(path)
        return spec, weights_dir, origin
    try:
        from coremltools.models.utils import load_spec

        spec = load_spec(str(path))
    except Exception as e:
        raise ModelLoadError(
            f"could not parse {path} as a Core ML model: {first_line(e)}; the file is truncated, corrupted "
            "or not a Core ML model"
        ) from e
    weights = path.parent / "weights"
    return spec, str(weights) if weights.exists() else None, origin


def _read_package(path: Path) -> tuple[Any, str | None]:
    """Read an .mlpackage without modifying it (coremltools' MLModel rewrites Manifest.json on load)."""
    import json

    from coremltools.proto import Model_pb2

    try:
        manifest = json.loads((path / "Manifest.json").read_text(encoding="utf-8"))
        root = manifest["rootModelIdentifier"]
        rel = manifest["itemInfoEntries"][root]["path"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ModelLoadError(
            f"{path}/Manifest.json is unreadable or incomplete ({first_line(e)}); the package is corrupted, re-export it"
        ) from e
    model_file = path / "Data" / rel
    if not model_file.is_file():
        raise ModelLoadError(
            f"{path} lacks its model file Data/{rel}; the package is incomplete, re-export it"
        )
    spec = Model_pb2.Model()
    try:
        spec.ParseFromString(model_file.read_bytes())
    except Exception as e:  # protobuf raises DecodeError and friends
        raise ModelLoadError(
            f"could not parse {model_file.name} in {path}: {first_line(e)}; the package is truncated or corrupted, "
            "re-export it"
        ) from e
    weights = model_file.parent / "weights"
    return spec, str(weights) if weights.is_dir() else None


def _feature_spec(feature: Any, dtype_hint: str | None) -> TensorSpec:
    t = feature.type
    kind = t.WhichOneof("Type")
    if kind == "imageType":
        img = t.imageType
        channels = 1 if img.colorSpace == 10 else 3  # GRAYSCALE == 10
        shape: tuple[int, ...] = (1, channels, int(img.height), int(img.width))
        spec = TensorSpec(feature.name, dtype_hint or "fp32", shape, kind="image")
        flex = img.WhichOneof("SizeFlexibility")
        if flex == "enumeratedSizes":
            spec.enumerated_shapes = [
                (1, channels, int(z.height), int(z.width)) for z in img.enumeratedSizes.sizes
            ]
        elif flex == "imageSizeRange":
            rng = img.imageSizeRange
            spec.shape_range = [
                (1, 1),
                (channels, channels),
                (int(rng.heightRange.lowerBound), int(rng.heightRange.upperBound)),
                (int(rng.widthRange.lowerBound), int(rng.widthRange.upperBound)),
            ]
        return spec
    if kind == "stateType":
        arr = t.stateType.arrayType
        return TensorSpec(
            feature.name,
            dtype_hint or dtypes.PROTO_ARRAY_DTYPE.get(arr.dataType, "fp16"),
            tuple(int(d) for d in arr.shape),
            kind="state",
        )
    if kind != "multiArrayType":
        return TensorSpec(feature.name, dtype_hint, None, kind=kind or "unknown")
    arr = t.multiArrayType
    shape = tuple(int(d) for d in arr.shape)
    spec = TensorSpec(feature.name, dtype_hint or dtypes.PROTO_ARRAY_DTYPE.get(arr.dataType), shape or None)
    flex = arr.WhichOneof("ShapeFlexibility")
    if flex == "shapeRange":
        spec.shape_range = [(int(r.lowerBound), int(r.upperBound)) for r in arr.shapeRange.sizeRanges]
    elif flex == "enumeratedShapes":
        spec.enumerated_shapes = [tuple(int(d) for d in s.shape) for s in arr.enumeratedShapes.shapes]
        if not spec.shape:
            spec.shape = spec.enumerated_shapes[0]
    if spec.shape_range and not spec.shape:
        spec.shape = tuple(lo for lo, _ in spec.shape_range)
    return spec


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
    description = _function_description(spec, name)
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
                _feature_spec(feat, dt)
                if feat is not None
                else TensorSpec(in_name, dt, _static_shape(var), kind="state")
            )
            st.kind = "state"
            states.append(st)
            continue
        feat = in_features.get(in_name)
        if feat is not None:
            inputs.append(_feature_spec(feat, dt))
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


def _function_description(spec: Any, name: str) -> Any:
    desc = spec.description
    if len(desc.functions):
        for f in desc.functions:
            if f.name == name:
                return f
        return None
    return desc


def load_pymil(source: Any) -> tuple[Any, Any, str]:
    """(pymil Program, spec, origin) for a path or MLModel, with clear errors for bad files."""
    spec, weights_dir, origin = _read_spec(source)
    kind = spec.WhichOneof("Type")
    if kind != "mlProgram":
        hint = (
            "re-convert it with coremltools.convert(..., convert_to='mlprogram')"
            if kind == "neuralNetwork"
            else "devicefit runs ML Programs only"
        )
        raise ModelLoadError(f"{origin} is a {kind or 'empty'} model, not an ML Program; {hint}")
    from coremltools.converters.mil.frontend.milproto.load import load as milproto_load

    if weights_dir is not None and not Path(weights_dir).exists():
        weights_dir = None
    _check_weight_blobs(spec, weights_dir, origin)
    try:
        with _variadic_dims_readable():
            prog = milproto_load(
                spec,
                specification_version=spec.specificationVersion,
                file_weights_dir=weights_dir or "",
            )
    except ModelLoadError:
        raise
    except Exception as e:
        raise ModelLoadError(
            f"could not load the ML Program in {origin}: {first_line(e)}; the package is corrupted or was "
            "written by an unsupported coremltools version"
        ) from e
    return prog, spec, origin


@contextlib.contextmanager
def _variadic_dims_readable() -> Iterator[None]:
    """Let coremltools' proto reader accept values of unknown rank (a variadic dim, e.g. ``fill`` with a
    run-time shape of run-time length), which it refuses with "Variadic dimensions not yet implemented".

    NOTE: patched only while loading, and the replacement only differs where the original raises.
    """
    from coremltools.converters.mil.frontend.milproto import helper
    from coremltools.converters.mil.mil import get_new_variadic_symbol

    original = helper.get_proto_dim

    def get_proto_dim(dim: Any) -> Any:
        if dim.WhichOneof("dimension") != "constant" and dim.unknown.variadic:
            return get_new_variadic_symbol()
        return original(dim)

    helper.get_proto_dim = get_proto_dim
    try:
        yield
    finally:
        helper.get_proto_dim = original


def _check_weight_blobs(spec: Any, weights_dir: str | None, origin: str) -> None:
    """Refuse blob references outside the weight file before the C++ reader sees them."""
    from devicefit.interp.weights import check_blob_file

    refs: dict[str, list[int]] = {}
    for fn in spec.mlProgram.functions.values():
        for blk in fn.block_specializations.values():
            _collect_blob_refs(blk, refs)
    if not refs:
        return
    if weights_dir is None:
        raise ModelLoadError(
            f"{origin} references weight files but has no weights folder; pass the whole .mlpackage"
        )
    for rel, offsets in refs.items():
        path = Path(weights_dir) / Path(rel).name
        check_blob_file(path, offsets, origin)


def _collect_blob_refs(block: Any, refs: dict[str, list[int]]) -> None:
    for op in block.operations:
        for attr in op.attributes.values():
            if attr.WhichOneof("value") == "blobFileValue":
                refs.setdefault(attr.blobFileValue.fileName, []).append(int(attr.blobFileValue.offset))
        for b in op.blocks:
            _collect_blob_refs(b, refs)
