"""``devicefit check --task text-generation``: the language-model readiness check.

Converts the causal LM into stateful ``prefill`` + ``decode`` packages (fp32 compute for conversion fidelity,
fp16 as shipped), compresses the fp16 one to int4 per-block, runs greedy generation in PyTorch and in the
interpreter on each, measures held-out perplexity, and bounds memory and decode speed per device.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from devicefit.errors import InputError, first_line
from devicefit.sources.untrusted_files import read_user_text

__all__ = ["LMCheckOptions", "LMCheckResult", "LMText", "is_lm_source", "run_lm_check"]

DEFAULT_PROMPT_COUNT = 3
INT4_PLAN = {"embeddings": "int4-b32", "lm_head": "int4-b32", "attention": "int4-b32", "mlp": "int4-b32"}


def is_lm_source(model: Any) -> bool:
    """True for a Hugging Face folder whose config names a causal-LM architecture (auto-detected task)."""
    from devicefit.convert.stateful import is_causal_lm_folder

    return isinstance(model, (str, os.PathLike)) and Path(model).is_dir() and is_causal_lm_folder(model)


@dataclass
class LMText:
    """Turns text into token ids for a model: its tokenizer, a ``chars.json`` vocabulary, or raw ids."""

    encode: Callable[[str], np.ndarray] | None
    decode: Callable[[list[int]], str] | None
    vocab_size: int

    @classmethod
    def for_model(cls, folder: Path | None, vocab_size: int) -> LMText:
        """The tokenizer of a model folder (``chars.json`` or a local Hugging Face tokenizer), else none."""
        if folder is not None and (folder / "chars.json").is_file():
            chars = _chars(folder / "chars.json")
            index = {c: i for i, c in enumerate(chars)}

            def encode(text: str) -> np.ndarray:
                return np.array([index[c] for c in text if c in index], dtype=np.int64)

            return cls(encode, lambda ids: "".join(chars[i] for i in ids), len(chars))
        if folder is not None and any(
            (folder / n).is_file() for n in ("tokenizer.json", "tokenizer_config.json")
        ):
            from transformers import AutoTokenizer

            tok = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
            return cls(
                lambda text: np.array(tok(text)["input_ids"], dtype=np.int64),
                lambda ids: str(tok.decode(ids)),
                vocab_size,
            )
        return cls(None, None, vocab_size)

    def prompts(self, path: Path | None, folder: Path | None, seed: int = 0) -> list[np.ndarray]:
        """Prompts from ``path`` (one a line; space-separated ids without a tokenizer), the model folder's
        ``prompts.txt``, or a few seeded random id sequences (a random-weight model has no text)."""
        source = path or (folder / "prompts.txt" if folder and (folder / "prompts.txt").is_file() else None)
        if source is None:
            rng = np.random.default_rng(seed)
            return [rng.integers(0, self.vocab_size, n) for n in (4, 8, 1)[:DEFAULT_PROMPT_COUNT]]
        text = read_user_text(source, "prompts file")
        lines = [line.rstrip("\n") for line in text.splitlines() if line.strip()]
        if not lines:
            raise InputError(f"{source} has no prompts; write one prompt a line")
        out = []
        for n, line in enumerate(lines, 1):
            if self.encode is not None:
                ids = self.encode(line)
            else:
                try:
                    ids = np.array([int(t) for t in line.split()], dtype=np.int64)
                except ValueError:
                    raise InputError(
                        f"{source}:{n}: this model has no tokenizer; write prompts as space-separated token ids"
                    ) from None
            if len(ids) == 0 or ids.min() < 0 or ids.max() >= self.vocab_size:
                raise InputError(f"{source}:{n}: empty prompt or a token id outside 0..{self.vocab_size - 1}")
            out.append(ids)
        return out

    def held_out(self, folder: Path | None, seed: int = 1, length: int = 256) -> np.ndarray:
        """Held-out tokens: the folder's ``heldout.txt`` through the tokenizer, else seeded random ids."""
        if folder is not None and (folder / "heldout.txt").is_file() and self.encode is not None:
            return self.encode(read_user_text(folder / "heldout.txt", "held-out text"))
        return np.random.default_rng(seed).integers(0, self.vocab_size, length)


def _chars(path: Path) -> list[str]:
    """A ``chars.json`` vocabulary: a JSON list of one-character strings, one per token id."""
    try:
        chars = json.loads(read_user_text(path, "character vocabulary"))
    except (ValueError, RecursionError) as e:
        if isinstance(e, InputError):
            raise
        raise InputError(
            f"{path} is not valid JSON ({first_line(e)}); it should list one string per token"
        ) from None
    if not isinstance(chars, list) or not all(isinstance(c, str) for c in chars):
        raise InputError(
            f"{path} should hold a JSON list of strings (one per token id), got {type(chars).__name__}"
        )
    return chars


