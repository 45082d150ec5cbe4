"""Generation check: greedy tokens, per-step logits agreement and held-out perplexity against PyTorch.

A logits cosine on one forward pass says little about whether 64 greedy tokens come out the same, so the
candidate (the stateful package in the interpreter, fp32 / emulated fp16 / compressed) is compared with the
PyTorch model *while generating*:

- PyTorch generates greedily from each prompt for ``steps`` tokens.
- The candidate is run teacher-forced on PyTorch's tokens (same context at every step), giving per-step
  logits cosine and top-5 overlap, and its own greedy choice at each step. The **first differing step** is
  exactly where the candidate's free-running greedy generation would first leave PyTorch's; the **token
  agreement** is the share of steps at which its greedy choice equals PyTorch's (next-token agreement).
- **Perplexity** of both on held-out text (never the calibration text), and the relative change.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from devicefit.engines.lm_session import LMRunner, greedy, nll_per_token

__all__ = ["BOUNDS", "GenerationCheck", "GenerationRun", "PromptResult", "check_generation", "compare_run"]

# Bounds per candidate kind: (minimum token agreement, maximum relative perplexity increase).
# fp32: the package computes what PyTorch computes, so any flipped greedy token is a conversion problem
# (ties within 1e-6 are the only excuse, hence 0.99 and not 1.0 over few steps); perplexity within 0.5%.
# fp16 / compressed: storage and compute rounding legitimately flip near-ties; a 64-token continuation that
# agrees on 90% of steps and a perplexity within +3% is what on-device LM deployments generally accept.
BOUNDS: dict[str, tuple[float, float]] = {"fp32": (0.99, 0.005), "default": (0.90, 0.03)}


@dataclass
class PromptResult:
    """One prompt: where the candidate's greedy tokens first left PyTorch's (None = never) and the share equal."""

    prompt_tokens: int
    first_diff_step: int | None
    token_agreement: float
    reference_tokens: list[int]
    candidate_tokens: list[int]


@dataclass
class GenerationRun:
    """One candidate against PyTorch.

    Attributes:
        name: ``"fp32"``, ``"fp16"``, or a compression label (``"int4"``...).
        token_agreement: mean over prompts of the share of steps whose greedy token equals PyTorch's.
        first_diff_step: the earliest step (0-based) at which any prompt's greedy token differs; None if none.
        step_cosine: per step, mean over prompts of the logits cosine similarity.
        step_top5: per step, mean over prompts of the share of the candidate's top-5 that lies in PyTorch's
            top-5 extended by near-ties (the plain check's rule, :func:`devicefit.compare.metrics.topk_accepted`).
        perplexity: the candidate's perplexity on the held-out text (None without one).
        reference_perplexity: PyTorch's perplexity on the same text.
        verdict: ``"pass"``, ``"warn"`` (fp16 / compressed below the bounds) or ``"fail"`` (fp32 below them).
        reason: one sentence saying why.
        localization: where the first differing step diverges, module and line
            (:class:`devicefit.check.lm_localize.StepLocation` as JSON), when the check localised it.
    """

    name: str
    token_agreement: float
    first_diff_step: int | None
    step_cosine: list[float]
    step_top5: list[float]
    perplexity: float | None
    reference_perplexity: float | None
    prompts: list[PromptResult] = field(default_factory=list)
    verdict: str = "pass"
    reason: str = ""
    localization: dict[str, Any] | None = None

    @property
    def perplexity_change(self) -> float | None:
        """Relative perplexity change vs PyTorch (+0.03 = 3% worse), or None."""
        if self.perplexity is None or not self.reference_perplexity:
            return None
        return self.perplexity / self.reference_perplexity - 1.0

    def summary(self) -> dict[str, Any]:
        """Flat ``lm.NAME.*`` keys for ``--fail-on`` gates."""
        p = f"lm.{self.name}"
        return {
            f"{p}.token_agreement": self.token_agreement,
            f"{p}.first_diff_step": self.first_diff_step if self.first_diff_step is not None else -1,
            f"{p}.min_cosine": min(self.step_cosine) if self.step_cosine else None,
            f"{p}.top5_agreement": float(np.mean(self.step_top5)) if self.step_top5 else None,
            f"{p}.perplexity": self.perplexity,
            f"{p}.perplexity_change": self.perplexity_change,
        }

    def to_json(self) -> dict[str, Any]:
        """A JSON-able dict (NaN -> None)."""
        d = asdict(self)
        d["perplexity_change"] = self.perplexity_change
        return _finite(d)


@dataclass
class GenerationCheck:
    """Every candidate's run, with the settings used."""

    steps: int
    prompts: int
    held_out_tokens: int
    runs: list[GenerationRun]
    prompt_ids: list[np.ndarray] = field(default_factory=list, repr=False)  # what each run was fed

    @property
    def verdict(self) -> str:
        """The worst verdict over the runs."""
        order = ("pass", "warn", "fail")
        return max((r.verdict for r in self.runs), key=order.index, default="pass")

    def summary(self) -> dict[str, Any]:
        """Every run's flat ``lm.*`` keys."""
        out: dict[str, Any] = {"lm.steps": self.steps}
        for r in self.runs:
            out.update(r.summary())
        return _finite(out)

    def to_json(self) -> dict[str, Any]:
        """A JSON-able dict."""
        return {
            "steps": self.steps,
            "prompts": self.prompts,
            "held_out_tokens": self.held_out_tokens,
            "verdict": self.verdict,
            "runs": [r.to_json() for r in self.runs],
            "summary": self.summary(),
        }


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    denom = float(np.linalg.norm(a64) * np.linalg.norm(b64))
    return float(a64 @ b64 / denom) if denom > 0 else float("nan")


def _top5_overlap(reference: list[np.ndarray], candidate: list[np.ndarray]) -> np.ndarray:
    """(prompts, steps): the share of the candidate's top-5 within PyTorch's top-5 extended by near-ties.

    The plain check's rule (:func:`devicefit.compare.metrics.topk_accepted`): classes closer than one fp16 step
    of the top score or than the run's own rounding noise (measured over every step of every prompt, at the top
    scores when larger: :func:`devicefit.compare.metrics.tie_noise`) cannot be ordered by the candidate, so
    swapping them is not a disagreement.
    """
    from devicefit.compare.metrics import tie_noise, topk_accepted

    ref = np.stack(reference).astype(np.float64)
    cand = np.stack(candidate).astype(np.float64)
    vocab = ref.shape[-1]
    if vocab <= 5:
        return np.ones(ref.shape[:2])
    rows_ref, rows_cand = ref.reshape(-1, vocab), cand.reshape(-1, vocab)
    accepted = topk_accepted(rows_ref, 5, tie_noise(rows_ref, rows_cand, 5))
    top = np.argsort(-np.nan_to_num(rows_cand, nan=-np.inf), axis=1, kind="stable")[:, :5]
    return np.take_along_axis(accepted, top, axis=1).mean(axis=1).reshape(ref.shape[:2])


def _verdict(run: GenerationRun) -> tuple[str, str]:
    min_tokens, max_ppl = BOUNDS.get(run.name, BOUNDS["default"])
    change = run.perplexity_change
    problems = []
    if not run.token_agreement >= min_tokens:
        where = f"first at step {run.first_diff_step}" if run.first_diff_step is not None else ""
        problems.append(
            f"greedy tokens agree on {run.token_agreement:.1%} of steps (< {min_tokens:.0%}; {where})"
        )
    if change is not None and not change <= max_ppl:
        problems.append(f"held-out perplexity {change:+.2%} vs PyTorch (bound +{max_ppl:.1%})")
    if not problems:
        return "pass", f"{run.name}: generation matches PyTorch within the bounds"
    if run.name == "fp32":
        return "fail", (
            "fp32 run "
            + "; ".join(problems)
            + ": a conversion problem (the fp32 package should compute what "
            "PyTorch computes); compare the wrapper with the model (devicefit.convert.lm_wrapper)"
        )
    return "warn", (
        f"{run.name}: " + "; ".join(problems) + ": precision/compression loss; keep sensitive layers wider "
        "(compress --budget) or ship fp32 compute for attention"
    )


def compare_run(
    name: str,
    reference: list[np.ndarray],
    candidate: LMRunner,
    prompts: list[np.ndarray],
    held_out: np.ndarray | None,
    reference_nll: float | None,
) -> GenerationRun:
    """Compare ``candidate`` with PyTorch's per-prompt greedy logits ``reference`` (see the module doc)."""
    steps = reference[0].shape[0] if reference else 0
    cos = np.zeros((len(prompts), steps))
    results, logits = [], []
    for i, (prompt, ref) in enumerate(zip(prompts, reference)):
        ref_tokens = ref.argmax(axis=-1)
        got = greedy(candidate, prompt, steps, forced=ref_tokens)
        got_tokens = got.argmax(axis=-1)
        cos[i] = [_cosine(a, b) for a, b in zip(ref, got)]
        logits.append(got)
        diff = np.flatnonzero(got_tokens != ref_tokens)
        results.append(
            PromptResult(
                prompt_tokens=len(prompt),
                first_diff_step=int(diff[0]) if diff.size else None,
                token_agreement=float((got_tokens == ref_tokens).mean()),
                reference_tokens=ref_tokens.tolist(),
                candidate_tokens=got_tokens.tolist(),
            )
        )
    firsts = [r.first_diff_step for r in results if r.first_diff_step is not None]
    ppl = ref_ppl = None
    if held_out is not None and reference_nll is not None:
        ppl, ref_ppl = math.exp(nll_per_token(candidate, held_out)), math.exp(reference_nll)
    run = GenerationRun(
        name=name,
        token_agreement=float(np.mean([r.token_agreement for r in results])) if results else float("nan"),
        first_diff_step=min(firsts) if firsts else None,
        step_cosine=cos.mean(axis=0).tolist(),
        step_top5=_top5_overlap(reference[: len(logits)], logits).mean(axis=0).tolist() if logits else [],
        perplexity=ppl,
        reference_perplexity=ref_ppl,
        prompts=results,
    )
    run.verdict, run.reason = _verdict(run)
    return run


def check_generation(
    reference: LMRunner,
    candidates: dict[str, LMRunner],
    prompts: list[np.ndarray],
    steps: int,
    held_out: np.ndarray | None = None,
) -> GenerationCheck:
    """Greedy generation in PyTorch (``reference``) against each candidate.

    Args:
        reference: the PyTorch model's runner.
        candidates: name -> runner (e.g. ``{"fp32": InterpLM(pkg32), "fp16": InterpLM(pkg16, "fp16")}``).
        prompts: token-id arrays; each plus ``steps`` must fit every runner's context.
        steps: tokens generated per prompt.
        held_out: token ids of held-out text for perplexity (truncated to the context), or None.
    """
    from devicefit.errors import InputError

    if steps < 1:
        raise InputError(f"--steps must be at least 1, got {steps}")
    if not prompts or any(len(p) < 1 for p in prompts):
        raise InputError("give at least one non-empty prompt")
    context = min([reference.max_context, *(c.max_context for c in candidates.values())])
    longest = max(len(p) for p in prompts)
    if longest + steps > context:
        raise InputError(
            f"a {longest}-token prompt plus {steps} steps exceeds the context of {context}; "
            "use fewer --steps, shorter prompts, or a larger --max-context"
        )
    if held_out is not None and len(held_out) < 2:
        raise InputError("the held-out text must have at least 2 tokens")
    ref_logits = [greedy(reference, p, steps) for p in prompts]
    ref_nll = nll_per_token(reference, held_out[:context]) if held_out is not None else None
    runs = [compare_run(n, ref_logits, c, prompts, held_out, ref_nll) for n, c in candidates.items()]
    return GenerationCheck(
        steps=steps,
        prompts=len(prompts),
        held_out_tokens=min(len(held_out), context) if held_out is not None else 0,
        runs=runs,
        prompt_ids=[np.asarray(p) for p in prompts],
    )
