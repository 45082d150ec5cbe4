"""``devicefit check``: convert, validate, measure, lint and bound, and report, with CI gates."""

from __future__ import annotations

import argparse
from pathlib import Path

NAME = "check"
ORDER = 10
HELP = (
    "is this model ready for Apple devices? convert, validate fp32/fp16, size, memory, device fit, "
    "Neural Engine lint, latency bounds"
)
DESCRIPTION = (
    "Convert a PyTorch model to Core ML, run it with devicefit's interpreter in fp32 and fp16 on validation "
    "data, compare with PyTorch, find where fp16 diverges, measure size and activation memory, check "
    "the fit against Apple devices, predict Neural Engine fallbacks from published constraints and bound "
    "the latency from below per device. With no MODEL, runs on the bundled digits demo."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "model",
        nargs="?",
        default=None,
        help="FILE.py:FUNCTION (your code: imported and run, no flag needed), .pt2, TorchScript, .mlpackage, "
        "Hugging Face folder; omit for the demo",
    )
    p.add_argument("--input", "-i", dest="inputs", action="append", default=[], metavar="NAME:SHAPE:DTYPE",
                   help="input declaration, e.g. image:1x3x32x32:float32 (repeat per input)")  # fmt: skip
    p.add_argument("--data", default=None, metavar="PATH",
                   help="validation data: .npz, folder of .npy, or FILE.py:make_data (your code: run as is) (random samples when omitted)")  # fmt: skip
    from devicefit.cli._common import deployment_target

    # devices are resolved by check itself (a did-you-mean, and a pointer for the old --target iOS17)
    p.add_argument("--target", dest="devices", action="append", default=[], metavar="DEVICE",
                   help="Apple device id from the catalog (repeat per device; `devicefit devices --catalog` "
                   "lists them): the fit table and latency bounds cover these (default: whole catalog for "
                   "fit, a few current iPhones/iPads/Macs for latency)")  # fmt: skip
    p.add_argument("--deployment-target", default="iOS17", metavar="IOS", type=deployment_target,
                   help="minimum deployment target of the conversion: iOS15..iOS18 (default iOS17)")  # fmt: skip
    p.add_argument("--precision", choices=["fp16", "fp32", "mixed"], default="fp16")
    p.add_argument(
        "--fp32-ops", nargs="+", default=[], metavar="OP", help="op types kept in fp32 (mixed precision)"
    )
    p.add_argument("--class-axis", dest="class_axes", action="append", default=[], metavar="NAME:AXIS",
                   help="the axis of output NAME that holds class scores, for top-k / per-pixel agreement (e.g. "
                   "'out:1' for N x C x H x W segmentation logits; 'NAME:none': not class scores); default: read "
                   "off the model's head op (docs/metrics.md)")  # fmt: skip
    from devicefit.cli._convert_args import add_conversion_arguments

    add_conversion_arguments(p)
    p.add_argument(
        "--frontends",
        choices=["first", "all"],
        default="first",
        help="first: stop at the first frontend that converts (TorchScript, then torch.export); all: also try the "
        "others and report which work (one more conversion)",
    )
    p.add_argument("-o", "--out-dir", type=Path, default=None, metavar="DIR",
                   help="write model.mlpackage, report.json and report.html here")  # fmt: skip
    p.add_argument("--json", type=Path, default=None, metavar="PATH",
                   help="write the JSON report here ('-': to stdout; the summary then goes to stderr)")  # fmt: skip
    p.add_argument("--html", type=Path, default=None, metavar="PATH", help="write the HTML report here")
    p.add_argument("--fail-on", action="append", default=[], metavar="EXPR",
                   help="exit 1 when EXPR holds (with gates, only the gates decide the exit code; without, any "
                   "failing verdict exits 1), e.g. 'fp16.top1_agreement<0.99', 'memory.fits=iphone-12', 'convert.ok=false', "
                   "'ane.fallback_ops_share>0.1', 'latency.iphone-12.best_ms>5'")  # fmt: skip
    p.add_argument("--force", action="store_true", help="overwrite existing outputs")
    p.add_argument(
        "--trust-code",
        "--trust-pickle",
        dest="trust_pickle",
        action="store_true",
        help="allow model files that run their own code when loaded: pickled modules, .pt2 with compiled "
        "(AOTInductor) or pickled parts, TorchScript with custom classes (--trust-pickle: the old name); a "
        "FILE.py factory is code you chose to run and needs no flag",
    )
    p.add_argument("--samples", type=int, default=None, metavar="N", help="validate on at most N samples")
    p.add_argument("--no-fix", dest="fix", action="store_false",
                   help="when fp16 fails, do not search the fewest ops to keep in fp32 (saves an fp32 conversion "
                   "and the repair's runs)")  # fmt: skip
    from devicefit.cli import lm

    lm.add_check_arguments(p)  # language models: --task text-generation, --prompts, --steps, --max-context


STDOUT = Path("-")


