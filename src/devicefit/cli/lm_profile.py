"""The language-model path of ``devicefit profile`` (hooked from cli/cmd_profile.py): generation tokens/s."""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path
from typing import Any

from devicefit.cli._common import count_at_least


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The LM options of ``profile`` (used when MODEL is a stateful LM package or a causal-LM folder)."""
    g = p.add_argument_group("language models (a stateful prefill + decode package or a causal-LM folder)")
    g.add_argument(
        "--prompt-tokens",
        type=count_at_least(1),
        default=None,
        metavar="P",
        help="prompt length (default 16)",
    )
    g.add_argument("--new-tokens", type=count_at_least(2), default=None, metavar="N",
                   help="tokens generated per run, >= 2 (default 32, fitted to the context)")  # fmt: skip
    g.add_argument(
        "--gen-runs", type=count_at_least(1), default=5, metavar="K", help="timed generation runs (median)"
    )
    g.add_argument("--max-context", type=count_at_least(2), default=128, metavar="N",
                   help="KV-cache length when converting a causal-LM folder")  # fmt: skip


def wants_lm(args: argparse.Namespace) -> bool:
    """Whether MODEL is a language model: a stateful LM package, or a Hugging Face causal-LM folder."""
    from devicefit.check.lm import is_lm_source
    from devicefit.profile.generation import is_stateful_lm_package

    return is_stateful_lm_package(args.model) or is_lm_source(args.model)


def run(args: argparse.Namespace) -> int:
    """Measure, print the throughput lines, write ``--json``; exit 0."""
    import json

    from rich.console import Console

    from devicefit.analyze.catalog import get_device
    from devicefit.cli._common import is_stdout, write_text_output
    from devicefit.errors import InputError
    from devicefit.report.lm_profile_view import generation_lines

    if any(e not in ("auto", "interp") for e in args.engine or []):
        raise InputError("a language model is profiled on the interp engine only (--engine interp)")
    if args.html is not None:
        raise InputError("--html is not available for a language model yet; use --json")
    devices = [get_device(d) for d in args.devices] if args.devices else None
    err, out = Console(stderr=True), Console(stderr=is_stdout(args.json))
    with tempfile.TemporaryDirectory(prefix="devicefit-lmprofile-") as tmp:
        package = Path(args.model)
        if package.suffix.lower() != ".mlpackage":  # a causal-LM folder
            from devicefit.convert.stateful import convert_causal_lm

            with err.status("converting the causal LM to a stateful package"):
                package = Path(tmp) / "model.mlpackage"
                convert_causal_lm(args.model, package, args.max_context, "fp16")
        results = []
        for precision in args.precision or ["fp16"]:
            with err.status(f"timing generation ({precision})"):
                results.append(_measure(args, package, precision, devices))
    for result in results:
        for line in generation_lines(result):
            out.print(line, highlight=False, markup=False, soft_wrap=True)  # no wrapping: greppable
    text = json.dumps({"model": str(args.model), "generation": results}, indent=1)
    if args.json is not None and write_text_output(args.json, text):
        err.print(f"wrote {args.json}")
    return 0


def _measure(
    args: argparse.Namespace, package: Path, precision: str, devices: list[Any] | None
) -> dict[str, Any]:
    from devicefit.profile.generation import profile_generation

    return profile_generation(
        package, args.prompt_tokens, args.new_tokens, runs=args.gen_runs, precision=precision,
        devices=devices, model_label=os.fspath(args.model),
    ).to_json()  # fmt: skip
