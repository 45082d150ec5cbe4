"""Tape rewrites of the compiled path that trade bit-identity for fewer kernel calls (ulp-level tolerance).

A recurrence that coremltools lowers to a ``while_loop`` (``nn.GRU``, a hand-written RNN cell) unrolls into a
tape of small kernel calls per time step, and at batch 1 the per-call cost is what the step costs. The default
build (``compile_program(..., exact=False)``) applies these general rewrites; none of them knows what a GRU is:

* **batched loop projections** (here): calls of one ``linear`` (the same weights and attributes: one op
  repeated by an unrolled ``while_loop``, or the ops of a traced Python loop) whose inputs do not depend on
  their own outputs become one call on the stacked inputs, split again (coremltools' per-step input
  projections ``x_t @ W_ih``; the hidden projections feed the recurrence and are left alone);
* **merged shared-input linears** (here): ``linear`` calls with constant weights reading the same value become
  one call with the weights concatenated, split again (the three gate projections of the hidden state);
* **forwarded row reads, collapsed row writes** (``rewrite_rows.py``): a loop's per-step buffer writes and
  reads become the values themselves and one write at the end;
* **fused elementwise chains** (``rewrite_fuse.py``, fp32 only): ``(1 - z) * a + z * b`` -> ``lerp``,
  ``x + u * v`` -> ``addcmul``;
* **half arithmetic** (``half_pass.py``, fp16 emulation): elementwise ops on float16 tensors, on the graph.

Each output element of a batched or merged ``linear`` is still the same dot product plus bias, and the
interpreter's held-dtype casts and fp16 roundings are applied where the interpreter applies them (fp16
emulation stays faithful: a value is rounded where the interpreter rounds it; the fusions, which would skip
roundings, are not applied in fp16). What can change is the BLAS kernel's summation order for a larger
matrix and the roundings a fused call saves, so a result may differ from the interpreter's in the last fp32
bits; after fp16 rounding that rarely shows, and when it does it is one fp16 ulp. The differences then go
through the rest of the model (a recurrence carries them on), which is why the compiled path checks the
rewritten graph against the interpreter with :data:`FP32_RTOL` / :data:`FP16_RTOL` (relative to the largest
magnitude of each output) and builds the exact graph instead when it is off by more.
``compile_program(..., exact=True)`` applies none of them.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from devicefit.interp.specialize import (
    CallEntry,
    FnEntry,
    RoundEntry,
    Slot,
    Tape,
    entry_reads,
    entry_writes,
    post_process,
)

# Tolerances of the check of a rewritten specialisation against the interpreter: per output,
# max |compiled - interpreter| <= RTOL * max |interpreter| (NaN where the interpreter has NaN).
# fp32: 2**-16 is 256 ulp of the largest value (a dot-product reordering is ~1 ulp per term; a recurrence
# propagates it). fp16 emulation: 2**-8 is 4 fp16 ulp of the largest value (one flipped rounding, carried on).
FP32_RTOL = 2.0**-16
FP16_RTOL = 2.0**-8

Entry = CallEntry | RoundEntry | FnEntry


@dataclass
class RewriteStats:
    """What :func:`rewrite_tape` changed.

    Attributes:
        batched_projections: groups of loop-repeated input projections now one call each.
        projections_batched: the calls those groups replaced.
        merged_linears: groups of shared-input linears now one call each.
        linears_merged: the calls those groups replaced.
        rows_forwarded: single-row reads of a loop's buffer replaced by the value written there.
        write_chains_collapsed: chains of single-row buffer writes now one write each.
        lerps: ``(1 - z) * a + z * b`` chains fused into ``torch.lerp`` (fp32 only, ``rewrite_fuse.py``).
        addcmuls: ``x + u * v`` chains fused into ``torch.addcmul`` (fp32 only).
    """

    batched_projections: int = 0
    projections_batched: int = 0
    merged_linears: int = 0
    linears_merged: int = 0
    rows_forwarded: int = 0
    write_chains_collapsed: int = 0
    lerps: int = 0
    addcmuls: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def fired(self) -> bool:
        return bool(
            self.batched_projections
            or self.merged_linears
            or self.rows_forwarded
            or self.write_chains_collapsed
            or self.lerps
            or self.addcmuls
        )


def rewrite_tape(tape: Tape) -> RewriteStats:
    """Apply the rewrites to ``tape`` in place; returns what fired."""
    stats = RewriteStats()
    from devicefit.interp.rewrite_fuse import fuse_elementwise
    from devicefit.interp.rewrite_rows import collapse_write_chains, forward_row_reads

    batch_loop_projections(tape, stats)
    merge_shared_input_linears(tape, stats)
    stats.rows_forwarded = forward_row_reads(tape)
    stats.write_chains_collapsed = collapse_write_chains(tape)
    stats.lerps, stats.addcmuls = fuse_elementwise(tape)
    return stats


# ------------------------------------------------------------------ helpers
_reads, _writes = entry_reads, entry_writes


def _linear_args(entry: Entry, tape: Tape) -> dict[str, Any] | None:
    """The arguments of a floating-point ``linear`` call on the interpreter's own kernel, or None."""
    from devicefit.interp.ops import linear as linear_ops

    if not isinstance(entry, CallEntry) or entry.step.kernel.fn is not linear_ops.linear:
        return None
    step = entry.step
    if step.dyn_attrs or step.variadic or len(step.outputs) != 1:
        return None
    args = dict(step.consts)
    args.update({param: entry.env[name] for param, name in step.dyn})
    x = args.get("x")
    if not isinstance(x, Slot) or any(isinstance(args.get(p), Slot) for p in ("weight", "bias")):
        return None
    meta = tape.meta.get(x.index)
    if meta is None or meta[1] != torch.float32 or not isinstance(args.get("weight"), torch.Tensor):
        return None
    return args


