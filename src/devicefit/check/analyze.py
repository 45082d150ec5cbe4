"""Stage 5: measure the converted program: size, activation memory, device fit, Neural Engine lint,
latency bounds and (with flexible shapes) the accepted shapes against PyTorch."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from devicefit.check.types import DEFAULT_DEVICES, CheckOptions
from devicefit.check.validate import program_feeds


@dataclass
class Analysis:
    """What stage 5 measured (None where a part did not run).

    Attributes:
        size: :class:`devicefit.analyze.size.SizeReport`.
        memory: :class:`devicefit.analyze.memory.ActivationMemory`.
        fits: one :class:`devicefit.analyze.memory.DeviceFit` per device of the fit table.
        working_set_bytes: weights + peak activations.
        ane_lint: the Neural Engine lint.
        latency: roofline latency lower bounds, one per device.
        flexible: the per-shape validation of a flexible-shape model (the report's ``extras.flexible``).
        unsafe_constants: float constants an fp16 computation cannot hold (non-finite or beyond ±65504),
            each with the op reading it and its PyTorch origin (the report's ``extras.unsafe_constants``).
        warnings: findings for the terminal.
    """

    size: Any = None
    memory: Any = None
    fits: list[Any] = field(default_factory=list)
    working_set_bytes: int | None = None
    ane_lint: Any = None
    latency: list[Any] = field(default_factory=list)
    flexible: dict[str, Any] | None = None
    unsafe_constants: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def resolve_devices(ids: list[str]) -> list[Any]:
    """Catalog devices for ``ids`` (ids or names, duplicates dropped), in the order given.

    Raises:
        InputError: an id is not in the catalog (catalog.unknown_device).
    """
    from devicefit.analyze.catalog import get_device

    devices: list[Any] = []
    for text in ids:
        dev = get_device(text)
        if dev not in devices:
            devices.append(dev)
    return devices


def focus_devices(options: CheckOptions) -> tuple[list[Any] | None, list[Any]]:
    """(devices for the fit table (None: the whole catalog), devices for the latency bounds)."""
    if options.devices:
        focus = resolve_devices([*options.devices, *options.extra_devices])
        return focus, focus
    return None, resolve_devices([*DEFAULT_DEVICES, *options.extra_devices])


class _Shape:
    """Stands in for an observed value where only its shape is needed (no data held)."""

    def __init__(self, shape: tuple[int, ...]):
        self.shape = shape


def _measure(out: Analysis, program: Any, observed: dict[str, Any], package_path: Any, options: Any) -> None:
    from devicefit.analyze.memory import fit_table, program_activation_memory
    from devicefit.analyze.size import analyze_size

    out.size = analyze_size(program, package_path)
    out.memory = program_activation_memory(program, observed)
    out.working_set_bytes = out.size.weight_bytes + out.memory.peak_bytes
    fit_devices, _ = focus_devices(options)
    out.fits = fit_table(out.working_set_bytes, fit_devices)


def _device_intelligence(out: Analysis, program: Any, options: CheckOptions) -> None:
    """Neural Engine lint and roofline latency lower bounds on the converted program.

    Both read the program only. A failure here is reported as a warning, never fails the check: they
    are estimates on top of the measured results.
    """
    from devicefit.analyze import ane_lint, roofline
    from devicefit.analyze.flops import resolve_function
    from devicefit.analyze.shapes import default_costs

    model_bytes = out.size.package_bytes if out.size is not None else None
    try:
        out.ane_lint = ane_lint.lint(program, model_bytes=model_bytes)
    except Exception as e:  # NOTE: an estimate must not hide the measured results
        out.warnings.append(f"Neural Engine lint did not run: {type(e).__name__}: {e}".splitlines()[0])
    _, devices = focus_devices(options)
    try:
        costs = default_costs(resolve_function(program))  # flexible inputs at their default shape
        out.latency = [roofline.latency_bounds(costs, dev) for dev in devices]
    except Exception as e:
        out.warnings.append(f"latency bounds were not computed: {type(e).__name__}: {e}".splitlines()[0])


def _flexible_shapes(out: Analysis, program: Any, source: Any, options: CheckOptions) -> None:
    """Validate the model at every enumerated shape (and a range's ends and default) against PyTorch."""
    from devicefit.analyze.flexible import validate_shapes

    # fp16-stored weights alone cost ~1e-3 relative error, so a fp16 program gets a looser bound
    rtol = 1e-3 if options.precision == "fp32" else 1e-2
    report = validate_shapes(
        program,
        source.traceable(),
        rtol=rtol,
        to_model_feeds=lambda f: program_feeds(f, options.image_inputs, program),
    )
    out.flexible = {
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
        out.warnings.append(
            f"flexible shapes: {len(failed)} of {len(report.checks)} shape checks failed ({where}: {why})"
        )
    # ranges run on the Neural Engine only at their default shape: worth a warning; enumerated shapes are fine
    out.warnings.extend(
        f"flexible shapes: {line}" for line in report.ne_implication if "can stay" not in line
    )


def _unsafe_constants(out: Analysis, mlmodel: Any, program: Any) -> None:
    """A finding per constant outside the fp16 range, led by the PyTorch module of the op reading it."""
    from devicefit.convert.fp16_constants import find_unsafe_constants
    from devicefit.convert.provenance import load_from_package, where

    try:
        found = find_unsafe_constants(mlmodel)
        prov = load_from_package(program)
    except Exception as e:  # NOTE: a finding on top of the measurements must not hide them
        out.warnings.append(f"the fp16 constant scan did not run: {type(e).__name__}: {e}".splitlines()[0])
        return
    for c in found:
        origin = prov.find(c.consumer_output) if prov is not None and c.consumer_output else None
        reader = where(origin, c.consumer_output or "(no reader)")
        out.unsafe_constants.append(
            {
                "constant": c.name,
                "value": c.value,
                "dtype": c.dtype,
                "read_by": c.consumer_op,
                "read_by_value": c.consumer_output,
                "origin": origin.to_dict() if origin is not None else None,
            }
        )
        out.warnings.append(
            f"{reader}: constant {c.name} = {c.value} ({c.dtype}) is beyond the fp16 range and becomes inf/NaN "
            f"on the GPU / Neural Engine; fix: convert without --keep-unsafe-constants (devicefit maps such "
            f"constants to fp16-safe values), or use a finite mask value such as -1e4 in the PyTorch code"
        )


def analyze(
    program: Any,
    options: CheckOptions,
    observed_shapes: dict[str, tuple[int, ...]],
    package_path: Any,
    source: Any = None,
    mlmodel: Any = None,
) -> Analysis:
    """Stage 5: every measurement of the converted program.

    Args:
        program: the loaded :class:`devicefit.interp.Program`.
        options: the check's options (devices, flexible shapes, image inputs).
        observed_shapes: value name -> shape seen in a run (stands in for dynamic dims).
        package_path: the saved package, for its on-disk size.
        source: the model source; with flexible shapes and a PyTorch reference, each shape is validated.
        mlmodel: the Core ML model, scanned for constants an fp16 computation cannot hold.
    """
    out = Analysis()
    observed = {k: _Shape(v) for k, v in observed_shapes.items()}
    _measure(out, program, observed, package_path, options)
    _device_intelligence(out, program, options)
    if options.flexible and source is not None:
        _flexible_shapes(out, program, source, options)
    if mlmodel is not None:
        _unsafe_constants(out, mlmodel, program)
    return out


__all__ = ["Analysis", "analyze", "focus_devices", "resolve_devices"]
