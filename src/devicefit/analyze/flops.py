"""FLOPs and bytes moved per op of an ML Program (pymil), for latency bounds and lint summaries.

Conventions (the usual ones, so numbers compare with other tools): a multiply-accumulate is 2 FLOPs;
elementwise ops cost 1 FLOP per output element whatever their function (exp, sigmoid, gelu...);
softmax and normalizations cost a few FLOPs per element (constants below). Bytes moved = every tensor
input (weights included) read once + every output written once, at its declared dtype: a lower bound
that ignores caches spilling and layout padding. Ops with no formula here count bytes only
(``OpCost.known`` is False). Dimensions that are symbolic (flexible shapes) count as 1 and set
``OpCost.symbolic``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from devicefit import dtypes

__all__ = ["OpCost", "count_ops", "function_costs", "iter_ops", "op_cost", "total"]

SOFTMAX_FLOPS_PER_ELEMENT = 5  # max, subtract, exp, sum, divide
NORM_FLOPS_PER_ELEMENT = 5  # mean, subtract, square+sum, scale, shift
BATCH_NORM_FLOPS_PER_ELEMENT = 2  # inference: one scale and one shift
PARAMETER_MAX_ELEMENTS = 16
SKIPPED_OPS = frozenset({"const"})  # compile-time values, no work at run time


@dataclass(frozen=True)
class OpCost:
    """The work of one op.

    Attributes:
        op_type: MIL op type.
        name: the op's name (its first output name when it has one).
        flops: floating-point operations (multiply-accumulate = 2).
        bytes_read: bytes of all tensor inputs, weights included.
        bytes_written: bytes of all outputs.
        known: False when no FLOPs formula exists for ``op_type`` (bytes still count).
        symbolic: True when a flexible (symbolic) dimension was counted as 1.
    """

    op_type: str
    name: str
    flops: int
    bytes_read: int
    bytes_written: int
    known: bool = True
    symbolic: bool = False

    @property
    def bytes_moved(self) -> int:
        return self.bytes_read + self.bytes_written


# ------------------------------------------------------------------ shapes and sizes
def shape_of(var: Any) -> tuple[int, ...] | None:
    """A var's shape with symbolic dims as -1, or None when it is not a tensor/scalar."""
    try:
        shape = var.shape
    except Exception:
        return None
    if shape is None:
        return None
    return tuple(int(d) if isinstance(d, int) or hasattr(d, "__index__") else -1 for d in shape)


def numel(var: Any) -> int:
    shape = shape_of(var)
    if shape is None:
        return 0
    return math.prod(max(d, 1) for d in shape)


def dtype_bytes(var: Any) -> int:
    from coremltools.converters.mil.mil import types

    try:
        name = types.builtin_to_string(var.dtype)
    except Exception:
        return 0
    # NOTE: sub-byte types (int4, uint1..uint6) count as one byte per element, as a kernel reads them.
    return max(int(dtypes.bytes_per_element(name)), 1)


def nbytes(var: Any) -> int:
    return numel(var) * dtype_bytes(var)


def _is_symbolic(var: Any) -> bool:
    shape = shape_of(var)
    return shape is not None and any(d < 0 for d in shape)


def _input_vars(op: Any) -> list[Any]:
    out: list[Any] = []
    for v in op.inputs.values():
        out.extend(v if isinstance(v, (list, tuple)) else [v])
    return out


def _val(op: Any, param: str, default: Any = None) -> Any:
    v = op.inputs.get(param)
    if v is None or isinstance(v, (list, tuple)):
        return default
    return v.val if v.val is not None else default


# ------------------------------------------------------------------ FLOPs registry
FlopsFn = Callable[[Any], int]
_FLOPS: dict[str, FlopsFn] = {}


def _flops(*op_types: str) -> Callable[[FlopsFn], FlopsFn]:
    def deco(fn: FlopsFn) -> FlopsFn:
        for t in op_types:
            _FLOPS[t] = fn
        return fn

    return deco


def _out(op: Any) -> int:
    return numel(op.outputs[0]) if op.outputs else 0


def _bias(op: Any) -> int:
    return _out(op) if op.inputs.get("bias") is not None else 0


@_flops("conv")
def _conv(op: Any) -> int:
    w = shape_of(op.inputs["weight"]) or ()
    return 2 * _out(op) * math.prod(max(d, 1) for d in w[1:]) + _bias(op)


