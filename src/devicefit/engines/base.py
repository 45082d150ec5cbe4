"""The one runner template every engine follows (as Polygraphy's ``backend/base/runner.py``).

Public ``load / predict / unload`` check state and inputs; subclasses implement ``_load / _predict /
_unload`` only. Engines are context managers and record their own timings.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from devicefit.errors import DevicefitError, InputError

COMPUTE_UNITS = ("all", "cpu_only", "cpu_and_gpu", "cpu_and_ne")
MAX_STACKED_INPUT_BYTES = 256 * 1024
# the most queued predict_async requests one engine call takes (Engine.request_batch_limit)
REQUEST_BATCH_LIMIT = 16
PRECISIONS = ("fp32", "fp16")


class EngineUnavailableError(DevicefitError):
    """The engine cannot run on this host (wrong OS, missing library)."""


class EngineStateError(DevicefitError):
    """An engine was used in the wrong state (predict after unload)."""


@dataclass
class Availability:
    """Whether an engine runs here, on which devices, and if not, why."""

    engine: str
    available: bool
    reason: str = ""
    devices: list[str] = field(default_factory=list)
    version: str = ""


@dataclass
class InputSpec:
    """What an engine accepts for one input. ``None`` in ``shape`` is a free dimension."""

    name: str
    dtype: str | None  # numpy kind family: "float", "int", "bool" or None (anything numeric)
    shape: tuple[int | None, ...] | None
    enumerated_shapes: list[tuple[int, ...]] | None = None
    ranges: list[tuple[int, int]] | None = None  # per-axis (lo, hi); hi < 0 = unbounded

    def describe(self) -> str:
        if self.enumerated_shapes:
            shape = " | ".join("x".join(map(str, s)) for s in self.enumerated_shapes)
        elif self.ranges:
            shape = "x".join(
                str(lo) if lo == hi else f"{lo}..{'inf' if hi < 0 else hi}" for lo, hi in self.ranges
            )
        elif self.shape is None:
            shape = "any"
        else:
            shape = "x".join("?" if d is None else str(d) for d in self.shape)
        return f"{self.name}: {self.dtype or 'numeric'}[{shape}]"

    def batch_capacity(self) -> int | None:
        """How many samples axis 0 can hold at once (None = unlimited; 1 when fixed)."""
        if self.enumerated_shapes:
            return 1
        if self.ranges:
            hi = self.ranges[0][1]
            return None if hi < 0 else hi
        if self.shape is None or not self.shape:
            return 1
        return None if self.shape[0] is None else 1


@dataclass
class EngineTimings:
    """Timings an engine records (seconds)."""

    load_s: float | None = None
    cache_hit: bool | None = None
    first_predict_s: float | None = None
    predict_count: int = 0
    predict_total_s: float = 0.0
    last_predict_s: float | None = None


def _kind_ok(want: str | None, arr: np.ndarray) -> bool:
    if want is None:
        return arr.dtype.kind in "fiub"
    if want == "float":
        return arr.dtype.kind in "fiu"
    if want == "int":
        return arr.dtype.kind in "iub"
    if want == "bool":
        return arr.dtype.kind in "bi"
    return True


def check_shape(spec: InputSpec, shape: tuple[int, ...]) -> str | None:
    """Why ``shape`` is not accepted by ``spec`` (None when it is)."""
    if spec.enumerated_shapes:
        if shape in spec.enumerated_shapes:
            return None
        return "the model accepts only " + ", ".join("x".join(map(str, s)) for s in spec.enumerated_shapes)
    if spec.ranges:
        if len(shape) != len(spec.ranges):
            return f"expected rank {len(spec.ranges)}"
        for axis, (dim, (lo, hi)) in enumerate(zip(shape, spec.ranges)):
            if dim < lo or (hi >= 0 and dim > hi):
                return f"axis {axis} is {dim}, outside {lo}..{'inf' if hi < 0 else hi}"
        return None
    if spec.shape is None:
        return None
    if len(shape) != len(spec.shape):
        return f"expected rank {len(spec.shape)}"
    for axis, (dim, want) in enumerate(zip(shape, spec.shape)):
        if want is not None and dim != want:
            return f"axis {axis} is {dim}, expected {want}"
    return None


def validate_feeds(specs: Sequence[InputSpec], feeds: Any) -> dict[str, np.ndarray]:
    """Check names, dtypes and shapes; return name -> numpy array. Raises InputError (one line)."""
    if not isinstance(feeds, Mapping):
        names = [s.name for s in specs] or ["x"]
        shown = ", ".join(f"{n!r}: array" for n in names[:4]) + (", ..." if len(names) > 4 else "")
        raise InputError(
            f"inputs must be a dict of name -> array, got {type(feeds).__name__}; pass {{{shown}}}"
        )
    expected = {s.name: s for s in specs}
    unknown = sorted(set(feeds) - set(expected))
    if unknown:
        # NOTE: the listing is built only on error: this runs once per request (it was a quarter of the
        # handle's per-request overhead when built eagerly)
        listing = ", ".join(s.describe() for s in specs)
        raise InputError(f"unknown input {unknown[0]!r}; the model's inputs are: {listing}")
    out: dict[str, np.ndarray] = {}
    for name, spec in expected.items():
        if name not in feeds:
            raise InputError(f"missing input {spec.describe()}; pass it as {name!r}: array")
        value = feeds[name]
        if hasattr(value, "detach"):  # torch tensors without importing torch
            value = value.detach().cpu().numpy()
        arr = np.asarray(value)
        if arr.dtype == object or not _kind_ok(spec.dtype, arr):
            raise InputError(f"input {name!r} has dtype {arr.dtype}; expected {spec.describe()}")
        why = check_shape(spec, tuple(arr.shape))
        if why:
            shape = "x".join(map(str, arr.shape)) or "scalar"
            raise InputError(f"input {name!r} has shape {shape}: {why} ({spec.describe()})")
        out[name] = arr
    return out


class Engine:
    """Base runner. Subclasses set ``name`` and implement ``_load``, ``_predict`` (and maybe ``_unload``).

    Args:
        model: what the engine runs (a path, an ``nn.Module``, an ``MLModel``: engine-specific).
        compute_units: ``"all"``, ``"cpu_only"``, ``"cpu_and_gpu"`` or ``"cpu_and_ne"`` (Core ML's names).
        precision: ``"fp32"`` or ``"fp16"`` (engines without an fp16 mode say so at load).
        cache: a :class:`~devicefit.engines.cache.SpecializationCache`, ``None`` for the default one, or
            ``False`` to prepare the model from scratch every time.
    """

    name: ClassVar[str] = "base"

    def __init__(
        self,
        model: Any,
        *,
        compute_units: str = "all",
        precision: str = "fp32",
        cache: Any = None,
        **options: Any,
    ) -> None:
        if compute_units not in COMPUTE_UNITS:
            raise InputError(
                f"compute_units must be one of {', '.join(COMPUTE_UNITS)}, got {compute_units!r}"
            )
        if precision not in PRECISIONS:
            raise InputError(f"precision must be fp32 or fp16, got {precision!r}")
        self.model = model
        self.compute_units = compute_units
        self.precision = precision
        self.options = options
        self._cache_arg = cache
        self.timings = EngineTimings()
        self.inputs: list[InputSpec] = []
        self.output_names: list[str] = []
        self._loaded = False
        self._state_lock = threading.Lock()
        self._stats_lock = threading.Lock()
        # set when the model failed on requests stacked on axis 0 while single ones run (a forward that hard-codes
        # batch 1 behind a free batch axis): later batches go straight to one call per request
        self._stack_error: Exception | None = None

    # ------------------------------------------------------------------ protocol
    @classmethod
    def availability(cls) -> Availability:
        """Whether this engine can run on this host (and on which devices)."""
        return Availability(cls.name, True)

    @property
    def loaded(self) -> bool:
        return self._loaded

    def cache(self) -> Any:
        """The specialization cache in use, or None when caching is off."""
        if self._cache_arg is False:
            return None
        if self._cache_arg is None:
            from devicefit.engines.cache import SpecializationCache

            self._cache_arg = SpecializationCache()
        return self._cache_arg

    def load(self) -> Engine:
        """Prepare the model (idempotent). Returns self."""
        with self._state_lock:
            if self._loaded:
                return self
            avail = self.availability()
            if not avail.available:
                raise EngineUnavailableError(f"engine {self.name!r} is unavailable here: {avail.reason}")
            start = time.perf_counter()
            hit = self._load()
            self.timings.load_s = time.perf_counter() - start
            self.timings.cache_hit = hit
            self._loaded = True
        return self

    def predict(self, feeds: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """Validate ``feeds`` and run one prediction; returns output name -> array."""
        arrays = validate_feeds(self.inputs if self._loaded else self._require_loaded(), feeds)
        return self.predict_validated(arrays)

    def predict_validated(self, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run already-validated inputs (the handle validates once, then calls this)."""
        if not self._loaded:
            self._require_loaded()
        start = time.perf_counter()
        out = self._predict(arrays)
        elapsed = time.perf_counter() - start
        with self._stats_lock:
            t = self.timings
            if t.first_predict_s is None:
                t.first_predict_s = elapsed
            t.predict_count += 1
            t.predict_total_s += elapsed
            t.last_predict_s = elapsed
        return out

    def batch_capacity(self) -> int | None:
        """How many samples one call can take stacked on axis 0 (None = unlimited, 1 = no batching)."""
        caps = [s.batch_capacity() for s in self.inputs]
        if not caps or any(c == 1 for c in caps):
            return 1
        known = [c for c in caps if c is not None]
        return min(known) if known else None

    @property
    def stack_error(self) -> Exception | None:
        """How the model failed on requests stacked on axis 0 (batches then run one call per request), or None."""
        return self._stack_error

    def request_batch_limit(self) -> int:
        """How many queued requests one engine call may take for ``predict_async`` (1: one call per request).

        The runtime coalesces requests with equal input shapes that wait for a worker into one
        :meth:`predict_batch_validated` call of at most this many. Only worth it where that call is cheaper per
        request than one call each: models that stack on axis 0 (until a stack was refused); an engine with
        another batched path (the interpreter's vmapped graphs) says so by overriding this.
        """
        if self._stack_error is not None:
            return 1
        cap = self.batch_capacity()
        return REQUEST_BATCH_LIMIT if cap is None else max(1, min(cap, REQUEST_BATCH_LIMIT))

    def predict_batch(self, batch: Sequence[Mapping[str, Any]]) -> list[dict[str, np.ndarray]]:
        """Predict a list of requests: stacked along axis 0 when the model allows it, else one by one."""
        arrays = [validate_feeds(self.inputs if self._loaded else self._require_loaded(), f) for f in batch]
        return self.predict_batch_validated(arrays)

    def batch_ready(self, batch: list[dict[str, np.ndarray]]) -> bool:
        """Whether a batch call on these runs without a one-time preparation first (a thread that must not
        stall, the event loop's, runs them one call each otherwise). Engines that stack on axis 0 prepare
        nothing; the interpreter builds a batched graph per size (:meth:`InterpEngine.batch_ready`)."""
        return True

    def predict_batch_validated(self, batch: list[dict[str, np.ndarray]]) -> list[dict[str, np.ndarray]]:
        if not batch:
            return []
        cap = self.batch_capacity()
        if cap == 1 or len(batch) == 1 or self._stack_error is not None:
            return [self.predict_validated(f) for f in batch]
        results: list[dict[str, np.ndarray]] = []
        step = len(batch) if cap is None else cap
        # NOTE: stack only up to ~256 KiB of inputs per call. Measured with the torch engine on a 4-conv net at
        # 1 thread: 13 ms/sample stacked by 2-4, 23 ms/sample by 40 (activations fall out of cache); a 16-float
        # MLP still stacks thousands at once.
        per_sample = max(1, sum(int(a.nbytes) for a in batch[0].values()))
        step = max(1, min(step, MAX_STACKED_INPUT_BYTES // per_sample))
        for i in range(0, len(batch), step):
            results.extend(self._stacked(batch[i : i + step]))
        return results

    def _stacked(self, chunk: list[dict[str, np.ndarray]]) -> list[dict[str, np.ndarray]]:
        sizes = [next(iter(f.values())).shape[0] if f and next(iter(f.values())).ndim else 0 for f in chunk]
        if any(s == 0 for s in sizes) or any(
            len({f[n].shape[0] for n in f}) != 1 or f[n].ndim == 0 for f in chunk for n in f
        ):
            return [self.predict_validated(f) for f in chunk]
        stacked = {n: np.concatenate([f[n] for f in chunk], axis=0) for n in chunk[0]}
        if any(check_shape(s, tuple(stacked[s.name].shape)) for s in self.inputs):
            return [self.predict_validated(f) for f in chunk]
        try:
            out = self.predict_validated(stacked)
        except DevicefitError:
            raise
        except Exception as e:
            # NOTE: stacking is an optimisation the declared shapes allowed, not something the caller asked
            # for: a model that refuses the stack answers one call per request (whose own error, if one fails
            # too, is the one the caller sees)
            results = [self.predict_validated(f) for f in chunk]
            self._stack_error = e.with_traceback(None)  # not its frames (and their tensors)
            return results
        total = sum(sizes)
        if any(np.ndim(v) == 0 or np.shape(v)[0] != total for v in out.values()):
            # outputs are not batch-major (a reduction over the batch): stacking changed the meaning
            return [self.predict_validated(f) for f in chunk]
        bounds = np.cumsum([0, *sizes])
        return [{k: v[bounds[i] : bounds[i + 1]] for k, v in out.items()} for i in range(len(chunk))]

    def unload(self) -> None:
        """Release the model (idempotent); ``load()`` may be called again.

        A ``_unload`` that raises still leaves the engine unloaded (the error propagates): a half-released
        model must be prepared again, never predicted on.
        """
        with self._state_lock:
            if self._loaded:
                try:
                    self._unload()
                finally:
                    self._loaded = False

    def version(self) -> str:
        """Version string of the library behind the engine (part of cache keys)."""
        return self.availability().version

    def __enter__(self) -> Engine:
        return self.load()

    def __exit__(self, *exc: object) -> None:
        self.unload()

    def __repr__(self) -> str:
        state = "loaded" if self._loaded else "not loaded"
        return f"<{type(self).__name__} {self.compute_units} {self.precision} {state}>"

    # ------------------------------------------------------------------ for subclasses
    def _require_loaded(self) -> list[InputSpec]:
        raise EngineStateError(
            f"engine {self.name!r} is not loaded; call .load() or use it as a context manager"
        )

    def _load(self) -> bool | None:
        """Prepare the model; set ``self.inputs`` / ``self.output_names``. Return True on a cache hit."""
        raise NotImplementedError

    def _predict(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def _unload(self) -> None:
        """Drop references to the prepared model."""
