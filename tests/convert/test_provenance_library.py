"""Provenance of a model whose code is all library code (a Hugging Face model called from a factory)."""

from __future__ import annotations

import pytest
import torch

from devicefit import interp
from devicefit.convert import ConvertOptions, convert
from devicefit.convert.provenance import load_from_package
from tests.convert.helpers import source_of


@pytest.mark.parametrize("frontend", ["torchscript", "torch.export"])
def test_a_library_models_ops_are_placed_in_its_modeling_file_never_in_devicefit(frontend):
    # HF SwiftFormer's findings read 'attn (SwiftFormerEfficientAdditiveAttention) at .../devicefit/convert/
    # frontends.py:75' (the torch.jit.trace call): every frame of the model's code was library code
    import transformers

    torch.manual_seed(0)
    config = transformers.ViTConfig(
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        image_size=16,
        patch_size=8,
    )
    source = source_of(transformers.ViTModel(config).eval(), {"pixel_values": torch.randn(1, 3, 16, 16)})
    program = interp.load(convert(source, ConvertOptions(frontend=frontend)).mlmodel)
    provenance = load_from_package(program)
    origins = [provenance.find(*step.outputs, step.name) for step in program.plan.block.steps]
    locations = [o.location for o in origins if o is not None and o.location]
    assert locations, "no op was placed at a source line"
    assert not [loc for loc in locations if "devicefit" in loc], locations
    query = next(o for o in origins if o is not None and (o.module_path or "").endswith("attention.q_proj"))
    assert query.location and query.location.startswith("modeling_vit.py:"), query
