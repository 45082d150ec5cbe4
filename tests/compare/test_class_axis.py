"""Top-k agreement gates only outputs that hold class scores (a wrong FAIL on embeddings is worse than none)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from devicefit.compare.class_axis import ClassAxis
from devicefit.compare.validate import compare, has_class_axis


def _near_tied_features(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Hidden features whose argmax flips under small noise (SNR ~34 dB): top-1 far below 0.99.

    The gap between the two largest units (0.05) is above the tie window (the noise's, capped at 1% of the
    top score: ~0.03), so the flips are real disagreements, not accepted near-ties."""
    rng = np.random.default_rng(seed)
    ref = rng.normal(size=(64, 16, 384)).astype(np.float32)
    top = ref.argmax(-1)
    # make the two largest units of every row close, then perturb by noise of 0.02 (unit-variance features)
    second = np.argsort(ref, -1)[..., -2]
    np.put_along_axis(ref, second[..., None], np.take_along_axis(ref, top[..., None], -1) - 5e-2, -1)
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
    # the same numbers named as class scores out of a linear head (an LM's N x L x V) are gated by top-1, and fail it
    head = {"logits": ClassAxis(2, "linear head")}
    scores = compare("fp16", {"logits": ref}, {"logits": cand}, "pytorch", class_axes=head)
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
    # the same numbers as class scores out of a linear head do look untrained
    assert looks_untrained({"logits": hidden}, {"logits": ClassAxis(2, "linear head")}).looks_untrained
    # without a head saying where the classes are, a rank-3 output is not guessed at
    assert not looks_untrained({"logits": hidden}).looks_untrained


# ---------------------------------------------------------------- the class axis of dense outputs


def _heads(module, example):
    from devicefit import interp
    from devicefit.compare.class_axis import head_axes
    from tests.helpers import convert

    program = interp.load(convert(module, example))
    return program, head_axes(program)


class _ConvHead(torch.nn.Module):
    """A conv head whose logits leave through ``tail`` (a permute, a flatten, a softmax...)."""

    def __init__(self, dims: int, tail):
        super().__init__()
        conv = torch.nn.Conv1d if dims == 1 else torch.nn.Conv2d
        self.body, self.head, self.tail = conv(3, 8, 3, padding=1), conv(8, 5, 1), tail

    def forward(self, x):
        return self.tail(self.head(torch.relu(self.body(x))))


@pytest.mark.parametrize(
    "dims, tail, axis",
    [
        (2, lambda y: y, 1),  # N x C x H x W
        (1, lambda y: y, 1),  # N x C x L (1-D, channel-first)
        (2, lambda y: y.permute(0, 2, 3, 1), 3),  # channel-last after a permute: N x H x W x C
        (2, lambda y: torch.softmax(y, 1) * 2.0, 1),  # probabilities, through a scale
        (1, lambda y: y.transpose(1, 2), 2),  # N x L x C token-wise from a 1-D conv
    ],
)
def test_class_axis_follows_the_head_op(dims, tail, axis):
    shape = (1, 3, 8, 8) if dims == 2 else (1, 3, 10)
    program, heads = _heads(_ConvHead(dims, tail), torch.randn(shape))
    (name,) = [o.name for o in program.outputs]
    assert heads[name].axis == axis, heads


def test_a_reshaped_dense_output_has_no_evidence_and_no_topk():
    from devicefit.compare.class_axis import decide

    program, heads = _heads(_ConvHead(2, lambda y: y.reshape(1, 5, 4, 16)), torch.randn(1, 3, 8, 8))
    (name,) = [o.name for o in program.outputs]
    assert name not in heads
    decided = decide(name, np.zeros((4, 5, 4, 16), np.float32), heads.get(name))
    assert decided.axis is None and "--class-axis" in decided.evidence
    # rank 2 outputs keep the last axis (axis 0 holds samples), as before
    assert decide(name, np.zeros((4, 10), np.float32)).axis == 1


def test_linear_head_puts_classes_last():
    lin = torch.nn.Sequential(torch.nn.Linear(6, 4), torch.nn.ReLU(), torch.nn.Linear(4, 9))
    program, heads = _heads(lin, torch.randn(1, 5, 6))
    (name,) = [o.name for o in program.outputs]
    assert heads[name].axis == 2 and "linear" in heads[name].evidence


def test_user_class_axis_wins_and_is_checked():
    from devicefit.compare.class_axis import ClassAxis, decide, parse_class_axes
    from devicefit.errors import InputError

    ref = np.zeros((2, 5, 4, 4), np.float32)
    assert parse_class_axes(["out:1", "emb:none", "a:b:-1"]) == {"out": 1, "emb": None, "a:b": -1}
    assert decide("out", ref, ClassAxis(3, "linear head"), {"out": 1}).axis == 1
    assert decide("out", ref, ClassAxis(1, "conv head"), {"out": None}).axis is None
    assert decide("out", ref, None, {"out": -3}).axis == 1
    for bad in (["out"], ["out:x"], [":1"]):
        with pytest.raises(InputError, match="--class-axis"):
            parse_class_axes(bad)
    for axis in (0, 4, -4):  # samples axis, out of range
        with pytest.raises(InputError, match="outside the output's axes"):
            decide("out", ref, None, {"out": axis})


def test_per_pixel_topk_and_accuracy_use_the_class_axis():
    rng = np.random.default_rng(0)
    ref = 10.0 * rng.normal(size=(2, 4, 3, 5))  # N x C x H x W
    pixel = ref[0, :, 1, 2]
    first, second = np.argsort(pixel)[::-1][:2]
    pixel[second] = pixel[first] - 0.05  # a close call, outside the tie window...
    cand = ref.copy()
    cand[0, second, 1, 2] += 0.1  # ...that the candidate decides the other way: one pixel of 30 flips
    axes = {"logits": ClassAxis(1, "conv head")}
    c = compare("fp16", {"logits": ref}, {"logits": cand}, "pytorch", class_axes=axes)
    top1 = c.outputs[0].metrics["top1_agreement"]
    assert top1.details["samples"] == 2 * 3 * 5 and top1.details["disagreeing"] == 1
    assert top1.value == 1 - 1 / 30
    assert "per position (class axis 1)" in c.headline()
    labels = ref.argmax(1)  # N x H x W labels
    lab = compare("fp16", {"logits": ref}, {"logits": cand}, "pytorch", labels, class_axes=axes)
    assert lab.reference_accuracy == 1.0 and lab.accuracy.value == 1 - 1 / 30
