"""Fused elementwise chains for the compiled path (fp32 only; part of the tolerant set of ``rewrites.py``).

Per time step a gated recurrence is mostly small elementwise calls, each a graph node with its own dispatch.
Two algebraic identities fold common chains into one aten call:

* ``(1 - z) * a + z * b`` -> ``torch.lerp(a, b, z)`` (a GRU's state update, a highway gate);
* ``x + u * v`` -> ``torch.addcmul(x, u, v)``.

Each computes the same real-number result with one or two roundings fewer than the interpreter's op-by-op
float32 arithmetic, so the outputs can differ in the last bits (within ``rewrites.FP32_RTOL``). In fp16
emulation the interpreter rounds every intermediate to fp16, which a fused call would skip, so the fusions are
not applied there (fp16 emulation stays faithful).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from devicefit.interp.specialize import CallEntry, FnEntry, RoundEntry, Slot, Tape, entry_reads


def _kernels() -> dict[Any, str]:
    from devicefit.interp.ops import elementwise

    return {elementwise.add: "add", elementwise.sub: "sub", elementwise.mul: "mul"}


class _Chains:
    def __init__(self, tape: Tape):
        self.tape = tape
        self.kinds = _kernels()
        self.producer: dict[int, int] = {}
        self.uses: dict[int, int] = {}
        for i, entry in enumerate(tape.entries):
            reads = entry_reads(entry)
            if not isinstance(entry, RoundEntry):
                for s in entry.out_slots:
                    self.producer[s] = i
            for r in reads:
                self.uses[r] = self.uses.get(r, 0) + 1
        for o in tape.outputs:
            if isinstance(o, Slot):
                self.uses[o.index] = self.uses.get(o.index, 0) + 1

    def op(self, value: Any, kind: str, single_use: bool = True) -> tuple[int, Any, Any] | None:
        """``(entry index, x, y)`` when ``value`` is the float32 output of a ``kind`` call (used once)."""
        if not isinstance(value, Slot) or (single_use and self.uses.get(value.index) != 1):
            return None
        i = self.producer.get(value.index)
        if i is None:
            return None
        entry = self.tape.entries[i]
        if not isinstance(entry, CallEntry) or self.kinds.get(entry.step.kernel.fn) != kind:
            return None
        if self.tape.meta.get(value.index, ((), None))[1] != torch.float32:
            return None
        args = dict(entry.step.consts)
        args.update({p: entry.env[n] for p, n in entry.step.dyn})
        return i, args.get("x"), args.get("y")

    def shape(self, value: Any) -> tuple[int, ...] | None:
        if isinstance(value, Slot):
            meta = self.tape.meta.get(value.index)
            return meta[0] if meta and meta[1] == torch.float32 else None
        if isinstance(value, torch.Tensor) and value.dtype == torch.float32:
            return tuple(value.shape)
        return None

    def broadcasts_to(self, values: Sequence[Any], out: int) -> bool:
        shapes = [self.shape(v) for v in values]
        if any(s is None for s in shapes):
            return False
        try:
            return tuple(torch.broadcast_shapes(*shapes)) == self.tape.meta[out][0]  # type: ignore[arg-type]
        except RuntimeError:
            return False


def _is_one(value: Any) -> bool:
    return isinstance(value, torch.Tensor) and value.numel() > 0 and bool((value == 1).all())


def fuse_elementwise(tape: Tape) -> tuple[int, int]:
    """Apply the fusions to an fp32 tape in place; returns (lerps, addcmuls)."""
    if tape.precision != "fp32":
        return 0, 0
    lerps = _fuse(tape, _match_lerp)
    addcmuls = _fuse(tape, _match_addcmul)
    return lerps, addcmuls


def _fuse(tape: Tape, match: Any) -> int:
    chains = _Chains(tape)
    replaced: dict[int, FnEntry | None] = {}
    for i, entry in enumerate(tape.entries):
        if (
            not isinstance(entry, CallEntry)
            or chains.kinds.get(entry.step.kernel.fn) != "add"
            or i in replaced
        ):
            continue
        found = match(chains, entry)
        if found is None:
            continue
        fused, removed = found
        if any(r in replaced for r in removed):
            continue
        replaced[i] = fused
        replaced.update({r: None for r in removed})
    if replaced:
        entries = [replaced.get(i, e) for i, e in enumerate(tape.entries)]
        tape.entries = [e for e in entries if e is not None]
    return sum(1 for v in replaced.values() if v is not None)


def _operands(entry: CallEntry) -> tuple[Any, Any]:
    args = dict(entry.step.consts)
    args.update({p: entry.env[n] for p, n in entry.step.dyn})
    return args.get("x"), args.get("y")


def _match_lerp(chains: _Chains, add: CallEntry) -> tuple[FnEntry, list[int]] | None:
    """``add(mul(sub(1, z), a), mul(z, b))`` (either order in each mul and in the add)."""
    out = add.out_slots[0]
    for left, right in (_operands(add), _operands(add)[::-1]):
        gated, kept = chains.op(left, "mul"), chains.op(right, "mul")
        if gated is None or kept is None:
            continue
        for one_minus, a in ((gated[1], gated[2]), (gated[2], gated[1])):
            sub = chains.op(one_minus, "sub")
            if sub is None or not _is_one(sub[1]) or not isinstance(sub[2], Slot):
                continue
            z = sub[2]
            for zz, b in ((kept[1], kept[2]), (kept[2], kept[1])):
                if zz == z and chains.broadcasts_to([a, b, z], out):
                    fused = FnEntry(_lerp, [a, b, z], [out], "fused (1 - z) * a + z * b (lerp)")
                    return fused, [gated[0], kept[0], sub[0]]
    return None


def _match_addcmul(chains: _Chains, add: CallEntry) -> tuple[FnEntry, list[int]] | None:
    out = add.out_slots[0]
    for base, product in (_operands(add), _operands(add)[::-1]):
        mul = chains.op(product, "mul")
        if mul is None or base is None or not chains.broadcasts_to([base, mul[1], mul[2]], out):
            continue
        fused = FnEntry(_addcmul, [base, mul[1], mul[2]], [out], "fused x + u * v (addcmul)")
        return fused, [mul[0]]
    return None


def _lerp(a: torch.Tensor, b: torch.Tensor, z: torch.Tensor) -> Sequence[torch.Tensor]:
    return (torch.lerp(a, b, z),)


def _addcmul(x: torch.Tensor, u: torch.Tensor, v: torch.Tensor) -> Sequence[torch.Tensor]:
    return (torch.addcmul(x, u, v),)


__all__ = ["fuse_elementwise"]
