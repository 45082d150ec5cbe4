"""Compression for stateful language models: int4 per-block, 4/3-bit grouped palettization, mixed plans.

coremltools' post-training compression refuses multi-function models, so each function (``prefill``,
``decode``) is split out, compressed with the same plan, and the two are merged again. The compression is
deterministic (linear quantization; devicefit's k-means), so both functions get bit-identical weights and the
merged package still stores one copy. The rotary tables are never compressed (positions would drift).

Weights are grouped by role, from the PyTorch parameter names coremltools keeps in the constant names:
``embeddings`` (``embed_tokens``), ``lm_head``, ``attention`` (``self_attn``) and ``mlp``. A plan gives each
group a width; :func:`search_lm` walks a ladder of plans from smallest to largest and returns the first that
meets the budget on **held-out** text (the compression is data-free: no calibration text is used at all).
"""

from __future__ import annotations

import math
import os
import re
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devicefit.errors import InputError, OutputExistsError

__all__ = [
    "GROUPS",
    "LADDER",
    "WIDTHS",
    "LMBudget",
    "LMCandidate",
    "LMSearchResult",
    "compress_lm",
    "parse_lm_budget",
    "search_lm",
]

GROUPS = ("embeddings", "lm_head", "attention", "mlp")
# substrings of the (underscore-joined) PyTorch parameter names; the classic families' names are here too
# (GPT-2 / GPT-J wte, attn, GPT-NeoX embed_in / embed_out / attention, BLOOM / Falcon word_embeddings /
# self_attention, OPT fc1 / fc2, MPT ffn, Llama 4 feed_forward); LFM2's short-convolution layers mix tokens in
# the attention layers' place, so their projections join the attention group
_GROUP_PATTERNS = (
    ("embeddings", ("embed_tokens", "_wte_", "embed_in_", "word_embeddings_weight")),
    ("lm_head", ("lm_head", "embed_out")),
    ("attention", ("self_attn", "_attn_", "attention_", "_conv_in_proj_", "_conv_out_proj_")),
    ("mlp", ("mlp", "_fc1_", "_fc2_", "_ffn_", "_feed_forward_")),
)
# never compressed: norms, and position tables (learned positions drift like rotary tables would)
_KEEP = ("rope_", "alibi", "layernorm", "layer_norm", "_ln_", "_wpe_", "embed_positions")


def _int4_block(width: str) -> int | None:
    """The block size of an ``int4-bN`` width; None for any other width."""
    m = re.fullmatch(r"int4-b(\d+)", width)
    return int(m.group(1)) if m else None


def _width_config(width: str) -> Any:
    from devicefit.compress.configs import PalettizeConfig, QuantizeConfig

    block = _int4_block(width)
    if block is not None:
        return QuantizeConfig(dtype="int4", granularity="per_block", block_size=block, weight_threshold=0)
    if width == "int8":
        return QuantizeConfig(dtype="int8", granularity="per_channel", weight_threshold=0)
    m = re.fullmatch(r"pal([34])-g(\d+)", width)
    if m:
        return PalettizeConfig(
            nbits=int(m.group(1)),
            granularity="per_grouped_channel",
            group_size=int(m.group(2)),
            weight_threshold=0,
        )
    if width == "fp16":
        return None
    raise InputError(
        f"unknown width {width!r}; use fp16, int8, int4-bN (block N), pal4-gN or pal3-gN (group N)"
    )


WIDTHS = ("fp16", "int8", "int4-b32", "int4-b64", "int4-b128", "pal4-g16", "pal3-g16")

# Plans from the smallest to the largest (roughly): uniform int4 with a block-size search (largest block
# first: fewer scales), 4-bit palettization, 3-bit MLP palettization, then plans that keep the most
# sensitive groups (embeddings / lm_head, then attention) at 8 bits.
LADDER: tuple[tuple[str, dict[str, str]], ...] = (
    ("pal3-g16 mlp + int4-b32 rest", {"embeddings": "int4-b32", "lm_head": "int4-b32", "attention": "int4-b32", "mlp": "pal3-g16"}),
    ("int4 block 128", dict.fromkeys(GROUPS, "int4-b128")),
    ("int4 block 64", dict.fromkeys(GROUPS, "int4-b64")),
    ("int4 block 32", dict.fromkeys(GROUPS, "int4-b32")),
    ("pal4 group 16", dict.fromkeys(GROUPS, "pal4-g16")),
    ("int8 embeddings/lm_head + int4-b32", {"embeddings": "int8", "lm_head": "int8", "attention": "int4-b32", "mlp": "int4-b32"}),
    ("int8 embeddings/lm_head/attention + int4-b32 mlp", {"embeddings": "int8", "lm_head": "int8", "attention": "int8", "mlp": "int4-b32"}),
)  # fmt: skip


