"""The generation check's per-step top-5 uses the plain check's near-tie rule (compare.metrics.topk_accepted).

A runner whose next-token logits are a fixed table row of the last token stands in for a model: the
candidate is the same table plus rounding-sized noise, with the 5th and 6th scores of some rows swapped.
"""

from __future__ import annotations

import numpy as np
import pytest

from devicefit.compare.generation import check_generation

VOCAB = 40


class TableLM:
    """Next-token logits = ``table[last token]``: a deterministic stand-in for an LM session."""

    def __init__(self, table: np.ndarray, max_context: int = 64):
        self.table = table
        self.max_context = max_context

    def reset(self) -> None:
        pass

    def feed(self, ids: np.ndarray) -> np.ndarray:
        return self.table[np.asarray(ids).reshape(-1)].astype(np.float32)


def _tables(gap: float) -> tuple[np.ndarray, np.ndarray]:
    """PyTorch's table, and a candidate = table + noise (sigma 0.01) whose 5th and 6th classes trade places.

    In every row the reference's 5th and 6th scores are ``gap`` apart; the candidate puts the 6th above the
    5th by as much, so its top-5 holds the reference's 6th class.
    """
    rng = np.random.default_rng(0)
    ref = rng.normal(0.0, 2.0, (VOCAB, VOCAB))
    order = np.argsort(-ref, axis=1)
    rows = np.arange(VOCAB)
    ref[rows, order[:, 0]] += 3.0  # a clear greedy token: only the 5th place is in question
    fifth = ref[rows, order[:, 4]]
    ref[rows, order[:, 5]] = fifth - gap
    cand = ref + rng.normal(0.0, 0.01, ref.shape)
    cand[rows, order[:, 4]] = fifth - gap
    cand[rows, order[:, 5]] = fifth
    return ref, cand


def _top5(gap: float) -> float:
    ref, cand = _tables(gap)
    prompts = [np.array([1, 2, 3]), np.array([7, 8])]
    check = check_generation(TableLM(ref), {"fp16": TableLM(cand)}, prompts, steps=12)
    run = check.runs[0]
    assert run.token_agreement == 1.0  # the top-1 never moves: only the 5th place swaps
    return run.summary()["lm.fp16.top5_agreement"]


def test_a_near_tie_swap_at_rounding_noise_is_full_top5_agreement() -> None:
    # 0.004 apart at noise sigma 0.01: fp16 cannot order them (the old overlap counted it 4 of 5)
    assert _top5(0.004) == 1.0


def test_a_swap_across_a_clear_gap_still_counts() -> None:
    # 0.5 apart: fifty noise sigmas and 10% of a top score of ~5: a genuine disagreement on every step
    assert _top5(0.5) == pytest.approx(0.8)
