"""Which outputs hold class scores, and along which axis (the rule is in docs/metrics.md).

Top-k agreement compares the *classes* a model ranks first. A classifier's ``N x C`` logits hold classes on the
last axis, and so do a transformer's token-wise ``N x L x C`` logits; a segmentation head's ``N x C x H x W``
(or a 1-D conv head's ``N x C x L``) holds them on axis 1, and top-k over its last (spatial) axis would rank
pixels of a row, which nobody ships on. The class axis is therefore decided from evidence that holds for any
model, in this order:

1. the user's word (``check --class-axis NAME:AXIS``, or ``NAME:none`` for "not class scores");
2. names that say what the output is: features (``last_hidden_state``, ``pred_boxes``...) have no class axis;
3. the op that computes the output in the program: walking back through ops that keep the axes (casts,
   resizes, softmax, bias adds, slices) to a ``conv`` / ``conv_transpose`` head (channels on axis 1: Core ML
   convolutions are channel-first), a ``linear`` / ``matmul`` head (last axis), or a ``softmax`` (its axis),
   following ``transpose`` permutations on the way; an output a normalisation or a hidden activation computes
   (``layer_norm``, an L2 normalisation ``x / ||x||``, ``gelu``, ``silu``...) holds features and gets no top-k
   unless its name says scores, also once pooled or reshaped (a sentence embedding: the mean or first token of
   hidden states); so does a linear head whose PyTorch module is named as a projection or embedding
   (``projection_head``, ``visual_projection``: the package's provenance) or whose result also feeds further
   layers (a hidden state returned beside the logits it feeds);
4. otherwise rank-2 outputs use their last axis (axis 0 holds samples); a rank >= 3 output with no evidence
   gets no top-k (unknown is reported as such, never guessed from the shape).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from devicefit.compare.head_evidence import divides_by_norm, head_label, hidden_head
from devicefit.errors import InputError

# Output names that hold features, not class scores: top-k agreement over them (384 hidden units of an
# embedding, 4 box coordinates) measures nothing a user ships on, and near-tied features flip their argmax
# under fp16 weight rounding alone (a trained MiniLM's last_hidden_state: top-1 0.988 at 56 dB SNR).
FEATURE_NAME = re.compile(r"hidden|embed|pooler|feature|state|latent|encoder_out|box|coord|depth|flow|vector")
SCORE_NAME = re.compile(r"logit|score|prob|class|pred(?!_?box)")

# Ops whose output keeps the input's axes in place (elementwise, resampling, normalising over an axis,
# slicing): the class axis of their output is the class axis of their data input.
_AXIS_KEEPING = frozenset(
    {
        "cast", "identity", "add", "sub", "mul", "real_div", "maximum", "minimum", "clip", "sigmoid", "log_softmax",
        "tanh", "relu", "batch_norm", "instance_norm", "upsample_bilinear", "upsample_nearest_neighbor",
        "resize_bilinear", "resize_nearest_neighbor", "resize", "crop", "slice_by_index", "slice_by_size", "pad",
    }
)  # fmt: skip
# Ops that pool or reshape: features stay features through them (a sentence embedding is the mean, or the
# first token, of a LayerNorm's hidden states), but a head's class axis is not followed through them.
_RESHAPING = frozenset(
    {
        "reduce_mean", "reduce_sum", "reduce_max", "reduce_min", "gather", "squeeze", "expand_dims", "reshape",
    }
)  # fmt: skip
_CHANNEL_FIRST_HEADS = frozenset({"conv", "conv_transpose"})
_LAST_AXIS_HEADS = frozenset({"linear", "matmul"})
# Ops that make features, not class scores, when they compute an output: a normalisation over the feature
# axis (a transformer's final LayerNorm, an L2-normalised embedding) or a smooth hidden activation (GELU, SiLU).
# A classifier's scores leave a linear / conv head raw, or through a softmax / sigmoid; top-k over such
# features (an unnamed N x L x 384 hidden state) measures nothing a user ships on.
# NOTE: not tanh (logit soft-capping, Gemma 2's 30 * tanh(logits / 30), keeps the head's class axis) nor
# ReLU (SqueezeNet's class maps pass a ReLU before their global pooling).
_FEATURE_OPS = frozenset(
    {
        "layer_norm", "l2_norm", "local_response_norm", "gelu", "silu", "elu", "softplus", "softsign",
    }
)  # fmt: skip


@dataclass(frozen=True)
class ClassAxis:
    """Where an output holds class scores.

    Attributes:
        axis: the class axis (non-negative), or None when the output holds no class scores (no top-k).
        evidence: why, for the report: ``"conv head (op_23)"``, ``"--class-axis"``, ``"last axis"``...
        rank: the rank of the output the evidence was read from (None: any rank).
    """

    axis: int | None
    evidence: str
    rank: int | None = None


def parse_class_axes(specs: list[str] | None) -> dict[str, int | None]:
    """``["mask:1", "embedding:none"]`` -> ``{"mask": 1, "embedding": None}`` (``--class-axis NAME:AXIS``).

    Raises:
        InputError: a spec that is not ``NAME:AXIS`` with an integer or ``none`` axis.
    """
    out: dict[str, int | None] = {}
    for spec in specs or []:
        name, sep, axis = spec.rpartition(":")
        if not sep or not name:
            raise InputError(f"--class-axis {spec!r} is not NAME:AXIS; e.g. logits:1, or embedding:none")
        if axis.strip().lower() == "none":
            out[name] = None
            continue
        try:
            out[name] = int(axis)
        except ValueError:
            raise InputError(
                f"--class-axis {spec!r}: the axis must be an integer or 'none', e.g. logits:1"
            ) from None
    return out


def head_axes(program: Any, provenance: Any = None) -> dict[str, ClassAxis]:
    """Output name -> the class axis its computing op implies (axis None: features; no evidence: left out).

    Args:
        program: a :class:`devicefit.interp.Program`.
        provenance: the program's :class:`~devicefit.convert.provenance.Provenance` (the PyTorch module of
            each op); None reads the one the package stores, if any.
    """
    block = program.plan.block
    producer = {name: step for step in block.steps for name in step.outputs}
    consumers: dict[str, list[Any]] = {}
    for step in block.steps:
        for source in step.ctx.input_names.values():
            if isinstance(source, str):
                consumers.setdefault(source, []).append(step)
    if provenance is None:
        provenance = _stored_provenance(program)
    found: dict[str, ClassAxis] = {}
    for name in block.outputs:
        hint = _trace(name, producer, consumers, provenance)
        if hint is not None:
            found[name] = hint
    return found


def _stored_provenance(program: Any) -> Any:
    from devicefit.convert.provenance import load_from_package

    try:
        return load_from_package(program)
    except Exception:  # NOTE: module names are extra evidence: the op rules stand without them
        return None


def _rank(step: Any, i: int = 0) -> int | None:
    shape = step.ctx.output_shapes[i] if i < len(step.ctx.output_shapes) else None
    return None if shape is None else len(shape)


def _trace(
    name: str, producer: dict[str, Any], consumers: dict[str, list[Any]] | None = None, provenance: Any = None
) -> ClassAxis | None:
    """Walk back from ``name`` to the head op; ``axis`` maps the head's class axis through transposes."""
    perms: list[list[int]] = []  # transposes met walking back, outermost first
    start = name
    path: list[Any] = []  # the ops walked through, output first
    reshaped = False  # a pooling / reshaping op was met: only feature evidence still says something
    for _ in range(64):  # heads sit a few ops before the output; a long chain is not a head
        step = producer.get(name)
        if step is None:
            return None
        rank = _rank(step)
        if rank is None:
            return None
        path.append(step)
        start_rank = _rank(producer[start], producer[start].outputs.index(start))
        if reshaped and step.op_type not in _FEATURE_OPS | _RESHAPING | _AXIS_KEEPING | {"transpose"}:
            return None  # a head's axis does not survive a pooling or a reshape (the shape rules decide)
        hidden = hidden_head(step, path, consumers or {}, provenance)
        if hidden is not None:
            return ClassAxis(None, hidden, start_rank)
        if step.op_type in _CHANNEL_FIRST_HEADS and rank >= 3:
            axis, why = 1, f"{step.op_type} head ({head_label(step, provenance)})"
        elif step.op_type in _LAST_AXIS_HEADS:
            axis, why = rank - 1, f"{step.op_type} head ({head_label(step, provenance)})"
        elif step.op_type == "softmax" and "axis" in step.consts:
            axis, why = int(step.consts["axis"]) % rank, f"softmax ({step.outputs[0]})"
        elif step.op_type in _FEATURE_OPS:
            why = f"computed by {step.op_type} ({step.outputs[0]}): features, not class scores"
            return ClassAxis(None, why, start_rank)
        elif step.op_type in ("real_div", "mul") and divides_by_norm(step, producer):
            why = f"L2-normalised ({step.outputs[0]}): an embedding, not class scores"
            return ClassAxis(None, why, start_rank)
        elif step.op_type == "transpose" and "perm" in step.consts:
            perms.append([int(p) % rank for p in step.consts["perm"]])
            name = step.ctx.input_names.get("x")
            continue
        elif step.op_type in _RESHAPING:
            reshaped, name = True, step.ctx.input_names.get("x")
            if not isinstance(name, str) or "x" in step.consts:
                return None
            continue
        elif step.op_type in _AXIS_KEEPING:
            source = _data_input(step, producer, None if reshaped else rank)
            if source is None and step.op_type.startswith("slice_by"):  # a slice that drops an axis (h[:, 0])
                reshaped, source = True, _data_input(step, producer, None)
            if source is None:
                return None
            name = source
            continue
        else:
            return None
        # output axis j of a transpose is its input axis perm[j]: map the head's axis outward
        for perm in reversed(perms):
            axis = perm.index(axis)
        return ClassAxis(axis, why, _rank(producer[start], producer[start].outputs.index(start)))
    return None


