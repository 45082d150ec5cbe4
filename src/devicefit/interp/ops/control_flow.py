"""Control flow (while_loop, cond) and tensor lists (make_list, list_*).

Nested blocks are compiled by ``program.py`` into ``ctx.blocks`` and executed with ``ctx.run_block``; SSA
names are unique, so a block body reads outer values straight from the shared environment.

Lists are not tensors: they are held as :class:`TensorList` Python objects (their MIL dtype is ``None``, so
the loop stores them without casting). MIL values are immutable, so every list op that "modifies" a list
returns a new one (a shallow copy: element tensors are shared, never mutated).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from devicefit.errors import InputError
from devicefit.interp import dtypes
from devicefit.interp.registry import OpContext, bool_, int_, ints, register, str_

# A loop that has run this many iterations is taken to be endless (its inputs never let the condition turn
# false); the interpreter stops it with an error instead of hanging. Tests lower it.
MAX_LOOP_ITERATIONS = 10_000_000


def _truth(pred: Any) -> bool:
    # Predicates are 0-d or one-element bool tensors (the torch frontend emits shape (1,)).
    return bool(torch.as_tensor(pred).reshape(-1)[0].item())


@register("while_loop", variadic=("loop_vars",))
def while_loop(loop_vars: list[Any], ctx: OpContext) -> tuple:
    # NOTE: MIL's while_loop checks the condition first (tf.while_loop semantics), so a loop whose condition
    # is false on entry runs zero times and returns its loop_vars unchanged.
    assert ctx.run_block is not None
    cond_block, body_block = ctx.blocks
    values = list(loop_vars)
    iterations = 0
    while _truth(ctx.run_block(cond_block, values)[0]):
        if iterations >= MAX_LOOP_ITERATIONS:
            raise InputError(
                f"while_loop {ctx.name!r} ran {iterations} iterations without its condition turning false; "
                "the inputs make the loop endless"
            )
        values = list(ctx.run_block(body_block, values))
        iterations += 1
    return tuple(values)


@register("cond")
def cond(pred: Any, ctx: OpContext) -> tuple:
    assert ctx.run_block is not None
    branch = ctx.blocks[0] if _truth(pred) else ctx.blocks[1]
    return tuple(ctx.run_block(branch, []))


# ---------------------------------------------------------------- lists
@dataclass
class TensorList:
    """A MIL list value: element tensors (``None`` = never written), element shape/dtype, resizability."""

    items: list[torch.Tensor | None]
    elem_shape: tuple[int | None, ...] | None
    dtype: str
    dynamic_length: bool = True
    name: str = field(default="", compare=False)

    def copy(self) -> TensorList:
        return TensorList(list(self.items), self.elem_shape, self.dtype, self.dynamic_length, self.name)

    def read(self, index: int) -> torch.Tensor:
        if not 0 <= index < len(self.items):
            raise InputError(
                f"list {self.name!r} read at index {index} but it has {len(self.items)} elements; "
                "the model's inputs drive its loop outside the list"
            )
        item = self.items[index]
        if item is not None:
            return item
        # An element never written reads as zeros when its shape is static (TensorArray semantics).
        if self.elem_shape is None or any(d is None for d in self.elem_shape):
            raise InputError(
                f"list {self.name!r} element {index} is read before it is written and has no static shape"
            )
        return torch.zeros(_static(self.elem_shape), dtype=dtypes.held_dtype(self.dtype))

    def write(self, index: int, value: torch.Tensor) -> None:
        if index < 0:
            raise InputError(f"list {self.name!r} written at negative index {index}")
        if index >= len(self.items):
            if not self.dynamic_length:
                raise InputError(
                    f"list {self.name!r} has fixed length {len(self.items)} but index {index} is written"
                )
            self.items.extend([None] * (index + 1 - len(self.items)))
        self.items[index] = value


def _static(shape: tuple[int | None, ...]) -> list[int]:
    return [int(d) for d in shape if d is not None]


def _elem_shape(elem_shape: list[Any] | None) -> tuple[int | None, ...] | None:
    if elem_shape is None:
        return None
    dims: list[int | None] = []
    for d in elem_shape:
        # A string dim is a symbol: the size is only known once an element is written.
        if isinstance(d, (str, bytes)):
            dims.append(None)
        else:
            dims.extend(ints(d))
    return tuple(dims)


@register(
    "make_list",
    attrs={"init_length": int_, "dynamic_length": bool_, "dtype": str_},
    variadic=("elem_shape",),
)
def make_list(
    elem_shape: list[Any] | None = None,
    init_length: int = 1,
    dynamic_length: bool = True,
    dtype: str = "fp32",
    ctx: OpContext | None = None,
) -> TensorList:
    name = ctx.output_names[0] if ctx is not None else ""
    return TensorList([None] * int_(init_length), _elem_shape(elem_shape), dtype, dynamic_length, name)


@register("list_length")
def list_length(ls: TensorList) -> torch.Tensor:
    return torch.tensor(len(ls.items), dtype=torch.int32)


@register("list_read")
def list_read(ls: TensorList, index: Any) -> torch.Tensor:
    return ls.read(int_(index))


@register("list_write")
def list_write(ls: TensorList, index: Any, value: torch.Tensor) -> TensorList:
    out = ls.copy()
    out.write(int_(index), value)
    return out


@register("list_gather")
def list_gather(ls: TensorList, indices: Any) -> torch.Tensor:
    idx = ints(indices)
    if not idx:
        shape = _static(ls.elem_shape) if ls.elem_shape and None not in ls.elem_shape else []
        return torch.zeros([0, *shape], dtype=dtypes.held_dtype(ls.dtype))
    return torch.stack([ls.read(i) for i in idx])


@register("list_scatter")
def list_scatter(ls: TensorList, indices: Any, value: torch.Tensor) -> TensorList:
    idx = ints(indices)
    if len(idx) != value.shape[0]:
        raise InputError(f"list_scatter got {len(idx)} indices for {value.shape[0]} values")
    out = ls.copy()
    for i, row in zip(idx, value):
        out.write(i, row)
    return out