def _outputs(args: argparse.Namespace) -> tuple[Path | None, Path | None, Path | None]:
    """(package, JSON, HTML) paths, each checked before any work (exists without --force, a file as -o)."""
    from devicefit.cli._common import check_output_path, refuse_overlaps
    from devicefit.errors import InputError, OutputExistsError

    for flag, given in (("--html", args.html), ("-o", args.out_dir)):
        if given == STDOUT:
            raise InputError(f"{flag} cannot be '-': only --json can go to stdout; give a path (./- for '-')")
    pkg = json_path = html_path = None
    if args.out_dir is not None:
        if args.out_dir.exists() and not args.out_dir.is_dir():
            raise InputError(
                f"-o {args.out_dir} is a file; -o names a folder for model.mlpackage, report.json and "
                "report.html (use --json / --html for single files)"
            )
        pkg = args.out_dir / "model.mlpackage"
        json_path, html_path = args.out_dir / "report.json", args.out_dir / "report.html"
    json_path, html_path = args.json or json_path, args.html or html_path
    refuse_overlaps(
        {"-o (model.mlpackage)": pkg, "--json": json_path, "--html": html_path},
        {"the model": args.model, "--data": args.data},
    )
    for path in (pkg, json_path, html_path):
        if path is None or path == STDOUT:
            continue
        if path.exists() and not args.force:
            raise OutputExistsError(f"{path} exists; pass --force to overwrite it or choose another path")
        if path.parent != args.out_dir:  # -o DIR is created; a single file's folder must exist
            check_output_path(path, args.force, package=path is pkg)
    return pkg, json_path, html_path


def exit_code(verdicts: dict, gate_failures: list, gates: list) -> int:
    """1 when a gate tripped (with gates) or any verdict failed (without gates), else 0."""
    if gates:
        return 1 if gate_failures else 0
    return 1 if any(v["status"] == "fail" for v in verdicts.values()) else 0


def main(args: argparse.Namespace) -> int:
    import os
    import sys
    import warnings

    # coremltools' per-pass tqdm bars would interleave with our own progress display.
    os.environ.setdefault("TQDM_DISABLE", "1")
    # NOTE: torch.export's own deprecation notices (e.g. LeafSpec) are not actionable by our users.
    warnings.filterwarnings("ignore", message=r".*LeafSpec.*", category=FutureWarning)

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from devicefit.analyze.catalog import load_catalog
    from devicefit.check import CheckOptions, resolve_devices, run_check
    from devicefit.errors import InputError
    from devicefit.report import gates as gates_mod
    from devicefit.report.html import write_html
    from devicefit.report.schema import build_report, write_json
    from devicefit.report.terminal import render_terminal

    # Device ids first: a typo in --target or a gate must fail before any work is done.
    resolve_devices(args.devices)
    from devicefit.cli import lm

    if lm.wants_lm(args):  # a causal LM: the generation check (devicefit.check.lm)
        return lm.run_check(args)
    gates = [gates_mod.parse_gate(text) for text in args.fail_on]
    catalog_ids = [d.id for d in load_catalog()]
    gates_mod.check_devices(gates, catalog_ids)
    if args.samples is not None and args.samples < 1:
        raise InputError(f"--samples must be at least 1, got {args.samples}")
    pkg, json_path, html_path = _outputs(args)
    from devicefit.cli._convert_args import parse_flexible, parse_image_input, parse_output_names

    image_inputs = dict(parse_image_input(t) for t in args.image_input)
    flexible = parse_flexible(args.ranges, args.enumerated)
    output_names = parse_output_names(args.output_names)
    from devicefit.compare.class_axis import parse_class_axes

    class_axes = parse_class_axes(args.class_axes)
    if (image_inputs or flexible) and args.model is None:
        raise InputError("--image-input, --range and --enumerated need a MODEL; the demo's input is fixed")
    options = CheckOptions(
        all_frontends=args.frontends == "all",
        image_inputs=image_inputs,
        flexible=flexible,
        output_names=output_names,
        class_axes=class_axes,
        model=args.model,
        inputs=list(args.inputs),
        data=args.data,
        deployment_target=args.deployment_target,
        devices=list(args.devices),
        extra_devices=gates_mod.gate_devices(gates),
        precision=args.precision,
        fp32_ops=list(args.fp32_ops),
        fp16_safe_constants=not args.keep_unsafe_constants,
        samples=args.samples,
        repair=args.fix,
        trust_pickle=args.trust_pickle,
        package_path=pkg,
        force=args.force,
    )
    # with the JSON on stdout, everything else goes to stderr so the stream stays parseable
    console = Console(stderr=json_path == STDOUT)
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=Console(stderr=True), transient=True) as bar:  # fmt: skip
        task = bar.add_task("converting and loading", total=None)

        def progress(stage: str, done: int, total: int) -> None:
            bar.update(task, description=stage, completed=done, total=total)

        result = run_check(options, progress)
    report = build_report(result)
    # files first: a closed pipe or a terminal error while printing must not lose the reports
    written = []
    if json_path == STDOUT:
        from devicefit.report.schema import to_json

        sys.stdout.write(to_json(report))
        sys.stdout.flush()
    elif json_path is not None:
        write_json(json_path, report)
        written.append(f"JSON report: {json_path}")
    if html_path is not None:
        write_html(html_path, report)
        written.append(f"HTML report: {html_path}")
    if pkg is not None and pkg.exists():
        written.append(f"Core ML package: {pkg}")
    render_terminal(report, console)
    data = report.get("data")
    if data is not None:
        labels = ", with labels" if data["labels"] else ""
        console.print(
            f"Numerics on: {data['samples']} sample(s) from {data['origin']}{labels}",
            soft_wrap=True,
            highlight=False,
        )
    for line in written:
        console.print(line, soft_wrap=True, highlight=False)
    failures = gates_mod.evaluate(gates, report["summary"], catalog_ids)
    for f in failures:
        print(f"devicefit check: gate failed: {f.reason}", file=sys.stderr)
    if not gates:
        for area, v in report["verdicts"].items():
            if v["status"] == "fail":
                print(f"devicefit check: {area} failed: {v['reason']}", file=sys.stderr)
    return exit_code(report["verdicts"], failures, gates)
