"""Findings on a Hugging Face model name its module and a line of its code, never devicefit's own.

The model's code lives in a library (transformers), so no frame of it is "the user's": the innermost frame
outside the model was devicefit's own trace call (``convert/frontends.py``), and every finding pointed there
(and ModuleList children lost their list's name: ``model.0.self_attn``).
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from tests.lm.families import tiny_lm


# both frontends' provenance is checked, each chosen explicitly (TorchScript failed on this model without an
# attention mask until grouped-query SDPA was rescued, and the fixture relied on that to reach torch.export)
@pytest.fixture(scope="module", params=["torch.export", "torchscript"])
def provenance(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    from devicefit import interp
    from devicefit.check import sources as sources_stage
    from devicefit.check.convert import convert_options
    from devicefit.check.types import CheckOptions
    from devicefit.convert.core import convert
    from devicefit.convert.provenance import load_from_package

    folder = tmp_path_factory.mktemp("hf") / "qwen3"
    tiny_lm("qwen3").save_pretrained(folder)
    options = CheckOptions(
        model=str(folder), inputs=["input_ids:1x8:int64", "attention_mask:1x8:int64"], samples=1, repair=False
    )
    copts = dataclasses.replace(convert_options(options), frontend=request.param)
    converted = convert(sources_stage.load_model(options), copts)
    assert converted.frontend == request.param
    return load_from_package(interp.load(converted.mlmodel))


def test_hf_ops_name_the_module_and_the_transformers_line(provenance) -> None:
    origins = dict(provenance.items())
    where = {o.location for o in origins.values() if o.location}
    assert where, "no op has a source line"
    own = Path(__file__).resolve().parents[2] / "src" / "devicefit"
    assert not [w for w in where if "devicefit" in w or str(own) in w], where
    q = [o for o in origins.values() if o.module_path == "model.layers.1.self_attn.q_proj"]
    assert q and all(re.fullmatch(r"(.*/)?modeling_qwen3\.py:\d+", o.location or "") for o in q)
    assert not [o for o in origins.values() if re.match(r"model\.\d", o.module_path or "")]
    # each layer's ops are named after their own layer (torch.export: every layer shares one stack trace)
    layers = {
        m.group(1)
        for o in origins.values()
        if (m := re.match(r"model\.layers\.(\d+)\.", o.module_path or ""))
    }
    assert layers == {"0", "1"}


@pytest.mark.slow
def test_moe_plain_forward_says_the_text_generation_path_converts_it(tmp_path: Path) -> None:
    """transformers' grouped expert dispatch has no static form; the finding says which path handles it."""
    import json

    from devicefit.cli import main

    folder = tmp_path / "mixtral"
    tiny_lm("mixtral").save_pretrained(folder)
    report = tmp_path / "r.json"
    code = main(
        ["check", str(folder), "--task", "default", "--samples", "1", "--no-fix", "--json", str(report)]
    )
    assert code == 1
    found = json.loads(report.read_text())["convert"]["unsupported"]
    grouped = [u for u in found if "grouped_mm" in u["op"]]
    assert grouped and all("experts" in u["module_path"] for u in grouped)
    assert any("dense expert routing" in u["hint"] for u in grouped), grouped