@dataclass(frozen=True)
class LMBudget:
    """``perplexity<=+3%`` (relative to PyTorch), ``perplexity<=12.5`` (absolute) or ``tokens>=0.95``."""

    metric: str
    value: float
    relative: bool
    text: str

    def met(self, perplexity: float | None, reference_perplexity: float | None, tokens: float | None) -> bool:
        """Whether measured values meet the budget (a missing measurement never does)."""
        if self.metric == "tokens":
            return tokens is not None and tokens >= self.value
        if perplexity is None or not math.isfinite(perplexity):
            return False
        if self.relative:
            return reference_perplexity is not None and perplexity <= reference_perplexity * (1 + self.value)
        return perplexity <= self.value


_BUDGET = re.compile(
    r"^\s*(perplexity|ppl)\s*<=\s*(\+?)(\d+(?:\.\d*)?)\s*(%?)\s*$|^\s*tokens\s*>=\s*(\d*\.?\d+)\s*$"
)


def parse_lm_budget(text: str) -> LMBudget:
    """Parse an LM budget; raises InputError naming the accepted forms."""
    m = _BUDGET.match(text or "")
    if not m:
        raise InputError(
            f"LM budget {text!r} not understood; use 'perplexity<=+3%' (vs PyTorch), 'perplexity<=12.5' or "
            "'tokens>=0.95' (greedy token agreement)"
        )
    if m.group(5) is not None:
        value = float(m.group(5))
        if not 0 < value <= 1:
            raise InputError(f"tokens budget must lie in (0, 1], got {value}")
        return LMBudget("tokens", value, False, text)
    plus, number, pct = m.group(2), float(m.group(3)), m.group(4)
    if plus and not pct:
        raise InputError(f"a relative perplexity budget needs %: e.g. perplexity<=+{number:g}%")
    return LMBudget("perplexity", number / 100 if pct else number, bool(pct), text)


def group_of(const_name: str) -> str | None:
    """The role of a weight constant (by its PyTorch parameter name), or None (norms, rotary tables)."""
    if any(keep in const_name for keep in _KEEP):
        return None
    for group, patterns in _GROUP_PATTERNS:
        if any(p in const_name for p in patterns):
            return group
    return None


def _single_function(ct: Any, package: Path, function: str, tmp: Path) -> Any:
    desc = ct.utils.MultiFunctionDescriptor()
    desc.add_function(str(package), src_function_name=function, target_function_name="main")
    desc.default_function_name = "main"
    part = tmp / f"split_{function}.mlpackage"
    ct.utils.save_multifunction(desc, str(part))
    loaded = ct.models.MLModel(str(part), skip_model_load=True)
    # NOTE: save_multifunction keeps a function table even for one function, which coremltools' compression
    # refuses; moving its description back to the top level makes it an ordinary single-function model.
    spec = loaded.get_spec()
    fn = spec.description.functions[0]
    for key in ("input", "output", "state"):
        getattr(spec.description, key).extend(getattr(fn, key))
    del spec.description.functions[:]
    spec.description.defaultFunctionName = ""
    return ct.models.MLModel(spec, weights_dir=loaded.weights_dir, skip_model_load=True)


def _weight_shapes(spec: Any) -> dict[str, tuple[int, ...]]:
    """Name -> shape of the rank >= 2 constants of the (single) function of an ML Program spec."""
    shapes = {}
    for fn in spec.mlProgram.functions.values():
        for block in fn.block_specializations.values():
            for op in block.operations:
                if op.type == "const" and op.outputs and op.outputs[0].type.tensorType.rank >= 2:
                    dims = op.outputs[0].type.tensorType.dimensions
                    shapes[op.outputs[0].name] = tuple(int(d.constant.size) for d in dims)
    return shapes


def _check_blocks(name: str, shape: tuple[int, ...], width: str) -> None:
    block = _int4_block(width)
    if block is not None and shape[-1] % block:
        fits = _fitted_block(shape[-1], 128)
        hint = f"e.g. int4-b{fits}" if fits else "or int8 for this group"
        raise InputError(
            f"block size {block} does not divide the input size {shape[-1]} of {name}; "
            f"choose a block size that divides it ({hint})"
        )