def _topological(nodes: list[tuple[int, list[int], list[int], Entry]]) -> list[Entry] | None:
    """Order ``(rank, reads, writes, entry)`` nodes so every read follows its write, ties by rank.

    Slots no node writes are available from the start. None when the nodes form a cycle.
    """
    writer = {slot: i for i, (_, _, writes, _) in enumerate(nodes) for slot in writes}
    waiting = [0] * len(nodes)
    users: dict[int, list[int]] = {}
    for i, (_, reads, _, _) in enumerate(nodes):
        deps = {writer[s] for s in reads if s in writer and writer[s] != i}
        waiting[i] = len(deps)
        for d in deps:
            users.setdefault(d, []).append(i)
    ready = [(nodes[i][0], i) for i in range(len(nodes)) if waiting[i] == 0]
    heapq.heapify(ready)
    order: list[Entry] = []
    while ready:
        _, i = heapq.heappop(ready)
        order.append(nodes[i][3])
        for u in users.get(i, []):
            waiting[u] -= 1
            if waiting[u] == 0:
                heapq.heappush(ready, (nodes[u][0], u))
    return order if len(order) == len(nodes) else None


# ------------------------------------------------------------------ batched loop projections
def batch_loop_projections(tape: Tape, stats: RewriteStats) -> None:
    """One stacked ``linear`` per loop-repeated projection whose inputs do not depend on its own outputs."""
    entries = tape.entries
    groups: dict[tuple, list[int]] = {}
    for i, entry in enumerate(entries):
        args = _linear_args(entry, tape)
        if args is None:
            continue
        assert isinstance(entry, CallEntry)
        # the same weights and attributes (one op repeated by a while_loop, or by a traced Python loop:
        # then each step is its own op sharing the weight constants), cast and rounded alike
        statics = tuple(sorted((k, id(v)) for k, v in args.items() if k != "x"))
        step = entry.step
        key = (statics, step.held[0], 0 in step.round_fp16, tape.meta[args["x"].index])
        groups.setdefault(key, []).append(i)
    candidates = [idxs for idxs in groups.values() if len(idxs) >= 2]
    if not candidates:
        return
    # which groups each slot depends on (a bit per group): a group whose inputs depend on its own outputs
    # is a recurrence (the hidden-state projection), not a batchable projection
    bit = {i: 1 << g for g, idxs in enumerate(candidates) for i in idxs}
    depends: dict[int, int] = {}
    for i, entry in enumerate(entries):
        mask = 0
        for s in _reads(entry):
            mask |= depends.get(s, 0)
        mask |= bit.get(i, 0)
        for s in _writes(entry):
            depends[s] = mask
    chosen = []
    for g, idxs in enumerate(candidates):
        x_slots = [_reads(entries[i]) for i in idxs]
        if not any(depends.get(s, 0) & (1 << g) for xs in x_slots for s in xs):
            chosen.append(idxs)
    if not chosen:
        return
    members = {i for idxs in chosen for i in idxs}
    nodes = [(i, _reads(e), _writes(e), e) for i, e in enumerate(entries) if i not in members]
    for idxs in chosen:
        calls = [entries[i] for i in idxs]
        batched = _stacked_call(calls, tape)  # type: ignore[arg-type]
        nodes.append((idxs[0], _reads(batched), _writes(batched), batched))
    order = _topological(nodes)
    if order is None:  # two groups whose inputs depend on each other's outputs
        stats.notes.append("loop projections not batched: their inputs depend on each other")
        return
    tape.entries = order
    stats.batched_projections += len(chosen)
    stats.projections_batched += len(members)