@dataclass
class LMCheckOptions:
    """What to check (see ``devicefit check --help``)."""

    model: Any
    max_context: int = 128
    steps: int = 16
    prompts: Path | None = None
    int4: bool = True
    devices: list[str] = field(default_factory=list)
    package_path: Path | None = None
    force: bool = False


@dataclass
class LMCheckResult:
    """Everything measured; :meth:`to_json` is the report, :meth:`summary` the ``--fail-on`` keys."""

    family: str
    max_context: int
    parameters: int
    package_bytes: dict[str, int]
    generation: Any
    memory: Any
    notes: list[str]

    @property
    def verdict(self) -> str:
        """``pass`` / ``warn`` / ``fail`` (the generation verdict)."""
        return str(self.generation.verdict)

    def summary(self) -> dict[str, Any]:
        """Flat keys for gates: ``lm.fp32.token_agreement``, ``lm.int4.perplexity_change``, ``lm.memory_mb``..."""
        out = dict(self.generation.summary())
        out["lm.memory_mb"] = self.memory.total_bytes / 2**20
        out["lm.kv_cache_mb"] = self.memory.kv_cache_bytes / 2**20
        for name, size in self.package_bytes.items():
            out[f"lm.{name}.weight_mb"] = size / 2**20
        return out

    def to_json(self) -> dict[str, Any]:
        """The JSON report."""
        return {
            "task": "text-generation",
            "family": self.family,
            "max_context": self.max_context,
            "parameters": self.parameters,
            "package_bytes": self.package_bytes,
            "verdict": self.verdict,
            "generation": self.generation.to_json(),
            "memory": self.memory.to_json(),
            "notes": self.notes,
            "summary": self.summary(),
        }


def run_lm_check(options: LMCheckOptions, progress: Callable[[str], None] | None = None) -> LMCheckResult:
    """Convert, run generation against PyTorch (fp32, fp16, int4), and bound memory and speed."""
    from devicefit.analyze.catalog import get_device, load_catalog
    from devicefit.check.lm_localize import localize_runs
    from devicefit.compare.generation import check_generation
    from devicefit.compress.lm import compress_lm
    from devicefit.convert.lm_wrapper import lm_shape
    from devicefit.convert.merge import weight_bytes
    from devicefit.convert.stateful import check_context, convert_causal_lm, load_causal_lm
    from devicefit.engines.lm_session import InterpLM, TorchLM

    say = progress or (lambda _m: None)
    folder = Path(options.model) if isinstance(options.model, (str, os.PathLike)) else None
    say("loading the model")
    model = load_causal_lm(options.model)
    check_context(model, options.max_context)
    shape = lm_shape(model)
    text = LMText.for_model(folder, shape.vocab_size)
    prompts = text.prompts(options.prompts, folder)
    held_out = text.held_out(folder)
    longest = max(len(p) for p in prompts)
    if longest + options.steps > options.max_context:  # fail before minutes of conversion, not after
        raise InputError(
            f"a {longest}-token prompt plus {options.steps} steps exceeds --max-context {options.max_context}; "
            "use fewer --steps, shorter prompts, or a larger --max-context"
        )
    devices = [get_device(d) for d in options.devices] if options.devices else load_catalog()
    int4_notes: list[str] = []  # weights whose input size block 32 does not divide (compress_lm fit_blocks)
    with tempfile.TemporaryDirectory(prefix="devicefit-lmcheck-") as tmp:
        p32 = Path(tmp) / "fp32.mlpackage"
        p16 = options.package_path or Path(tmp) / "fp16.mlpackage"
        conv32 = convert_causal_lm(model, p32, options.max_context, "fp32", progress=say)
        convert_causal_lm(model, p16, options.max_context, "fp16", force=options.force, progress=say)
        candidates: dict[str, Any] = {"fp32": InterpLM(p32), "fp16": InterpLM(p16, "fp16")}
        sizes = {"fp16": weight_bytes(p16)}
        if options.int4:
            say("compressing to int4 (per-block, block 32 where it divides a weight's input size)")
            p4 = Path(tmp) / "int4.mlpackage"
            names = [n for n, _ in model.named_parameters()]
            compress_lm(p16, INT4_PLAN, p4, fit_blocks=True, notes=int4_notes, parameter_names=names)
            candidates["int4"] = InterpLM(p4, "fp16")
            sizes["int4"] = weight_bytes(p4)
        say(f"generating {options.steps} tokens x {len(prompts)} prompts (PyTorch vs interpreter)")
        generation = check_generation(
            TorchLM(model, options.max_context), candidates, prompts, options.steps, held_out
        )
        # the first differing step of each run, run again with every value: which module it starts at
        say("localising the first differing steps")
        packages = {"fp32": (p32, "fp32"), "fp16": (p16, "fp16")}
        if options.int4:
            packages["int4"] = (p4, "fp16")
        localize_runs(generation, model, packages, provenance=p16)
    parameters = sum(p.numel() for p in model.parameters())
    shipped = sizes.get("int4", sizes["fp16"])
    memory = _memory(model, shape, options.max_context, shipped, devices)
    return LMCheckResult(
        family=shape.family,
        max_context=options.max_context,
        parameters=parameters,
        package_bytes=sizes,
        generation=generation,
        memory=memory,
        notes=conv32.notes + int4_notes,
    )