def _data_input(step: Any, producer: dict[str, Any], rank: int | None) -> str | None:
    """The computed (non-constant) input of the output's rank (any rank: None): the tensor whose axes it keeps."""
    for param in ("x", "y"):
        source = step.ctx.input_names.get(param)
        if isinstance(source, str) and param not in step.consts and source in producer:
            if rank is None or _rank(producer[source], producer[source].outputs.index(source)) == rank:
                return source
    return None


def decide(
    output: str,
    reference: np.ndarray,
    head: ClassAxis | None = None,
    user: Mapping[str, int | None] | None = None,
    labelled: bool = False,
) -> ClassAxis:
    """The class axis of one output (see the module docstring for the order of evidence).

    Args:
        output: the output's name.
        reference: its reference values (stacked over samples: axis 0 holds samples).
        head: what the program's head op implies (:func:`head_axes`), if anything.
        user: ``--class-axis`` overrides, output name -> axis or None.
        labelled: the output accuracy is read off (it holds class scores whatever its name).
    """
    ref = np.asarray(reference)
    if user and output in user:
        axis = user[output]
        if axis is None:
            return ClassAxis(None, "--class-axis none")
        if not -ref.ndim <= axis < ref.ndim or axis % ref.ndim == 0:
            raise InputError(
                f"--class-axis {output}:{axis} is outside the output's axes 1..{ref.ndim - 1} (shape "
                f"{'x'.join(map(str, ref.shape))}; axis 0 holds samples)"
            )
        return _sized(ref, axis % ref.ndim, "--class-axis")
    if ref.dtype.kind != "f" or ref.ndim < 2:
        # a rank-1 stack holds one value per sample (or several samples' vectors end to end): no class axis
        return ClassAxis(None, "not a float tensor with a class axis")
    lowered = output.lower()
    says_scores = labelled or bool(SCORE_NAME.search(lowered))
    if not says_scores and FEATURE_NAME.search(lowered):
        return ClassAxis(None, "named as features")
    if head is not None and head.rank in (None, ref.ndim):
        if head.axis is not None:
            return _sized(ref, head.axis, head.evidence)
        if not says_scores:
            return ClassAxis(None, head.evidence)
    if ref.ndim <= 2:
        return _sized(ref, ref.ndim - 1, "last axis")
    return ClassAxis(None, "class axis unknown (pass --class-axis NAME:AXIS)")


