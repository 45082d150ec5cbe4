"""Where a conversion problem starts: the first source line whose value in the Core ML program differs from PyTorch.

When the fp32 program disagrees with PyTorch, the verdict used to give only the output's SNR. Here one sample is
run twice: PyTorch under a dispatch mode recording every aten op's result with the user's source line (the
innermost frame outside torch, coremltools, site-packages and devicefit, or in a model whose code is all library
code, the innermost library frame: the rule provenance uses), and the program
with every intermediate value. A program value is matched to the PyTorch results of the same line and shape (the
program's last one of each: a line's final result; ops fused or decomposed by the converter share the line), and the
first in program order whose relative error to each of them exceeds ``1e-3`` (SNR 60 dB, the fidelity bound) is the
place to look. A line run in a loop has one result per run, and the converter merges and reorders the runs' copies:
the program's last value of the line may be any run's, so it is compared with the line's last :data:`RUNS` results.
The two must also be the same *kind* of value (bool / integer / float) computed from the same model inputs: a fused
PyTorch kernel hides what the program decomposes, so (line, shape) alone can pair unrelated values. On an
``F.scaled_dot_product_attention`` line with a boolean mask the only PyTorch value of the weights' shape is the
mask made additive (from the mask input alone), and the program's softmax (from every input) is not it.
A line with no PyTorch counterpart of that shape, kind and inputs is skipped. Positions the sample's attention mask marks as
padding are left out (as in the output comparisons, :mod:`devicefit.compare.padding`). It is a convenience: any
failure returns None.
"""

from __future__ import annotations

import sys
import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

# relative L2 error beyond which a value has left PyTorch's (the conversion-fidelity SNR bound, 60 dB)
REL_ERROR = 1e-3
# results of a line kept per (shape, signature): a loop's runs (a 4-level x 4-corner hash grid runs a line 16 times)
RUNS = 16


@dataclass
class ConversionDivergence:
    """The first program value that differs from PyTorch's value for the same source line.

    Attributes:
        label: ``module (Type) at file:line`` from the program's provenance.
        mil_name: the program value (named in parentheses, never first).
        rel_error: ``||program - pytorch|| / ||pytorch||`` for that value.
    """

    label: str
    mil_name: str
    rel_error: float

    def describe(self) -> str:
        return f"{self.label} ({self.mil_name}, relative error {self.rel_error:.3g})"


def first_divergent_line(source: Any, program: Any, provenance: Any, feeds: dict[str, Any],
                         program_feeds: dict[str, Any]) -> ConversionDivergence | None:  # fmt: skip
    """The first value (in program order) whose source line computes something else in PyTorch; None if none."""
    try:
        values = program.run(program_feeds, precision="fp32", intermediates=True)
        last = _last_per_line(program, provenance, values)
        # only the (line, shape) pairs the program has are kept, as float32: one sample's worth at most
        recorded, torch_inputs = _record_torch(source, feeds, set(last))
        signature = _program_signatures(program, values, torch_inputs)
        tokens = _tokens(feeds)
        for key, name in last.items():
            refs = recorded.get(key, {}).get(signature(name))
            if not refs:
                continue
            value = np.asarray(values[name])
            error = min(_rel_error(*_unpadded(value, ref, tokens)) for ref in reversed(refs))
            if error > REL_ERROR:
                return ConversionDivergence(provenance.get(name).label(), name, error)
    except Exception:  # NOTE: localisation must never hide the verdict it explains
        return None
    return None


Signature = tuple[str, frozenset[str] | None]


def _kind(dtype: Any) -> str:
    """``b`` (bool), ``i`` (any integer) or ``f`` (float): int64 in PyTorch is int32 in the program."""
    kind = np.dtype(dtype).kind
    return "i" if kind == "u" else kind


def _program_signatures(program: Any, values: dict[str, Any], torch_inputs: list[str] | None) -> Any:
    """name -> (kind, the program inputs it is computed from); the inputs are None when they cannot be matched
    with PyTorch's by name (then values pair by kind alone)."""
    inputs = [i.name for i in program.inputs]
    deps: dict[str, frozenset[str]] | None = None
    if torch_inputs is not None and sorted(inputs) == sorted(torch_inputs):
        deps = {n: frozenset({n}) for n in inputs}
        for step in program.plan.block.steps:
            read = frozenset().union(*(deps.get(r, frozenset()) for r in step.reads()))
            for out in step.outputs:
                deps[out] = read

    def signature(name: str) -> Signature:
        return _kind(np.asarray(values[name]).dtype), None if deps is None else deps.get(name, frozenset())

    return signature


def _last_per_line(
    program: Any, provenance: Any, values: dict[str, Any]
) -> dict[tuple[str, tuple[int, ...]], str]:
    """(line, shape) -> the program's last value of that line and shape, in the order the program finishes them.

    A line computes several values of one shape (linear, then * 300): each line's last one is compared with
    PyTorch's last one. The intermediates dict lists the outputs first, so the program's steps give the order.
    """
    last: dict[tuple[str, tuple[int, ...]], str] = {}
    if provenance is None:
        return last
    for step in program.plan.block.steps:
        for name in step.outputs:
            origin = provenance.get(name) if name in values else None
            if origin is not None and origin.location:
                key = (_line_key(origin.location), tuple(np.shape(values[name])))
                last.pop(key, None)  # re-inserted: dict order becomes the order of last values
                last[key] = name
    return last


