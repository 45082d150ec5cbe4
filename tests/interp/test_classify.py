"""Classifier models (ct.ClassifierConfig): the interpreter returns the top label and the probability dict,
matching PyTorch's softmax."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from devicefit import interp
from devicefit.interp.ops.classify import classify
from tests.helpers import convert


class Classifier(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(5, 3)

    def forward(self, x):
        return torch.softmax(self.fc(x), -1)


@pytest.mark.parametrize("labels", [["cat", "dog", "bird"], [10, 20, 30]])
def test_classifier_returns_label_and_probabilities(ct, labels):
    torch.manual_seed(0)
    module = Classifier().eval()
    model = convert(module, torch.randn(1, 5), classifier_config=ct.ClassifierConfig(labels))
    prog = interp.load(model)
    assert "classify" in prog.op_counts
    label_name = model.get_spec().description.predictedFeatureName
    probs_name = model.get_spec().description.predictedProbabilitiesName
    for seed in range(3):
        x = torch.randn(1, 5, generator=torch.Generator().manual_seed(seed))
        with torch.no_grad():
            expected = module(x).numpy().ravel()
        out = prog.run({"x": x.numpy()})
        probs = out[probs_name]
        assert list(probs) == labels
        np.testing.assert_allclose([probs[k] for k in labels], expected, rtol=1e-5)
        label = out[label_name]
        assert (label.item() if isinstance(label, np.ndarray) else label) == labels[int(expected.argmax())]


def test_classify_kernel_picks_the_largest():
    label, table = classify(torch.tensor([[0.1, 0.7, 0.2]]), ["a", "b", "c"])
    assert label == "b"
    assert table == pytest.approx({"a": 0.1, "b": 0.7, "c": 0.2})
