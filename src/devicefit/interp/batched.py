"""Batched compiled graphs: k requests to a fixed-batch program in a few graph calls instead of k.

Most packages converted from PyTorch declare a batch of 1, so requests cannot be stacked on axis 0 (and a
reshape to a hard-coded ``[1, -1]`` inside would refuse it anyway). Here the compiled single-sample graph of a
signature (``compiled.Specialization.graph``) is batched on a *new* leading axis instead: ``torch.func.vmap``
of the graph, recorded as aten ops with ``make_fx`` and traced with ``torch.jit.trace``. Every kernel still
sees the declared batch-1 shapes, while torch computes B samples per kernel call; like the single graph, the
call runs no Python per op and releases the GIL.

Graph time per sample at 1 thread, single -> B=4 -> B=16: 16-16-4 MLP 8.1 -> 3.7 -> 0.9 us; zoo bert_encoder
204 -> 85 -> 38 us; a 96 px depthwise-separable CNN 605 -> 374 -> 357 us.

Graphs are built for B in powers of two up to :data:`MAX_BATCH`, the second time a (signature, B) is needed (a
batch of 7 runs as 4 + 2 + 1, the 1 on the single graph), and cached per (signature, B). A batched graph is
used only after its per-sample outputs matched the single graph's on the batch it was built from and on a
second batch of distinct samples (the inputs' values permuted differently per sample, so a graph that mixed
samples or baked a value would disagree): bit for bit with ``exact=True``, else within ``rewrites.FP32_RTOL``
/ ``FP16_RTOL`` of each output's largest magnitude (batched matmul kernels may sum in another order; the
single graph is itself within that tolerance of the interpreter, or equal to it where it was built exact).
A built graph is then timed against the single calls it replaces (best of :data:`TIMED_ROUNDS` interleaved
rounds) and used only where it was faster: a 160 px CNN's batch of 16 costs 1.15x sixteen calls (its activations
no longer fit the cache), and ``predict_batch`` ran 0.87x-0.93x per sample until batches were timed.
Anything that fails (vmap or make_fx refuses an op, a value read into Python, a mismatch, a signature the
interpreter runs, a graph whose outputs are all static) leaves that signature to one call per request, with
the reason in :attr:`BatchedRunner.fallbacks`, logged once.
"""

from __future__ import annotations

import logging
import threading
import time
import warnings
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from devicefit.errors import DevicefitError, first_line
from devicefit.interp.agreement import same_array
from devicefit.interp.compiled import (
    CompiledProgram,
    Fallback,
    Signature,
    Specialization,
    describe_signature,
    signature_of,
)
from devicefit.interp.rewrites import FP16_RTOL, FP32_RTOL
from devicefit.interp.run import output_to_numpy
from devicefit.interp.specialize import Slot

log = logging.getLogger(__name__)

MAX_BATCH = 16  # the largest batched graph: per-sample cost flattens out around here on the models measured
TIMED_ROUNDS = 3  # rounds of batched vs single calls timed after a build (best of each decides)


class NotBatchable(Exception):
    """A signature's single graph cannot be batched (the reason is the message)."""


@dataclass(frozen=True)
class BatchFallback:
    """Why one signature's batches run one call per request.

    Attributes:
        signature: the input names, shapes and dtypes.
        size: the batch size whose build failed (0: no batched graph is tried for the signature at all).
        reason: what stops batching.
    """

    signature: Signature
    size: int
    reason: str

    def describe(self) -> str:
        at = f" (batch of {self.size})" if self.size else ""
        return f"{describe_signature(self.signature)}{at}: not batched: {self.reason}; one call per request"