def _tokens(feeds: dict[str, Any]) -> np.ndarray | None:
    """Where the sample's attention mask marks tokens, (batch, sequence); None without padding."""
    from devicefit.compare.padding import find_padding

    found = find_padding([{k: np.asarray(v) for k, v in feeds.items()}])
    return None if found is None else found.tokens[0]


def _unpadded(value: np.ndarray, ref: np.ndarray, tokens: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """The two values at token positions only: a padded position (query row or key column) is undefined, and
    PyTorch (NaN in a fully masked softmax row) and the program (a finite mask) fill it differently."""
    from devicefit.compare.padding import sequence_keep

    if tokens is None or value.shape != ref.shape:
        return value, ref
    keep = sequence_keep(ref, tokens, every_axis=True)
    if keep is None:
        return value, ref
    keep = np.broadcast_to(keep, ref.shape)
    return value[keep], ref[keep]


def _rel_error(value: np.ndarray, ref: np.ndarray) -> float:
    a, b = value.astype(np.float64), ref.astype(np.float64)
    finite = np.isfinite(a) & np.isfinite(b)
    if not finite.all():
        # inf/NaN where PyTorch has none is a difference; the same non-finite pattern is not
        return (
            0.0
            if np.array_equal(np.isfinite(a), np.isfinite(b)) and (a[~finite] == b[~finite]).all()
            else 1.0
        )
    scale = float(np.linalg.norm(b))
    diff = float(np.linalg.norm(a - b))
    return diff / scale if scale > 0 else (0.0 if diff == 0 else 1.0)


def _line_key(location: str) -> str:
    """``net.py:42`` from ``/abs/path/net.py:42`` (provenance and stacks may spell the folder differently)."""
    path, _, line = location.rpartition(":")
    return f"{Path(path).name}:{line}"


def _record_torch(
    source: Any, feeds: dict[str, Any], wanted: set[tuple[str, tuple[int, ...]]]
) -> tuple[dict[tuple[str, tuple[int, ...]], dict[Signature, list[np.ndarray]]], list[str] | None]:
    """PyTorch's result of every aten op on ``feeds`` by (user line, shape), for the ``wanted`` pairs: the last
    :data:`RUNS` of each signature (kind, the inputs it is computed from), oldest first; and the input names (None
    when they are not known)."""
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_leaves

    from devicefit.convert._provenance_frontends import _user_frame

    recorded: dict[tuple[str, tuple[int, ...]], dict[Signature, list[np.ndarray]]] = {}
    # id -> (a weak reference, the inputs a tensor is computed from); the reference guards against reused ids
    deps: dict[int, tuple[Any, frozenset[str]]] = {}
    names: list[str] | None = None
    inputs: tuple[Any, ...] = ()
    if hasattr(source, "to_tensors") and hasattr(source, "traceable"):
        inputs = source.to_tensors(feeds)  # outside the recorder: the casts are not the model's
        names = [spec.name for spec in source.input_specs]
        for name, t in zip(names, inputs, strict=True):
            deps[id(t)] = (weakref.ref(t), frozenset({name}))

    def depends(args: Any) -> frozenset[str]:
        found: frozenset[str] = frozenset()
        for t in tree_leaves(args):
            entry = deps.get(id(t)) if isinstance(t, torch.Tensor) else None
            if entry is not None and entry[0]() is t:
                found |= entry[1]
        return found

    def user_line() -> str | None:
        # provenance's rule (convert._provenance_frontends._user_frame), so that lines match its labels
        def frames() -> Iterator[tuple[str, int]]:
            frame = sys._getframe(4)  # past this generator, _user_frame, user_line and the dispatch
            while frame is not None:
                yield frame.f_code.co_filename, frame.f_lineno
                frame = frame.f_back  # type: ignore[assignment]

        found = _user_frame(frames())
        return None if found is None else Path(found).name  # "dir/net.py:12" -> "net.py:12"

    class Recorder(TorchDispatchMode):
        def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
            out = func(*args, **(kwargs or {}))
            line = user_line()
            outs = [
                t for t in (out if isinstance(out, tuple | list) else (out,)) if isinstance(t, torch.Tensor)
            ]
            read = depends((args, kwargs)) if names is not None else frozenset()
            for t in outs:  # an in-place op's output is one of its arguments: it keeps what it read before
                deps[id(t)] = (weakref.ref(t), read | depends(t))
            if line is None:
                return out
            for t in outs:
                if (line, tuple(t.shape)) in wanted and not t.is_complex() and t.layout == torch.strided:
                    kind = "f" if t.is_floating_point() else "b" if t.dtype == torch.bool else "i"
                    keep = t.detach().to("cpu", torch.float32).numpy().copy()
                    runs = recorded.setdefault((line, tuple(t.shape)), {}).setdefault(
                        (kind, read if names else None), []
                    )
                    runs.append(keep)
                    del runs[:-RUNS]
            return out

    if names is None:
        with Recorder():
            source.reference(feeds)
    else:
        with torch.no_grad(), Recorder():
            source.traceable()(*inputs)
    return recorded, names
