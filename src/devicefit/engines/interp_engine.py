"""The ``interp`` engine: devicefit's ML Program interpreter (fp32 or emulated fp16), on any host.

The prepared plan (kernels bound, constexpr weights decompressed) is cached as JSON + raw weights (see
``_plan_io``), keyed by the package's content hash and the interpreter's source fingerprint.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from devicefit.engines.base import Availability, Engine, InputSpec
from devicefit.interp.program import TensorSpec

if TYPE_CHECKING:
    from devicefit.interp.batched_runner import BatchedRunner
    from devicefit.interp.compiled import CompiledProgram

log = logging.getLogger(__name__)


def input_spec_from_tensor_spec(s: TensorSpec) -> InputSpec:
    """InputSpec (what the runtime validates) from the interpreter's TensorSpec."""
    if s.dtype in ("fp16", "fp32", "fp64", "bf16"):
        kind: str | None = "float"
    elif s.dtype == "bool":
        kind = "bool"
    elif s.dtype is None:
        kind = None
    else:
        kind = "int"
    return InputSpec(
        name=s.name,
        dtype=kind,
        shape=tuple(s.shape) if s.shape is not None else None,
        enumerated_shapes=[tuple(e) for e in s.enumerated_shapes] if s.enumerated_shapes else None,
        ranges=[(int(a), int(b)) for a, b in s.shape_range] if s.shape_range else None,
    )


class InterpEngine(Engine):
    """Runs an ``.mlpackage`` / ``.mlmodel`` / in-memory ``MLModel`` with :mod:`devicefit.interp`.

    Options:
        function: function of a multi-function package.
        compiled: run through per-shape compiled graphs (default True; ``devicefit.interp.compiled``):
            no Python per op, and the GIL released so concurrent requests overlap. Outputs equal the plain
            interpreter's within the tolerance stated in ``devicefit.interp.rewrites`` (bit for bit on every
            zoo model but the fp32 GRU, 2.5e-7 of its scale). What cannot be compiled runs on the plain
            interpreter (``engine.compiled.fallbacks``).
        exact: with ``compiled``, only bit-identical graph transformations (default False).

    A batch of requests to a fixed-batch package (``predict_batch``, or ``predict_async`` requests the
    runtime coalesces) runs through the signature's graph batched on a new axis (``devicefit.interp.batched``),
    a few graph calls instead of one per request; outputs equal one ``predict`` per request within the same
    tolerance (bit for bit with ``exact``).
    """

    name: ClassVar[str] = "interp"
    compiled: CompiledProgram | None = None
    batched: BatchedRunner | None = None

    @classmethod
    def availability(cls) -> Availability:
        from devicefit import __version__

        return Availability(
            "interp", True, devices=["cpu (torch kernels)"], version=f"devicefit-{__version__}"
        )

    def version(self) -> str:
        from devicefit.engines._plan_io import interp_fingerprint

        return f"{self.availability().version}+{interp_fingerprint()}"

    def _load(self) -> bool | None:
        from devicefit import interp

        function = self.options.get("function")
        cache = self.cache()
        source = self.model
        if cache is None or not isinstance(source, (str, os.PathLike)):
            self.program = interp.load(source, function=function)
            self._describe()
            return None
        from devicefit.engines._plan_io import Unserializable, load_plan, save_plan
        from devicefit.interp.run import Program

        path = Path(os.fspath(source))
        if not path.exists():
            self.program = interp.load(source, function=function)  # raises the interpreter's clear error
        options = {"function": function}
        key = cache.key(cache.content_hash(path), self.name, options, self.version())
        built: dict[str, Any] = {}

        def build(folder: Path) -> dict[str, Any]:
            prog = interp.load(path, function=function)
            built["program"] = prog
            return save_plan(prog.plan, prog.functions, folder)

        with cache.reading(key):  # no process evicts the entry while its plan is read
            try:
                entry, hit = cache.get_or_build(key, self.name, options, build)
            except Unserializable as e:
                log.info("interp plan of %s is not cacheable (%s); loading uncached", path, e)
                self.program = built.get("program") or interp.load(path, function=function)
                self._describe()
                return False
            if not hit and "program" in built:
                self.program = built["program"]
            else:
                try:
                    plan, functions = load_plan(entry.path)
                except (ValueError, KeyError, TypeError, OSError) as e:
                    cache.discard(entry, f"{type(e).__name__}: {e}")
                    self.program = interp.load(path, function=function)
                    self._describe()
                    return False
                self.program = Program(plan, functions, str(path))
        self._describe()
        return hit

    def _describe(self) -> None:
        from devicefit.interp.batched_runner import BatchedRunner
        from devicefit.interp.compiled import CompiledProgram

        self.inputs = [input_spec_from_tensor_spec(s) for s in self.program.inputs]
        self.output_names = [s.name for s in self.program.outputs]
        use = self.options.get("compiled", True) and not self.program.states
        # compile_after=2: a shape seen once (a growing sequence) runs on the interpreter, not worth a compile
        exact = bool(self.options.get("exact", False))
        self.compiled = (
            CompiledProgram(self.program, self.precision, compile_after=2, exact=exact) if use else None
        )
        # NOTE: only on the compiled path: vmap over the per-op Python interpreter is no faster than a loop
        self.batched = BatchedRunner(self.compiled) if self.compiled is not None else None

    def request_batch_limit(self) -> int:
        """16 for a fixed-batch package on the compiled path (batched graphs); 1 where they cannot help.

        1: the plain interpreter (``compiled=False``; vmap over per-op Python is no faster), a stateful
        program, or a signature whose batched graph fell back (``engine.batched.fallbacks``).
        """
        if self.batch_capacity() != 1:
            return super().request_batch_limit()
        return self.batched.limit() if self.batched is not None else 1

    def batch_ready(self, batch: list[dict[str, np.ndarray]]) -> bool:
        """False where a batch call on these would first build a batched graph (0.05-0.7 s): the build then
        starts on a background thread (``BatchedRunner.ready``)."""
        batched = self.batched
        if len(batch) < 2 or batched is None or not self._loaded or self.batch_capacity() != 1:
            return True
        return batched.ready(batch)

    def predict_batch_validated(self, batch: list[dict[str, np.ndarray]]) -> list[dict[str, np.ndarray]]:
        batched = self.batched
        if len(batch) < 2 or batched is None or self.batch_capacity() != 1:
            return super().predict_batch_validated(batch)
        if not self._loaded:
            self._require_loaded()
        start = time.perf_counter()
        out = batched.run(batch)
        if out is None:  # the requests' shapes differ (enumerated shapes): one call each
            return super().predict_batch_validated(batch)
        elapsed = time.perf_counter() - start
        with self._stats_lock:
            t = self.timings
            if t.first_predict_s is None:
                t.first_predict_s = elapsed / len(batch)
            t.predict_count += len(batch)
            t.predict_total_s += elapsed
            t.last_predict_s = elapsed / len(batch)
        return out

    def _predict(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self.compiled is not None:
            return self.compiled.run(feeds)
        return self.program.run(feeds, precision=self.precision)

    def _unload(self) -> None:
        if self.batched is not None:
            self.batched.close()  # no batched graph still being built on another thread
        self.program = None  # type: ignore[assignment]
        self.compiled = None
        self.batched = None