@dataclass
class BatchedGraph:
    """The single graph of a signature batched for ``size`` samples on a new leading axis.

    Attributes:
        signature: the per-sample input signature.
        size: samples per call.
        build_s: seconds spent building, checking and timing it.
        exact: its outputs equaled the single graph's bit for bit on both checks.
        batched_s: seconds of one batched call, best of ``TIMED_ROUNDS`` after the checks.
        singles_s: seconds of ``size`` single-graph calls on the same samples, interleaved with those.
    """

    signature: Signature
    size: int
    build_s: float = 0.0
    exact: bool = True
    graph: Any = field(default=None, repr=False)  # the traced ScriptFunction
    batched_s: float | None = None  # one call of the batched graph, best of a few (None: not timed)
    singles_s: float | None = None  # ``size`` calls of the single graph, timed alongside

    @property
    def faster(self) -> bool:
        """Whether the batched call was timed faster than the single calls it replaces (untimed: assumed)."""
        return self.batched_s is None or self.singles_s is None or self.batched_s < self.singles_s

    def run(self, stacked: Sequence[torch.Tensor]) -> tuple[torch.Tensor, ...]:
        """The graph's dynamic outputs for stacked inputs, each with the samples on axis 0."""
        grad = torch.is_grad_enabled()
        torch._C._set_grad_enabled(False)  # as Specialization.call: checked without grad, run without
        try:
            return tuple(self.graph(*stacked))
        finally:
            torch._C._set_grad_enabled(grad)


def _same_arrays(inputs: Sequence[Mapping[str, Any]]) -> bool:
    """Whether all requests are numpy arrays with the first one's names, shapes and dtypes (same signature).

    False is not proof of the opposite (lists, other dtypes converted alike): the caller then compares the
    converted signatures (1.5 us a request, a fifth of a tiny model's batched cost per request).
    """
    first = inputs[0]
    shapes = {n: (v.shape, v.dtype) for n, v in first.items() if type(v) is np.ndarray}
    if len(shapes) != len(first):
        return False
    for other in inputs[1:]:
        if len(other) != len(shapes):
            return False
        for name, value in other.items():
            want = shapes.get(name)
            if want is None or type(value) is not np.ndarray or want != (value.shape, value.dtype):
                return False
    return True


def chunk_sizes(count: int, largest: int = MAX_BATCH) -> list[int]:
    """Powers of two, largest first, that add up to ``count`` (7 -> [4, 2, 1])."""
    sizes = []
    while count > 0:
        size = min(largest, 1 << (count.bit_length() - 1))
        sizes.append(size)
        count -= size
    return sizes


