"""The profiling harness: load times, first prediction, warm latency, throughput, peak RSS per engine."""

from __future__ import annotations

import asyncio
import contextlib
import os
import platform
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from devicefit.engines import create, resolve_auto
from devicefit.engines.cache import SpecializationCache
from devicefit.errors import DevicefitError, InputError
from devicefit.profile.stats import LatencyStats


@dataclass
class ThroughputPoint:
    """Requests per second in one mode: ``sync`` (one caller), ``batch`` (size = batch) or ``async``
    (``in_flight`` concurrent requests)."""

    mode: str
    level: int
    requests: int
    seconds: float

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else float("nan")


@dataclass
class EngineProfile:
    """Everything measured for one engine x compute unit x precision (raw samples included)."""

    engine: str
    compute_units: str
    precision: str
    # uncached: best of ``load_reps`` loads without the cache, after a warm-up load; cached: best of
    # ``load_reps`` loads from a warmed cache (each one a cache hit)
    uncached_load_s: float | None = None
    cached_load_s: float | None = None
    first_predict_ms: float | None = None
    latency: LatencyStats = field(default_factory=LatencyStats)
    throughput: list[ThroughputPoint] = field(default_factory=list)
    peak_rss_mb: float | None = None
    error: str | None = None
    # after the original fields, so that positional construction keeps working:
    # the discarded warm-up load (lazy imports included when none ran before) and every timed load
    first_load_s: float | None = None
    uncached_load_samples_s: list[float] = field(default_factory=list)
    cached_load_samples_s: list[float] = field(default_factory=list)
    cached_load_hits: list[bool | None] = field(default_factory=list)
    # the class of the DevicefitError in ``error`` ("ModelLoadError", "InputError", "EngineUnavailableError"):
    # a caller tells "this engine is not on this host" from "the model or its inputs are bad"
    error_type: str | None = None

    @property
    def label(self) -> str:
        """``engine · compute units · precision``, as the tables head the column."""
        return f"{self.engine} · {self.compute_units} · {self.precision}"


@dataclass
class ProfileReport:
    """Profiles of one model on several engines, with the host they ran on.

    ``device_bounds`` holds roofline lower bounds for the devices asked for (``devices=``): what each
    device could do at best from its published peaks, not measurements (see :mod:`devicefit.profile.bounds`).
    """

    model: str
    host: dict[str, Any]
    profiles: list[EngineProfile]
    device_bounds: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for p, raw in zip(d["profiles"], self.profiles):
            for t, point in zip(p["throughput"], raw.throughput):
                t["per_second"] = point.per_second
        return d


def host_info() -> dict[str, Any]:
    import psutil

    return {
        "system": platform.system(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 1e9, 1),
    }


@contextlib.contextmanager
def peak_rss() -> Iterator[dict[str, float]]:
    """Sample this process's RSS every 5 ms; yields a dict whose ``mb`` is the peak seen."""
    import psutil

    proc = psutil.Process()
    box = {"mb": proc.memory_info().rss / 1e6}
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.005):
            box["mb"] = max(box["mb"], proc.memory_info().rss / 1e6)

    t = threading.Thread(target=sample, name="devicefit-rss", daemon=True)
    t.start()
    try:
        yield box
    finally:
        stop.set()
        t.join()
        box["mb"] = max(box["mb"], proc.memory_info().rss / 1e6)


LOAD_REPS = 3


def check_engine_names(engines: Sequence[str], compute_units: Sequence[str] = ("all",)) -> None:
    """Raise a one-line InputError (with a did-you-mean) for an unknown engine or compute unit name."""
    import difflib

    from devicefit.engines import COMPUTE_UNITS, ENGINE_NAMES

    for value, known, what in [(e, ("auto", *ENGINE_NAMES), "engine") for e in engines] + [
        (c, COMPUTE_UNITS, "compute unit") for c in compute_units
    ]:
        if value not in known:
            close = [k for k in known if value and k.startswith(value)] or difflib.get_close_matches(
                value, known, n=1
            )
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise InputError(f"unknown {what} {value!r}; {hint}choose one of {', '.join(known)}")


