"""``devicefit run``: run a Core ML ML Program with the interpreter."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

NAME = "run"
ORDER = 20
HELP = "run a .mlpackage / .mlmodel with devicefit's interpreter (no Mac needed)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", type=Path, help="the .mlpackage folder or .mlmodel file")
    p.add_argument(
        "--input",
        "-i",
        action="append",
        default=[],
        metavar="NAME=FILE.npy|NAME:SHAPE[:DTYPE]",
        help="an input array from a file, or a declared shape to fill with seeded random values (repeat per "
        "input); random inputs at the default shapes when none is given",
    )
    p.add_argument("--precision", choices=["fp32", "fp16"], default="fp32")
    p.add_argument("--function", default=None, help="function of a multi-function package")
    p.add_argument("--out", type=Path, default=None, help="write all outputs to this .npz")
    p.add_argument("--intermediates", action="store_true", help="also write every intermediate value")
    p.add_argument(
        "--force", action="store_true", help="overwrite the --out file if it exists (never a folder)"
    )
    p.add_argument(
        "--max-input-mb",
        type=float,
        default=None,
        metavar="MB",
        help="largest random input to generate (default 256, or $DEVICEFIT_MAX_INPUT_BYTES) and largest "
        "--input file to read",
    )


def main(args: argparse.Namespace) -> int:
    import contextlib

    import numpy as np
    from rich.console import Console

    from devicefit import interp
    from devicefit.cli._common import parse_input, parse_named_file, refuse_overlaps
    from devicefit.interp.inputs import max_input_bytes
    from devicefit.io import atomic_save_npz
    from devicefit.report.terminal_views import run_outputs_table
    from devicefit.sources.spec import check_program_inputs_total, check_random_size, check_random_total

    max_bytes = max_input_bytes(None if args.max_input_mb is None else _mb_to_bytes(args.max_input_mb))
    # NOTE: every path is checked before the model runs, so a bad --out fails in a second, not after the work.
    named = [parse_named_file(text) for text in args.input if "=" in text]
    refuse_overlaps({"--out": args.out}, {"the model": args.model, **{f"--input {n}": p for n, p in named}})
    if args.out is not None:
        check_out_file(args.out, args.force)
    declared = [parse_input(text).spec() for text in args.input if "=" not in text]
    for name, path in named:
        _check_input_file(name, path)
    for spec in declared:
        check_random_size(spec, max_bytes, "pass a smaller shape or raise --max-input-mb")
    prog = interp.load(args.model, function=args.function)
    if args.input:
        check_random_total(declared, "declare smaller inputs or feed them (--input NAME=FILE.npy)")
        feeds = {name: _read_input(name, path, max_bytes) for name, path in named}
        rng = np.random.default_rng(0)
        feeds.update({spec.name: spec.random(rng) for spec in declared})
    else:
        # each input is bounded by example_inputs; all of them together by the data limit
        check_program_inputs_total(prog.inputs, "feed them yourself (--input NAME=FILE.npy)")
        feeds = prog.example_inputs(max_bytes=max_bytes)
    spinner = Console(stderr=True)
    # NOTE: a spinner only on a terminal (none in logs and pipes): a large program runs for minutes
    running: Any = contextlib.nullcontext()
    if spinner.is_terminal:
        running = spinner.status(f"running {prog.function} ({args.precision})")
    with running:
        outputs = prog.run(feeds, precision=args.precision, intermediates=args.intermediates)
    console = Console()
    names = [o.name for o in prog.outputs] + [s.name for s in prog.states]
    title = f"{args.model} · function {prog.function} · {args.precision}"
    console.print(run_outputs_table(title, names, outputs))
    if args.out is not None:
        arrays = {k: np.asarray(v) for k, v in outputs.items() if isinstance(v, np.ndarray)}
        check_out_file(args.out, args.force)  # again: the folder may have changed while the model ran
        atomic_save_npz(args.out, arrays)
        console.print(f"wrote {len(arrays)} arrays to {args.out}")
    return 0


def _mb_to_bytes(mb: float) -> int:
    from devicefit.errors import InputError

    if not 0 < mb < float("inf"):  # NOTE: also refuses nan, and inf (int(inf) raises OverflowError)
        raise InputError(f"--max-input-mb must be a positive number, got {mb}")
    return int(mb * 2**20)


def check_out_file(path: Path, force: bool) -> None:
    """Refuse an --out path this command cannot or must not write, before any work is done.

    See :func:`devicefit.cli._common.check_output_path`: ``--force`` replaces only a regular file (a
    folder of the user's files, a FIFO or a device is never replaced) and the folder is probed for writing.
    """
    from devicefit.cli._common import check_output_path

    check_output_path(path, force, flag="--out", package=False)


def _check_input_file(name: str, path: Path) -> None:
    from devicefit.sources.arrays import open_regular

    with open_regular(path, f"input file (for input {name!r})"):
        pass  # a regular, readable file: checked before the model runs


def _read_input(name: str, path: Path, max_bytes: int) -> Any:
    """One input array from a .npy, or from an .npz holding a single array or one named ``name``.

    The array's header is read first (:mod:`devicefit.sources.arrays`): object arrays, and shapes over
    ``max_bytes`` or larger than the file's data, are refused before numpy allocates anything.
    """
    from devicefit.sources.arrays import read_input_file

    return read_input_file(name, path, max_bytes, "raise it with --max-input-mb")
