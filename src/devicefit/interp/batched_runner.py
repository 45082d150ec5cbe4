"""Runs lists of same-signature requests through the batched graphs of :mod:`devicefit.interp.batched`.

Chunks of powers of two (a batch of 7 runs as 4 + 2 + 1, the 1 on the single graph); each chunk's graph is
built on its ``build_after``-th need, and a chunk whose graph failed to build, or was timed slower than single
calls, runs one single-graph call per request.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from devicefit.errors import DevicefitError, first_line
from devicefit.interp.batched import (
    MAX_BATCH,
    BatchedGraph,
    BatchFallback,
    NotBatchable,
    _reason,
    build_batched,
    chunk_sizes,
)
from devicefit.interp.compiled import CompiledProgram, Fallback, Signature, Specialization, signature_of
from devicefit.interp.run import output_to_numpy
from devicefit.interp.specialize import Slot

log = logging.getLogger(__name__)


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
        self._building: set[tuple[Signature, int]] = set()  # graphs built on a background thread (ready())
        self._builders: list[threading.Thread] = []  # those threads, joined by close()

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

    def ready(self, inputs: Sequence[Mapping[str, Any]]) -> bool:
        """Whether :meth:`run` on these requests would build no batched graph (nor wait for one being built).

        For a thread that must not stall, the event loop's: building a size's graph takes 0.05-0.7 s (traced,
        checked and timed), and a leader of gathered requests once built one there, holding every other task
        of the loop for that long. Where run() would build one (the size's ``build_after``-th need), the build
        starts on a background thread instead (once a graph) and this returns False: the caller runs the
        requests one call each until it is there. Reads the runner's tables without its lock (a build holds it).
        """
        if len(inputs) < 2:
            return True
        if self._building:
            return False
        if not _same_arrays(inputs):
            return True  # rare (lists, mixed dtypes): run() sorts the signatures out, building where it must
        compiled = self.compiled
        sig = signature_of(compiled.feeds(inputs[0]))
        entry = compiled._cache.get(sig)
        if not isinstance(entry, Specialization) or entry.graph is None or sig in self._failed:
            return True  # run() runs one call per request (or compiles the single graph, as a call would)
        start = 0
        for size in chunk_sizes(len(inputs)):
            key = (sig, size)
            if size > 1 and key not in self._graphs and self._builds_next(key):
                chunk = [compiled.feeds(x) for x in inputs[start : start + size]]
                self._build_later(key, entry, chunk)
                return False
            start += size
        return True

    def _builds_next(self, key: tuple[Signature, int]) -> bool:
        """Whether the next need of ``key`` builds its graph (its ``build_after``-th)."""
        return self._seen.get(key, 0) + 1 >= self.build_after

    def _build_later(
        self, key: tuple[Signature, int], spec: Specialization, chunk: list[dict[str, torch.Tensor]]
    ) -> None:
        with self._lock:
            if key in self._building or key in self._graphs:
                return
            self._building.add(key)

        def build() -> None:
            try:
                self._graph(key[0], key[1], spec, chunk, force=True)
            except Exception as e:  # noted like a failed build; the requests run singly meanwhile anyway
                log.debug("batched interpreter: background build failed (%s)", first_line(e))
            finally:
                with self._lock:
                    self._building.discard(key)

        # NOTE: not a daemon, and joined by close() (the engine's unload): a daemon thread still tracing when the
        # process ended was aborted inside torch ('terminate called without an active exception', exit 134)
        thread = threading.Thread(target=build, name="devicefit-batched-build")
        with self._lock:
            self._builders = [t for t in self._builders if t.is_alive()]
            self._builders.append(thread)
        thread.start()

    def close(self) -> None:
        """Wait for the graphs being built on background threads (a build is 0.05-0.7 s)."""
        with self._lock:
            builders, self._builders = self._builders, []
        for thread in builders:
            thread.join()

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
        self,
        sig: Signature,
        size: int,
        spec: Specialization,
        chunk: list[dict[str, torch.Tensor]],
        force: bool = False,
    ) -> BatchedGraph | None:
        """The batched graph for (sig, size), built on its ``build_after``-th need, or now with ``force``
        (None: run singles)."""
        key = (sig, size)
        with self._lock:
            if sig in self._failed:
                return None
            hit = self._graphs.get(key)
            if hit is not None:
                self._graphs.move_to_end(key)
                return hit
            if not (force or self._builds_next(key)):
                seen = self._seen.get(key, 0) + 1
                if len(self._seen) >= 64 * self.max_graphs:
                    self._seen.clear()
                self._seen[key] = seen
                return None
            self._seen.pop(key, None)
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


__all__ = ["BatchedRunner"]