class BatchedRunner:
    """Runs lists of same-signature requests through batched graphs of a :class:`CompiledProgram` (thread-safe).

    Args:
        compiled: the compiled program whose single graphs are batched.
        build_after: times a (signature, batch size) is needed before its graph is built; the earlier ones
            run one single-graph call per request.
        max_graphs: batched graphs kept (least recently used dropped first).
    """

    def __init__(self, compiled: CompiledProgram, build_after: int = 2, max_graphs: int = 32):
        self.compiled = compiled
        self.build_after = max(1, build_after)
        self.max_graphs = max_graphs
        self._graphs: OrderedDict[tuple[Signature, int], BatchedGraph] = OrderedDict()
        self._failed: OrderedDict[Signature, BatchFallback] = OrderedDict()
        self._seen: dict[tuple[Signature, int], int] = {}
        self._last: Signature | None = None
        self._lock = threading.Lock()

    @property
    def fallbacks(self) -> list[BatchFallback]:
        """Signatures whose batches run one call per request, with the reason."""
        with self._lock:
            return list(self._failed.values())

    @property
    def graphs(self) -> list[BatchedGraph]:
        with self._lock:
            return list(self._graphs.values())

    def limit(self) -> int:
        """Requests one batch should hold: :data:`MAX_BATCH`, or 1 once the signature last run fell back."""
        last = self._last
        return 1 if last is not None and last in self._failed else MAX_BATCH

    def run(self, inputs: Sequence[Mapping[str, Any]]) -> list[dict[str, np.ndarray]] | None:
        """Each request's outputs, as ``compiled.run`` returns them; None when the signatures differ."""
        compiled = self.compiled
        if not inputs:
            return None
        feeds = [compiled.feeds(x) for x in inputs]
        sig = signature_of(feeds[0])
        if not _same_arrays(inputs) and any(signature_of(f) != sig for f in feeds[1:]):
            return None
        self._last = sig
        entry = compiled.get(feeds[0])
        if not isinstance(entry, Specialization) or entry.graph is None:
            if isinstance(entry, Fallback):
                self._fail(sig, 0, "the signature runs on the interpreter (not compiled)")
            elif entry is not None:
                self._fail(sig, 0, "every output is static (nothing to batch)")
            return [compiled.run(x) for x in inputs]
        results: list[dict[str, np.ndarray]] = []
        start = 0
        for size in chunk_sizes(len(feeds)):
            chunk = feeds[start : start + size]
            batched = self._graph(sig, size, entry, chunk) if size > 1 else None
            if batched is not None and not batched.faster:
                batched = (
                    None  # timed slower than one call per sample (a 160 px CNN: cache-bound convolutions)
                )
            outs: tuple[torch.Tensor, ...] | None = None
            if batched is not None:
                # an input the graph refuses (an index out of range): the single path gives its own answer or error
                try:
                    outs = batched.run([torch.stack([f[n] for f in chunk]) for n in entry.input_names])
                except Exception as e:
                    log.debug("batched graph failed (%s); one call per request", first_line(e))
            if outs is None:
                results.extend(compiled.run(x) for x in inputs[start : start + size])
            else:
                results.extend(self._split(entry, outs, size))
            start += size
        return results

    def _split(self, spec: Specialization, outs: tuple[torch.Tensor, ...], size: int) -> list[dict[str, Any]]:
        """Per-sample outputs as ``output_to_numpy`` gives them, each array its own copy."""
        program, precision = self.compiled.program, self.compiled.precision
        results: list[dict[str, Any]] = [{} for _ in range(size)]
        it = iter(outs)
        for out_spec, value in zip(program.outputs, spec.outputs):
            if not isinstance(value, Slot):
                for result in results:
                    result[out_spec.name] = output_to_numpy(value, out_spec, precision)
                continue
            tensor = next(it)
            # NOTE: one .numpy() for the batch and a copy per sample (4x cheaper than output_to_numpy per sample
            # on small outputs); the copy also keeps requests from sharing memory (an output vmap expanded from
            # an unbatched value has stride 0 over the samples)
            whole = (tensor.detach() if tensor.requires_grad else tensor).numpy()
            half = precision == "fp16" and out_spec.dtype == "fp16"
            rank0 = out_spec.kind == "tensor" and whole.ndim == 1
            for i, result in enumerate(results):
                arr = whole[i].astype(np.float16) if half else whole[i].copy()
                result[out_spec.name] = arr.reshape(1) if rank0 else arr
        return results

    def _fail(self, sig: Signature, size: int, reason: str) -> None:
        with self._lock:
            self._fail_locked(sig, size, reason)

    def _fail_locked(self, sig: Signature, size: int, reason: str) -> None:
        if sig in self._failed:
            return
        fallback = BatchFallback(sig, size, reason)
        self._failed[sig] = fallback
        while len(self._failed) > 4 * self.max_graphs:
            self._failed.popitem(last=False)
        log.info("batched interpreter: %s", fallback.describe())  # once per signature

    def _graph(
        self, sig: Signature, size: int, spec: Specialization, chunk: list[dict[str, torch.Tensor]]
    ) -> BatchedGraph | None:
        """The batched graph for (sig, size), built on its ``build_after``-th need (None: run singles)."""
        key = (sig, size)
        with self._lock:
            if sig in self._failed:
                return None
            hit = self._graphs.get(key)
            if hit is not None:
                self._graphs.move_to_end(key)
                return hit
            seen = self._seen.pop(key, 0) + 1
            if seen < self.build_after:
                if len(self._seen) >= 64 * self.max_graphs:
                    self._seen.clear()
                self._seen[key] = seen
                return None
            # NOTE: built under the lock (as the single path compiles): concurrent batches build it once
            try:
                built = build_batched(spec, chunk, self.compiled.precision, self.compiled.exact)
            except DevicefitError:
                raise
            except Exception as e:
                reason = str(e) if isinstance(e, NotBatchable) else _reason(e)
                self._fail_locked(sig, size, reason)
                return None
            self._graphs[key] = built
            while len(self._graphs) > self.max_graphs:
                self._graphs.popitem(last=False)
            log.debug("batched interpreter: %s x%d built in %.3f s", sig, size, built.build_s)
            return built


