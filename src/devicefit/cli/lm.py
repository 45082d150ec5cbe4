"""The language-model paths of ``devicefit check`` and ``devicefit compress`` (hooked from their commands)."""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

from devicefit.cli._common import count_at_least

TASKS = ("auto", "text-generation", "default")
_GATE = re.compile(r"^\s*(lm\.[A-Za-z0-9_.\-]+)\s*(<=|>=|!=|==|<|>|=)\s*(\S.*?)\s*$")


def add_check_arguments(p: argparse.ArgumentParser) -> None:
    """The LM options of ``check`` (ignored for other models)."""
    g = p.add_argument_group("language models (--task text-generation)")
    g.add_argument("--task", choices=TASKS, default="auto",
                   help="auto: text-generation when MODEL is a Hugging Face folder of a *ForCausalLM; "
                   "default: the ordinary check")  # fmt: skip
    g.add_argument("--prompts", type=Path, default=None, metavar="FILE",
                   help="one prompt a line (token ids separated by spaces when the model has no tokenizer)")  # fmt: skip
    g.add_argument(
        "--steps", type=count_at_least(1), default=16, metavar="N", help="greedy tokens generated per prompt"
    )
    g.add_argument(
        "--max-context", type=count_at_least(2), default=128, metavar="N", help="KV-cache length in tokens"
    )
    g.add_argument("--no-int4", action="store_true", help="skip the int4 per-block run")


def add_compress_arguments(p: argparse.ArgumentParser) -> None:
    """The LM options of ``compress`` (used when MODEL is a causal-LM folder)."""
    g = p.add_argument_group("language models (MODEL a Hugging Face *ForCausalLM folder)")
    g.add_argument(
        "--max-context", type=count_at_least(2), default=128, metavar="N", help="KV-cache length in tokens"
    )
    g.add_argument("--prompts", type=Path, default=None, metavar="FILE", help="prompts for a tokens>= budget")
    g.add_argument(
        "--steps",
        type=count_at_least(1),
        default=16,
        metavar="N",
        help="greedy tokens per prompt (tokens>= budget)",
    )


def wants_lm_compress(args: argparse.Namespace) -> bool:
    """Whether ``compress`` runs the LM search (MODEL is a causal-LM folder or the budget is an LM budget)."""
    from devicefit.check.lm import is_lm_source

    lm_budget = re.match(r"^\s*(perplexity|ppl|tokens)\b", args.budget or "") is not None
    return lm_budget or (args.model is not None and is_lm_source(args.model))


def run_compress(args: argparse.Namespace) -> int:
    """``compress`` on a causal LM: exit 1 when no plan of the ladder meets the budget."""
    import json

    from rich.console import Console

    from devicefit.check.lm import compress_causal_lm
    from devicefit.cli._common import is_stdout, write_text_output
    from devicefit.errors import InputError

    if args.model is None or not Path(args.model).is_dir():
        raise InputError("an LM budget (perplexity / tokens) needs MODEL: a Hugging Face causal-LM folder")
    if args.output is None:
        raise InputError("give -o OUTPUT.mlpackage for the compressed language model")
    err = Console(stderr=True)
    with err.status("compressing the language model") as status:
        result = compress_causal_lm(
            args.model, args.budget, args.output, args.max_context, args.steps, args.prompts, args.force,
            lambda msg: status.update(msg),
        )  # fmt: skip
    if args.json is not None:  # '-': stdout, and the summary below goes to stderr
        write_text_output(args.json, json.dumps(result.to_json(), indent=2))
    from devicefit.report.lm_view import render_lm_compress

    render_lm_compress(result, Console(stderr=is_stdout(args.json)))
    if result.chosen is None:
        print("devicefit compress: no plan of the LM ladder meets the budget; relax it", file=sys.stderr)
        return 1
    return 0


def wants_lm(args: argparse.Namespace) -> bool:
    """Whether ``check`` runs the text-generation path."""
    from devicefit.check.lm import is_lm_source
    from devicefit.errors import InputError

    task = getattr(args, "task", "auto")
    if task == "text-generation":
        if args.model is None:
            raise InputError("--task text-generation needs MODEL: a Hugging Face causal-LM folder")
        return True
    return task == "auto" and args.model is not None and is_lm_source(args.model)


def parse_lm_gates(texts: list[str]) -> list[Any]:
    """``--fail-on`` expressions over ``lm.*`` keys (e.g. ``lm.fp32.token_agreement<1``)."""
    from devicefit.errors import InputError
    from devicefit.report.gates import Gate

    gates = []
    for text in texts:
        m = _GATE.match(text)
        if not m:
            raise InputError(
                f"--fail-on {text!r}: a language-model check takes lm.* keys, e.g. lm.fp32.token_agreement<1 or "
                "lm.int4.perplexity_change>0.03"
            )
        key, op, raw = m.groups()
        try:
            value = float(raw)
        except ValueError:
            raise InputError(f"--fail-on {text!r}: {raw!r} is not a number") from None
        gates.append(Gate(text, key, op, value))
    return gates


def run_check(args: argparse.Namespace) -> int:
    """``check`` on a causal LM: render, write JSON, evaluate gates; exit 1 on a failed verdict or gate."""
    import json

    from rich.console import Console

    from devicefit.check.lm import LMCheckOptions, run_lm_check
    from devicefit.cli._common import is_stdout, write_text_output
    from devicefit.errors import InputError, OutputExistsError
    from devicefit.io import atomic_write_text
    from devicefit.report import gates as gates_mod

    gates = parse_lm_gates(list(args.fail_on))
    if args.steps < 1:
        raise InputError(f"--steps must be at least 1, got {args.steps}")
    json_path = args.json or (args.out_dir / "report.json" if args.out_dir else None)
    html_path = args.html or (args.out_dir / "report.html" if args.out_dir else None)
    pkg = args.out_dir / "model.mlpackage" if args.out_dir else None
    for path in (json_path, html_path, pkg):
        # '-' is stdout; -o's folder may not exist yet (created below), so only refuse an overwrite here
        if path is not None and not is_stdout(path) and path.exists() and not args.force:
            raise OutputExistsError(f"{path} exists; pass --force to overwrite it or choose another path")
    if pkg is not None:
        pkg.parent.mkdir(parents=True, exist_ok=True)
    err = Console(stderr=True)
    options = LMCheckOptions(
        model=args.model,
        max_context=args.max_context,
        steps=args.steps,
        prompts=args.prompts,
        int4=not args.no_int4,
        devices=list(args.devices),
        package_path=pkg,
        force=args.force,
    )
    with err.status("checking the language model") as status:
        result = run_lm_check(options, lambda msg: status.update(msg))
    report = result.to_json()
    if json_path is not None:
        write_text_output(json_path, json.dumps(report, indent=2))
    if html_path is not None:
        from devicefit.report.lm_view import lm_html

        atomic_write_text(html_path, lm_html(report))
    from devicefit.report.lm_view import render_lm_terminal

    render_lm_terminal(report, Console(stderr=is_stdout(json_path)))  # JSON on stdout: tables to stderr
    failures = gates_mod.evaluate(gates, report["summary"])
    for f in failures:
        print(f"devicefit check: gate failed: {f.reason}", file=sys.stderr)
    return 1 if failures or report["verdict"] == "fail" else 0