def _stacked_call(calls: list[CallEntry], tape: Tape) -> FnEntry:
    first = calls[0]
    step = first.step
    x_name = next(name for name, v in first.env.items() if isinstance(v, Slot))
    statics = {n: v for n, v in first.env.items() if not isinstance(v, Slot)}
    fp16 = tape.precision == "fp16"
    precision = tape.precision

    def stacked(*xs: torch.Tensor) -> Sequence[torch.Tensor]:
        from devicefit.interp.specialize import _no_blocks
        from devicefit.interp.step import call_step

        x = xs[0] if whole is not None else torch.stack(xs)
        out = call_step(step, {**statics, x_name: x}, precision, _no_blocks, None)
        (y,) = post_process(step, out, fp16)
        return y.unbind(0)

    # each call's own input (ops repeated by a traced Python loop name their input differently)
    args: list[Any] = [next(v for v in c.env.values() if isinstance(v, Slot)) for c in calls]
    # the inputs are the rows of one tensor, in order (a loop reading its input step by step): use it whole
    whole = all_rows_source(tape, args)
    if whole is not None:
        args = [whole]
    outs = [c.out_slots[0] for c in calls]
    return FnEntry(stacked, args, outs, f"{step.name} x{len(calls)} (batched loop projection)")


def all_rows_source(tape: Tape, slots: list[Slot]) -> Slot | None:
    """The tensor whose rows 0, 1, ... are ``slots``, each read with a constant single-row ``gather`` on axis
    0 then ``squeeze``-d on axis 0, in order and covering it all (so stacking them rebuilds it); else None."""
    from devicefit.interp.rewrite_rows import _args, _kernels, _rows

    gathers, _ = _kernels()
    producer = {s: e for e in tape.entries if isinstance(e, CallEntry) for s in e.out_slots}
    source: int | None = None
    for t, slot in enumerate(slots):
        squeeze = producer.get(slot.index)
        if (
            squeeze is None
            or squeeze.step.op_type != "squeeze"
            or list(squeeze.step.consts.get("axes") or []) != [0]
        ):
            return None
        (row,) = squeeze.env.values() if len(squeeze.env) == 1 else (None,)
        gather = producer.get(row.index) if isinstance(row, Slot) else None
        if gather is None or gather.step.kernel.fn not in gathers:
            return None
        args = _args(gather)
        x = args.get("x")
        if not isinstance(x, Slot) or args.get("axis") != 0 or args.get("batch_dims", 0) != 0:
            return None
        meta = tape.meta.get(x.index)
        rows = _rows(args.get("indices"), meta[0][0], gathers[gather.step.kernel.fn]) if meta else None
        if rows != [t] or (source is not None and x.index != source):
            return None
        source = x.index
    if source is None or tape.meta[source][0][0] != len(slots):
        return None
    return Slot(source)


