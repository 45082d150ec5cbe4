"""``devicefit compress``: the smallest model that meets an accuracy budget."""

from __future__ import annotations

import argparse
from pathlib import Path

NAME = "compress"
ORDER = 40
HELP = "find the smallest mixed-precision compressed model that meets an accuracy budget"


def add_arguments(p: argparse.ArgumentParser) -> None:
    from devicefit.cli._common import INPUT_HELP, add_json_argument, deployment_target

    p.add_argument(
        "model", nargs="?", default=None, help="anything `check` accepts (default: the bundled demo)"
    )
    p.add_argument("--data", default=None, help=".npz / folder of .npy / FILE.py:FUNC (default: generated)")
    p.add_argument("--budget", required=True, help='e.g. "accuracy>=-0.5%%", "cosine>=0.999", "psnr>=40"')
    p.add_argument("--scheme", choices=["palettize", "quantize"], default="palettize")
    p.add_argument("--bits", default="4,6,8", help="palettization bit widths to mix (default 4,6,8)")
    p.add_argument("--samples", type=int, default=200, help="samples, calibration and held-out (default 200)")
    p.add_argument("--holdout", type=float, default=0.25,
                   help="fraction of the samples the search never sees; the plan must meet the budget on them too "
                   "(default 0.25)")  # fmt: skip
    p.add_argument("--seed", type=int, default=0, help="seed of the calibration / held-out split (default 0)")
    p.add_argument("--min-elements", type=int, default=256, help="smaller weights stay fp16")
    p.add_argument("--no-batch", dest="batch", action="store_false",
                   help="evaluate candidates one sample per interpreter run (default: several per run where the "
                   "model's batch axis allows, checked against a per-sample run)")  # fmt: skip
    p.add_argument(
        "--deployment-target",
        dest="deployment_target",
        default="iOS18",
        type=deployment_target,
        help="Core ML deployment target when converting a torch model (iOS15..iOS18)",
    )
    p.add_argument("--workers", type=int, default=1, help="parallel evaluation processes")
    p.add_argument(
        "--ray", default=None, metavar="ADDRESS", help="evaluate on a Ray cluster ('local' starts one)"
    )
    p.add_argument("--input", action="append", default=[], metavar="INPUT", help=INPUT_HELP)
    p.add_argument("-o", "--output", type=Path, default=None, help="write the chosen model (.mlpackage)")
    add_json_argument(p, "the result and Pareto front")
    p.add_argument("--html", type=Path, default=None, help="write an HTML report with the Pareto plot")
    p.add_argument(
        "--plan", type=Path, default=None, help="write the plan as coremltools OptimizationConfig YAML"
    )
    p.add_argument("--force", action="store_true", help="overwrite existing outputs")
    from devicefit.cli import lm

    lm.add_compress_arguments(p)  # causal LMs: perplexity / tokens budgets over stateful packages


def main(args: argparse.Namespace) -> int:
    import json
    import os

    os.environ.setdefault("TQDM_DISABLE", "1")
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from devicefit.cli import lm
    from devicefit.cli._common import check_output_path, is_stdout, refuse_overlaps, write_text_output
    from devicefit.compress import SearchOptions, parse_budget, search
    from devicefit.errors import InputError
    from devicefit.io import atomic_write_text
    from devicefit.report.compress_view import html_report, summary_renderables

    if lm.wants_lm_compress(args):
        return lm.run_compress(args)
    if args.samples < 1:
        raise InputError(f"--samples must be at least 1, got {args.samples}")

    budget = parse_budget(args.budget)
    try:
        bits = tuple(int(b) for b in args.bits.split(","))
    except ValueError as e:
        raise InputError(f"--bits expects comma-separated integers like 4,6,8; got {args.bits!r}") from e
    for flag, path in (
        ("-o", args.output),
        ("--json", args.json),
        ("--html", args.html),
        ("--plan", args.plan),
    ):
        if path is not None:
            check_output_path(path, args.force, flag, package=path is args.output, stdout_ok=flag == "--json")
    refuse_overlaps(
        {"-o": args.output, "--json": args.json, "--html": args.html, "--plan": args.plan},
        {"the model": args.model, "--data": args.data},
    )
    if args.output is not None and args.output.suffix != ".mlpackage":
        raise InputError(f"-o {args.output} must end in .mlpackage")
    options = SearchOptions(
        budget,
        args.scheme,
        bits,
        args.min_elements,
        args.workers,
        args.ray,
        holdout=args.holdout,
        seed=args.seed,
        batch=args.batch,
    )
    options.validate()
    console = Console(stderr=True)
    mlmodel, feeds, labels, origin = _load(args)
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task("compress", total=1)

        def progress(stage: str, done: int, total: int) -> None:
            bar.update(task, description=stage, completed=done, total=max(total, 1))

        result = search(mlmodel, feeds, options, labels=labels, progress=progress)
    # with the JSON on stdout, the tables go to stderr so the stream stays parseable
    out = Console(stderr=is_stdout(args.json))
    for line in summary_renderables(result, origin):
        out.print(line, highlight=False)
    if args.output is not None:
        result.save(args.output, force=args.force)
        out.print(f"wrote {args.output}")
    if args.plan is not None:
        atomic_write_text(args.plan, result.plan_yaml())
        out.print(f"wrote {args.plan} (OptimizationConfig.from_yaml)")
    if args.json is not None:
        if write_text_output(args.json, json.dumps(result.to_dict(), indent=2, default=str)):
            out.print(f"wrote {args.json}")
    if args.html is not None:
        atomic_write_text(args.html, html_report(result, origin))
        out.print(f"wrote {args.html}")
    if not result.generalizes:  # the reason last, on stderr, like check's failed verdicts and gates
        import sys

        from devicefit.report.compress_view import verdict_line

        print(f"devicefit compress: budget failed: {verdict_line(result)}", file=sys.stderr)
        return 1
    return 0


def _load(args: argparse.Namespace):
    """(fp32 MLModel, feeds, labels, origin) for the model argument and --data."""
    from devicefit.compress.verbs import quiet
    from devicefit.errors import InputError
    from devicefit.sources import data as data_mod

    if args.model is None:
        from devicefit import demo

        if args.input:
            raise InputError("--input needs a MODEL; the demo's input is fixed (image: 1x1x8x8 float32)")
        source = demo.demo_source()
    else:
        from devicefit.cli._common import input_specs
        from devicefit.sources import load_source

        specs = input_specs(args.input)  # NAME:SHAPE[:DTYPE] or NAME=FILE.npy (shape and dtype of the file)
        source = load_source(args.model, inputs=specs)
        if args.data is None:  # refuse absurd --samples before the conversion, not after it
            data_mod.check_generated_samples(source.input_specs, args.samples)
    if source.mlmodel is not None:
        mlmodel = source.mlmodel
    else:
        from devicefit.convert import ConvertOptions, convert

        with quiet():
            mlmodel = convert(source, ConvertOptions(target=args.deployment_target, precision="fp32")).mlmodel
    from devicefit import interp

    inputs = interp.load(mlmodel).inputs
    if args.data is not None:
        ds = data_mod.load_data(args.data, inputs, args.samples)
        return mlmodel, ds.feeds, ds.labels, source.origin
    if args.model is None:
        from devicefit import demo

        held = demo.held_out(args.samples)
        return mlmodel, held.feeds, held.labels, source.origin
    ds = data_mod.generate(inputs, args.samples)
    return mlmodel, ds.feeds, None, source.origin
