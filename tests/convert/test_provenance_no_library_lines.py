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


def test_every_devicefit_file_but_the_demo_is_library_code():
    """check/convert.py:72 (the conversion call) led BERT's and ViT's findings through `check`."""
    from devicefit.convert._provenance_frontends import _is_library

    package = Path(devicefit.__file__).resolve().parent
    inner = [str(p) for p in package.rglob("*.py") if p.parent != package]  # every subpackage
    assert str(package / "check" / "convert.py") in inner
    assert all(_is_library(f) for f in inner)
    assert not _is_library(str(package / "demo.py"))  # the bundled demo's findings point into it
    assert not _is_library(str(Path(__file__).resolve()))  # a user's model file


def test_a_model_of_library_code_keeps_its_module_list_paths():
    """Without a frame of the user's, `bert.encoder.layer.0.attention.self` became `bert.encoder.0.attention.self`
    (the scopes drop a ModuleList's name; the graph's paths that restore it were kept only beside a frame)."""
    from transformers import BertConfig, BertModel

    from devicefit.convert import ConvertOptions, convert, provenance
    from devicefit.sources.module import from_module

    torch.manual_seed(0)
    config = BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=16)  # fmt: skip
    net = BertModel(config).eval()
    example = {"input_ids": torch.randint(0, 50, (1, 8), dtype=torch.int32)}
    converted = convert(from_module("bert", "hf", net, example, None), ConvertOptions(precision="fp32"))
    found = provenance.load_from_package(converted.mlmodel)
    paths = {o.module_path for _, o in found.items() if o.module_path}
    assert any(p.startswith("encoder.layer.0.") for p in paths), sorted(paths)
    assert not any(p.startswith("encoder.0.") for p in paths), sorted(paths)