# ------------------------------------------------------------------ merged shared-input linears
def merge_shared_input_linears(tape: Tape, stats: RewriteStats) -> None:
    """One ``linear`` with concatenated weights for linears (constant weights) reading the same value."""
    by_input: dict[int, list[int]] = {}
    for i, entry in enumerate(tape.entries):
        args = _linear_args(entry, tape)
        if args is not None:
            by_input.setdefault(args["x"].index, []).append(i)
    replace: dict[int, FnEntry | None] = {}
    merged_weights: dict[tuple[int, ...], tuple[torch.Tensor, torch.Tensor | None]] = {}
    for idxs in by_input.values():
        if len(idxs) < 2:
            continue
        calls = [tape.entries[i] for i in idxs]
        merged = _merged_call(calls, tape, merged_weights)  # type: ignore[arg-type]
        if merged is None:
            continue
        replace[idxs[0]] = merged
        replace.update({i: None for i in idxs[1:]})
        stats.merged_linears += 1
        stats.linears_merged += len(idxs)
    if replace:
        kept: list[Entry] = []
        for i, e in enumerate(tape.entries):
            new = replace.get(i, e)
            if new is not None:
                kept.append(new)
        tape.entries = kept


def _merged_call(
    calls: list[CallEntry],
    tape: Tape,
    cache: dict[tuple[int, ...], tuple[torch.Tensor, torch.Tensor | None]],
) -> FnEntry | None:
    all_args = [_linear_args(c, tape) for c in calls]
    weights = [a["weight"] for a in all_args if a is not None]
    biases = [a.get("bias") for a in all_args if a is not None]
    if len(weights) != len(calls) or any(w.dim() != 2 for w in weights):
        return None
    has_bias = [b is not None for b in biases]
    if any(has_bias) and not all(has_bias):
        return None  # a zero bias would turn -0.0 into +0.0: keep them apart
    key = tuple(id(w) for w in weights) + tuple(id(b) for b in biases)
    if key not in cache:
        # the kernel casts weight and bias to x's dtype (float32) before F.linear: so do the merged weights
        w = torch.cat([w.to(torch.float32) for w in weights])
        b = torch.cat([b.to(torch.float32) for b in biases]) if all(has_bias) else None  # type: ignore[union-attr]
        cache[key] = (w, b)
    weight, bias = cache[key]
    sizes = [int(w.shape[0]) for w in weights]
    steps = [c.step for c in calls]
    fp16 = tape.precision == "fp16"
    # one rounding of the merged result when every step rounds and casts alike (it is elementwise)
    same_post = len({(s.held[0], 0 in s.round_fp16) for s in steps}) == 1

    def merged(x: torch.Tensor) -> Sequence[torch.Tensor]:
        y = F.linear(x, weight, bias)
        if same_post:
            return post_process(steps[0], (y,), fp16)[0].split(sizes, dim=-1)
        return [post_process(s, (p,), fp16)[0] for s, p in zip(steps, y.split(sizes, dim=-1))]

    x_slot = all_args[0]["x"]  # type: ignore[index]
    label = "+".join(s.name for s in steps) + " (merged shared-input linears)"
    return FnEntry(merged, [x_slot], [c.out_slots[0] for c in calls], label)


__all__ = [
    "FP16_RTOL",
    "FP32_RTOL",
    "RewriteStats",
    "batch_loop_projections",
    "merge_shared_input_linears",
    "rewrite_tape",
]
