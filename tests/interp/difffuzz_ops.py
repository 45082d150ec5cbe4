"""The op grammar of the differential fuzzer (tests/interp/difffuzz.py): one small generator per op family.

A generator gets a :class:`Builder` (the seeded ``rng`` and the values made so far, each with an example tensor)
and returns a :class:`Step` — a description and ``fn(module, *values)`` — or None when nothing in the pool fits.
Parameters are drawn at random but within what PyTorch accepts; the builder runs every step on the example
values and drops one that raises or makes an empty or huge tensor, so a generator may be optimistic.
Constant operands (weights, index tensors) are module buffers named ``c<k>``: ``module.double()`` turns the
float ones to float64 for the reference runs that measure how sensitive a program is to rounding; casts to a
float make ``module.fdtype`` for the same reason.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

Fn = Callable[..., Any]


@dataclass
class Step:
    """``out = fn(module, *[values[i] for i in args])``, printed as ``text``."""

    text: str
    fn: Fn
    args: tuple[int, ...]
    # True when the step's result is undefined on these argument values (a float -> int cast of inf / NaN or of
    # a value beyond int32): such a program is not compared
    undefined: Callable[..., bool] | None = None


class Builder:
    """The state a generator draws from: the rng, the pool of example values and the constant buffers."""

    def __init__(self, rng: np.random.Generator, values: list[torch.Tensor]):
        self.rng = rng
        self.values = values
        self.consts: dict[str, torch.Tensor] = {}
        self.modules: dict[str, torch.nn.Module] = {}  # layers with weights (nn.LSTM), ``n<k>``
        self.fdtype = (
            torch.float32
        )  # what a cast to float makes (``module.fdtype``: float64 in reference runs)

    # -------------------------------------------------------------- drawing
    def choice(self, options: Any) -> Any:
        return options[int(self.rng.integers(len(options)))]

    def chance(self, p: float) -> bool:
        return bool(self.rng.random() < p)

    def int_(self, lo: int, hi: int) -> int:
        """An integer in [lo, hi]."""
        return int(self.rng.integers(lo, hi + 1))

    def pick(self, kind: str = "float", min_rank: int = 0, max_rank: int = 5) -> int | None:
        """The index of a pool value of ``kind`` (``float``, ``int``, ``any``) and rank, recent ones likelier."""
        found = [
            i
            for i, v in enumerate(self.values)
            if min_rank <= v.dim() <= max_rank and _kind(v) in ({"float", "int"} if kind == "any" else {kind})
        ]
        if not found:
            return None
        weights = np.arange(1, len(found) + 1, dtype=np.float64) ** 2
        return int(found[int(self.rng.choice(len(found), p=weights / weights.sum()))])

    def dim(self, v: int) -> int:
        """A valid dim of value ``v``, negative half the time."""
        rank = self.values[v].dim()
        d = self.int_(0, rank - 1)
        return d - rank if self.chance(0.5) else d

    def const(self, tensor: torch.Tensor) -> str:
        name = f"c{len(self.consts)}"
        self.consts[name] = tensor
        return name

    def module(self, layer: torch.nn.Module) -> str:
        name = f"n{len(self.modules)}"
        self.modules[name] = layer
        return name

    def float_const(self, shape: tuple[int, ...], scale: float = 1.0) -> str:
        return self.const(
            torch.from_numpy(np.asarray(self.rng.standard_normal(shape) * scale, dtype=np.float32))
        )

    def broadcast_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """A shape that broadcasts against ``shape``: trailing dims kept or set to 1, maybe fewer or more of them."""
        dims = list(shape[self.int_(0, len(shape)) :]) if shape else []
        dims = [1 if self.chance(0.3) else d for d in dims]
        if self.chance(0.15) and len(shape) < 4:
            dims = [self.int_(1, 2), *dims] if len(dims) == len(shape) else dims
        return tuple(dims)


def _kind(v: torch.Tensor) -> str:
    return "float" if v.is_floating_point() else "bool" if v.dtype == torch.bool else "int"


# ------------------------------------------------------------------ elementwise
UNARY: dict[str, Fn] = {
    "neg": torch.neg,
    "abs": torch.abs,
    "exp": torch.exp,
    "log": torch.log,
    "sqrt": torch.sqrt,
    "rsqrt": torch.rsqrt,
    "sin": torch.sin,
    "cos": torch.cos,
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
    "relu": F.relu,
    "gelu": F.gelu,
    "gelu_tanh": lambda x: F.gelu(x, approximate="tanh"),
    "silu": F.silu,
    "elu": F.elu,
    "leaky_relu": lambda x: F.leaky_relu(x, 0.1),
    "softplus": F.softplus,
    "floor": torch.floor,
    "ceil": torch.ceil,
    "round": torch.round,
    "trunc": torch.trunc,
    "sign": torch.sign,
    "reciprocal": torch.reciprocal,
    "erf": torch.erf,
    "square": torch.square,
    "hardtanh": F.hardtanh,
    "hardswish": F.hardswish,
    "hardsigmoid": F.hardsigmoid,
    "relu6": F.relu6,
    "log1p": torch.log1p,
    "atan": torch.atan,
    "logsigmoid": F.logsigmoid,
    "mish": F.mish,
    "selu": F.selu,
    "frac": torch.frac,
    "exp2": torch.exp2,
    "log2": torch.log2,
    "log10": torch.log10,
    "sinh": torch.sinh,
    "cosh": torch.cosh,
    "asinh": torch.asinh,
    "asin": torch.asin,
    "acos": torch.acos,
    "tan": torch.tan,
    "softsign": F.softsign,
    "tanhshrink": F.tanhshrink,
    "hardshrink": F.hardshrink,
    "softshrink": lambda x: F.softshrink(x, 0.5),
    "threshold": lambda x: F.threshold(x, 0.5, -2.0),
    "celu": lambda x: F.celu(x, 0.7),
    "expm1": torch.expm1,
    "softplus_beta": lambda x: F.softplus(x, beta=2.0, threshold=5.0),
    "elu_alpha": lambda x: F.elu(x, alpha=0.5),
    "rrelu_eval": lambda x: F.rrelu(x, training=False),
    "nan_to_num": lambda x: torch.nan_to_num(x, nan=0.0, posinf=10.0, neginf=-10.0),
}


def unary(b: Builder) -> Step | None:
    v = b.pick()
    name = b.choice(sorted(UNARY))
    fn = UNARY[name]
    return None if v is None else Step(f"{name}(v{v})", lambda m, x: fn(x), (v,))


BINARY: dict[str, Fn] = {
    "add": torch.add,
    "sub": torch.sub,
    "mul": torch.mul,
    "div": torch.div,
    "pow": torch.pow,
    "floor_divide": torch.floor_divide,
    "remainder": torch.remainder,
    "fmod": torch.fmod,
    "maximum": torch.maximum,
    "minimum": torch.minimum,
    "atan2": torch.atan2,
    "div_floor": lambda a, c: torch.div(a, c, rounding_mode="floor"),
    "div_trunc": lambda a, c: torch.div(a, c, rounding_mode="trunc"),
}


def binary(b: Builder) -> Step | None:
    """Two pool values that broadcast, or a value and a broadcastable constant (either side)."""
    v = b.pick("any")
    if v is None:
        return None
    x = b.values[v]
    name = b.choice(sorted(BINARY))
    if name == "atan2" and not x.is_floating_point():
        return None
    fn = BINARY[name]
    others = [i for i, o in enumerate(b.values) if i != v and _kind(o) == _kind(x) and _broadcasts(o, x)]
    if others and b.chance(0.5):
        w = b.choice(others)
        return Step(f"{name}(v{v}, v{w})", lambda m, x, y: fn(x, y), (v, w))
    shape = b.broadcast_shape(tuple(x.shape))
    if x.is_floating_point():
        data = b.rng.standard_normal(shape) * b.choice([0.5, 2.0, 7.0])
        if name == "pow":  # integral exponents as well as fractional ones on negative bases (NaN in torch)
            data = np.round(data * 2) / 2 if b.chance(0.5) else np.round(data)
        c = b.const(torch.from_numpy(np.asarray(data, dtype=np.float32)))
    else:
        data = b.rng.integers(-5, 6, size=shape)
        if name in ("floor_divide", "remainder", "fmod", "div_floor", "div_trunc", "div"):
            data[data == 0] = 3
        if name == "pow":
            data = np.abs(data) % 3
        c = b.const(torch.from_numpy(np.asarray(data, dtype=np.int64)))
    if b.chance(0.3):
        return Step(f"{name}({c}, v{v})", lambda m, x: fn(getattr(m, c), x), (v,))
    return Step(f"{name}(v{v}, {c})", lambda m, x: fn(x, getattr(m, c)), (v,))


def _broadcasts(a: torch.Tensor, b: torch.Tensor) -> bool:
    try:
        return torch.broadcast_shapes(a.shape, b.shape) == b.shape or a.dim() <= b.dim()
    except RuntimeError:
        return False


def scalar_op(b: Builder) -> Step | None:
    """A value with a Python scalar: ``x + 2.5``, ``x ** 2``, ``remainder(x, -1.5)``, ``3 - x``."""
    v = b.pick("any")
    if v is None:
        return None
    integer = not b.values[v].is_floating_point()
    c = b.choice([2, 3, -2, 5] if integer else [2.5, -1.5, 0.5, 3.0, -4.0, 7.0])
    forms: dict[str, Fn] = {
        "x+c": lambda x: x + c,
        "c-x": lambda x: c - x,
        "x*c": lambda x: x * c,
        "x/c": lambda x: x / c,
        "x//c": lambda x: x // c,
        "x%c": lambda x: x % c,
        "fmod(x,c)": lambda x: torch.fmod(x, c),
        "x**2": lambda x: x**2,
        "x**3": lambda x: x**3,
        "x**0.5": lambda x: x**0.5,
        "x**-1": lambda x: x**-1.0,
        "2**x": lambda x: 2**x,
    }
    if integer:
        for bad in ("x**0.5", "x**-1", "2**x"):
            forms.pop(bad)
    form = b.choice(sorted(forms))
    fn = forms[form]
    return Step(f"{form.replace('x', f'v{v}').replace('c', repr(c))}", lambda m, x: fn(x), (v,))


def compare_where(b: Builder) -> Step | None:
    """A comparison feeding ``torch.where`` (or cast to a number, or kept as a bool output)."""
    v = b.pick("any")
    if v is None:
        return None
    x = b.values[v]
    op = b.choice(["gt", "lt", "ge", "le", "eq", "ne"])
    cmp = getattr(torch, op)
    threshold = 0 if not x.is_floating_point() else b.choice([0.0, 0.5, -1.0])
    other = [i for i, o in enumerate(b.values) if i != v and o.shape == x.shape and _kind(o) == _kind(x)]
    form = b.choice(["where", "where_scalar", "to_float", "bool", "logical"])
    if form == "where" and other:
        w = b.choice(other)
        return Step(
            f"where({op}(v{v}, {threshold}), v{v}, v{w})",
            lambda m, x, y: torch.where(cmp(x, threshold), x, y),
            (v, w),
        )
    if form == "where_scalar":
        fill = b.choice([0.0, -1.0, 100.0]) if x.is_floating_point() else b.choice([0, -7])
        return Step(
            f"where({op}(v{v}, {threshold}), v{v}, {fill})",
            lambda m, x: torch.where(cmp(x, threshold), x, fill),
            (v,),
        )
    if form == "to_float":
        return Step(f"{op}(v{v}, {threshold}).float()", lambda m, x: cmp(x, threshold).to(m.fdtype), (v,))
    if form == "logical" and other:
        w = b.choice(other)
        return Step(
            f"logical_and({op}(v{v}, 0), v{w} != 0).int()",
            lambda m, x, y: torch.logical_and(cmp(x, threshold), y != 0).int(),
            (v, w),
        )
    return Step(f"{op}(v{v}, {threshold})", lambda m, x: cmp(x, threshold), (v,))


def clamp(b: Builder) -> Step | None:
    v = b.pick("any")
    if v is None:
        return None
    integer = not b.values[v].is_floating_point()
    lo, hi = (-2, 3) if integer else (b.choice([-1.0, -0.5, 0.0]), b.choice([0.5, 1.0, 6.0]))
    form = b.choice(["both", "min", "max"])
    kwargs = {"both": {"min": lo, "max": hi}, "min": {"min": lo}, "max": {"max": hi}}[form]
    return Step(f"clamp(v{v}, **{kwargs})", lambda m, x: torch.clamp(x, **kwargs), (v,))


def cast(b: Builder) -> Step | None:
    v = b.pick("any")
    if v is None:
        return None
    if b.values[v].is_floating_point():
        form = b.choice(["int", "long", "bool_float"])
        fns: dict[str, Fn] = {
            "int": lambda m, x: x.to(torch.int32),
            "long": lambda m, x: x.long(),
            "bool_float": lambda m, x: x.bool().to(m.fdtype),
        }
    else:
        form = b.choice(["float", "float_mul"])
        fns = {"float": lambda m, x: x.to(m.fdtype), "float_mul": lambda m, x: x.to(m.fdtype) * 0.5}
    to_int = form in ("int", "long")
    return Step(f"cast_{form}(v{v})", fns[form], (v,), _beyond_int32 if to_int else None)


def _beyond_int32(x: torch.Tensor) -> bool:
    return bool(x.numel()) and not (torch.isfinite(x).all() and float(x.abs().max()) < 2**31)


# ------------------------------------------------------------------ reductions
def reduction(b: Builder) -> Step | None:
    v = b.pick("any", min_rank=1)
    if v is None:
        return None
    x = b.values[v]
    keep = b.chance(0.5)
    rank = x.dim()
    dims = sorted({b.dim(v) % rank for _ in range(b.int_(1, min(2, rank)))})
    dims_arg = [d - rank if b.chance(0.5) else d for d in dims]
    single = dims_arg[0]
    if x.is_floating_point():
        name = b.choice(
            ["sum", "mean", "amax", "amin", "prod", "std", "var", "logsumexp", "norm", "max", "min", "median"]
        )
    else:
        name = b.choice(["sum", "amax", "amin", "prod", "max"])
    fns: dict[str, Fn] = {
        "sum": lambda x: torch.sum(x, dim=dims_arg, keepdim=keep),
        "mean": lambda x: torch.mean(x, dim=dims_arg, keepdim=keep),
        "amax": lambda x: torch.amax(x, dim=dims_arg, keepdim=keep),
        "amin": lambda x: torch.amin(x, dim=dims_arg, keepdim=keep),
        "prod": lambda x: torch.prod(x, dim=single, keepdim=keep),
        "std": lambda x: torch.std(x, dim=dims_arg, keepdim=keep),
        "var": lambda x: torch.var(x, dim=dims_arg, keepdim=keep, unbiased=False),
        "logsumexp": lambda x: torch.logsumexp(x, dim=dims_arg, keepdim=keep),
        "norm": lambda x: torch.norm(x, dim=dims_arg, keepdim=keep),
        "max": lambda x: torch.max(x, dim=single, keepdim=keep)[0],
        "min": lambda x: torch.min(x, dim=single, keepdim=keep)[0],
        "median": lambda x: torch.median(x, dim=single, keepdim=keep)[0],
    }
    fn = fns[name]
    return Step(f"{name}(v{v}, dim={dims_arg}, keepdim={keep})", lambda m, x: fn(x), (v,))


def arg_reduction(b: Builder) -> Step | None:
    v = b.pick("any", min_rank=1)
    if v is None:
        return None
    d, keep = b.dim(v), b.chance(0.5)
    name = b.choice(["argmax", "argmin"])
    fn = getattr(torch, name)
    return Step(f"{name}(v{v}, dim={d}, keepdim={keep})", lambda m, x: fn(x, dim=d, keepdim=keep), (v,))


def softmax(b: Builder) -> Step | None:
    v = b.pick(min_rank=1)
    if v is None:
        return None
    d = b.dim(v)
    name = b.choice(["softmax", "log_softmax"])
    fn = getattr(F, name)
    return Step(f"{name}(v{v}, dim={d})", lambda m, x: fn(x, dim=d), (v,))


def cumulative(b: Builder) -> Step | None:
    v = b.pick("any", min_rank=1)
    if v is None:
        return None
    d = b.dim(v)
    name = b.choice(["cumsum", "cumprod"] if b.values[v].is_floating_point() else ["cumsum"])
    fn = getattr(torch, name)
    return Step(f"{name}(v{v}, dim={d})", lambda m, x: fn(x, dim=d), (v,))


def order(b: Builder) -> Step | None:
    """topk / sort values or indices (ties possible: the runner's sensitivity check catches unstable ones)."""
    v = b.pick("any", min_rank=1)
    if v is None:
        return None
    x = b.values[v]
    d = b.dim(v)
    part = b.int_(0, 1)
    ties = (lambda x: _has_ties(x, d)) if part == 1 else None
    if b.chance(0.5):
        k = b.int_(1, x.shape[d])
        largest = b.chance(0.7)
        return Step(
            f"topk(v{v}, k={k}, dim={d}, largest={largest})[{part}]",
            lambda m, x: torch.topk(x, k, dim=d, largest=largest)[part],
            (v,),
            ties,
        )
    desc = b.chance(0.5)
    return Step(
        f"sort(v{v}, dim={d}, descending={desc})[{part}]",
        lambda m, x: torch.sort(x, dim=d, descending=desc)[part],
        (v,),
        ties,
    )


def _has_ties(x: torch.Tensor, dim: int) -> bool:
    """Equal values along ``dim``: PyTorch leaves the order of their indices unspecified (topk, unstable sort)."""
    ordered = torch.sort(x, dim=dim)[0]
    return bool((ordered.diff(dim=dim) == 0).any()) if x.shape[dim] > 1 else False


# ------------------------------------------------------------------ linear algebra
def matmul(b: Builder) -> Step | None:
    v = b.pick(min_rank=1, max_rank=4)
    if v is None:
        return None
    x = b.values[v]
    k = x.shape[-1]
    form = b.choice(["matmul_const", "linear", "matmul_pool", "bmm", "einsum"])
    if form == "linear":
        n = b.int_(1, 6)
        w, bias = b.float_const((n, k), 0.5), b.float_const((n,))
        return Step(
            f"linear(v{v}, {w}, {bias})", lambda m, x: F.linear(x, getattr(m, w), getattr(m, bias)), (v,)
        )
    if form == "matmul_pool":
        others = [
            i for i, o in enumerate(b.values) if o.is_floating_point() and o.dim() >= 2 and o.shape[-2] == k
        ]
        if others:
            w_ = b.choice(others)
            return Step(f"matmul(v{v}, v{w_})", lambda m, x, y: torch.matmul(x, y), (v, w_))
    if form == "bmm" and x.dim() == 3:
        w = b.float_const((x.shape[0], k, b.int_(1, 5)))
        return Step(f"bmm(v{v}, {w})", lambda m, x: torch.bmm(x, getattr(m, w)), (v,))
    if form == "einsum" and x.dim() >= 2:
        if x.dim() == 3:
            eq = b.choice(["bij,jk->bik", "bij->bji", "bij,bkj->bik", "bij->bj"])
        elif x.dim() == 4:
            eq = b.choice(["bhqd,dk->bhqk", "bhqd->bhdq", "bhqd,bhkd->bhqk"])
        else:
            eq = b.choice(["ij,jk->ik", "ij->ji", "ij,j->i", "ij,kj->ik"])
        ins = eq.split("->")[0].split(",")
        if len(ins) == 1:
            return Step(f"einsum('{eq}', v{v})", lambda m, x: torch.einsum(eq, x), (v,))
        if ins[1] == ins[0] or (len(ins[1]) == len(ins[0]) and ins[1][-1] == ins[0][-1]):  # same shape as x
            shape = tuple(x.shape)
        else:
            sizes = dict(zip(ins[0], x.shape))
            shape = tuple(sizes.get(c, b.int_(1, 5)) for c in ins[1])
        w = b.float_const(shape)
        return Step(f"einsum('{eq}', v{v}, {w})", lambda m, x: torch.einsum(eq, x, getattr(m, w)), (v,))
    w = b.float_const((k, b.int_(1, 6)) if b.chance(0.8) else (k,))
    return Step(f"matmul(v{v}, {w})", lambda m, x: torch.matmul(x, getattr(m, w)), (v,))


# ------------------------------------------------------------------ conv, pooling, resize, norms
def conv(b: Builder) -> Step | None:
    v = b.pick(min_rank=3, max_rank=4)
    if v is None:
        return None
    x = b.values[v]
    spatial = x.dim() - 2
    cin = x.shape[1]
    groups = b.choice([g for g in (1, 2, 3, cin) if cin % g == 0])
    cout = groups * b.int_(1, 3)
    k = b.int_(1, 3)
    transpose = b.chance(0.2)
    stride, dilation = b.int_(1, 2), b.int_(1, 2)
    if transpose:
        w = b.float_const((cin, cout // groups) + (k,) * spatial, 0.5)
        pad = b.int_(0, (k - 1) * dilation // 2)
        out_pad = b.int_(0, min(stride, dilation) - 1)
        fn = F.conv_transpose1d if spatial == 1 else F.conv_transpose2d
        text = f"conv_transpose{spatial}d(v{v}, {w}, stride={stride}, padding={pad}, output_padding={out_pad}, groups={groups}, dilation={dilation})"
        return Step(
            text,
            lambda m, x: fn(x, getattr(m, w), None, stride, pad, out_pad, groups, dilation),
            (v,),
        )
    w = b.float_const((cout, cin // groups) + (k,) * spatial, 0.5)
    bias = b.float_const((cout,)) if b.chance(0.6) else None
    padding: Any = b.choice([0, 1, "same", "valid"])
    if padding == "same":
        stride = 1
    mode = b.choice(["zeros", "zeros", "reflect", "replicate", "circular"])
    fn = F.conv1d if spatial == 1 else F.conv2d
    if mode != "zeros" and isinstance(padding, int) and padding > 0:
        pads = (padding,) * (2 * spatial)
        text = f"conv{spatial}d(pad(v{v}, {pads}, {mode!r}), {w}, {bias}, stride={stride}, groups={groups}, dilation={dilation})"

        def padded(m: Any, x: torch.Tensor) -> torch.Tensor:
            y = F.pad(x, pads, mode=mode)
            return fn(y, getattr(m, w), getattr(m, bias) if bias else None, stride, 0, dilation, groups)

        return Step(text, padded, (v,))
    text = f"conv{spatial}d(v{v}, {w}, {bias}, stride={stride}, padding={padding!r}, dilation={dilation}, groups={groups})"
    return Step(
        text,
        lambda m, x: fn(
            x, getattr(m, w), getattr(m, bias) if bias else None, stride, padding, dilation, groups
        ),
        (v,),
    )


def pool(b: Builder) -> Step | None:
    v = b.pick(min_rank=3, max_rank=4)
    if v is None:
        return None
    x = b.values[v]
    spatial = x.dim() - 2
    kind = b.choice(["max", "avg", "adaptive_avg", "adaptive_max"])
    if kind.startswith("adaptive"):
        size = tuple(b.int_(1, max(1, s)) for s in x.shape[2:])
        fn = getattr(F, f"{kind}_pool{spatial}d")
        return Step(f"{kind}_pool{spatial}d(v{v}, {size})", lambda m, x: fn(x, size), (v,))
    k = b.int_(1, 3)
    stride = b.int_(1, 3)
    pad = b.int_(0, k // 2)
    ceil = b.chance(0.5)
    if kind == "max":
        fn = getattr(F, f"max_pool{spatial}d")
        return Step(
            f"max_pool{spatial}d(v{v}, {k}, stride={stride}, padding={pad}, ceil_mode={ceil})",
            lambda m, x: fn(x, k, stride, pad, ceil_mode=ceil),
            (v,),
        )
    include = b.chance(0.5)
    fn = getattr(F, f"avg_pool{spatial}d")
    return Step(
        f"avg_pool{spatial}d(v{v}, {k}, stride={stride}, padding={pad}, ceil_mode={ceil}, count_include_pad={include})",
        lambda m, x: fn(x, k, stride, pad, ceil_mode=ceil, count_include_pad=include),
        (v,),
    )


def interpolate(b: Builder) -> Step | None:
    v = b.pick(min_rank=3, max_rank=4)
    if v is None:
        return None
    spatial = b.values[v].dim() - 2
    modes = ["nearest", "linear"] if spatial == 1 else ["nearest", "bilinear", "bicubic", "nearest-exact"]
    mode = b.choice(modes)
    align = b.chance(0.5) if mode in ("linear", "bilinear", "bicubic") else None
    if b.chance(0.5):
        scale = b.choice([2.0, 0.5, 3.0, 1.5])
        kwargs: dict[str, Any] = {"scale_factor": scale}
    else:
        kwargs = {"size": tuple(b.int_(1, 9) for _ in range(spatial))}
    return Step(
        f"interpolate(v{v}, mode={mode!r}, align_corners={align}, **{kwargs})",
        lambda m, x: F.interpolate(x, mode=mode, align_corners=align, **kwargs),
        (v,),
    )


def norm(b: Builder) -> Step | None:
    v = b.pick(min_rank=2)
    if v is None:
        return None
    x = b.values[v]
    kind = b.choice(["layer", "batch", "instance", "group", "normalize"])
    if kind == "layer":
        n = b.int_(1, min(2, x.dim()))
        shape = tuple(x.shape[-n:])
        w, bias = b.float_const(shape), b.float_const(shape)
        return Step(
            f"layer_norm(v{v}, {shape}, {w}, {bias})",
            lambda m, x: F.layer_norm(x, shape, getattr(m, w), getattr(m, bias)),
            (v,),
        )
    c = x.shape[1]
    if kind == "batch":
        mean, var = (
            b.float_const((c,)),
            b.const(torch.from_numpy(b.rng.uniform(0.5, 2.0, c).astype(np.float32))),
        )
        w, bias = b.float_const((c,)), b.float_const((c,))
        return Step(
            f"batch_norm(v{v}, {mean}, {var}, {w}, {bias})",
            lambda m, x: F.batch_norm(
                x, getattr(m, mean), getattr(m, var), getattr(m, w), getattr(m, bias), False
            ),
            (v,),
        )
    if kind == "instance" and x.dim() in (3, 4):
        return Step(f"instance_norm(v{v})", lambda m, x: F.instance_norm(x), (v,))
    if kind == "group" and x.dim() >= 3:
        groups = b.choice([g for g in (1, 2, 3, c) if c % g == 0])
        w, bias = b.float_const((c,)), b.float_const((c,))
        return Step(
            f"group_norm(v{v}, {groups}, {w}, {bias})",
            lambda m, x: F.group_norm(x, groups, getattr(m, w), getattr(m, bias)),
            (v,),
        )
    d = b.dim(v)
    return Step(f"normalize(v{v}, dim={d})", lambda m, x: F.normalize(x, dim=d), (v,))


def pad(b: Builder) -> Step | None:
    v = b.pick(min_rank=2, max_rank=4)
    if v is None:
        return None
    x = b.values[v]
    mode = b.choice(["constant", "reflect", "replicate", "circular"])
    n = 1 if x.dim() == 2 or (mode == "constant" and b.chance(0.5)) else b.int_(1, min(2, x.dim() - 2))
    pads: list[int] = []
    for axis in range(n):
        size = x.shape[-1 - axis]
        hi = size - 1 if mode == "reflect" else size if mode == "circular" else 3
        pads += [b.int_(0 if mode != "constant" else -1, max(0, min(2, hi))), b.int_(0, max(0, min(2, hi)))]
    if mode != "constant" and x.dim() == 2:
        mode = "constant"
    value = b.choice([0.0, -1.5]) if mode == "constant" else None
    pads_t = tuple(pads)
    return Step(
        f"pad(v{v}, {pads_t}, {mode!r}, {value})", lambda m, x: F.pad(x, pads_t, mode=mode, value=value), (v,)
    )


# ------------------------------------------------------------------ layout
def layout(b: Builder) -> Step | None:
    v = b.pick("any", min_rank=1)
    if v is None:
        return None
    x = b.values[v]
    shape, rank = tuple(x.shape), x.dim()
    form = b.choice(
        [
            "reshape",
            "permute",
            "transpose",
            "flatten",
            "unflatten",
            "expand",
            "repeat",
            "tile",
            "roll",
            "flip",
            "narrow",
            "select",
            "slice_step",
            "unsqueeze",
            "squeeze",
            "contiguous_t",
        ]
    )
    d = b.dim(v)
    fns: dict[str, tuple[str, Fn]] = {}
    if form == "reshape":
        target = _factor(b, int(np.prod(shape)))
        if b.chance(0.3):
            target = (-1, *target[1:]) if target else target
        fns[form] = (f"reshape(v{v}, {target})", lambda x: x.reshape(target))
    elif form == "permute":
        perm = [int(i) for i in b.rng.permutation(rank)]
        fns[form] = (f"permute(v{v}, {perm})", lambda x: x.permute(perm))
    elif form == "transpose":
        d2 = b.dim(v)
        fns[form] = (f"transpose(v{v}, {d}, {d2})", lambda x: x.transpose(d, d2))
    elif form == "flatten":
        start = b.int_(0, rank - 1)
        end = b.int_(start, rank - 1) - (rank if b.chance(0.5) else 0)
        fns[form] = (f"flatten(v{v}, {start}, {end})", lambda x: torch.flatten(x, start, end))
    elif form == "unflatten":
        sizes = _factor(b, shape[d], max_dims=2)
        fns[form] = (f"unflatten(v{v}, {d}, {sizes})", lambda x: x.unflatten(d, sizes))
    elif form == "expand":
        if 1 not in shape and rank >= 4:
            return None
        target = tuple(b.int_(2, 3) if s == 1 else (-1 if b.chance(0.5) else s) for s in shape)
        if rank < 4 and b.chance(0.4):
            target = (2, *target)
        fns[form] = (f"expand(v{v}, {target})", lambda x: x.expand(*target))
    elif form in ("repeat", "tile"):
        reps = tuple(b.int_(1, 2) for _ in range(rank + (1 if b.chance(0.3) and rank < 4 else 0)))
        fn_r: Fn = (lambda x: x.repeat(*reps)) if form == "repeat" else (lambda x: torch.tile(x, reps))
        fns[form] = (f"{form}(v{v}, {reps})", fn_r)
    elif form == "roll":
        shift = b.int_(-3, 3)
        if b.chance(0.3):
            fns[form] = (f"roll(v{v}, {shift})", lambda x: torch.roll(x, shift))
        else:
            fns[form] = (f"roll(v{v}, {shift}, {d})", lambda x: torch.roll(x, shift, d))
    elif form == "flip":
        dims = sorted({b.dim(v) % rank for _ in range(b.int_(1, rank))})
        fns[form] = (f"flip(v{v}, {dims})", lambda x: torch.flip(x, dims))
    elif form == "narrow":
        length = b.int_(1, shape[d])
        start = b.int_(0, shape[d] - length)
        fns[form] = (f"narrow(v{v}, {d}, {start}, {length})", lambda x: x.narrow(d, start, length))
    elif form == "select":
        i = b.int_(-shape[d], shape[d] - 1)
        fns[form] = (f"select(v{v}, {d}, {i})", lambda x: x.select(d, i))
    elif form == "slice_step":
        step = b.int_(2, 3)
        start = b.int_(0, max(0, shape[d] - 1))
        index = tuple([slice(None)] * (d % rank) + [slice(start, None, step)])
        fns[form] = (f"v{v}[{'..., ' * 0}{':, ' * (d % rank)}{start}::{step}]", lambda x: x[index])
    elif form == "unsqueeze":
        du = b.int_(-rank - 1, rank)
        fns[form] = (f"unsqueeze(v{v}, {du})", lambda x: x.unsqueeze(du))
    elif form == "squeeze":
        ones = [i for i, s in enumerate(shape) if s == 1]
        if not ones:
            return None
        ds = b.choice(ones)
        fns[form] = (f"squeeze(v{v}, {ds})", lambda x: x.squeeze(ds))
    else:
        fns[form] = (f"v{v}.mT.contiguous()", lambda x: x.mT.contiguous() if x.dim() >= 2 else x * 1)
    text, fn = fns[form]
    return Step(text, lambda m, x: fn(x), (v,))


def _factor(b: Builder, n: int, max_dims: int = 4) -> tuple[int, ...]:
    """A random factorisation of ``n`` into 1-``max_dims`` dims (some may be 1)."""
    dims = []
    rest = n
    for _ in range(b.int_(1, max_dims) - 1):
        divisors = [d for d in range(1, rest + 1) if rest % d == 0]
        d = b.choice(divisors)
        dims.append(d)
        rest //= d
    dims.append(rest)
    order_ = b.rng.permutation(len(dims))
    return tuple(int(dims[i]) for i in order_)


def combine(b: Builder) -> Step | None:
    """cat / stack of two pool values (or a value with itself), and split / chunk pieces."""
    v = b.pick("any", min_rank=1)
    if v is None:
        return None
    x = b.values[v]
    d = b.dim(v)
    form = b.choice(["cat", "stack", "split", "chunk", "unbind"])
    if form in ("cat", "stack"):
        same = [
            i
            for i, o in enumerate(b.values)
            if o.dtype == x.dtype
            and o.dim() == x.dim()
            and all(
                a == c
                for j, (a, c) in enumerate(zip(o.shape, x.shape))
                if form == "stack" or j != d % x.dim()
            )
        ]
        w = b.choice(same)
        if form == "cat":
            return Step(f"cat([v{v}, v{w}], {d})", lambda m, x, y: torch.cat([x, y], d), (v, w))
        ds = b.int_(-x.dim() - 1, x.dim())
        return Step(f"stack([v{v}, v{w}], {ds})", lambda m, x, y: torch.stack([x, y], ds), (v, w))
    size = x.shape[d]
    if form == "split":
        piece = b.int_(1, size)
        i = b.int_(0, -(-size // piece) - 1)
        return Step(f"split(v{v}, {piece}, {d})[{i}]", lambda m, x: torch.split(x, piece, d)[i], (v,))
    if form == "chunk":
        n = b.int_(1, 3)
        count = len(torch.chunk(x, n, d))
        i = b.int_(0, count - 1)
        return Step(f"chunk(v{v}, {n}, {d})[{i}]", lambda m, x: torch.chunk(x, n, d)[i], (v,))
    i = b.int_(0, size - 1)
    return Step(f"unbind(v{v}, {d})[{i}]", lambda m, x: torch.unbind(x, d)[i], (v,))


def index(b: Builder) -> Step | None:
    """gather / index_select / take_along_dim with constant index tensors (negative indices for index_select)."""
    v = b.pick("any", min_rank=1)
    if v is None:
        return None
    x = b.values[v]
    d = b.dim(v)
    size = x.shape[d]
    form = b.choice(["gather", "index_select", "getitem_list"])
    if form == "gather":
        shape = tuple(
            b.int_(1, s) if i != d % x.dim() else b.int_(1, size + 2) for i, s in enumerate(x.shape)
        )
        idx = b.const(torch.from_numpy(b.rng.integers(0, size, size=shape)).long())
        return Step(f"gather(v{v}, {d}, {idx})", lambda m, x: torch.gather(x, d, getattr(m, idx)), (v,))
    n = b.int_(1, size + 2)
    if form == "index_select":
        idx = b.const(torch.from_numpy(b.rng.integers(0, size, size=(n,))).long())
        return Step(
            f"index_select(v{v}, {d}, {idx})", lambda m, x: torch.index_select(x, d, getattr(m, idx)), (v,)
        )
    picks = [int(i) for i in b.rng.integers(-size, size, size=(n,))]
    lead = (slice(None),) * (d % x.dim())
    return Step(f"v{v}[{':, ' * (d % x.dim())}{picks}]", lambda m, x: x[(*lead, picks)], (v,))


def misc(b: Builder) -> Step | None:
    """Ops that fit no family above: masks, triangles, lerp, glu, one_hot, full reductions, batched products."""
    v = b.pick("any", min_rank=1)
    if v is None:
        return None
    x = b.values[v]
    floating = x.is_floating_point()
    forms = ["full_sum", "full_max", "argsort", "abs_neg"]
    if floating:
        forms += ["masked_fill", "lerp", "full_mean", "clamp_tensor", "addcmul"]
        if x.dim() >= 2:
            forms += ["triu", "tril", "baddbmm" if x.dim() == 3 else "addmm" if x.dim() == 2 else "triu"]
        if x.shape[-1] % 2 == 0:
            forms.append("glu")
        if x.dim() == 4 and x.shape[1] % 4 == 0:
            forms.append("pixel_shuffle")
    else:
        forms += ["one_hot", "logical_not", "int_mul_add"]
    form = b.choice(forms)
    d = b.dim(v)
    k = b.int_(-1, 1)
    table: dict[str, tuple[str, Fn]] = {
        "full_sum": (f"v{v}.sum()", lambda m, x: x.sum()),
        "full_max": (f"v{v}.max()", lambda m, x: x.max()),
        "full_mean": (f"v{v}.mean()", lambda m, x: x.mean()),
        "argsort": (f"argsort(v{v}, {d})", lambda m, x: torch.argsort(x, dim=d)),
        "abs_neg": (f"-abs(v{v})", lambda m, x: -torch.abs(x)),
        "masked_fill": (f"v{v}.masked_fill(v{v} < 0, -3.5)", lambda m, x: x.masked_fill(x < 0, -3.5)),
        "lerp": (f"lerp(v{v}, sin(v{v}), 0.3)", lambda m, x: torch.lerp(x, torch.sin(x), 0.3)),
        "clamp_tensor": (
            f"clamp(v{v}, min=-abs(v{v}).mean())",
            lambda m, x: torch.clamp(x, min=-x.abs().mean()),
        ),
        "addcmul": (
            f"addcmul(v{v}, v{v}, cos(v{v}), value=0.5)",
            lambda m, x: torch.addcmul(x, x, torch.cos(x), value=0.5),
        ),
        "triu": (f"triu(v{v}, {k})", lambda m, x: torch.triu(x, k)),
        "tril": (f"tril(v{v}, {k})", lambda m, x: torch.tril(x, k)),
        "glu": (f"glu(v{v}, -1)", lambda m, x: F.glu(x, -1)),
        "pixel_shuffle": (f"pixel_shuffle(v{v}, 2)", lambda m, x: F.pixel_shuffle(x, 2)),
        "one_hot": (f"one_hot(v{v} % 4, 4)", lambda m, x: F.one_hot(x.long() % 4, 4)),
        "logical_not": (f"logical_not(v{v}).int()", lambda m, x: torch.logical_not(x).int()),
        "int_mul_add": (f"v{v} * 3 - v{v} // 2", lambda m, x: x * 3 - x // 2),
    }
    if form in ("baddbmm", "addmm"):
        n = b.int_(1, 4)
        w = b.float_const((*x.shape[:-2], x.shape[-1], n) if x.dim() == 3 else (x.shape[-1], n))
        c = b.float_const((1, n))
        fn = torch.baddbmm if form == "baddbmm" else torch.addmm
        return Step(
            f"{form}({c}, v{v}, {w}, beta=0.5, alpha=2)",
            lambda m, x: fn(getattr(m, c), x, getattr(m, w), beta=0.5, alpha=2.0),
            (v,),
        )
    text, fn_ = table[form]
    return Step(text, fn_, (v,), (lambda x: _has_ties(x, d)) if form == "argsort" else None)


# family -> (generator, weight)
GRAMMAR: dict[str, tuple[Callable[[Builder], Step | None], float]] = {
    "unary": (unary, 3.0),
    "binary": (binary, 3.0),
    "scalar": (scalar_op, 2.0),
    "compare_where": (compare_where, 1.5),
    "clamp": (clamp, 0.7),
    "cast": (cast, 0.8),
    "reduction": (reduction, 1.5),
    "arg_reduction": (arg_reduction, 0.6),
    "softmax": (softmax, 1.0),
    "cumulative": (cumulative, 0.7),
    "order": (order, 0.8),
    "matmul": (matmul, 1.5),
    "conv": (conv, 1.5),
    "pool": (pool, 1.0),
    "interpolate": (interpolate, 0.8),
    "norm": (norm, 1.0),
    "pad": (pad, 0.8),
    "layout": (layout, 3.0),
    "combine": (combine, 1.2),
    "index": (index, 1.0),
    "misc": (misc, 1.5),
}
