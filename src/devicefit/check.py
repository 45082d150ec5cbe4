"""``devicefit check``: the whole readiness pipeline over one model.

source -> convert -> interpreter runs (fp32 and fp16) on validation data -> compare with PyTorch ->
fp16 divergence search -> size -> activation memory -> device fit -> Neural Engine lint -> latency lower
bounds -> report dict.

The library returns a :class:`CheckResult` (numbers, no printing); :mod:`devicefit.report` turns it into the
versioned JSON report, the terminal summary and the HTML page. Progress goes through a callback so the CLI
can show it without the library printing.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from devicefit.errors import InputError

Progress = Callable[[str, int, int], None]
DEFAULT_GENERATED_SAMPLES = 16
# Latency bounds without --target: a small set of current iPhones, an iPad and Macs (docs/check.md).
DEFAULT_DEVICES = (
    "iphone-12", "iphone-15", "iphone-15-pro", "iphone-16-pro", "ipad-pro-m4", "mac-m2", "mac-m4",
)  # fmt: skip


@dataclass
class CheckOptions:
    """What to check and how (the CLI's arguments).

    Attributes:
        model: model spec for :func:`devicefit.sources.load_source`; None runs the bundled demo.
        inputs: ``name:1x3x32x32:float32`` input declarations.
        data: validation data (see :mod:`devicefit.sources.data`); None generates random samples.
        samples: use at most this many samples.
        divergence_samples: samples whose every intermediate value is compared fp16 vs fp32.
        package_path: where the converted package is (or will be) saved; its size is measured there.
        deployment_target: minimum deployment target of the conversion (``iOS15`` ... ``iOS18``).
        devices: catalog ids the fit table and latency bounds focus on; empty: the fit table covers the
            whole catalog and the latency bounds :data:`DEFAULT_DEVICES`.
        extra_devices: ids always included in both (e.g. named by a ``--fail-on`` gate).
    """

    model: str | None = None
    inputs: list[str] = field(default_factory=list)
    data: str | None = None
    deployment_target: str = "iOS17"
    devices: list[str] = field(default_factory=list)
    extra_devices: list[str] = field(default_factory=list)
    precision: str = "fp16"
    fp32_ops: list[str] = field(default_factory=list)
    samples: int | None = None
    trust_pickle: bool = False
    divergence_samples: int = 4
    seed: int = 0
    package_path: Path | None = None
    force: bool = False
    # conversion options beyond precision (see devicefit.convert.ConvertOptions)
    all_frontends: bool = False  # also try the frontends after the first that converts, to report each one
    image_inputs: dict[str, Any] = field(default_factory=dict)
    flexible: dict[str, Any] = field(default_factory=dict)
    output_names: list[str] | None = None


@dataclass
class ConvertSummary:
    """Outcome of the conversion step."""

    ok: bool
    frontend: str | None = None
    seconds: float | None = None
    error: str | None = None
    unsupported: list[dict[str, Any]] = field(default_factory=list)
    rescued: list[str] = field(default_factory=list)
    skipped: bool = False
    # one entry per conversion frontend: {"name", "status": converted|failed|not tried, "error", "seconds"}
    frontends: list[dict[str, Any]] = field(default_factory=list)


FRONTENDS = ("torchscript", "torch.export")


def _frontend_entries(tried: list[Any]) -> list[dict[str, Any]]:
    """Every frontend's status; those never attempted are listed as not tried (see ``all_frontends``)."""
    by_name = {f.name: f for f in tried}
    entries = []
    for name in FRONTENDS:
        f = by_name.get(name)
        if f is None:
            entries.append({"name": name, "status": "not tried", "error": None, "seconds": None})
        else:
            status = "converted" if f.ok else "failed"
            entries.append({"name": name, "status": status, "error": f.error, "seconds": f.seconds})
    return entries


@dataclass
class CheckResult:
    """Everything ``check`` measured; None for parts that could not run (e.g. after a failed conversion)."""

    options: CheckOptions
    origin: str
    kind: str
    convert: ConvertSummary
    mlmodel: Any = None
    program: Any = None
    dataset: Any = None
    fp32: Any = None
    fp16: Any = None
    divergence: Any = None
    trained: Any = None
    size: Any = None
    memory: Any = None
    fits: list[Any] = field(default_factory=list)
    working_set_bytes: int | None = None
    ane_lint: Any = None
    latency: list[Any] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    # Filled by further analyses (none yet); copied as-is into the JSON report under "extras".
    extras: dict[str, Any] = field(default_factory=dict)


def _load_source(options: CheckOptions) -> Any:
    if options.model is None:
        from devicefit import demo

        if options.inputs:
            raise InputError("--input needs a MODEL; the demo's input is fixed (image: 1x1x8x8 float32)")
        return demo.demo_source()
    from devicefit.sources import load_source, parse_input_arg

    specs = [parse_input_arg(text) for text in options.inputs] or None
    return load_source(options.model, inputs=specs, trust_pickle=options.trust_pickle)


def _convert(source: Any, options: CheckOptions, result: CheckResult) -> Any:
    """The Core ML model for ``source`` (converted unless it already is one), or None on failure."""
    if getattr(source, "mlmodel", None) is not None:
        result.convert = ConvertSummary(ok=True, frontend="(already Core ML)", skipped=True)
        if options.package_path is not None:
            from devicefit.io import atomic_path

            with atomic_path(options.package_path) as tmp:
                source.mlmodel.save(str(tmp))
        return source.mlmodel
    from devicefit.convert import ConversionError, ConvertOptions, convert

    copts = ConvertOptions(
        target=options.deployment_target,
        precision=options.precision,
        fp32_ops=list(options.fp32_ops),
        image_inputs=dict(options.image_inputs),
        flexible=dict(options.flexible),
        output_names=options.output_names,
    )
    try:
        conv = convert(source, copts)
    except ConversionError as e:
        scan = getattr(e, "scan", None)
        unsupported = [
            {
                "op": u.op,
                "location": u.location,
                "module_path": u.module_path,
                "hint": u.hint,
                "count": u.count,
            }
            for u in getattr(scan, "unsupported", [])
        ]
        tried = list(getattr(scan, "frontends", []) or [])
        result.convert = ConvertSummary(
            ok=False, error=str(e), unsupported=unsupported, frontends=_frontend_entries(tried)
        )
        return None
    scan = getattr(conv, "scan", None)
    tried = list(getattr(scan, "frontends", []) or [])
    if options.all_frontends:
        from devicefit.convert.core import try_frontend

        done = {f.name for f in tried}
        tried += [try_frontend(source, name, copts) for name in FRONTENDS if name not in done]
    result.convert = ConvertSummary(
        ok=True,
        frontend=conv.frontend,
        seconds=conv.seconds,
        rescued=list(getattr(scan, "rescued", []) or []),
        frontends=_frontend_entries(tried),
    )
    if options.package_path is not None:
        conv.save(options.package_path, force=options.force)
    return conv.mlmodel


def _dataset(source: Any, specs: list[Any], options: CheckOptions) -> Any:
    """Validation samples; loaded before converting so bad data fails fast (specs: the source's inputs)."""
    from devicefit.sources import data as data_mod

    if options.data is not None:
        return data_mod.load_data(options.data, specs, options.samples)
    if options.model is None:
        from devicefit import demo

        held = demo.held_out(options.samples)
        return data_mod.Dataset(held.feeds, held.labels, "scikit-learn digits, held-out split")
    examples = getattr(source, "example_inputs", None) or {}
    names = {s.name for s in specs}
    if getattr(source, "labels", None) is not None and set(examples) == names:
        # A factory that returns labels describes labelled example inputs: validate on exactly those.
        feeds = {k: np.asarray(v) for k, v in examples.items()}
        return data_mod.Dataset(
            [feeds], np.asarray(source.labels).reshape(-1), f"{source.origin} example inputs"
        )
    count = options.samples or DEFAULT_GENERATED_SAMPLES
    generated = data_mod.generate(specs, count, options.seed)
    if examples and set(examples) == names:
        # The source's own example comes first: it is the one input known to be realistic.
        generated.feeds[0] = {k: np.asarray(v) for k, v in examples.items()}
    return generated


def _has_reference(source: Any) -> bool:
    return getattr(source, "module", None) is not None or getattr(source, "exported", None) is not None


SMALL_VALUE_ELEMENTS = 1 << 18


@contextlib.contextmanager
def _threads_for(program: Any) -> Iterator[None]:
    """Run small models single-threaded while validating.

    NOTE: per-sample runs of small tensors spend their time in thread hand-offs: on a busy 2-core machine
    the demo validates ~10x faster with one torch thread. Large values still get every thread.
    """
    import torch

    sizes = [
        int(np.prod([d or 1 for d in shape])) if shape else 1
        for step in program.plan.block.steps
        for shape in step.ctx.output_shapes
        if shape is not None
    ]
    before = torch.get_num_threads()
    small = max(sizes, default=0) < SMALL_VALUE_ELEMENTS
    if small:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if small:
            torch.set_num_threads(before)


def program_feeds(feeds: dict[str, Any], image_inputs: dict[str, Any]) -> dict[str, Any]:
    """The data as the converted model takes it: image inputs as pixels.

    Data (and PyTorch) use the normalised tensor ``x``; a Core ML image input applies ``pixel * scale + bias``
    itself, so the program is fed ``(x - bias) / scale`` per channel (axis 1).
    """
    if not image_inputs:
        return feeds
    out = dict(feeds)
    for name, img in image_inputs.items():
        if name not in out:
            continue
        x = np.asarray(out[name], dtype=np.float32)
        bias = np.asarray(img.bias, dtype=np.float32).reshape([1, -1] + [1] * (x.ndim - 2))
        out[name] = ((x - bias) / np.float32(img.scale)).astype(np.float32)
    return out


def _run_all(
    program: Any, source: Any, dataset: Any, options: CheckOptions, progress: Progress | None
) -> dict:
    """Run reference, fp32 and fp16 on every sample; the first few keep all intermediates."""
    with _threads_for(program):
        return _run_samples(program, source, dataset, options, progress)


def _run_samples(
    program: Any, source: Any, dataset: Any, options: CheckOptions, progress: Progress | None
) -> dict:
    runs: dict[str, list[dict[str, Any]]] = {
        "torch": [],
        "fp32": [],
        "fp16": [],
        "fp32_full": [],
        "fp16_full": [],
    }
    with_ref = _has_reference(source)
    total = len(dataset.feeds)
    for i, feeds in enumerate(dataset.feeds):
        full = i < options.divergence_samples
        model_feeds = program_feeds(feeds, options.image_inputs)
        out32 = program.run(model_feeds, precision="fp32", intermediates=full)
        out16 = program.run(model_feeds, precision="fp16", intermediates=full)
        if full:
            runs["fp32_full"].append(out32)
            runs["fp16_full"].append(out16)
        runs["fp32"].append(out32)
        runs["fp16"].append(out16)
        if with_ref:
            runs["torch"].append(source.reference(feeds))
        if progress is not None:
            progress("validating", i + 1, total)
    return runs


def _numerics(result: CheckResult, program: Any, source: Any, runs: dict) -> None:
    from devicefit.compare.divergence import find_divergence, looks_untrained
    from devicefit.compare.validate import compare, stack_samples

    out_names = [o.name for o in program.outputs]
    labels = result.dataset.labels
    fp32 = stack_samples(runs["fp32"], out_names)
    fp16 = stack_samples(runs["fp16"], out_names)
    if runs["torch"]:
        ref_names = list(runs["torch"][0])
        torch_out = stack_samples(runs["torch"], ref_names)
        result.fp32 = compare("fp32", torch_out, fp32, "pytorch", labels)
        result.fp16 = compare("fp16", torch_out, fp16, "pytorch", labels)
        result.trained = looks_untrained(torch_out)
    else:
        result.warnings.append("no PyTorch reference (model given as Core ML): fp16 is compared with fp32")
        result.fp16 = compare("fp16", fp32, fp16, "interp-fp32", labels)
        result.trained = looks_untrained(fp32)
    for comp in (result.fp32, result.fp16):
        if comp is not None:
            comp.samples = len(runs["fp32"])
    result.divergence = find_divergence(program, runs["fp32_full"], runs["fp16_full"])
    if result.trained.looks_untrained:
        result.warnings.append(
            f"the model looks untrained ({result.trained.reason}); random weights exaggerate numeric error"
        )


def resolve_devices(ids: list[str]) -> list[Any]:
    """Catalog devices for ``ids`` (ids or names, duplicates dropped), in the order given.

    Raises:
        InputError: an id is not in the catalog; the message lists the known ids.
    """
    from devicefit.analyze.catalog import get_device, load_catalog

    devices: list[Any] = []
    for text in ids:
        try:
            dev = get_device(text)
        except InputError:
            known = ", ".join(d.id for d in load_catalog())
            hint = ""
            if text.lower().startswith(("ios", "macos")):
                hint = f" ({text!r} looks like a deployment target: pass --deployment-target {text})"
            raise InputError(f"unknown device {text!r}{hint}; known devices: {known}") from None
        if dev not in devices:
            devices.append(dev)
    return devices


def _focus(options: CheckOptions) -> tuple[list[Any] | None, list[Any]]:
    """(devices for the fit table (None: the whole catalog), devices for the latency bounds)."""
    if options.devices:
        focus = resolve_devices([*options.devices, *options.extra_devices])
        return focus, focus
    return None, resolve_devices([*DEFAULT_DEVICES, *options.extra_devices])


def _measure(result: CheckResult, program: Any, runs: dict, package_path: Any) -> None:
    from devicefit.analyze.memory import fit_table, program_activation_memory
    from devicefit.analyze.size import analyze_size

    result.size = analyze_size(program, package_path)
    observed = runs["fp32_full"][0] if runs["fp32_full"] else None
    result.memory = program_activation_memory(program, observed)
    result.working_set_bytes = result.size.weight_bytes + result.memory.peak_bytes
    fit_devices, _ = _focus(result.options)
    result.fits = fit_table(result.working_set_bytes, fit_devices)


def _device_intelligence(result: CheckResult, program: Any) -> None:
    """Neural Engine lint and roofline latency lower bounds on the converted program.

    Both read the program only. A failure here is reported as a warning, never fails the check: they
    are estimates on top of the measured results.
    """
    from devicefit.analyze import ane_lint, roofline
    from devicefit.analyze.flops import function_costs, resolve_function

    model_bytes = result.size.package_bytes if result.size is not None else None
    try:
        result.ane_lint = ane_lint.lint(program, model_bytes=model_bytes)
    except Exception as e:  # NOTE: an estimate must not hide the measured results
        result.warnings.append(f"Neural Engine lint did not run: {type(e).__name__}: {e}".splitlines()[0])
    _, devices = _focus(result.options)
    try:
        costs = function_costs(resolve_function(program).function)
        result.latency = [roofline.latency_bounds(costs, dev) for dev in devices]
    except Exception as e:
        result.warnings.append(f"latency bounds were not computed: {type(e).__name__}: {e}".splitlines()[0])


def _flexible_shapes(result: CheckResult, program: Any, source: Any, options: CheckOptions) -> None:
    """Validate the model at every enumerated shape (and a range's ends and default) against PyTorch."""
    from devicefit.analyze.flexible import validate_shapes

    # fp16-stored weights alone cost ~1e-3 relative error, so a fp16 program gets a looser bound
    rtol = 1e-3 if options.precision == "fp32" else 1e-2
    report = validate_shapes(
        program,
        source.traceable(),
        rtol=rtol,
        to_model_feeds=lambda f: program_feeds(f, options.image_inputs),
    )
    result.extras["flexible"] = {
        "all_ok": report.all_ok,
        "rtol": rtol,
        "checks": [
            {
                "shapes": {k: list(v) for k, v in c.shapes.items()},
                "rel_error": c.rel_error,
                "ok": c.ok,
                "error": c.error,
            }
            for c in report.checks
        ],
        "ne_implication": report.ne_implication,
    }
    failed = [c for c in report.checks if not c.ok]
    if failed:
        first = failed[0]
        where = ", ".join(f"{k}={'x'.join(map(str, v))}" for k, v in first.shapes.items())
        why = first.error or f"relative error {first.rel_error:.3g} > {rtol:g}"
        result.warnings.append(
            f"flexible shapes: {len(failed)} of {len(report.checks)} shape checks failed ({where}: {why})"
        )
    # ranges run on the Neural Engine only at their default shape: worth a warning; enumerated shapes are fine
    result.warnings.extend(
        f"flexible shapes: {line}" for line in report.ne_implication if "can stay" not in line
    )


def run_check(options: CheckOptions, progress: Progress | None = None) -> CheckResult:
    """Run the whole check pipeline.

    Args:
        options: what to check.
        progress: called as ``progress(stage, done, total)`` while validating.

    Raises:
        DevicefitError: bad input (missing model or data, wrong shapes, corrupted package...).
    """
    from devicefit import interp

    _focus(options)  # unknown device ids fail before any work
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    source = _load_source(options)
    result = CheckResult(
        options,
        str(getattr(source, "origin", options.model)),
        str(getattr(source, "kind", "")),
        ConvertSummary(ok=False),
    )
    result.timings = timings
    timings["load"] = time.perf_counter() - t0
    result.dataset = _dataset(source, list(source.input_specs), options)
    t = time.perf_counter()
    mlmodel = _convert(source, options, result)
    timings["convert"] = time.perf_counter() - t
    if mlmodel is None:
        return result
    result.mlmodel = mlmodel
    t = time.perf_counter()
    program = interp.load(mlmodel)
    result.program = program
    runs = _run_all(program, source, result.dataset, options, progress)
    timings["validate"] = time.perf_counter() - t
    t = time.perf_counter()
    _numerics(result, program, source, runs)
    package_path = options.package_path or getattr(mlmodel, "package_path", None)
    if package_path is None and getattr(source, "mlmodel", None) is not None:
        package_path = getattr(source, "origin", None)
    _measure(result, program, runs, package_path)
    _device_intelligence(result, program)
    if options.flexible and _has_reference(source):
        _flexible_shapes(result, program, source, options)
    timings["analyze"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - t0
    return result
