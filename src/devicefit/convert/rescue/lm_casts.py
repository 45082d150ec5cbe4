"""Casts to bfloat16 (``aten::to(x, torch.bfloat16)``, ``x.bfloat16()``): language models' ALiBi tables.

Core ML has no bfloat16 type and coremltools 9.0 fails on the cast (``KeyError: 15``). Falcon's
``build_alibi_tensor`` (Falcon-RW and every ALiBi Falcon) rounds its slopes to bfloat16 and multiplies them by the
integer positions in bfloat16; dropping the rounding moves a 16-head model's logits to SNR 41.5 dB (measured), a
difference the fidelity bound calls a conversion problem. So the rounding is emulated, not dropped:

* the cast rounds to bfloat16 (8 significant bits, round to nearest even). A constant is rounded at conversion
  time by PyTorch itself; a computed value by :func:`round_bf16` (a grid step picked by comparisons with powers
  of two, then ``round``: every step exact in fp32 and fp16; magnitudes past 2^16 scaled into range by exact
  powers of two). The value stays in the program's float type: fp32 holds every bfloat16 exactly; fp16 holds its 8-bit mantissas but not its range (+-65504 where bfloat16
  reaches 3e38, and nothing below its subnormals). In an fp16 program a product is
  rounded to fp16 before bfloat16 (two roundings): one bfloat16 step off for 2.8% of a 16-head ALiBi table.
* arithmetic PyTorch then does *in* bfloat16 (an elementwise ``add`` / ``sub`` / ``mul`` / ``real_div`` of a
  bfloat16 tensor with integer tensors or scalars, through reshapes) is rebuilt when the value is cast back to a
  float type: integer tensor operands rounded to bfloat16 as PyTorch promotes them, each result rounded. Other
  bfloat16 arithmetic runs at the program's precision without bfloat16's rounding of each result.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from devicefit.convert.rescue._mil import frontend, select
from devicefit.convert.rescue._registry import DELEGATED, rescue

BF16 = 15  # torch's ScalarType number for bfloat16 (TorchScript passes dtypes as these)
FLOATS = {5: "fp16", 6: "fp32", 7: "fp32"}  # half, float, double (Core ML has no fp64: coremltools uses fp32)
MARK = "__bf16"  # suffix of the vars holding bfloat16 values (a MIL Var takes no attributes)
_BINARY = ("add", "sub", "mul", "real_div")
_SHAPE = ("reshape", "expand_dims", "squeeze", "transpose")
_MAX_DEPTH = 8  # how far back a cast to float looks for the bfloat16 value it ends


@rescue(
    "to", "coremltools 9.0 has no bfloat16 (KeyError: 15): casts to it fail (Falcon's ALiBi)", override=True
)
def to(context: Any, node: Any) -> object:
    """``x.to(torch.bfloat16)`` rounds to bfloat16; ``y.to(float)`` of a bfloat16 ``y`` rebuilds its arithmetic
    in bfloat16 (see the module docstring); every other cast is coremltools' own translation."""
    from coremltools.converters.mil.mil import Builder as mb

    ops = frontend()
    inputs = ops._get_inputs(context, node)
    dtype = _dtype(context, node, inputs)
    if dtype == BF16:
        x = inputs[0]
        if x.can_be_folded_to_const():
            context.add(mb.const(val=_rounded(x.val), name=node.name + MARK), torch_name=node.name)
        else:
            x = x if x.dtype == _fp32() else mb.cast(x=x, dtype="fp32")
            context.add(round_bf16(x, node.name + MARK), torch_name=node.name)
        return None
    if dtype in FLOATS:
        rebuilt = _rebuild(inputs[0], 0)
        if rebuilt is not None:
            context.add(mb.cast(x=rebuilt, dtype=FLOATS[dtype], name=node.name), torch_name=node.name)
            return None
    ops.to(context, node)  # coremltools' own translation
    return DELEGATED


def _fp32() -> Any:
    from coremltools.converters.mil.mil import types

    return types.fp32


