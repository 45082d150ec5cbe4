"""Tape rewrites for per-step row writes and reads (coremltools' tensor-array lowering of a loop's outputs).

coremltools keeps a loop's per-step values (a recurrence's hidden states) in a buffer: each iteration writes
one row with ``scatter`` (a copy of the whole buffer) and the next reads it back with ``gather``. Unrolled, that
is five kernel calls per step that move data around. Two rewrites, part of the tolerant set of
``rewrites.py`` (``exact=True`` applies neither):

* **forwarded row reads**: a ``gather`` of one row, with a constant index, from a chain of single-row
  ``scatter`` writes with constant indices, is the value the last write to that row put there (mode
  ``update``, or mode ``add`` onto a row that is zero in the constant buffer underneath). The read becomes
  that value. ``0.0 + u`` is ``u`` except that ``-0.0`` becomes ``+0.0``: equal as numbers, not as bits;
* **collapsed write chains**: a chain of such writes whose intermediate buffers nothing else reads becomes
  one ``scatter`` of all rows at the end (rows are distinct, so the order of the writes does not matter).

A float ``cast`` (fp16 <-> fp32) or an fp16 rounding of the whole buffer between two writes (how the loop
carries it in an fp16 program) is seen through: it changes no value that is already fp16-rounded, so a value
is forwarded across one only if the op that made it rounds its output to fp16.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from devicefit.interp.specialize import CallEntry, FnEntry, RoundEntry, Slot, Tape, entry_reads, post_process


def _kernels() -> tuple[dict[Any, bool], dict[Any, bool]]:
    """Gather and scatter kernels (reference and trace-safe) -> whether negative indices wrap."""
    from devicefit.interp import lowerings
    from devicefit.interp.ops import indexing

    gathers: dict[Any, bool] = {indexing.gather: True, indexing.gather_ios17: False}
    gathers[lowerings.gather] = True
    gathers[lowerings.gather_ios17] = False
    scatters: dict[Any, bool] = {indexing.scatter: True, indexing.scatter_ios17: False}
    return gathers, scatters


def _args(entry: CallEntry) -> dict[str, Any]:
    args = dict(entry.step.consts)
    args.update({param: entry.env[name] for param, name in entry.step.dyn})
    return args


def _rows(indices: Any, size: int, wraps: bool) -> list[int] | None:
    """Constant indices as row numbers (None: not constant, or out of range for the kernel)."""
    if isinstance(indices, Slot):
        return None
    flat = torch.as_tensor(indices).reshape(-1)
    if flat.is_floating_point():
        return None
    rows = []
    for i in flat.tolist():
        if i < 0 and wraps:
            i += size
        if not 0 <= i < size:
            return None
        rows.append(int(i))
    return rows


class _Writes:
    """The single-row ``scatter`` calls of a tape by output slot, and the value-preserving links between them."""

    def __init__(self, tape: Tape):
        self.tape = tape
        self.gathers, scatters = _kernels()
        self.by_slot: dict[int, tuple[int, CallEntry, dict[str, Any], int, list[int]]] = {}
        self.through: dict[int, tuple[int, int]] = {}  # slot -> (its source slot, entry index): cast / round
        self.rounded: set[int] = set()  # slots whose producer rounds them to fp16
        for i, entry in enumerate(tape.entries):
            if isinstance(entry, RoundEntry):
                self.through[entry.dst] = (entry.src, i)
                self.rounded.add(entry.dst)
                continue
            if isinstance(entry, CallEntry) and 0 in entry.step.round_fp16 and tape.precision == "fp16":
                self.rounded.add(entry.out_slots[0])
            if _is_float_cast(entry, tape):
                assert isinstance(entry, CallEntry)
                self.through[entry.out_slots[0]] = (next(iter(entry.env.values())).index, i)
                continue
            if not isinstance(entry, CallEntry) or entry.step.kernel.fn not in scatters:
                continue
            args = _args(entry)
            data = args.get("data")
            meta = self.tape.meta.get(entry.out_slots[0])
            if (
                meta is None
                or args.get("mode") not in ("add", "update")
                or not isinstance(args.get("axis"), int)
            ):
                continue
            axis = args["axis"] % len(meta[0])
            rows = _rows(args.get("indices"), meta[0][axis], scatters[entry.step.kernel.fn])
            if rows is None or len(set(rows)) != len(rows) or not isinstance(args.get("updates"), Slot):
                continue
            if not isinstance(data, (Slot, torch.Tensor)):
                continue
            self.by_slot[entry.out_slots[0]] = (i, entry, args, axis, rows)

    def resolve(self, slot: int) -> tuple[int, bool]:
        """The slot behind casts and roundings of ``slot``, and whether any was crossed."""
        crossed = False
        while slot in self.through:
            slot, crossed = self.through[slot][0], True
        return slot, crossed

    def row_source(self, slot: int, row: int, axis: int) -> Slot | None:
        """The value last written to ``row`` of the buffer in ``slot``, or None if unknown."""
        crossed = False
        while True:
            slot, through = self.resolve(slot)
            crossed = crossed or through
            write = self.by_slot.get(slot)
            if write is None or write[3] != axis:
                return None
            _, _, args, _, rows = write
            if row not in rows:
                data = args["data"]
                if not isinstance(data, Slot):
                    return None
                slot = data.index
                continue
            if rows != [row]:
                return None
            if args["mode"] == "add" and not self.row_is_zero(args["data"], row, axis):
                return None
            updates = args["updates"]
            if not isinstance(updates, Slot) or (crossed and updates.index not in self.rounded):
                return None
            return updates

    def row_is_zero(self, data: Any, row: int, axis: int) -> bool:
        while isinstance(data, Slot):
            write = self.by_slot.get(self.resolve(data.index)[0])
            if write is None or write[3] != axis or row in write[4]:
                return False
            data = write[2]["data"]
        return isinstance(data, torch.Tensor) and bool((data.select(axis, row) == 0).all())


def _is_float_cast(entry: Any, tape: Tape) -> bool:
    """A ``cast`` between fp16 and fp32 of a held float32 value (the interpreter holds both as float32)."""
    if (
        not isinstance(entry, CallEntry)
        or entry.step.op_type != "cast"
        or entry.step.consts.get("dtype")
        not in (
            "fp16",
            "fp32",
        )
    ):
        return False
    (src,) = entry.env.values() if len(entry.env) == 1 else (None,)
    if not isinstance(src, Slot):
        return False
    before, after = tape.meta.get(src.index), tape.meta.get(entry.out_slots[0])
    return before is not None and before == after and before[1] == torch.float32


def forward_row_reads(tape: Tape) -> int:
    """Replace single-row ``gather`` reads of known ``scatter`` writes by the written value; returns how many."""
    writes = _Writes(tape)
    forwarded = 0
    for i, entry in enumerate(tape.entries):
        if not isinstance(entry, CallEntry) or entry.step.kernel.fn not in writes.gathers:
            continue
        args = _args(entry)
        x = args.get("x")
        if not isinstance(x, Slot) or args.get("batch_dims", 0) != 0 or not isinstance(args.get("axis"), int):
            continue
        meta = tape.meta.get(x.index)
        if meta is None:
            continue
        axis = args["axis"] % len(meta[0])
        rows = _rows(args.get("indices"), meta[0][axis], writes.gathers[entry.step.kernel.fn])
        if rows is None or len(rows) != 1 or torch.as_tensor(args["indices"]).dim() != 1:
            continue
        source = writes.row_source(x.index, rows[0], axis)
        if source is None or tape.meta.get(source.index) != tape.meta.get(entry.out_slots[0]):
            continue
        tape.entries[i] = FnEntry(
            _same, [source], list(entry.out_slots), f"{entry.step.name} (forwarded row)"
        )
        forwarded += 1
    return forwarded


def view_constant_gathers(tape: Tape) -> int:
    """Read a run of consecutive constant rows with ``narrow`` (a view) instead of ``index_select`` (a copy).

    Bit-identical (the same values, and the interpreter's casts and roundings after it), so the exact build
    applies it too. Returns how many gathers changed.
    """
    gathers, _ = _kernels()
    changed = 0
    for i, entry in enumerate(tape.entries):
        if not isinstance(entry, CallEntry) or entry.step.kernel.fn not in gathers:
            continue
        args = _args(entry)
        x = args.get("x")
        meta = tape.meta.get(x.index) if isinstance(x, Slot) else None
        out_meta = tape.meta.get(entry.out_slots[0])
        if (
            meta is None
            or out_meta is None
            or args.get("batch_dims", 0) != 0
            or not isinstance(args.get("axis"), int)
        ):
            continue
        axis = args["axis"] % len(meta[0])
        rows = _rows(args.get("indices"), meta[0][axis], gathers[entry.step.kernel.fn])
        if not rows or rows != list(range(rows[0], rows[0] + len(rows))):
            continue
        tape.entries[i] = FnEntry(
            _narrow(entry, axis, rows[0], len(rows), out_meta[0], tape.precision == "fp16"),
            [x],
            list(entry.out_slots),
            f"{entry.step.name} (constant rows as a view)",
        )
        changed += 1
    return changed


def _narrow(entry: CallEntry, axis: int, start: int, length: int, shape: tuple[int, ...], fp16: bool) -> Any:
    step = entry.step

    def narrow(x: torch.Tensor) -> Sequence[torch.Tensor]:
        return post_process(step, (x.narrow(axis, start, length).reshape(shape),), fp16)

    return narrow


def _same(value: torch.Tensor) -> Sequence[torch.Tensor]:
    return (value,)


def collapse_write_chains(tape: Tape) -> int:
    """Turn chains of single-row writes that only feed each other into one write; returns chains collapsed."""
    writes = _Writes(tape)
    consumers: dict[int, list[int]] = {}
    for i, entry in enumerate(tape.entries):
        for r in entry_reads(entry):
            consumers.setdefault(r, []).append(i)
    outputs = {o.index for o in tape.outputs if isinstance(o, Slot)}
    # write -> (next write, entries in between): the buffer goes only to that write (through casts)
    following: dict[int, tuple[int, list[int]]] = {}
    for slot, (_, entry, _, axis, _) in writes.by_slot.items():
        path: list[int] = []
        cur = slot
        while cur not in outputs and len(consumers.get(cur, [])) == 1:
            (user,) = consumers[cur]
            target = tape.entries[user]
            link = [s for s, (src, i) in writes.through.items() if i == user]
            if link:
                path.append(user)
                cur = link[0]
                continue
            step_on = writes.by_slot.get(target.out_slots[0]) if isinstance(target, CallEntry) else None
            if (
                step_on is not None
                and step_on[2]["data"] == Slot(cur)
                and step_on[3] == axis
                and step_on[2]["mode"] == _mode(writes, slot)
                and step_on[1].step.kernel.fn is entry.step.kernel.fn
            ):
                following[slot] = (step_on[1].out_slots[0], path)
            break
    targets = {t for t, _ in following.values()}
    removed: dict[int, FnEntry | None] = {}
    collapsed = 0
    for head in (s for s in following if s not in targets):
        chain, between = [head], []
        while chain[-1] in following:
            nxt, path = following[chain[-1]]
            chain.append(nxt)
            between.extend(path)
        calls = [writes.by_slot[s] for s in chain]
        rows = [r for c in calls for r in c[4]]
        if len(set(rows)) != len(rows) or not isinstance(calls[0][2]["data"], torch.Tensor):
            continue
        removed[calls[-1][0]] = _one_write(calls, tape)
        removed.update({c[0]: None for c in calls[:-1]})
        removed.update({i: None for i in between})
        collapsed += 1
    if removed:
        entries = [removed.get(i, e) for i, e in enumerate(tape.entries)]
        tape.entries = [e for e in entries if e is not None]
    return collapsed


def _mode(writes: _Writes, slot: int) -> Any:
    return writes.by_slot[slot][2]["mode"]


def _one_write(calls: list[tuple[int, CallEntry, dict[str, Any], int, list[int]]], tape: Tape) -> FnEntry:
    from devicefit.interp.specialize import _no_blocks
    from devicefit.interp.step import call_step

    first, last = calls[0], calls[-1]
    step, axis = last[1].step, last[3]
    rows = torch.tensor([r for c in calls for r in c[4]], dtype=torch.int32)
    base = first[2]["data"]
    env = {name: v for name, v in last[1].env.items() if not isinstance(v, Slot)}
    data_name = next(n for p, n in step.dyn if p == "data")
    indices_name = next((n for p, n in step.dyn if p == "indices"), None)
    updates_name = next(n for p, n in step.dyn if p == "updates")
    counts = [len(c[4]) for c in calls]
    fp16 = tape.precision == "fp16"
    precision = tape.precision

    update_slots = [c[2]["updates"] for c in calls]
    unexpanded = _before_expand_dims(tape, update_slots, axis) if all(n == 1 for n in counts) else None

    def write_all(*values: Any) -> Sequence[torch.Tensor]:
        data, updates = values[0], values[1:]
        if unexpanded is not None:  # one row each, given without its expand_dims: stack them
            stacked = torch.stack(updates, axis)
        else:  # each update holds its rows along ``axis`` (the kernel's own reshape of one write's updates)
            shape = list(data.shape)
            parts = [u.reshape([*shape[:axis], n, *shape[axis + 1 :]]) for u, n in zip(updates, counts)]
            stacked = torch.cat(parts, axis)
        call_env = {**env, data_name: data, updates_name: stacked}
        if indices_name is not None:
            call_env[indices_name] = rows
        consts_step = step if indices_name is not None else _with_indices(step, rows)
        return post_process(consts_step, call_step(consts_step, call_env, precision, _no_blocks, None), fp16)

    args: list[Any] = [base] + (unexpanded or update_slots)
    return FnEntry(
        write_all, args, list(last[1].out_slots), f"{step.name} x{len(calls)} (collapsed row writes)"
    )


def _before_expand_dims(tape: Tape, updates: list[Any], axis: int) -> list[Any] | None:
    """The values the updates were made from by ``expand_dims`` on ``axis`` (then dead: the trace drops the
    unused nodes), or None. In fp16 only where that value was rounded already, as ``expand_dims`` rounds."""
    producer = {s: e for e in tape.entries if isinstance(e, CallEntry) for s in e.out_slots}
    rounds = {
        s for e in tape.entries if isinstance(e, CallEntry) and 0 in e.step.round_fp16 for s in e.out_slots
    }
    sources = []
    for u in updates:
        entry = producer.get(u.index) if isinstance(u, Slot) else None
        if entry is None or entry.step.op_type != "expand_dims" or len(entry.env) != 1:
            return None
        axes = list(entry.step.consts.get("axes") or [])
        (source,) = entry.env.values()
        meta = tape.meta.get(source.index) if isinstance(source, Slot) else None
        if meta is None or [a % (len(meta[0]) + 1) for a in axes] != [axis]:
            return None
        if tape.precision == "fp16" and source.index not in rounds:
            return None
        sources.append(source)
    return sources


def _with_indices(step: Any, rows: torch.Tensor) -> Any:
    from dataclasses import replace

    return replace(step, consts={**step.consts, "indices": rows})


__all__ = ["collapse_write_chains", "forward_row_reads", "view_constant_gathers"]
