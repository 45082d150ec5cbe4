"""A ``torch.jit.freeze``-d ScriptModule loads: freezing drops the ``training`` attribute of the module and its
submodules (was: ``AttributeError: 'RecursiveScriptModule' object has no attribute 'training'``, an internal
error before any verdict)."""

from __future__ import annotations

import numpy as np
import torch

from devicefit.sources.module import from_module


def test_a_frozen_traced_module_loads_and_runs():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.ReLU()).eval()
    x = torch.randn(1, 3, 8, 8)
    frozen = torch.jit.freeze(torch.jit.trace(net, x))
    source = from_module("net.py", "python", frozen, x, None)
    out = source.reference({source.input_specs[0].name: x.numpy()})
    np.testing.assert_allclose(next(iter(out.values())), net(x).detach().numpy(), atol=1e-5)
