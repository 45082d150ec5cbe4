"""Parsing of conversion options given on the command line (image inputs, flexible shapes, output names)."""

from __future__ import annotations

import argparse
import re
from typing import Any

from devicefit.errors import InputError

IMAGE_HELP = (
    "feed NAME as an image: pixel * scale + bias per channel, e.g. x:scale=0.00392:bias=-0.485,-0.456,-0.406"
    ":layout=RGB (layout RGB, BGR or G; repeatable)"
)
RANGE_HELP = (
    "let axis AXIS of NAME vary: NAME:AXIS=LO..HI (HI finite: ML Programs need an upper bound), e.g. ids:1=8..512 "
    "(repeatable)"
)
ENUM_HELP = "the shapes NAME accepts: NAME=1x3x224x224,1x3x320x320 (repeatable per input)"


def add_conversion_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--image-input", action="append", default=[], metavar="NAME[:scale=S][:bias=B,..]", help=IMAGE_HELP
    )
    p.add_argument(
        "--range", dest="ranges", action="append", default=[], metavar="NAME:AXIS=LO..HI", help=RANGE_HELP
    )
    p.add_argument("--enumerated", action="append", default=[], metavar="NAME=SHAPE,SHAPE", help=ENUM_HELP)
    p.add_argument(
        "--output-names", default=None, metavar="A,B", help="names for the converted model's outputs"
    )
    p.add_argument(
        "--keep-unsafe-constants",
        action="store_true",
        help="keep constants beyond the fp16 range (-inf, finfo.min mask fills) as they are; by default "
        "they become fp16-safe values so padded attention rows do not turn into NaN",
    )


def parse_image_input(text: str) -> tuple[str, Any]:
    """``x:scale=0.5:bias=1,2,3:layout=BGR`` -> ("x", ImageInputOptions)."""
    from devicefit.convert import ImageInputOptions

    name, *parts = text.split(":")
    if not name:
        raise InputError(f"--image-input needs NAME[:scale=S][:bias=B,..][:layout=RGB|BGR|G], got {text!r}")
    opts = ImageInputOptions()
    for part in parts:
        key, sep, value = part.partition("=")
        try:
            if key == "scale" and sep:
                opts.scale = float(value)
            elif key == "bias" and sep:
                opts.bias = [float(v) for v in value.split(",")]
            elif key == "layout" and value.upper() in ("RGB", "BGR", "G"):
                opts.color_layout = value.upper()
            else:
                raise ValueError(part)
        except ValueError:
            raise InputError(
                f"--image-input {text!r}: cannot read {part!r}; expected scale=FLOAT, bias=F,F,F or layout=RGB|BGR|G"
            ) from None
    if opts.color_layout == "G" and len(opts.bias) == 3 and opts.bias == [0.0, 0.0, 0.0]:
        opts.bias = [0.0]
    return name, opts


_RANGE = re.compile(r"^(?P<name>[^:]+):(?P<axis>-?\d+)=(?P<lo>\d+)\.\.(?P<hi>\d+|inf)$")


def parse_flexible(ranges: list[str], enumerated: list[str]) -> dict[str, Any]:
    """``--range`` and ``--enumerated`` values -> input name -> FlexibleShape."""
    from devicefit.convert import FlexibleShape

    out: dict[str, Any] = {}
    for text in ranges:
        m = _RANGE.match(text.replace(" ", ""))
        if m is None:
            raise InputError(f"--range expects NAME:AXIS=LO..HI (HI a number), got {text!r}")
        if m["hi"] == "inf":
            # coremltools refuses an unbounded RangeDim for ML Programs: say so before any work
            raise InputError(
                f"--range {text!r}: Core ML ML Programs need a finite upper bound (coremltools rejects an unbounded "
                f"RangeDim); give the largest size you need, e.g. {m['name']}:{m['axis']}={m['lo']}..4096"
            )
        lo, hi = int(m["lo"]), int(m["hi"])
        if lo < 1 or (hi != -1 and hi < lo):
            raise InputError(f"--range {text!r}: need 1 <= LO <= HI")
        flex = out.setdefault(m["name"], FlexibleShape(ranges={}))
        if flex.enumerated:
            raise InputError(f"input {m['name']!r} has both --range and --enumerated; use one")
        flex.ranges[int(m["axis"])] = (lo, hi)
    for text in enumerated:
        name, sep, shapes = text.partition("=")
        try:
            parsed = [tuple(int(d) for d in s.lower().split("x")) for s in shapes.split(",") if s]
        except ValueError:
            parsed = []
        if not name or not sep or not parsed:
            raise InputError(f"--enumerated expects NAME=SHAPE,SHAPE (like 1x3x224x224), got {text!r}")
        if name in out:
            raise InputError(
                f"input {name!r} is given flexible shapes twice; use one --range set or one --enumerated"
            )
        out[name] = FlexibleShape(enumerated=parsed)
    return out


def parse_output_names(text: str | None) -> list[str] | None:
    if text is None:
        return None
    names = [n.strip() for n in text.split(",")]
    if not all(names) or len(set(names)) != len(names):
        raise InputError(f"--output-names expects distinct comma-separated names, got {text!r}")
    return names