def _fitted_block(size: int, block: int) -> int | None:
    """The largest power-of-two block from ``block`` down to 8 that divides ``size``; None if none does."""
    while block >= 8:
        if size % block == 0:
            return block
        block //= 2
    return None


def _fit_blocks(name: str, shape: tuple[int, ...], width: str, config: Any, fitted: dict[str, str]) -> Any:
    """``width``'s ``config`` for this weight, its block size fitted to the weight's input size.

    A block that does not divide the input size becomes the largest that does (down to 8: a smaller block's
    fp16 scales cost more than the 4 bits saved), or per-channel int4 where none does; ``fitted`` records each
    weight changed (name -> what it took).
    """
    from devicefit.compress.configs import QuantizeConfig

    asked = _int4_block(width)
    if asked is None or shape[-1] % asked == 0:
        return config
    block = _fitted_block(shape[-1], asked)
    if block is None:
        fitted[name] = "per-channel int4"
        return QuantizeConfig(dtype="int4", granularity="per_channel", weight_threshold=0)
    fitted[name] = f"int4 block {block}"
    return QuantizeConfig(dtype="int4", granularity="per_block", block_size=block, weight_threshold=0)


def _fitted_notes(
    fitted: dict[str, str], width_of: dict[str, str], parameter_names: Iterable[str] = ()
) -> list[str]:
    # the PyTorch parameter each constant holds (its name joined by "_" inside the constant's), the longest match
    joined = sorted(((p.replace(".", "_"), p) for p in parameter_names), key=lambda kv: -len(kv[0]))

    def readable(const: str) -> str:
        return next((p.removesuffix(".weight") for j, p in joined if j in const), const)

    by_got: dict[str, list[str]] = {}
    for name, got in fitted.items():
        by_got.setdefault(got, []).append(name)
    notes = []
    for got, names in by_got.items():
        shown = ", ".join(readable(n) for n in names[:4]) + (
            f" and {len(names) - 4} more" if len(names) > 4 else ""
        )
        asked = "/".join(sorted({width_of[n].replace("int4-b", "int4 block ") for n in names}))
        notes.append(
            f"int4: {asked} does not divide the input size of {len(names)} weight(s), which took {got} "
            f"instead: {shown}"
        )
    return notes


def compress_lm(
    package: str | os.PathLike[str],
    plan: dict[str, str],
    output: str | os.PathLike[str],
    force: bool = False,
    fit_blocks: bool = False,
    notes: list[str] | None = None,
    parameter_names: Iterable[str] = (),
) -> Path:
    """Compress a stateful LM package group by group (``plan``: group -> width, missing groups stay fp16).

    Args:
        fit_blocks: an int4 block size that does not divide a weight's input size is fitted to that weight
            (the largest power-of-two block down to 8 that divides it, else per-channel int4) instead of
            refused; what was fitted is appended to ``notes``. For a default plan (check's int4 run); a plan the
            user wrote is held to its block sizes.
        notes: where ``fit_blocks`` says which weights took another block.
        parameter_names: the PyTorch model's parameter names, to name those weights by (else their constants).

    Raises:
        InputError: an unknown group or width; a block size that does not divide a weight's input size
            (without ``fit_blocks``).
        OutputExistsError: ``output`` exists and ``force`` is False.
    """
    from devicefit._lazy import coremltools
    from devicefit.compress.verbs import apply_plan
    from devicefit.convert.merge import merge

    unknown = sorted(set(plan) - set(GROUPS))
    if unknown:
        raise InputError(f"unknown weight group {unknown[0]!r}; groups: {', '.join(GROUPS)}")
    configs = {g: _width_config(w) for g, w in plan.items()}
    out = Path(output)
    if out.suffix != ".mlpackage":
        raise InputError(f"output {out} must end with .mlpackage")
    if out.exists() and not force:
        raise OutputExistsError(f"{out} exists; pass --force to overwrite it or choose another path")
    ct = coremltools()
    with tempfile.TemporaryDirectory(prefix="devicefit-lmc-") as tmp_name:
        tmp = Path(tmp_name)
        parts = []
        fitted: dict[str, str] = {}  # weight -> the block it took (both functions hold the same weights)
        width_of: dict[str, str] = {}
        for function in ("prefill", "decode"):
            mlmodel = _single_function(ct, Path(package), function, tmp)
            weight_plan = {}
            for name, shape in _weight_shapes(mlmodel.get_spec()).items():
                group = group_of(name)
                if group is not None and configs.get(group) is not None:
                    if fit_blocks:
                        width_of[name] = plan[group]
                        weight_plan[name] = _fit_blocks(name, shape, plan[group], configs[group], fitted)
                    else:
                        _check_blocks(name, shape, plan[group])
                        weight_plan[name] = configs[group]
            compressed = apply_plan(mlmodel, weight_plan) if weight_plan else mlmodel
            part = tmp / f"{function}.mlpackage"
            compressed.save(str(part))
            parts.append(part)
        merge(parts, out, names=["prefill", "decode"], default="decode", force=force)
    if notes is not None:
        notes.extend(_fitted_notes(fitted, width_of, parameter_names))
    return out


