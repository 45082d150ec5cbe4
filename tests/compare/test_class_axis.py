"""Top-k agreement gates only outputs that hold class scores (a wrong FAIL on embeddings is worse than none)."""

from __future__ import annotations

import numpy as np
import pytest

from devicefit.compare.validate import compare, has_class_axis


def _near_tied_features(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Hidden features whose argmax flips under small noise (SNR ~34 dB): top-1 far below 0.99.

    The gap between the two largest units (0.01) is above the tie window (1e-3 of the top score), so the
    flips are real disagreements, not accepted near-ties."""
    rng = np.random.default_rng(seed)
    ref = rng.normal(size=(64, 16, 384)).astype(np.float32)
    top = ref.argmax(-1)
    # make the two largest units of every row close, then perturb by noise of 0.02 (unit-variance features)
    second = np.argsort(ref, -1)[..., -2]
    np.put_along_axis(ref, second[..., None], np.take_along_axis(ref, top[..., None], -1) - 1e-2, -1)
    cand = ref + rng.normal(scale=2e-2, size=ref.shape).astype(np.float32)
    return ref, cand


@pytest.mark.parametrize(
    "name, expected",
    [
        ("logits", True),
        ("start_logits", True),
        ("probabilities", True),
        ("var_123", True),
        ("output", True),
        ("last_hidden_state", False),
        ("pooler_output", False),
        ("image_embeds", False),
        ("pred_boxes", False),
    ],
)
def test_class_axis_by_output_name(name, expected):
    assert has_class_axis(name, np.zeros((1, 10), np.float32)) is expected


def test_integer_and_single_column_outputs_have_no_class_axis():
    assert not has_class_axis("logits", np.zeros((1, 10), np.int32))
    assert not has_class_axis("logits", np.zeros((4, 1), np.float32))


def test_embedding_output_is_judged_by_snr_and_cosine_not_argmax():
    ref, cand = _near_tied_features()
    hidden = compare("fp16", {"last_hidden_state": ref}, {"last_hidden_state": cand}, "pytorch")
    assert "top1_agreement" not in hidden.outputs[0].metrics
    assert hidden.passed, hidden.headline()
    # the same numbers named as class scores are gated by top-1, and fail it
    scores = compare("fp16", {"logits": ref}, {"logits": cand}, "pytorch")
    assert scores.outputs[0].metrics["top1_agreement"].value < 0.99
    assert not scores.passed


def test_labelled_output_keeps_topk_whatever_its_name():
    ref, cand = _near_tied_features()
    labels = ref.reshape(-1, 384).argmax(-1)[: ref.shape[0]]
    feats = compare("fp16", {"embedding": ref[:, 0]}, {"embedding": cand[:, 0]}, "pytorch", labels=labels)
    assert "top1_agreement" in feats.outputs[0].metrics


def test_untrained_heuristic_ignores_feature_outputs():
    from devicefit.compare.divergence import looks_untrained

    # a trained encoder's hidden states: softmax over 384 units is near-uniform, which says nothing
    hidden = np.random.default_rng(0).normal(scale=0.3, size=(8, 16, 384)).astype(np.float32)
    assert not looks_untrained({"last_hidden_state": hidden}).looks_untrained
    # the same numbers as class scores do look untrained
    assert looks_untrained({"logits": hidden}).looks_untrained