@_flops("conv_transpose")
def _conv_transpose(op: Any) -> int:
    # weight [Cin, Cout/groups, *k]: every input element scatters into Cout/groups * k outputs
    w = shape_of(op.inputs["weight"]) or ()
    return 2 * numel(op.inputs["x"]) * math.prod(max(d, 1) for d in w[1:]) + _bias(op)


@_flops("linear")
def _linear(op: Any) -> int:
    w = shape_of(op.inputs["weight"]) or (1, 1)
    return 2 * _out(op) * max(w[-1], 1) + _bias(op)


@_flops("matmul")
def _matmul(op: Any) -> int:
    x = shape_of(op.inputs["x"]) or (1,)
    k = x[-2] if _val(op, "transpose_x", False) and len(x) > 1 else x[-1]
    return 2 * _out(op) * max(k, 1)


@_flops("einsum")
def _einsum(op: Any) -> int:
    # One multiply-add per point of the full index space: 2 x the product of every index letter's size.
    vals = op.inputs.get("values") or []
    equation = _val(op, "equation", "")
    inputs = str(equation).replace(" ", "").split("->")[0].split(",") if equation else []
    if not vals or "." in str(equation) or len(inputs) != len(vals):
        return _out(op)
    sizes: dict[str, int] = {}
    for letters, var in zip(inputs, vals):
        shape = shape_of(var)
        if shape is None or len(shape) != len(letters):
            return _out(op)
        for letter, dim in zip(letters, shape):
            sizes[letter] = max(sizes.get(letter, 1), max(dim, 1))
    return 2 * math.prod(sizes.values())


@_flops("scaled_dot_product_attention")
def _sdpa(op: Any) -> int:
    q = shape_of(op.inputs["query"]) or (1, 1)
    k = shape_of(op.inputs["key"]) or (1, 1)
    v = shape_of(op.inputs["value"]) or (1, 1)
    scores = math.prod(max(d, 1) for d in q[:-1]) * max(k[-2], 1)  # batch x L x S
    return 2 * scores * max(q[-1], 1) + 2 * scores * max(v[-1], 1) + SOFTMAX_FLOPS_PER_ELEMENT * scores


@_flops("avg_pool", "max_pool", "l2_pool")
def _pool(op: Any) -> int:
    k = _val(op, "kernel_sizes", [1])
    return _out(op) * math.prod(int(d) for d in k)


@_flops("softmax", "log_softmax")
def _softmax(op: Any) -> int:
    return SOFTMAX_FLOPS_PER_ELEMENT * _out(op)


@_flops("layer_norm", "instance_norm", "l2_norm", "local_response_norm")
def _norm(op: Any) -> int:
    return NORM_FLOPS_PER_ELEMENT * _out(op)


@_flops("batch_norm")
def _batch_norm(op: Any) -> int:
    return BATCH_NORM_FLOPS_PER_ELEMENT * _out(op)


@_flops("lstm", "gru", "rnn")
def _recurrent(op: Any) -> int:
    # every weight matrix multiplies once per time step and batch row; gates add ~10 FLOPs per unit
    x = shape_of(op.inputs["x"]) or (1, 1, 1)
    steps_rows = max(x[0], 1) * max(x[1], 1) if len(x) >= 2 else 1
    matmul = sum(
        2 * steps_rows * numel(v)
        for p, v in op.inputs.items()
        if p.startswith("weight") and not isinstance(v, (list, tuple))
    )
    return matmul + 10 * steps_rows * (shape_of(op.outputs[0]) or (1,))[-1]


def _per_output_element(op: Any) -> int:
    return _out(op)


def _per_input_element(op: Any) -> int:
    return numel(op.inputs["x"]) if "x" in op.inputs else _out(op)


_ELEMENTWISE = (
    "add sub mul real_div floor_div mod pow maximum minimum equal not_equal greater greater_equal less "
    "less_equal logical_and logical_or logical_xor logical_not abs acos asin atan atanh ceil clip cos cosh "
    "erf exp exp2 floor inverse log round rsqrt sign sin sinh sqrt square tan tanh threshold relu relu6 "
    "leaky_relu prelu elu sigmoid sigmoid_hard silu gelu softplus softplus_parametric softsign "
    "scaled_tanh linear_activation clamped_relu thresholded_relu select"
).split()
for _t in _ELEMENTWISE:
    _FLOPS[_t] = _per_output_element
for _t in (
    "cast reshape transpose concat split slice_by_index slice_by_size squeeze expand_dims identity tile pad "
    "gather gather_along_axis gather_nd scatter scatter_along_axis scatter_nd stack pixel_shuffle "
    "pixel_unshuffle space_to_depth depth_to_space shape fill range_1d band_part read_state write_state "
    "sliding_windows reverse reverse_sequence flatten2d"
).split():
    _FLOPS[_t] = lambda op: 0  # data movement only: bytes count, no arithmetic