def _dtype(context: Any, node: Any, inputs: list) -> int | None:
    """The torch dtype number of the cast (TorchScript's positional forms, as coremltools reads them)."""
    position = {4: 1, 5: 1, 6: 2, 7: 1, 8: 1}.get(len(inputs))
    var = inputs[position] if position is not None else None
    if var is None:
        var = frontend()._get_kwinputs(context, node, "dtype", default=[None])[0]
    value = getattr(var, "val", var)
    if value is None:
        return None
    if not isinstance(value, int | np.integer):
        from coremltools.converters.mil.frontend.torch.utils import TORCH_DTYPE_TO_NUM

        value = TORCH_DTYPE_TO_NUM.get(value, BF16 if "bfloat16" in str(value) else None)
    return None if value is None else int(value)


# (scale exponent s, threshold exponent t): |x| >= 2^t is rounded as x * 2^-s on the ladder, then scaled back by
# 2^s; the scaled value lands in the ladder's range [2^-30, 2^16) (fp32 reaches 2^128)
_LARGE = ((45, 16), (90, 61), (112, 106))
# likewise below: |x| < 2^-t is rounded as x * 2^s (t = 30, 75, 120 -> [2^-30, 2^16) again, and
# [2^-126, 2^-120) -> [2^-26, 2^-20)); under 2^-126 (subnormal) bfloat16's step is fixed, 2^-133
_SMALL = ((45, 30), (90, 75), (100, 120))


def round_bf16(x: Any, name: str | None = None) -> Any:
    """``x`` rounded to bfloat16's 8 significant bits, to nearest even (``round`` is), as MIL ops.

    :func:`_round_on_ladder` rounds ``2^-30 <= |x| < 2^16`` exactly in fp16 and fp32 programs alike (fp16 holds
    nothing outside it but 0). Other magnitudes (fp32 programs only) are scaled into that range by an exact
    power of two, rounded there and scaled back; fp32 subnormals (below 2^-126) round on bfloat16's fixed
    subnormal step 2^-133. Exact over fp32's whole range. The level tests compare ``|x|`` times a power of two
    with a constant in fp16's range: a constant past 65504 would become the fp16-safe 32752 in an fp16 program
    and send its values down the wrong level; one under fp16's smallest only underflows to 0 (never selected).
    """
    from coremltools.converters.mil.mil import Builder as mb

    def scaled(v: Any, up: float, down: float) -> Any:
        return mb.mul(x=_round_on_ladder(mb.mul(x=v, y=np.float32(up))), y=np.float32(down))

    magnitude = mb.abs(x=x)
    result = _round_on_ladder(x)
    for scale, threshold in _LARGE:
        use = mb.greater_equal(x=mb.mul(x=magnitude, y=np.float32(2.0**-threshold)), y=np.float32(1.0))
        result = select(cond=use, a=scaled(x, 2.0**-scale, 2.0**scale), b=result)
    tiny = mb.mul(x=magnitude, y=np.float32(2.0**14))
    for scale, threshold in _SMALL:
        use = mb.less(x=tiny, y=np.float32(2.0 ** (14 - threshold)))
        result = select(cond=use, a=scaled(x, 2.0**scale, 2.0**-scale), b=result)
    # subnormal: round(x / 2^-133) * 2^-133, each factor split in two (2^133 is past fp32's range)
    steps = mb.round(x=mb.mul(x=mb.mul(x=x, y=np.float32(2.0**120)), y=np.float32(2.0**13)))
    subnormal = mb.mul(x=mb.mul(x=steps, y=np.float32(2.0**-13)), y=np.float32(2.0**-120))
    use = mb.less(x=tiny, y=np.float32(2.0 ** (14 - 126)))
    return select(cond=use, a=subnormal, b=result, **({"name": name} if name else {}))


