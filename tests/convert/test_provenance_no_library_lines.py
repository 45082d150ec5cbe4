"""A finding's source line is the user's, or none: never devicefit's own tracing call or torch's internals.

An ``nn.Sequential`` of stock layers has no forward of the user's; every op was attributed to
``devicefit/convert/frontends.py:75`` (the ``torch.jit.trace`` call) when devicefit is not installed under
site-packages (an editable install, a checkout), and the compress tables led with that path.
"""

from __future__ import annotations

from pathlib import Path

import torch

import devicefit


def test_a_sequential_of_stock_layers_gets_no_library_line():
    from devicefit.convert import ConvertOptions, convert, provenance
    from devicefit.sources.module import from_module

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2)).eval()
    source = from_module("net", "python", net, torch.zeros(1, 4), None)
    converted = convert(source, ConvertOptions(target="iOS17", precision="fp32"))
    found = provenance.load_from_package(converted.mlmodel)
    assert found is not None
    origins = [o for _, o in found.items()]
    assert {o.module_path for o in origins} >= {"0", "2"}  # the module paths are still there
    package = str(Path(devicefit.__file__).resolve().parent)
    torch_dir = str(Path(torch.__file__).resolve().parent)
    for origin in origins:
        assert origin.location is None or not (
            package in str(Path(origin.location.rsplit(":", 1)[0]).resolve())
            or torch_dir in str(Path(origin.location.rsplit(":", 1)[0]).resolve())
        ), origin
