"""Neural Engine placement rules, as data: one small function per published constraint.

Apple publishes no list of what falls back from the Neural Engine (NE); an Apple engineer says it
changes with device generation, OS version and tensor sizes (coremltools #1780). Each rule here encodes
one constraint reported in public material (the ``source``), so its verdict is a *likelihood*.

An op rule takes a pymil operation and returns a reason (str) or None. A program rule takes a
:class:`ProgramFacts` and returns a list of reasons. Severities: ``"fallback"`` (likely runs on CPU/GPU),
``"maybe"`` (may fall back), ``"warning"`` (stays on the NE but wastes memory or time).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from devicefit.analyze.flops import shape_of

__all__ = ["OP_RULES", "PROGRAM_RULES", "SEVERITIES", "OpRule", "ProgramFacts", "ProgramRule"]

SEVERITIES = ("fallback", "maybe", "warning")
MAX_POOL_KERNEL = 13
MAX_POOL_STRIDE = 2
MAX_UPSAMPLE_SCALE = 2
MAX_RANK = 5
MAX_DIM = 16384
MAX_NE_MODEL_BYTES = 1024**3  # Apple's "1 GB", read as 1 GiB
STATE_DIM_MULTIPLE = 32
UNSUPPORTED = "hollance/neural-engine docs/unsupported-layers.md"


@dataclass(frozen=True)
class OpRule:
    id: str
    title: str
    severity: str
    source: str
    fix: str
    check: Callable[[Any], str | None]


@dataclass
class ProgramFacts:
    """What program rules look at."""

    function: Any
    model_bytes: int
    flexible_inputs: dict[str, str] = field(default_factory=dict)  # name -> "range" | "enumerated"
    enumerated_counts: dict[str, int] = field(default_factory=dict)
    states: dict[str, tuple[int, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class ProgramRule:
    id: str
    title: str
    severity: str
    source: str
    fix: str
    check: Callable[[ProgramFacts], list[str]]


# ------------------------------------------------------------------ helpers
def _const(op: Any, param: str) -> Any:
    v = op.inputs.get(param)
    if v is None or isinstance(v, (list, tuple)):
        return None
    return v.val


def _tensors(op: Any) -> list[tuple[str, Any]]:
    """(role, value) of each shaped input and output; the role (``its input x``, ``its output``) names the
    value in a finding: the op's place (PyTorch module and line) is shown beside it, and a Core ML value name
    (``input_21_cast_fp16``) means nothing to the user."""
    vs: list[tuple[str, Any]] = []
    for param, v in op.inputs.items():
        vs.extend((f"its input {param}", x) for x in (v if isinstance(v, (list, tuple)) else [v]))
    vs.extend(("its output", v) for v in op.outputs)
    return [(role, v) for role, v in vs if shape_of(v)]


def _dtype(var: Any) -> str:
    from coremltools.converters.mil.mil import types

    try:
        return str(types.builtin_to_string(var.dtype))
    except Exception:
        return ""


def _fmt(shape: tuple[int, ...]) -> str:
    return "x".join("?" if d < 0 else str(d) for d in shape)


# ------------------------------------------------------------------ op rules
def _rnn(op: Any) -> str | None:
    return (
        f"{op.op_type} (recurrent layers) does not run on the NE"
        if op.op_type in ("lstm", "gru", "rnn")
        else None
    )


def _gather(op: Any) -> str | None:
    if op.op_type in ("gather", "gather_along_axis", "gather_nd"):
        return f"{op.op_type} (index lookup, e.g. an embedding) runs on the CPU"
    return None


def _topk(op: Any) -> str | None:
    return f"{op.op_type} runs on the CPU" if op.op_type in ("topk", "argsort") else None


def _dilation(op: Any) -> str | None:
    if op.op_type not in ("conv", "conv_transpose"):
        return None
    dil = _const(op, "dilations")
    if dil is not None and any(int(d) > 1 for d in dil):
        return f"dilated {op.op_type} (dilations {list(map(int, dil))}) may not run on the NE"
    return None


def _pooling(op: Any) -> str | None:
    if op.op_type not in ("avg_pool", "max_pool", "l2_pool"):
        return None
    k = [int(d) for d in (_const(op, "kernel_sizes") if _const(op, "kernel_sizes") is not None else [])]
    s = [int(d) for d in (_const(op, "strides") if _const(op, "strides") is not None else [])]
    if any(d > MAX_POOL_KERNEL for d in k) or any(d > MAX_POOL_STRIDE for d in s):
        return f"{op.op_type} kernel {k} / stride {s} exceeds the NE limits (kernel <= 13, stride <= 2)"
    return None


def _upsample(op: Any) -> str | None:
    if op.op_type in ("upsample_nearest_neighbor", "upsample_bilinear"):
        scales = [_const(op, "scale_factor_height"), _const(op, "scale_factor_width")]
        scale = max(float(s) for s in scales if s is not None) if any(s is not None for s in scales) else 1.0
    elif op.op_type in ("resize_nearest_neighbor", "resize_bilinear", "resize"):
        x, y = shape_of(op.inputs["x"]), shape_of(op.outputs[0])
        if not x or not y or len(x) < 2 or min(x[-2:]) <= 0 or min(y[-2:]) <= 0:
            return None
        scale = max(y[-1] / x[-1], y[-2] / x[-2])
    else:
        return None
    if scale > MAX_UPSAMPLE_SCALE:
        return f"{op.op_type} scale {scale:g} > 2 is not supported on the NE"
    return None


def _rank(op: Any) -> str | None:
    for role, v in _tensors(op):
        shape = shape_of(v) or ()
        if len(shape) > MAX_RANK:
            return f"{role} has rank {len(shape)} (the NE refuses rank >= 6)"
    return None


def _big_dim(op: Any) -> str | None:
    for role, v in _tensors(op):
        shape = shape_of(v) or ()
        if any(d > MAX_DIM for d in shape):
            return f"{role} [{_fmt(shape)}] has a dimension > 16384, which the NE refuses"
    return None


def _fp32(op: Any) -> str | None:
    if op.op_type == "cast":  # the boundary casts of an fp16 program are expected
        return None
    if any(_dtype(v) == "fp32" for v in op.outputs):
        return "computes in fp32; the NE computes in fp16 only"
    return None


def _last_axis_one(op: Any) -> str | None:
    for v in op.outputs:
        shape = shape_of(v) or ()
        if len(shape) >= 2 and shape[-1] == 1 and any(d > 1 for d in shape[:-1]):
            return (
                f"its output [{_fmt(shape)}] has last axis 1: padded to 64 bytes (up to 32x memory at fp16)"
            )
    return None


_BINARY = frozenset(
    "add sub mul real_div floor_div mod pow maximum minimum equal not_equal greater greater_equal less "
    "less_equal logical_and logical_or logical_xor".split()
)


def _broadcast(op: Any) -> str | None:
    if op.op_type not in _BINARY:
        return None
    a, b = shape_of(op.inputs.get("x")), shape_of(op.inputs.get("y"))
    if not a or not b or len(a) < 3 or len(b) < 3:
        return None
    a, b = a[-3:], b[-3:]
    if a == b or any(d <= 0 for d in a + b) or 1 in (max(a), max(b)):
        return None
    if any(da != db and 1 not in (da, db) for da, db in zip(a, b)):
        return None
    return f"broadcasting [{_fmt(a)}] with [{_fmt(b)}] (like CxHxW * Cx1x1)"


OP_RULES: tuple[OpRule, ...] = (
    OpRule("ANE-RNN", "recurrent layer", "fallback", f"{UNSUPPORTED}; coremltools #1780",
           "replace the RNN by convolutions/attention, or accept CPU for this part", _rnn),
    OpRule("ANE-GATHER", "gather / embedding lookup", "fallback",
           f"{UNSUPPORTED}; coremltools #1103; apple/ml-ane-transformers README",
           "keep lookups at the model's edge (embed outside the model) or use a one-hot matmul", _gather),
    OpRule("ANE-TOPK", "topk / argsort", "fallback", "roboflow/rf-detr PR #1495 (MLComputePlan)",
           "do top-k after the model, in app code", _topk),
    # NOTE: "maybe": hollance lists dilated convs among its self-declared guesses, while Apple ships DeepLabV3
    # (atrous convs) for the Neural Engine; a contested rule must not fail a model on its own
    OpRule("ANE-DILATION", "dilated convolution", "maybe", f"{UNSUPPORTED} (listed as a guess)",
           "if profiling shows it off the NE: an undilated kernel or space-to-batch around a plain convolution",
           _dilation),
    OpRule("ANE-POOL", "pooling kernel > 13 or stride > 2", "fallback", UNSUPPORTED,
           "split the pooling into smaller stages (kernel <= 13, stride <= 2)", _pooling),
    OpRule("ANE-UPSAMPLE", "upsampling scale > 2", "fallback", UNSUPPORTED,
           "chain x2 upsamplings or use a transposed convolution", _upsample),
    OpRule("ANE-RANK6", "tensor rank >= 6", "fallback", "onnxruntime #14212; apple/ml-vision-transformers-ane",
           "merge axes with reshape so every tensor has rank <= 5", _rank),
    OpRule("ANE-DIM16K", "dimension > 16384", "fallback", "onnxruntime #19543; coremltools #1003, #1260",
           "split the large axis (e.g. chunk a vocabulary projection)", _big_dim),
    OpRule("ANE-FP32", "fp32-typed op", "fallback", "coremltools docs: typed execution",
           "convert with compute_precision=ct.precision.FLOAT16 (check accuracy with devicefit)", _fp32),
    OpRule("ANE-LASTAXIS1", "last axis of size 1", "warning",
           "Apple: Deploying Transformers on the Apple Neural Engine",
           "put a larger axis last, e.g. the (B, C, 1, S) layout", _last_axis_one),
    OpRule("ANE-BROADCAST", "broadcasting CxHxW * Cx1x1", "maybe", f"{UNSUPPORTED}; docs/model-surgery.md",
           "expand the smaller operand explicitly or fold it into a convolution", _broadcast),
)  # fmt: skip


# ------------------------------------------------------------------ program rules
def _range_inputs(facts: ProgramFacts) -> list[str]:
    return [
        f"input {n} has a RangeDim shape: only its default shape runs on the NE"
        for n, kind in facts.flexible_inputs.items()
        if kind == "range"
    ]


def _too_big(facts: ProgramFacts) -> list[str]:
    if facts.model_bytes > MAX_NE_MODEL_BYTES:
        return [
            f"model is {facts.model_bytes / MAX_NE_MODEL_BYTES:.2f} GiB: over 1 GiB (1024**3 bytes) "
            "it cannot run on the NE on iPhone"
        ]
    return []


def _state_dims(facts: ProgramFacts) -> list[str]:
    return [
        f"state {n} [{_fmt(s)}] has a last dimension (width) not a multiple of 32 (fails on the NE on M4)"
        for n, s in facts.states.items()
        if s and s[-1] > 0 and s[-1] % STATE_DIM_MULTIPLE
    ]


def _too_many_enumerated(facts: ProgramFacts) -> list[str]:
    return [
        f"input {n} enumerates {c} shapes (> 128): the NE may not keep them all"
        for n, c in facts.enumerated_counts.items()
        if c > 128
    ]


PROGRAM_RULES: tuple[ProgramRule, ...] = (
    ProgramRule("ANE-RANGEDIM", "RangeDim flexible input", "maybe", "Apple developer forums thread 724930",
                "use ct.EnumeratedShapes (<= 128 shapes) instead of ct.RangeDim", _range_inputs),
    ProgramRule("ANE-ENUM128", "more than 128 enumerated shapes", "maybe", "coremltools docs flexible-inputs, faqs",
                "keep at most 128 enumerated shapes", _too_many_enumerated),
    ProgramRule("ANE-1GB", "model over 1 GB", "fallback",
                "coremltools docs mlmodel-utilities; apple/ml-stable-diffusion README",
                "split with ct.models.utils.bisect_model or compress the weights", _too_big),
    ProgramRule("ANE-STATE32", "state dimension not a multiple of 32", "fallback", "coremltools #2631",
                "pad the state's last dimension to a multiple of 32", _state_dims),
)  # fmt: skip
