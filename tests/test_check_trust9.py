"""check's verdicts: which outputs hold class scores, computed ids, exact-match columns, the JSON schema.

Each test reproduces a wrong verdict or a missing column first (the failing case is in its docstring).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

# ---------------------------------------------------------------- linear heads that make embeddings, not scores


class _Embedder(torch.nn.Module):
    """A backbone with the heads a contrastive / retrieval model returns beside (or instead of) class scores."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.backbone = torch.nn.Sequential(torch.nn.Linear(16, 64), torch.nn.ReLU())
        self.projection_head = torch.nn.Sequential(
            torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 32)
        )
        self.mid = torch.nn.Linear(64, 48)
        self.classifier = torch.nn.Linear(48, 10)
        self.layers = torch.nn.Sequential(torch.nn.Linear(64, 24))

    def forward(self, x):
        h = self.backbone(x)
        hidden = self.mid(h)  # returned, and read by the classifier: a hidden state
        z = self.layers(h)
        return (
            self.projection_head(h),  # SimCLR's projection: named as one
            F.normalize(z, dim=-1),  # an L2-normalised embedding out of an unnamed layer
            z / z.norm(dim=-1, keepdim=True),  # CLIP's spelling of it
            hidden,
            self.classifier(hidden),  # class scores
            z,  # an unnamed layer's raw output: the shape rule (last axis) stands
        )


@pytest.fixture(scope="module")
def embedder_heads():
    from devicefit import interp
    from devicefit.compare.class_axis import head_axes
    from devicefit.convert.provenance import collect
    from tests.helpers import convert

    mlmodel = convert(_Embedder(), torch.randn(2, 16))
    program = interp.load(mlmodel)
    names = [o.name for o in program.outputs]
    return names, head_axes(program, collect(mlmodel)), head_axes(program)


def test_projection_normalised_and_hidden_linear_outputs_get_no_topk(embedder_heads):
    """Each of the first four outputs leaves a linear op and got "linear head" top-k over its embedding units
    (the 32-unit SimCLR projection, the L2-normalised and the hidden state alike)."""
    from devicefit.compare.class_axis import decide

    names, heads, _ = embedder_heads
    projection, normalised, clip_style, hidden = (heads[n] for n in names[:4])
    assert projection.axis is None and "projection_head" in projection.evidence, projection
    assert normalised.axis is None and "L2-normalised" in normalised.evidence, normalised
    assert clip_style.axis is None and "L2-normalised" in clip_style.evidence, clip_style
    assert hidden.axis is None and "also feeds linear" in hidden.evidence, hidden
    for name in names[:4]:
        assert decide(name, np.zeros((4, 32), np.float32), heads[name]).axis is None
    # the same outputs under a name that says scores keep top-k (the user's naming wins over the op's)
    assert decide("logits", np.zeros((4, 32), np.float32), projection).axis == 1


def test_a_classifier_and_an_unnamed_layer_keep_topk(embedder_heads):
    names, heads, bare = embedder_heads
    scores, raw = heads[names[4]], heads[names[5]]
    assert scores.axis == 1 and "classifier (Linear)" in scores.evidence, scores
    assert raw.axis == 1, raw
    # without the package's module names the op rules still hold (a Core ML source without provenance)
    assert [bare[n].axis for n in names] == [1, None, None, None, 1, 1], bare


def test_module_names_say_scores_or_features():
    from devicefit.compare.class_axis import _module_says

    assert [
        _module_says(p) for p in ("lm_head", "classifier.1", "heads.head", "fc", "gpt_neox.embed_out")
    ] == [True] * 5
    assert [_module_says(p) for p in ("projection_head.2", "visual_projection", "encoder.fc_mu")] == [
        False
    ] * 3
    assert _module_says("layers.3") is None and _module_says("") is None
