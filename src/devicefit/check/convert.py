"""Stage 2: the Core ML model (converted from PyTorch unless it already is one)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from devicefit.check.types import FRONTENDS, CheckOptions, ConvertSummary
from devicefit.convert.trace_sizes import SIZE_AS_NUMBER


@dataclass
class Converted:
    """The conversion's outcome.

    Attributes:
        summary: what happened (frontends tried, errors, unsupported ops, rescued ops).
        mlmodel: the Core ML model; None when the conversion failed.
        conversion: devicefit's :class:`~devicefit.convert.Conversion` (None for a model given as Core ML);
            kept so later stages can reuse its scan and trace.
    """

    summary: ConvertSummary
    mlmodel: Any = None
    conversion: Any = None


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


def convert_options(options: CheckOptions, precision: str | None = None) -> Any:
    """devicefit ``ConvertOptions`` for ``options`` (``precision`` overrides the user's)."""
    from devicefit.convert import ConvertOptions

    precision = precision or options.precision
    return ConvertOptions(
        target=options.deployment_target,
        precision=precision,
        fp32_ops=list(options.fp32_ops) if precision == "mixed" or precision == options.precision else [],
        image_inputs=dict(options.image_inputs),
        flexible=dict(options.flexible),
        output_names=options.output_names,
        fp16_safe_constants=options.fp16_safe_constants,
    )


def convert(source: Any, options: CheckOptions) -> Converted:
    """Stage 2: convert ``source`` (or take its Core ML model) and save the package when asked to."""
    if getattr(source, "mlmodel", None) is not None:
        if options.package_path is not None:
            from devicefit.io import atomic_path

            with atomic_path(options.package_path) as tmp:
                source.mlmodel.save(str(tmp))
        summary = ConvertSummary(ok=True, frontend="(already Core ML)", skipped=True)
        return Converted(summary, source.mlmodel)
    from devicefit.convert import ConversionError
    from devicefit.convert import convert as convert_model

    copts = convert_options(options)
    try:
        conv = convert_model(source, copts)
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
        summary = ConvertSummary(
            ok=False, error=str(e), unsupported=unsupported, frontends=_frontend_entries(tried)
        )
        return Converted(summary)
    scan = getattr(conv, "scan", None)
    tried = list(getattr(scan, "frontends", []) or [])
    if options.all_frontends:
        from devicefit.convert.core import try_frontend

        done = {f.name for f in tried}
        tried += [try_frontend(source, name, copts) for name in FRONTENDS if name not in done]
    summary = ConvertSummary(
        ok=True,
        frontend=conv.frontend,
        seconds=conv.seconds,
        rescued=list(getattr(scan, "rescued", []) or []),
        frontends=_frontend_entries(tried),
        # a torch.export conversion refuses what tracing freezes: only TorchScript's warnings matter
        trace_warnings=_meaningful(list(getattr(scan, "trace_warnings", []) or []), options)
        if conv.frontend == "torchscript"
        else [],
    )
    check_fp32_ops(conv.mlmodel, options.fp32_ops)
    if options.package_path is not None:
        conv.save(options.package_path, force=options.force)
    return Converted(summary, conv.mlmodel, conv)


def check_fp32_ops(mlmodel: Any, fp32_ops: list[str]) -> None:
    """Every ``--fp32-ops`` entry must name an op or an op type of the converted program.

    Raises:
        InputError: an entry matches nothing; the message suggests the closest names.
    """
    if not fp32_ops:
        return
    import difflib

    from devicefit.compress.weights import _main, _ops
    from devicefit.convert.options import saved_op_name
    from devicefit.errors import InputError

    names: set[str] = set()
    types: set[str] = set()
    for op in _ops(_main(mlmodel)):
        if op.op_type == "const":
            continue
        names.update({op.name, op.name.removesuffix("_cast_fp16")})
        types.add(op.op_type)
    for entry in fp32_ops:
        if entry in names or entry in types or saved_op_name(entry) in names:
            continue
        close = difflib.get_close_matches(entry, sorted(names | types), n=3, cutoff=0.6)
        hint = f"; did you mean {' or '.join(close)}?" if close else ""
        raise InputError(
            f"--fp32-ops {entry!r} is neither an op name nor an op type of the converted program{hint} "
            f"(op types here: {', '.join(sorted(types))})"
        )


def convert_fp32(source: Any, options: CheckOptions, frontend: str | None) -> Any:
    """An fp32 conversion (fp32 weights, fp32 compute) of ``source`` with the frontend that worked.

    Used only when the shipped package stores its weights in fp16 (or compressed) and its fp32 run is
    outside the conversion-fidelity bounds: this separates a conversion problem from weight rounding.
    """
    import dataclasses

    from devicefit.convert import convert as convert_model

    copts = dataclasses.replace(
        convert_options(options, precision="fp32"),
        frontend=frontend if frontend in FRONTENDS else "auto",
    )
    return convert_model(source, copts).mlmodel


# NOTE: iterating a tensor (``q, k, v = qkv``) unrolls over its first axis; only that axis's size is frozen, and
# at fixed input shapes every input gives the same size: no input can take another path. With flexible shapes
# the size may change, so the warning stays.
_SHAPE_ONLY = ("Iterating over a tensor might cause the trace to be incorrect", SIZE_AS_NUMBER)


def _meaningful(warned: list[str], options: CheckOptions) -> list[str]:
    """TorchScript's trace warnings that can matter for this conversion (``file.py:N: message`` entries)."""
    if options.flexible:
        return warned
    return [w for w in warned if not any(text in w for text in _SHAPE_ONLY)]