def build_batched(
    spec: Specialization, chunk: list[dict[str, torch.Tensor]], precision: str, exact: bool
) -> BatchedGraph:
    """Batch ``spec``'s graph for ``len(chunk)`` samples and check it against the single graph.

    Raises:
        NotBatchable: vmap, make_fx or the tracer refused the graph, or its outputs disagree.
    """
    start = time.perf_counter()
    size = len(chunk)
    stacked = [torch.stack([f[n] for f in chunk]) for n in spec.input_names]
    # NOTE: vmap of the ScriptFunction itself costs ~40 us a call in Python dispatch, and the tracer cannot
    # record vmap directly ("Unsupported value kind: Tensor"): make_fx records the batched aten ops first.
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            graph = _vmap_trace(spec.graph, stacked)
        except Exception as e:
            # in place into an unbatched clone (the unrolled GRU's output buffer)? retry with those out of place.
            # NOTE: only as the retry: a function made from a copied graph is run another way by TorchScript
            # (bert_encoder's 0-dim double constant then reached aten as a Python float and vmap failed)
            graph_ir = spec.graph.graph.copy()
            if not out_of_place(graph_ir):
                raise NotBatchable(f"vmap/trace failed: {_reason(e)}") from e
            single = torch._C._create_function_from_graph("batchable", graph_ir)
            try:
                graph = _vmap_trace(single, stacked)
            except Exception as again:
                raise NotBatchable(f"vmap/trace failed: {_reason(again)}") from again
    built = BatchedGraph(spec.signature, size, graph=graph)
    rtol = None if exact else (FP16_RTOL if precision == "fp16" else FP32_RTOL)
    # three calls: TorchScript's profiling executor optimises the graph on the second one
    for _ in range(3):
        built.exact &= _check(built, spec, stacked, rtol, "the batch it was built from")
    others = distinct_samples(chunk[0], size)
    stacked = [torch.stack([f[n] for f in others]) for n in spec.input_names]
    built.exact &= _check(built, spec, stacked, rtol, "a batch of distinct samples")
    built.batched_s, built.singles_s = _time(built, spec, stacked)
    built.build_s = time.perf_counter() - start
    return built


def _time(built: BatchedGraph, spec: Specialization, stacked: list[torch.Tensor]) -> tuple[float, float]:
    """Best-of-``TIMED_ROUNDS`` seconds of one batched call and of the single calls it replaces, interleaved.

    Batching is not always cheaper: a 96 px CNN's batch of 16 costs 0.56x sixteen calls, the same CNN at 160
    px 1.15x (its activations no longer fit the cache), so the runner uses a batched graph only where it was
    timed faster. Graph calls only, both sides: the single path's own per-request Python (feeds, outputs) is
    left out, so the comparison leans towards single calls. Interleaved round by round, so load from
    elsewhere falls on both; the best round of each.
    """
    samples = [[s[i] for s in stacked] for i in range(built.size)]
    best_batched = best_singles = float("inf")
    grad = torch.is_grad_enabled()
    torch._C._set_grad_enabled(False)
    try:
        for _ in range(TIMED_ROUNDS):
            t0 = time.perf_counter()
            built.graph(*stacked)
            t1 = time.perf_counter()
            for xs in samples:
                spec.graph(*xs)
            t2 = time.perf_counter()
            best_batched = min(best_batched, t1 - t0)
            best_singles = min(best_singles, t2 - t1)
    finally:
        torch._C._set_grad_enabled(grad)
    return best_batched, best_singles