def _round_on_ladder(x: Any) -> Any:
    """``x`` rounded to bfloat16 where ``2^-30 <= |x| < 2^16``; ``x`` below; a finer grid above (see callers).

    The grid step ``2^(floor(log2 |x|) - 7)`` is the largest of ``2^(k - 7)`` over the powers ``2^k`` (k in
    -30..15) that ``|x|`` reaches; then ``round(x / step) * step``. Comparisons and powers of two are exact in
    fp16 and fp32 alike, so both programs pick the same step for the same value (a logarithm would not: fp16's
    misses powers of two).
    """
    from coremltools.converters.mil.mil import Builder as mb
    from coremltools.converters.mil.mil.types.type_mapping import builtin_to_string

    powers = np.arange(-30, 16)
    reached = mb.greater_equal(x=mb.expand_dims(x=mb.abs(x=x), axes=[-1]), y=np.float32(2.0) ** powers)
    # NOTE: a product with the 0/1 mask, not select(reached, steps, 0): coremltools types a select by a and b
    # alone, so that declared the candidates (46,) and the step a scalar whatever x's shape
    mask = mb.cast(x=reached, dtype=builtin_to_string(x.dtype))
    candidates = mb.mul(x=mask, y=np.float32(2.0) ** (powers - 7))
    step = mb.reduce_max(x=candidates, axes=[-1], keep_dims=False)
    # the step is at least 2^-37, or 0 below 2^-30 (2^-24 in fp16): there the division gets 1, the select keeps x
    has_step = mb.greater(x=step, y=np.float32(0.0))
    divisor = select(cond=has_step, a=step, b=np.float32(1.0))
    rounded = mb.mul(x=mb.round(x=mb.real_div(x=x, y=divisor)), y=step)
    return select(cond=has_step, a=rounded, b=x)


def _rounded(value: Any) -> np.ndarray:
    """A constant rounded to bfloat16 by PyTorch itself (as float32)."""
    import torch

    return torch.tensor(np.asarray(value, dtype=np.float32)).bfloat16().float().numpy()


def _is_bf16(var: Any) -> bool:
    return str(getattr(var, "name", "")).endswith(MARK)


def _rebuild(var: Any, depth: int) -> Any:
    """``var`` computed as PyTorch computes it in bfloat16, or None when ``var`` is not a bfloat16 value."""
    from coremltools.converters.mil.mil import Builder as mb
    from coremltools.converters.mil.mil import types

    if _is_bf16(var):
        return var
    op = getattr(var, "op", None)
    if op is None or depth > _MAX_DEPTH:
        return None
    if op.op_type in _SHAPE:
        inner = _rebuild(op.x, depth + 1)
        if inner is None:
            return None
        kwargs = {k: v for k, v in op.inputs.items() if k != "x"}
        return getattr(mb, op.op_type)(x=inner, **kwargs)
    if op.op_type not in _BINARY or not any(_is_bf16_derived(v, depth + 1) for v in (op.x, op.y)):
        return None  # checked first: nothing is built for the casts of ordinary models
    operands = []
    for side in (op.x, op.y):
        bf16 = _rebuild(side, depth + 1)
        if bf16 is None and _from_integers(side):
            # PyTorch casts an integer tensor to the common dtype, bfloat16
            bf16 = mb.const(val=_rounded(side.val)) if side.val is not None else round_bf16(side)
        elif bf16 is None and side.rank == 0 and side.val is not None:
            bf16 = side  # a Python scalar stays a float in PyTorch's arithmetic
        operands.append(bf16)
    if any(o is None for o in operands):
        return None  # a float tensor operand: PyTorch promotes to its float type, the result is not bfloat16
    if operands[0].dtype != types.fp32 or operands[1].dtype != types.fp32:
        return None
    return round_bf16(getattr(mb, op.op_type)(x=operands[0], y=operands[1]))


def _is_bf16_derived(var: Any, depth: int = 0) -> bool:
    if _is_bf16(var):
        return True
    op = getattr(var, "op", None)
    if op is None or depth > _MAX_DEPTH:
        return False
    if op.op_type in _SHAPE:
        return _is_bf16_derived(op.x, depth + 1)
    return op.op_type in _BINARY and any(_is_bf16_derived(v, depth + 1) for v in (op.x, op.y))


def _from_integers(var: Any) -> bool:
    """A float tensor cast from an integer one (how coremltools promotes ``bfloat16 * int64``)."""
    from coremltools.converters.mil.mil import types

    op = getattr(var, "op", None)
    if op is not None and op.op_type == "cast":
        return bool(types.is_int(op.x.dtype))
    if var.val is None or var.rank == 0:
        return False
    # coremltools' promote_input_dtypes replaces an integer constant by a float one named ``..._promoted``
    promoted = str(var.name).endswith("_promoted") and bool(np.all(np.mod(np.asarray(var.val), 1) == 0))
    return promoted or bool(types.is_int(var.dtype))