def _timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def profile_engine(
    model: Any,
    engine: str = "auto",
    compute_units: str = "all",
    precision: str = "fp32",
    feeds: dict[str, np.ndarray] | None = None,
    reps: int = 200,
    warmup: int = 5,
    batch_sizes: Sequence[int] = (1, 4),
    max_in_flight: int = 2,
    throughput_requests: int = 64,
    cache: SpecializationCache | None = None,
    progress: Callable[[str], None] | None = None,
    load_reps: int = LOAD_REPS,
    **engine_options: Any,
) -> EngineProfile:
    """Profile one engine on ``model``.

    Loads: one uncached warm-up load first (``first_load_s``: in a fresh process it includes the engine's lazy
    imports, which are not the model's cost), then the best of ``load_reps`` uncached loads and the best of
    ``load_reps`` loads from a warmed cache (a private temporary cache unless ``cache`` is given). Latency samples
    are single synchronous predictions after ``warmup`` runs.
    """
    from devicefit.runtime.handle import Model

    name = resolve_auto(model) if engine == "auto" else engine
    prof = EngineProfile(name, compute_units, precision)
    say = progress or (lambda _msg: None)
    with contextlib.ExitStack() as stack:
        if cache is None:
            cache = SpecializationCache(
                stack.enter_context(tempfile.TemporaryDirectory(prefix="devicefit-prof-"))
            )
        opts = dict(compute_units=compute_units, precision=precision, **engine_options)
        if feeds is not None and name in ("torch", "onnxruntime"):
            opts.setdefault("example_inputs", feeds)  # names, dtypes and shapes for TorchScript / export
        rss = stack.enter_context(peak_rss())
        try:
            say(f"{name}: first load")
            first = create(name, model, cache=False, **opts)
            prof.first_load_s = _timed(first.load)
            feeds = feeds if feeds is not None else _example_feeds(first)
            first.unload()
            say(f"{name}: uncached load x{load_reps}")
            for _ in range(load_reps):
                cold = create(name, model, cache=False, **opts)
                prof.uncached_load_samples_s.append(_timed(cold.load))
                cold.unload()
            prof.uncached_load_s = min(prof.uncached_load_samples_s)
            create(name, model, cache=cache, **opts).load().unload()  # warm the cache
            say(f"{name}: cached load x{load_reps}")
            for _ in range(load_reps):
                warm = create(name, model, cache=cache, **opts)
                prof.cached_load_samples_s.append(_timed(warm.load))
                prof.cached_load_hits.append(warm.timings.cache_hit)
                warm.unload()
            prof.cached_load_s = min(prof.cached_load_samples_s)
            handle = Model(model, engine=name, cache=cache, max_in_flight=max_in_flight, **opts)
            handle.load()
            # also when the model fails mid-profile: no worker threads left behind
            stack.callback(handle.unload)
            prof.first_predict_ms = _first_predict(handle, name, model, feeds) * 1e3
            for _ in range(warmup):
                handle.predict(feeds)
            say(f"{name}: latency x{reps}")
            samples = [_timed(lambda: handle.predict(feeds)) * 1e3 for _ in range(reps)]
            prof.latency = LatencyStats.from_samples(samples)
            say(f"{name}: throughput")
            prof.throughput = _throughput(
                handle, feeds, batch_sizes, max_in_flight, throughput_requests, lambda b: _model_fails(
                    name, model, f"fails on a batch of {b} requests stacked on axis 0",
                    "its forward takes a fixed batch: profile with --batch-sizes 1",
                )
            )  # fmt: skip
            handle.unload()
        except DevicefitError as e:  # EngineUnavailableError included; anything else is a bug: it propagates
            prof.error, prof.error_type = str(e), type(e).__name__
        prof.peak_rss_mb = rss["mb"]
    return prof


# Engines whose predictions run the user's own code (a TorchScript forward, an exported ONNX graph): an
# exception from their first prediction on the caller's inputs is about the model and those inputs.
_USER_CODE_ENGINES = ("torch", "onnxruntime")


def _first_predict(handle: Any, name: str, model: Any, feeds: dict[str, np.ndarray]) -> float:
    """Seconds of the first prediction; a failure of the model itself on these inputs is an InputError.

    The torch engine runs the user's forward and onnxruntime the graph exported from it: a shape mismatch
    there (``--input x:1x5`` for a ``Linear(4, 2)``) raises a RuntimeError, which is the inputs' fault, not a
    devicefit bug (exit 2, not 3). The interpreter validates inputs against the program first, so an
    exception from it stays an internal error.
    """
    given = ", ".join(f"{k}:{'x'.join(map(str, np.shape(v))) or 'scalar'}:{np.asarray(v).dtype}"
                      for k, v in feeds.items())  # fmt: skip
    with _model_fails(name, model, f"fails on the inputs given ({given})", "pass --input shapes and dtypes its "
                      "forward accepts"):  # fmt: skip
        return _timed(lambda: handle.predict(feeds))


@contextlib.contextmanager
def _model_fails(name: str, model: Any, what: str, todo: str) -> Iterator[None]:
    """Turn an exception raised by the user's own code under a user-code engine into an InputError naming
    the model, ``what`` it failed on, torch's reason and ``todo``; devicefit errors, and any exception under
    the other engines, pass through unchanged."""
    try:
        yield
    except DevicefitError:
        raise
    except Exception as e:
        if name not in _USER_CODE_ENGINES:
            raise
        shown = (
            os.path.basename(str(model)) if isinstance(model, (str, os.PathLike)) else type(model).__name__
        )
        raise InputError(f"{shown} {what} under {name}: {_root_cause(e)}; {todo}") from e


def _root_cause(error: BaseException) -> str:
    """The line that says what failed: the innermost cause's message, and of a TorchScript interpreter
    trace ("The following operation failed in the TorchScript interpreter." + a traceback) its last line,
    where torch puts the error itself ("RuntimeError: mat1 and mat2 shapes cannot be multiplied ...")."""
    from devicefit.errors import first_line, torchscript_cause

    while error.__cause__ is not None:
        error = error.__cause__
    return f"{type(error).__name__}: {first_line(torchscript_cause(str(error)) or error, 300)}"


