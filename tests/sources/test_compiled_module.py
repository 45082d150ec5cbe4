"""A ``torch.compile``-wrapped module (``OptimizedModule``) is checked as the eager module it wraps.

Calling the wrapper compiles it with Inductor on every new input shape (seconds, and a C compiler the machine may
not have) for each PyTorch reference run; Core ML gets the eager module's function either way."""

from __future__ import annotations

import torch

from devicefit.sources.module import from_module


def test_a_compiled_module_is_checked_as_its_eager_module():
    torch.manual_seed(0)
    eager = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2)).eval()
    source = from_module("net.py", "python", torch.compile(eager), torch.randn(3, 4), None)
    assert source.module is eager
    note = next((n for n in source.notes if "torch.compile" in n), None)
    assert note is not None and "eager" in note, source.notes
    x = torch.randn(3, 4)
    out = source.reference({source.input_specs[0].name: x.numpy()})["output"]
    assert abs(out - eager(x).detach().numpy()).max() < 1e-6