def _memory(model: Any, shape: Any, context: int, shipped: int, devices: list[Any] | None) -> Any:
    """The memory estimate of ``model`` at ``context`` tokens with ``shipped`` weight bytes: each layer's own
    MLP width (Llama 4's dense layers are wider than its experts), every expert of a mixture computed densely."""
    from devicefit.analyze.kv_cache import lm_memory
    from devicefit.convert.lm_families import mlp_elements_per_token

    parameters = sum(p.numel() for p in model.parameters())
    mlp = mlp_elements_per_token(model)
    return lm_memory(
        shape, context, shipped, parameters, _intermediate(model), devices, mlp_elements_per_token=mlp
    )


def _intermediate(model: Any) -> int:
    """The MLP width, under each family's config name (OPT ffn_dim, GPT-2 / GPT-J n_inner, Falcon
    ffn_hidden_size); 4 x hidden where the config leaves it to the default."""
    config = model.config
    for key in ("intermediate_size", "ffn_dim", "n_inner", "ffn_hidden_size"):
        value = getattr(config, key, None)
        if isinstance(value, int) and value > 0:
            return value
    return int(4 * config.hidden_size)


def compress_causal_lm(
    model_source: Any,
    budget: str,
    output: Path,
    max_context: int = 128,
    steps: int = 16,
    prompts: Path | None = None,
    force: bool = False,
    progress: Callable[[str], None] | None = None,
) -> Any:
    """``compress --budget`` for a causal LM: the smallest plan of the LM ladder meeting ``budget``.

    The budget is measured on held-out text (perplexity, vs PyTorch's on the same text) or on greedy
    generation from the prompts (token agreement); the compression itself is data-free, so no text is used
    as calibration. The candidates run in the interpreter in emulated fp16, as a device would run them.
    Returns a :class:`devicefit.compress.lm.LMSearchResult`.
    """
    import math

    from devicefit.compare.generation import check_generation
    from devicefit.compress.lm import parse_lm_budget, search_lm
    from devicefit.convert.lm_wrapper import lm_shape
    from devicefit.convert.stateful import check_context, convert_causal_lm, load_causal_lm
    from devicefit.engines.lm_session import InterpLM, TorchLM, nll_per_token

    spec = parse_lm_budget(budget)
    say = progress or (lambda _m: None)
    folder = Path(model_source) if isinstance(model_source, (str, os.PathLike)) else None
    model = load_causal_lm(model_source)
    check_context(model, max_context)
    text = LMText.for_model(folder, lm_shape(model).vocab_size)
    held_out = text.held_out(folder)
    prompt_ids = text.prompts(prompts, folder)
    reference = TorchLM(model, max_context)
    ref_ppl = math.exp(nll_per_token(reference, held_out))

    def measure(package: Path) -> tuple[float | None, float | None]:
        say(f"measuring {package.name} on held-out text")
        lm = InterpLM(package, "fp16")
        if spec.metric == "tokens":
            run = check_generation(reference, {"c": lm}, prompt_ids, steps).runs[0]
            return None, run.token_agreement
        return math.exp(nll_per_token(lm, held_out)), None

    with tempfile.TemporaryDirectory(prefix="devicefit-lmcompress-") as tmp:
        base = Path(tmp) / "fp16.mlpackage"
        convert_causal_lm(model, base, max_context, "fp16", progress=say)
        names = [n for n, _ in model.named_parameters()]
        return search_lm(base, spec, measure, ref_ppl, output, force=force, parameter_names=names)
