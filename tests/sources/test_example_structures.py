"""Example inputs that are not a flat list of tensors: tuple arguments, and flags / None baked in as constants."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from devicefit.errors import ModelLoadError
from devicefit.sources import InputSpec, load_source

MODELS = """
import collections
import torch

class PairNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(4, 3)
    def forward(self, pair):
        a, b = pair
        return self.lin(a) * b.sum()

def pair_model():
    return PairNet(), ((torch.randn(2, 4), torch.randn(5)),)

class Flagged(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = torch.nn.Embedding(10, 4)
    def forward(self, input_ids, use_cache=False, past=None, scale=1.0):
        out = self.emb(input_ids) * scale
        return out * 2 if use_cache else out

def flagged():
    return Flagged(), {"input_ids": torch.tensor([[1, 2, 3]]), "use_cache": True, "past": None, "scale": 3.0}

class Batch(torch.nn.Module):
    def forward(self, batch):
        return batch["x"] + batch["y"]

def batch():
    return Batch(), ({"x": torch.ones(2), "y": torch.ones(2)},)

def odd():
    return Flagged(), {"input_ids": torch.tensor([[1, 2]]), "past": object()}
"""


@pytest.fixture
def model_file(tmp_path):
    path = tmp_path / "structs.py"
    path.write_text(MODELS)
    return path


def test_tuple_argument_becomes_one_input_per_tensor(model_file):
    source = load_source(f"{model_file}:pair_model")
    assert [s.name for s in source.input_specs] == ["pair_0", "pair_1"]
    feeds = {"pair_0": np.ones((2, 4), np.float32), "pair_1": np.full(5, 2.0, np.float32)}
    got = source.reference(feeds)["output"]
    with torch.no_grad():
        want = source.module((torch.ones(2, 4), torch.full((5,), 2.0))).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-6)
    # what the converters trace takes the flat inputs and rebuilds the tuple
    traced = torch.jit.trace(source.traceable(), source.to_tensors(feeds), check_trace=False)
    np.testing.assert_allclose(traced(*source.to_tensors(feeds))[0].detach().numpy(), want, rtol=1e-6)


def test_tuple_argument_inputs_renamed_by_input_flag(model_file):
    specs = [InputSpec("a", (1, 4)), InputSpec("b", (3,))]
    source = load_source(f"{model_file}:pair_model", specs)
    out = source.reference(source.example_inputs)["output"]
    assert out.shape == (1, 3)


def test_dict_argument_parts_are_inputs(model_file):
    source = load_source(f"{model_file}:batch")
    assert [s.name for s in source.input_specs] == ["batch_x", "batch_y"]
    assert source.reference(source.example_inputs)["output"].tolist() == [2.0, 2.0]


def test_scalar_flags_and_none_are_baked_as_constants_and_noted(model_file):
    source = load_source(f"{model_file}:flagged")
    assert [s.name for s in source.input_specs] == ["input_ids"]
    notes = " ".join(source.notes)
    for name in ("use_cache=True", "past=None", "scale=3.0"):
        assert name in notes
    ids = np.array([[4, 5, 6]], dtype=np.int64)
    with torch.no_grad():
        want = source.module(torch.from_numpy(ids), use_cache=True, scale=3.0).numpy()
    np.testing.assert_allclose(source.reference({"input_ids": ids})["output"], want, rtol=1e-6)
    traced = torch.jit.trace(source.traceable(), (torch.from_numpy(ids),), check_trace=False)
    np.testing.assert_allclose(traced(torch.from_numpy(ids))[0].detach().numpy(), want, rtol=1e-6)


def test_unsupported_example_value_names_the_input_and_the_remedy(model_file):
    with pytest.raises(ModelLoadError) as err:
        load_source(f"{model_file}:odd")
    text = str(err.value)
    assert "'past'" in text and "object" in text and "pass tensors" in text
    assert "\n" not in text


def test_check_converts_a_tuple_input_model_and_shows_baked_flags(tmp_path, capsys):
    from devicefit.cli import main

    path = tmp_path / "m.py"
    path.write_text(MODELS)
    for factory in ("pair_model", "flagged"):
        code = main(["check", f"{path}:{factory}", "--samples", "2", "--no-fix", "--target", "iphone-15-pro"])
        out, err = capsys.readouterr()
        assert code in (0, 1), err
        assert "example input" not in err
    assert "use_cache=True" in out