for _t in (
    "reduce_sum reduce_mean reduce_max reduce_min reduce_prod reduce_l1_norm reduce_l2_norm "
    "reduce_log_sum reduce_log_sum_exp reduce_sum_square reduce_argmax reduce_argmin cumsum"
).split():
    _FLOPS[_t] = _per_input_element


# ------------------------------------------------------------------ public API
def _is_parameter(var: Any) -> bool:
    """Small non-float constants (strides, pads, axes, shapes) configure an op; they are not data it moves."""
    if var.val is None or isinstance(var.val, str):
        return var.val is not None
    return bool(dtype_bytes(var)) and not _is_float(var) and numel(var) <= PARAMETER_MAX_ELEMENTS


def _is_float(var: Any) -> bool:
    from coremltools.converters.mil.mil import types

    try:
        return bool(types.is_float(var.dtype))
    except Exception:
        return False


def op_cost(op: Any) -> OpCost:
    """FLOPs and bytes of one pymil operation (small integer parameter constants excluded from bytes)."""
    ins = [v for v in _input_vars(op) if shape_of(v) is not None and not _is_parameter(v)]
    outs = [v for v in op.outputs if shape_of(v) is not None]
    fn = _FLOPS.get(op.op_type)
    flops = int(fn(op)) if fn is not None else 0
    name = op.outputs[0].name if op.outputs else op.name
    return OpCost(
        op_type=op.op_type,
        name=name,
        flops=flops,
        bytes_read=sum(nbytes(v) for v in ins),
        bytes_written=sum(nbytes(v) for v in outs),
        known=fn is not None,
        symbolic=any(_is_symbolic(v) for v in ins + outs),
    )


def iter_ops(block: Any) -> Iterator[Any]:
    """The operations of a pymil block in program order, nested blocks included (const ops skipped)."""
    for op in block.operations:
        if op.op_type in SKIPPED_OPS:
            continue
        yield op
        for inner in op.blocks:
            yield from iter_ops(inner)


def function_costs(function: Any) -> list[OpCost]:
    """One :class:`OpCost` per operation of a pymil Function (loop bodies count once)."""
    return [op_cost(op) for op in iter_ops(function) if not op.op_type.startswith("constexpr_")]


def total(costs: list[OpCost]) -> OpCost:
    """The sum of ``costs`` as one OpCost named ``"total"``."""
    return OpCost(
        op_type="total",
        name="total",
        flops=sum(c.flops for c in costs),
        bytes_read=sum(c.bytes_read for c in costs),
        bytes_written=sum(c.bytes_written for c in costs),
        known=all(c.known for c in costs),
        symbolic=any(c.symbolic for c in costs),
    )


def count_ops() -> list[str]:
    """Op types with a FLOPs formula."""
    return sorted(_FLOPS)


@dataclass
class ResolvedFunction:
    """A pymil Function with the spec and origin it came from (spec None for a bare pymil object)."""

    function: Any
    spec: Any
    origin: str
    name: str


def resolve_function(model: Any, function: str | None = None) -> ResolvedFunction:
    """Accept an interp Program, a pymil Program or Function, an MLModel or a model path.

    Raises:
        ModelLoadError: the path is not a readable ML Program.
        InputError: ``function`` is not a function of the model.
    """
    from devicefit.errors import InputError

    if hasattr(model, "pymil_function") and hasattr(model, "spec"):  # devicefit.interp.Program
        return ResolvedFunction(model.pymil_function, model.spec, str(model.origin), str(model.function))
    if hasattr(model, "operations") and hasattr(model, "inputs"):  # pymil Function
        return ResolvedFunction(model, None, "<pymil function>", getattr(model, "name", "main") or "main")
    spec = None
    origin = "<pymil program>"
    if hasattr(model, "functions") and not hasattr(model, "get_spec"):  # pymil Program
        prog = model
    else:
        from devicefit.interp.program import load_pymil

        prog, spec, origin = load_pymil(model)
    names = list(prog.functions.keys())
    if function is None:
        default = (spec.description.defaultFunctionName if spec is not None else "") or "main"
        function = default if default in names else names[0]
    if function not in names:
        raise InputError(f"no function {function!r} in {origin}; its functions are: {', '.join(names)}")
    return ResolvedFunction(prog.functions[function], spec, origin, function)
