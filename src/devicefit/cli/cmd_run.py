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
        metavar="NAME=FILE.npy",
        help="an input array (repeat per input); random inputs at the default shapes when none is given",
    )
    p.add_argument("--precision", choices=["fp32", "fp16"], default="fp32")
    p.add_argument("--function", default=None, help="function of a multi-function package")
    p.add_argument("--out", type=Path, default=None, help="write all outputs to this .npz")
    p.add_argument("--intermediates", action="store_true", help="also write every intermediate value")
    p.add_argument("--force", action="store_true", help="overwrite --out if it exists")


def main(args: argparse.Namespace) -> int:
    import numpy as np
    from rich.console import Console
    from rich.table import Table

    from devicefit import interp
    from devicefit.cli._common import check_output_path, parse_named_file
    from devicefit.errors import InputError
    from devicefit.io import atomic_save_npz

    if args.out is not None:
        check_output_path(args.out, args.force)
    prog = interp.load(args.model, function=args.function)
    if args.input:
        feeds = {}
        for text in args.input:
            name, path = parse_named_file(text)
            if not path.exists():
                raise InputError(f"input file {path} not found (for input {name!r})")
            feeds[name] = _read_input(name, path)
    else:
        feeds = prog.example_inputs()
    outputs = prog.run(feeds, precision=args.precision, intermediates=args.intermediates)
    console = Console()
    table = Table(title=f"{args.model} · function {prog.function} · {args.precision}")
    for col in ("output", "dtype", "shape", "min", "max", "mean", "non-finite"):
        table.add_column(col)
    names = [o.name for o in prog.outputs] + [s.name for s in prog.states]
    for name in names:
        v = outputs[name]
        if isinstance(v, np.ndarray) and v.dtype.kind in "fiub" and v.size:
            f = v.astype(np.float64)
            table.add_row(
                name,
                str(v.dtype),
                "x".join(map(str, v.shape)),
                f"{np.nanmin(f):.4g}",
                f"{np.nanmax(f):.4g}",
                f"{np.nanmean(f):.4g}",
                str(int((~np.isfinite(f)).sum())),
            )
        else:
            table.add_row(name, type(v).__name__, "", "", "", "", "")
    console.print(table)
    if args.out is not None:
        arrays = {k: np.asarray(v) for k, v in outputs.items() if isinstance(v, np.ndarray)}
        atomic_save_npz(args.out, arrays)
        console.print(f"wrote {len(arrays)} arrays to {args.out}")
    return 0


def _read_input(name: str, path: Path) -> Any:
    """One input array from a .npy, or from an .npz holding a single array or one named ``name``."""
    import numpy as np

    from devicefit.errors import InputError

    try:
        loaded = np.load(path, allow_pickle=False)
    except Exception as e:
        reason = " ".join(str(e).split())
        raise InputError(f"could not read {path} as a .npy array: {reason}") from e
    if not isinstance(loaded, np.lib.npyio.NpzFile):
        return loaded
    # np.load of an .npz is a lazy archive, not an array: pick the one array meant for this input.
    with loaded:
        keys = list(loaded.files)
        if name in keys:
            return loaded[name]
        if len(keys) == 1:
            return loaded[keys[0]]
    raise InputError(
        f"{name}={path} is an .npz archive with arrays {', '.join(keys) or '(none)'} but none named {name!r}; "
        "pass a .npy file per input, or use `devicefit check --data FILE.npz`"
    )