@dataclass
class LMCandidate:
    """One plan tried by the search, with what was measured on held-out text."""

    name: str
    plan: dict[str, str]
    weight_bytes: int
    perplexity: float | None
    token_agreement: float | None
    meets: bool
    # weights whose input size the plan's int4 block does not divide, and the block they took (compress_lm)
    notes: list[str] = field(default_factory=list)


@dataclass
class LMSearchResult:
    """The chosen plan (None if no plan of the ladder meets the budget) and every candidate tried."""

    budget: str
    reference_perplexity: float | None
    baseline_weight_bytes: int
    chosen: LMCandidate | None
    output: Path | None
    tried: list[LMCandidate] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """A JSON-able dict."""
        from dataclasses import asdict

        d = asdict(self)
        d["output"] = str(self.output) if self.output else None
        return d


def search_lm(
    package: str | os.PathLike[str],
    budget: str | LMBudget,
    measure: Callable[[Path], tuple[float | None, float | None]],
    reference_perplexity: float | None,
    output: str | os.PathLike[str],
    ladder: tuple[tuple[str, dict[str, str]], ...] = LADDER,
    force: bool = False,
    parameter_names: Iterable[str] = (),
) -> LMSearchResult:
    """Walk ``ladder`` smallest first; keep the first plan whose package meets ``budget``.

    Args:
        package: the uncompressed (fp16) stateful LM package.
        budget: e.g. ``"perplexity<=+3%"`` or ``"tokens>=0.95"``.
        measure: package -> (held-out perplexity, token agreement) of that package; either may be None when
            the budget does not need it.
        reference_perplexity: PyTorch's held-out perplexity (the base of a relative budget).
        output: where the chosen package is written.
        ladder: (name, plan) pairs to try, in order.
        force: overwrite ``output``.
        parameter_names: the PyTorch model's parameter names (a candidate's notes name weights by them).
    """
    from devicefit.convert.merge import weight_bytes

    parameter_names = list(parameter_names)
    spec = parse_lm_budget(budget) if isinstance(budget, str) else budget
    out = Path(output)
    if out.exists() and not force:
        raise OutputExistsError(f"{out} exists; pass --force to overwrite it or choose another path")
    result = LMSearchResult(spec.text, reference_perplexity, weight_bytes(package), None, None)
    blocks = [b for _, plan in ladder for w in plan.values() if (b := _int4_block(w)) is not None]
    smallest = min(blocks) if blocks else None
    with tempfile.TemporaryDirectory(prefix="devicefit-lms-") as tmp:
        for i, (name, plan) in enumerate(ladder):
            candidate = Path(tmp) / f"c{i}.mlpackage"
            # a rung whose int4 blocks are all the ladder's smallest has its blocks fitted to the weights they do
            # not divide (a smaller block, else per-channel); a larger block that does not divide is skipped, as
            # a rung with the smallest block follows
            int4 = {_int4_block(w) for w in plan.values()} - {None}
            fit = bool(int4) and int4 == {smallest}
            notes: list[str] = []
            try:
                compress_lm(
                    package, plan, candidate, fit_blocks=fit, notes=notes, parameter_names=parameter_names
                )
            except InputError as e:
                if "does not divide" not in str(e):
                    raise
                result.skipped.append(f"{name}: {e}")  # this model's sizes rule the block size out
                continue
            ppl, tokens = measure(candidate)
            ok = spec.met(ppl, reference_perplexity, tokens)
            tried = LMCandidate(name, dict(plan), weight_bytes(candidate), ppl, tokens, ok, notes)
            result.tried.append(tried)
            if ok:
                import shutil

                if out.exists():
                    shutil.rmtree(out)
                shutil.copytree(candidate, out)
                result.chosen, result.output = tried, out
                break
    return result