def _vmap_trace(single: Any, stacked: list[torch.Tensor]) -> Any:
    """``vmap(single)`` recorded with make_fx, traced into a ScriptFunction."""
    from torch.fx.experimental.proxy_tensor import make_fx

    module = make_fx(torch.func.vmap(single))(*stacked)
    # NOTE: traced as a function calling the GraphModule, not the module itself: a ScriptFunction call costs
    # 10 us where the traced ScriptModule's nn.Module __call__ costs 14 (a 16-wide MLP at batch 2)
    return torch.jit.trace(lambda *xs: tuple(module(*xs)), tuple(stacked), check_trace=False)


def out_of_place(graph: torch._C.Graph) -> int:
    """Turn in-place ops on a fresh clone into their out-of-place form (``x = clone(c); x.scatter_add_(..)``).

    vmap cannot write batched values into an unbatched tensor in place (a scatter into a clone of a constant,
    as the GRU's unrolled output buffer is filled); the out-of-place op computes the same values. Only where
    the clone has no other use, so no other value sees the mutation. Returns the ops replaced.
    """
    replaced = 0
    for node in list(graph.nodes()):
        kind = node.kind()
        if not kind.startswith("aten::") or not kind.endswith("_") or kind.endswith("__"):
            continue
        target = node.inputsAt(0)
        if target.node().kind() != "aten::clone" or len(target.uses()) != 1:
            continue
        functional = graph.create(kind[:-1], list(node.inputs()), 1)
        functional.insertBefore(node)
        functional.output().setType(node.output().type())
        node.output().replaceAllUsesWith(functional.output())
        node.destroy()
        replaced += 1
    return replaced


def _reason(e: BaseException) -> str:
    text = str(e).strip()
    if text.startswith("The following operation failed in the TorchScript interpreter"):
        text = text.splitlines()[-1]  # the cause; the lines before are the trace's Python frames
    return f"{type(e).__name__}: {first_line(text)}"


def distinct_samples(feeds: dict[str, torch.Tensor], count: int) -> list[dict[str, torch.Tensor]]:
    """``count`` samples holding ``feeds``' values, each permuted differently (valid wherever ``feeds`` is)."""
    samples = []
    for i in range(count):
        gen = torch.Generator().manual_seed(4321 + i)
        sample = {}
        for name, t in feeds.items():
            flat = t.reshape(-1)
            sample[name] = flat[torch.randperm(flat.numel(), generator=gen)].reshape(t.shape).clone()
        samples.append(sample)
    return samples


def _check(
    built: BatchedGraph, spec: Specialization, stacked: list[torch.Tensor], rtol: float | None, what: str
) -> bool:
    """Whether the batched outputs equal the single graph's bit for bit; raise when outside ``rtol``."""
    try:
        got = built.run(stacked)
    except Exception as e:
        raise NotBatchable(f"the batched graph failed on {what}: {_reason(e)}") from e
    names = [f"#{i}" for i, o in enumerate(spec.outputs) if isinstance(o, Slot)]
    bitwise = True
    for i in range(built.size):
        sample = {n: s[i] for n, s in zip(spec.input_names, stacked)}
        try:
            grad = torch.is_grad_enabled()
            torch._C._set_grad_enabled(False)
            try:
                ref = tuple(spec.graph(*[sample[n] for n in spec.input_names]))
            finally:
                torch._C._set_grad_enabled(grad)
        except Exception as e:  # the single graph refuses these values: nothing to compare against
            log.debug("batched interpreter: check on %s skipped (%s)", what, first_line(e))
            return bitwise
        if len(ref) != len(got):
            raise NotBatchable(f"the batched graph returns {len(got)} outputs, the single one {len(ref)}")
        for name, g, r in zip(names, got, ref):
            a, b = g[i].numpy(), r.numpy()
            if same_array(a, b):
                continue
            bitwise = False
            if rtol is None or not same_array(a, b, rtol):
                bound = "bit for bit" if rtol is None else f"within {rtol:.3g} of its scale"
                raise NotBatchable(
                    f"output {name} of sample {i} differs from the single graph ({bound}) on {what}"
                )
    return bitwise


__all__ = ["MAX_BATCH", "BatchFallback", "BatchedGraph", "BatchedRunner", "build_batched", "chunk_sizes"]