def _example_feeds(engine: Any) -> dict[str, np.ndarray]:
    """Inputs for a model given none: the program's examples, the engine's, else random ones at the declared
    shapes (unknown dimensions 1), each bounded like every generated input (``$DEVICEFIT_MAX_INPUT_BYTES``)."""
    program = getattr(engine, "program", None)
    if program is not None:
        from devicefit.sources.spec import check_program_inputs_total

        check_program_inputs_total(program.inputs, "feed them (from the CLI: --input NAME=FILE.npy)")
        return program.example_inputs()
    examples = engine.options.get("example_inputs")
    if isinstance(examples, dict):
        return {k: np.asarray(v) for k, v in examples.items()}
    from devicefit.sources.spec import InputSpec as SourceSpec
    from devicefit.sources.spec import random_inputs

    specs = []
    for spec in engine.inputs:
        if spec.shape is None:
            raise InputError(
                f"input {spec.name!r} has no declared shape; pass feeds=... (from the CLI: --input "
                f"{spec.name}:DIMxDIM[:DTYPE] or {spec.name}=FILE.npy) to profile"
            )
        shape = tuple(1 if d is None else int(d) for d in spec.shape)
        dtype = "float32" if spec.dtype in ("float", None) else "int64"
        specs.append(SourceSpec(spec.name, shape, dtype))
    # NOTE: random_inputs checks every input's bytes against the limit before allocating any: an ONNX model
    # declaring a 1x3x16384x16384 input must be refused, not allocate 3 GiB.
    return random_inputs(specs, int_high=1)  # integer inputs were zeros: ids and masks of 0 stay valid


def _throughput(
    handle: Any,
    feeds: dict[str, np.ndarray],
    batch_sizes: Sequence[int],
    max_in_flight: int,
    n: int,
    batch_guard: Callable[[int], contextlib.AbstractContextManager[None]] = lambda _b: (
        contextlib.nullcontext()
    ),
) -> list[ThroughputPoint]:
    def sync() -> None:
        for _ in range(n):  # NOTE: each result dropped at once: a list of them grew with --requests
            handle.predict(feeds)

    points = [ThroughputPoint("sync", 1, n, _timed(sync))]
    for b in batch_sizes:
        rounds = max(1, n // b)
        batch = [feeds] * b
        with batch_guard(b):
            if b > 1:
                # NOTE: not timed: an engine may build its batched form on a size's second use (the
                # interpreter's batched graphs, 0.05-0.7 s each), which is load cost, not throughput
                for _ in range(2):
                    handle.predict_batch(batch)
            start = time.perf_counter()
            for _ in range(rounds):
                handle.predict_batch(batch)
            refused = getattr(handle.engine, "stack_error", None)
            if b > 1 and refused is not None:
                # predict_batch fell back to one call per request: this row would not measure a batch of b
                raise refused
        secs = time.perf_counter() - start
        points.append(ThroughputPoint("batch", b, rounds * b, secs))
    for k in range(1, max_in_flight + 1):
        points.append(ThroughputPoint("async", k, n, _async_rate(handle, feeds, k, n)))
    return points


def _async_rate(handle: Any, feeds: dict[str, np.ndarray], in_flight: int, n: int) -> float:
    """Seconds for ``n`` requests with ``in_flight`` callers each awaiting its previous result."""

    async def main() -> float:
        remaining = [n]

        async def caller() -> None:
            while remaining[0] > 0:
                remaining[0] -= 1
                await handle.predict_async(feeds)

        start = time.perf_counter()
        await asyncio.gather(*(caller() for _ in range(in_flight)))
        return time.perf_counter() - start

    return asyncio.run(main())


def profile(
    model: Any,
    engines: Sequence[str] = ("auto",),
    compute_units: Sequence[str] = ("all",),
    precisions: Sequence[str] = ("fp32",),
    progress: Callable[[str], None] | None = None,
    devices: Sequence[str] = (),
    **kwargs: Any,
) -> ProfileReport:
    """Profile ``model`` on every engine x compute unit x precision; unavailable ones carry ``error``.

    Raises:
        InputError: an unknown engine or compute unit name (before any timing), a bad device id.

    ``devices`` (catalog ids) adds each device's roofline lower bound, computed first so a bad id or a
    model the roofline cannot read fails before any timing.
    """
    from devicefit.profile.bounds import device_bounds

    check_engine_names(engines, compute_units)
    bounds = device_bounds(model, devices)
    profiles = [
        profile_engine(model, e, cu, p, progress=progress, **kwargs)
        for e in engines
        for cu in compute_units
        for p in precisions
    ]
    return ProfileReport(
        str(model) if isinstance(model, (str, os.PathLike)) else type(model).__name__,
        host_info(),
        profiles,
        bounds,
    )