def _sized(ref: np.ndarray, axis: int, evidence: str) -> ClassAxis:
    if ref.shape[axis] <= 1:
        return ClassAxis(None, f"one element along the class axis ({evidence})")
    return ClassAxis(axis, evidence)


# ops whose integer output is an index into the scores they read (its values are labels, not magnitudes)
_INDEX_OPS = frozenset({"reduce_argmax", "reduce_argmin", "argsort", "topk"})
_PASS_THROUGH = frozenset({"cast", "identity", "reshape", "squeeze", "expand_dims"})


def source_op(program: Any, output: str) -> Any:
    """The step computing ``output``, walking back through casts and reshapes (None: a program input)."""
    producer = {name: step for step in program.plan.block.steps for name in step.outputs}
    step = producer.get(output)
    for _ in range(8):
        source = step.ctx.input_names.get("x") if step is not None and step.op_type in _PASS_THROUGH else None
        if not isinstance(source, str) or source not in producer:
            break
        step = producer[source]
    return step


def index_outputs(program: Any) -> dict[str, str | None]:
    """Output name -> the output holding the scores it indexes (topk's values when also an output, else None).

    Outputs computed by ``reduce_argmax`` / ``reduce_argmin`` / ``argsort`` / ``topk`` (its indices) hold class
    or position labels: label 3 vs 5 is a disagreement, not a relative error of 0.4.
    """
    block = program.plan.block
    producer = {name: step for step in block.steps for name in step.outputs}

    def origin(name: str) -> str:
        for _ in range(8):
            step = producer.get(name)
            if step is None or step.op_type not in _PASS_THROUGH or step.ctx.input_names.get("x") is None:
                break
            name = step.ctx.input_names["x"]
        return name

    by_origin = {origin(name): name for name in block.outputs}
    found: dict[str, str | None] = {}
    for name in block.outputs:
        current = origin(name)
        step = producer.get(current)
        if step is None or step.op_type not in _INDEX_OPS:
            continue
        if step.op_type == "topk":
            if len(step.outputs) < 2 or step.outputs[1] != current:
                continue  # topk's values are scores, not indices
            found[name] = by_origin.get(step.outputs[0])
        else:
            found[name] = None
    return found
