"""``devicefit profile``: load times, latency percentiles, throughput and peak memory per engine."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from devicefit.errors import DevicefitError

# the suffixes engine "auto" reads as TorchScript (devicefit.engines.resolve_auto)
TORCHSCRIPT_SUFFIXES = (".pt", ".pth", ".ts", ".torchscript", ".jit")
NAME = "profile"
ORDER = 60
HELP = (
    "time a model: first / uncached / cached load, first and warm latency (p50/p90/p99), throughput, peak RSS"
)


def _ints(text: str) -> list[int]:
    from devicefit.errors import InputError

    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise InputError(f"expected comma-separated integers like 1,4,8, got {text!r}") from None
    if not values or min(values) < 1:
        raise InputError(f"expected positive integers like 1,4,8, got {text!r}")
    return values


def _feeds(texts: list[str]) -> dict[str, Any] | None:
    """``--input`` values (the shared vocabulary, cli._common) -> feeds: a ``NAME=FILE.npy`` array or, for a
    ``NAME:SHAPE[:DTYPE]`` declaration, a seeded random array of that shape.

    Declarations are bounded in bytes like every generated input, before any is allocated: each by
    ``$DEVICEFIT_MAX_INPUT_BYTES`` in its own dtype (an int64 element takes 8 bytes), all together by
    ``$DEVICEFIT_MAX_DATA_BYTES`` (:func:`devicefit.sources.spec.random_inputs`).
    """
    from devicefit.cli._common import parse_input
    from devicefit.sources import random_inputs

    if not texts:
        return None
    feeds: dict[str, Any] = {}
    declared = []
    for text in texts:
        arg = parse_input(text)
        data = arg.array()
        if data is not None:
            feeds[arg.name] = data
        else:
            declared.append(arg.spec())
    feeds.update(random_inputs(declared))
    return feeds


def _sample_bytes(model: Path, feeds: dict[str, Any] | None) -> int:
    """Bytes of one sample's inputs: the feeds, else a Core ML model's declared inputs; 0 when unknown."""
    import math

    import numpy as np

    if feeds is not None:
        return sum(np.asarray(v).nbytes for v in feeds.values())
    if model.suffix not in (".mlpackage", ".mlmodel"):
        return 0  # a PyTorch / ONNX model's input shapes are known only once an engine loads it
    from devicefit import interp

    try:
        specs = interp.load(model).inputs
    except Exception:  # the engines load it next and report their own errors
        return 0
    return sum(math.prod(int(d) for d in (s.shape or ())) * (1 if s.dtype == "bool" else 4) for s in specs)


def _check_batch_sizes(model: Path, feeds: dict[str, Any] | None, batch_sizes: list[int]) -> None:
    """Refuse a ``--batch-sizes`` entry whose batch would exceed the generated-input limit, before any loading.

    A batch of B samples is B copies of the inputs, stacked into one input (and a list of B feed dicts, at
    least a pointer each, even when the input sizes are not known yet).

    Raises:
        InputError: naming the batch size, its size in bytes, the limit and the largest batch that fits.
    """
    from devicefit.errors import InputError
    from devicefit.sources.spec import MAX_INPUT_BYTES_ENV, max_input_bytes

    limit = max_input_bytes()
    per_sample = max(_sample_bytes(model, feeds), 8)
    biggest = max(batch_sizes)
    if per_sample > limit:  # no batch size helps: "use batch sizes up to 0" said nothing useful
        raise InputError(
            f"one sample of {model} takes {per_sample:,} bytes of inputs, over the {limit / 2**20:,.0f} MiB limit "
            f"for generated inputs; declare smaller inputs (--input NAME:SHAPE) or raise the limit with "
            f"{MAX_INPUT_BYTES_ENV}"
        )
    if biggest * per_sample > limit:
        raise InputError(
            f"--batch-sizes {biggest:,}: a batch of {biggest:,} samples ({per_sample:,} bytes each) is "
            f"{biggest * per_sample / 2**20:,.0f} MiB, over the {limit / 2**20:,.0f} MiB limit for generated "
            f"inputs; use batch sizes up to {limit // per_sample:,} or raise the limit with {MAX_INPUT_BYTES_ENV}"
        )


def _check_coreml_feeds(model: Path, feeds: dict[str, Any]) -> None:
    """Refuse ``--input`` values a Core ML model cannot take, once, before profiling.

    Otherwise every engine fails on them in turn, and the command reported one failed table row per engine
    and exit 1 (a verdict) for what is bad input (exit 2).

    Raises:
        InputError: an unknown or missing input, or one of the wrong shape or dtype.
    """
    from devicefit import interp
    from devicefit.errors import InputError
    from devicefit.interp.inputs import validate_input

    specs = {s.name: s for s in interp.load(model).inputs}
    described = ", ".join(s.describe() for s in specs.values())
    unknown = sorted(set(feeds) - set(specs))
    if unknown:
        raise InputError(f"--input {unknown[0]}: {model.name} has no such input; its inputs are: {described}")
    missing = [s for name, s in specs.items() if name not in feeds]
    if missing:
        raise InputError(
            f"no --input for {missing[0].describe()}; give every input ({described}) or none (random ones)"
        )
    for name, value in feeds.items():
        validate_input(specs[name], value, "fp32")


def _check_model_file(model: Path) -> None:
    """Refuse, before any engine loads it, a model file that no profiling engine reads.

    Without this, each engine failed on it in turn (torch.jit.load's long "PytorchStreamReader failed" for a
    ``torch.save``'d module) as one failed table row per engine.

    Raises:
        ModelLoadError: a ``torch.save`` pickle, a ``.pt2``, data, a file with a TorchScript suffix that is
            none of these, or a folder that is not a Core ML package; each says what to pass instead.
    """
    from devicefit.errors import ModelLoadError

    if model.suffix in (".mlpackage", ".mlmodel"):
        return  # checked by check_package, before the language-model route
    wanted = "profile takes a .mlpackage, .mlmodel, .onnx or TorchScript (torch.jit.save) file"
    convert = f"convert it first (devicefit check {model} -o DIR) and profile DIR/model.mlpackage"
    if model.is_dir():
        raise ModelLoadError(
            f"{model} is a folder, not a Core ML package; {wanted}; for a model folder, {convert}"
        )
    from devicefit.sources.torch_files import torch_file_kind

    kind = torch_file_kind(model)
    if kind == "pickle":
        raise ModelLoadError(
            f"{model.name} was saved with torch.save (a pickled nn.Module or a state dict), not as TorchScript; "
            f"{wanted}: save it with torch.jit.save(torch.jit.trace(model, example)), or {convert}"
        )
    if kind == "exported":
        raise ModelLoadError(f"{model.name} is a torch.export .pt2 archive; {wanted}; {convert}")
    if kind == "numpy":
        raise ModelLoadError(f"{model.name} holds numpy arrays (data), not a model; {wanted}")
    if kind == "unknown" and model.suffix.lower() in TORCHSCRIPT_SUFFIXES:
        raise ModelLoadError(
            f"{model.name} is not a TorchScript archive (nor any model file devicefit reads); {wanted}: save "
            "it with torch.jit.save(torch.jit.trace(model, example))"
        )


def _check_engines_available(engines: list[str]) -> None:
    """Refuse an engine named with ``--engine`` that this host cannot run (``coreml`` off macOS), before timing.

    Raises:
        InputError: naming the engine, why it is unavailable and the engines that are.
    """
    from devicefit.engines import ENGINE_NAMES, engine_class
    from devicefit.errors import InputError

    for name in dict.fromkeys(engines):
        if name == "auto":
            continue
        avail = engine_class(name).availability()
        if not avail.available:
            here = [e for e in ENGINE_NAMES if e != name and engine_class(e).availability().available]
            raise InputError(
                f"engine {name!r} is not available on this host: {avail.reason}; choose one of {', '.join(here)} "
                "(`devicefit devices` lists them)"
            )


def failure(report: Any) -> DevicefitError | None:
    """The bad-input error (exit 2) of a profile with failed rows, or None when every row was measured.

    The harness records an engine's DevicefitError (a model it cannot load, inputs the model does not take)
    as that row's ``error``; a failed row is never a measurement, so the command must not exit 0 on it, and
    it is the input's fault, not a verdict (1) or a devicefit bug (3, raised as is).
    """
    from devicefit.errors import DevicefitError, printable

    failed = [p for p in report.profiles if p.error]
    if not failed:
        return None
    by_error: dict[str, list[str]] = {}
    for p in failed:
        text = printable(
            p.error.strip().splitlines()[0] if p.error.strip() else p.error_type or "unknown error"
        )
        by_error.setdefault(text, []).append(p.label)
    scope = "any engine" if len(failed) == len(report.profiles) else ", ".join(p.label for p in failed)
    if len(by_error) == 1:
        return DevicefitError(f"could not profile {report.model} on {scope}: {next(iter(by_error))}")
    # several causes: each with the rows it stopped, still on one line
    causes = " | ".join(f"{', '.join(labels)}: {text}" for text, labels in by_error.items())
    return DevicefitError(f"could not profile {report.model} on {scope}: {causes}")


def _input_files(args: argparse.Namespace) -> dict[str, Any]:
    """``--input NAME=FILE`` paths by flag, for :func:`devicefit.cli._common.refuse_overlaps`."""
    from devicefit.cli._common import parse_input

    return {f"--input {a.name}": a.path for a in map(parse_input, args.inputs) if a.path is not None}


def add_arguments(p: argparse.ArgumentParser) -> None:
    from devicefit.cli._common import add_input_argument

    p.add_argument("model", type=Path, help=".mlpackage, .mlmodel, .onnx or TorchScript .pt")
    add_input_argument(p)  # NAME=FILE.npy or NAME:SHAPE[:DTYPE]; TorchScript records no input shapes
    p.add_argument(
        "--trust-code",
        "--trust-pickle",
        dest="trust_code",
        action="store_true",
        help="allow TorchScript that uses custom C++ classes (runs native code from the file)",
    )
    p.add_argument(
        "--engine",
        "-e",
        action="append",
        default=None,
        help="engine (repeatable): auto, interp, onnxruntime, torch, coreml",
    )
    p.add_argument(
        "--compute-units", "-c", action="append", default=None, help="all, cpu_only, cpu_and_gpu, cpu_and_ne"
    )
    p.add_argument("--precision", action="append", default=None, choices=["fp32", "fp16"])
    p.add_argument(
        "--reps", type=int, default=500, help="timed warm predictions (a p99 confidence interval needs ~500)"
    )
    p.add_argument("--batch-sizes", default="1,4,8", help="batch sizes for predict_batch throughput")
    p.add_argument(
        "--max-in-flight", type=int, default=4, help="async throughput is measured for 1..N in flight"
    )
    p.add_argument("--requests", type=int, default=64, help="requests per throughput point")
    p.add_argument("--target", dest="devices", action="append", default=[], metavar="DEVICE",
                   help="Apple device id from the catalog (repeatable): add its roofline 'at best' latency "
                   "lower bound next to the measured numbers (Core ML models only)")  # fmt: skip
    from devicefit.cli._common import add_json_argument

    add_json_argument(p, "the full profile (raw samples)")
    p.add_argument("--html", type=Path, default=None, help="write a self-contained HTML report")
    p.add_argument("--force", action="store_true", help="overwrite --json / --html outputs")
    from devicefit.cli import lm_profile

    lm_profile.add_arguments(p)  # --prompt-tokens, --new-tokens, --gen-runs, --max-context


def main(args: argparse.Namespace) -> int:
    import json

    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from devicefit.cli._common import check_output_path, is_stdout, refuse_overlaps, write_text_output
    from devicefit.errors import InputError
    from devicefit.io import atomic_write_text
    from devicefit.profile import profile
    from devicefit.profile.bounds import check_targets
    from devicefit.report.profile_view import profile_renderables, render_html

    refuse_overlaps(
        {"--json": args.json, "--html": args.html}, {"the model": args.model, **_input_files(args)}
    )
    for flag, out in (("--json", args.json), ("--html", args.html)):
        if out is not None:
            check_output_path(out, args.force, flag=flag, package=False, stdout_ok=flag == "--json")
    if not args.model.exists():
        raise InputError(
            f"model not found: {args.model}; pass a .mlpackage, .mlmodel, .onnx or TorchScript file"
        )
    from devicefit.sources.untrusted_files import require_file_or_folder

    require_file_or_folder(args.model, "model")  # a FIFO would block the engine's loader forever
    if args.model.suffix in (".mlpackage", ".mlmodel"):
        from devicefit.sources.coreml_package import check_package

        # NOTE: once, up front: a damaged package is bad input (exit 2), not one failed row per engine.
        check_package(args.model)
    if args.reps < 1 or args.max_in_flight < 1 or args.requests < 1:
        raise InputError("--reps, --max-in-flight and --requests must be positive integers")
    from devicefit.cli import lm_profile

    if lm_profile.wants_lm(args):  # a causal LM: generation tokens/s instead of the latency table
        return lm_profile.run(args)
    _check_model_file(args.model)
    from devicefit.profile.harness import check_engine_names

    check_engine_names(args.engine or ["auto"], args.compute_units or ["all"])
    _check_engines_available(args.engine or ["auto"])
    check_targets(args.model, args.devices)
    feeds = _feeds(args.inputs)
    if feeds is not None and args.model.suffix in (".mlpackage", ".mlmodel"):
        _check_coreml_feeds(args.model, feeds)
    batch_sizes = _ints(args.batch_sizes)
    _check_batch_sizes(args.model, feeds, batch_sizes)
    extra = {"trust_code": True} if args.trust_code else {}
    console = Console(stderr=True)
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=console,
        disable=not console.is_terminal,  # no spinner frames in logs and pipes
    ) as bar:
        task = bar.add_task("profiling", total=None)
        report = profile(
            args.model,
            engines=args.engine or ["auto"],
            compute_units=args.compute_units or ["all"],
            precisions=args.precision or ["fp32"],
            reps=args.reps,
            batch_sizes=batch_sizes,
            max_in_flight=args.max_in_flight,
            throughput_requests=args.requests,
            progress=lambda msg: bar.update(task, description=msg),
            devices=args.devices,
            feeds=feeds,
            **extra,
        )
    from devicefit.cli import cli_words

    for row in report.profiles:  # a row's error is read in this command's table and JSON: in its flags
        if row.error:
            row.error = cli_words(row.error, "profile")
    failed = failure(report)
    if failed is not None and all(p.error for p in report.profiles):
        raise failed  # nothing was measured: the one-line error alone, no empty table, no report files
    out = Console(stderr=is_stdout(args.json))  # with the JSON on stdout, the tables go to stderr
    for renderable in profile_renderables(report):
        out.print(renderable)
    if args.json is not None and write_text_output(
        args.json, json.dumps(report.to_dict(), indent=1, default=str)
    ):
        console.print(f"wrote {args.json}")
    if args.html is not None:
        atomic_write_text(args.html, render_html(report))
        console.print(f"wrote {args.html}")
    if failed is not None:  # some rows measured (shown and written above), some not: still bad input
        import sys

        from devicefit.errors import printable

        print(f"devicefit profile: error: {printable(str(failed))}", file=sys.stderr)
        return failed.exit_code
    return 0
