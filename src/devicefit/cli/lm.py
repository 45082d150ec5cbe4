"""The language-model paths of ``devicefit check`` and ``devicefit compress`` (hooked from their commands)."""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

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
    g.add_argument("--steps", type=int, default=16, metavar="N", help="greedy tokens generated per prompt")
    g.add_argument("--max-context", type=int, default=128, metavar="N", help="KV-cache length in tokens")
    g.add_argument("--no-int4", action="store_true", help="skip the int4 per-block run")


def add_compress_arguments(p: argparse.ArgumentParser) -> None:
    """The LM options of ``compress`` (used when MODEL is a causal-LM folder)."""
    g = p.add_argument_group("language models (MODEL a Hugging Face *ForCausalLM folder)")
    g.add_argument("--max-context", type=int, default=128, metavar="N", help="KV-cache length in tokens")
    g.add_argument("--prompts", type=Path, default=None, metavar="FILE", help="prompts for a tokens>= budget")
    g.add_argument(
        "--steps", type=int, default=16, metavar="N", help="greedy tokens per prompt (tokens>= budget)"
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
    console = Console(stderr=is_stdout(args.json))
    mb = 2**20
    console.print(
        f"budget {result.budget}; PyTorch held-out perplexity {_fmt(result.reference_perplexity, '.3f')}"
    )
    for c in result.tried:
        mark = "meets" if c.meets else "misses"
        tokens = "" if c.token_agreement is None else f", tokens {c.token_agreement:.1%}"
        console.print(
            f"  {c.name}: {c.weight_bytes / mb:.3f} MB, perplexity {_fmt(c.perplexity, '.3f')}{tokens}: {mark}",
            highlight=False,
        )
    for line in result.skipped:
        console.print(f"  skipped {line}", highlight=False)
    if result.chosen is None:
        print("devicefit compress: no plan of the LM ladder meets the budget; relax it", file=sys.stderr)
        return 1
    console.print(
        f"chosen: {result.chosen.name} ({result.chosen.weight_bytes / mb:.3f} MB vs fp16 "
        f"{result.baseline_weight_bytes / mb:.3f} MB) -> {result.output}",
        highlight=False,
    )
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
        if path is not None and path.exists() and not args.force:
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
        atomic_write_text(json_path, json.dumps(report, indent=2))
    if html_path is not None:
        from devicefit.report.lm_view import lm_html

        atomic_write_text(html_path, lm_html(report))
    render(report, Console())
    failures = gates_mod.evaluate(gates, report["summary"])
    for f in failures:
        print(f"devicefit check: gate failed: {f.reason}", file=sys.stderr)
    return 1 if failures or report["verdict"] == "fail" else 0


def _fmt(value: Any, spec: str = ".4f") -> str:
    return "-" if value is None else format(value, spec)


def render(report: dict[str, Any], console: Any) -> None:
    """Terminal tables: generation agreement per run, then memory and the decode bound per device."""
    from rich.table import Table

    gen, mem = report["generation"], report["memory"]
    console.print(
        f"[bold]{report['family']}[/] causal LM, {report['parameters']:,} parameters, context "
        f"{report['max_context']}: [bold]{report['verdict']}[/]"
    )
    table = Table(title=f"greedy generation vs PyTorch ({gen['steps']} steps x {gen['prompts']} prompts)")
    for col in (
        "run",
        "tokens agree",
        "first diff",
        "min cosine",
        "top-5",
        "perplexity",
        "vs PyTorch",
        "verdict",
    ):
        table.add_column(col)
    for run in gen["runs"]:
        change = run["perplexity_change"]
        table.add_row(
            run["name"],
            f"{run['token_agreement']:.1%}",
            "-" if run["first_diff_step"] is None else str(run["first_diff_step"]),
            _fmt(min(run["step_cosine"]) if run["step_cosine"] else None, ".5f"),
            _fmt(sum(run["step_top5"]) / len(run["step_top5"]) if run["step_top5"] else None, ".3f"),
            _fmt(run["perplexity"], ".3f"),
            "-" if change is None else f"{change:+.2%}",
            run["verdict"],
        )
    console.print(table)
    for run in gen["runs"]:
        if run["verdict"] != "pass":
            console.print(f"  {run['reason']}", highlight=False)
    mb = 2**20
    console.print(
        f"memory at {mem['context']} tokens: weights {mem['weight_bytes'] / mb:.2f} MB + KV cache "
        f"{mem['kv_cache_bytes'] / mb:.2f} MB ({mem['kv_cache_per_layer_bytes'] / 1024:.1f} KB/layer, fp16) + "
        f"activations {max(mem['decode_activation_bytes'], mem['prefill_activation_bytes']) / mb:.2f} MB",
        highlight=False,
    )
    ladder = ", ".join(f"{r['name']} {r['weight_bytes'] / mb:.2f} MB" for r in mem["ladder"])
    console.print(f"size ladder: {ladder}", highlight=False)
    bounds = [d for d in mem["devices"] if d["tokens_per_s_bound"] is not None][:8]
    if bounds:
        shown = ", ".join(f"{d['device']} {d['tokens_per_s_bound']:,.0f}" for d in bounds)
        console.print(f"decode tokens/s upper bound (bandwidth / bytes per token): {shown}", highlight=False)
    if mem["partial"]:
        console.print("(partial: some catalog devices lack a bandwidth or memory-budget figure)")
    for note in report["notes"]:
        console.print(f"note: {note}", highlight=False)
