"""One tiny stateful LLaMA package shared by the LM tests (converting takes seconds)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.lm.families import tiny_lm


@pytest.fixture(scope="session")
def llama_pkg(tmp_path_factory: pytest.TempPathFactory) -> tuple[object, Path]:
    from devicefit.convert.stateful import convert_causal_lm

    model = tiny_lm("llama")
    out = tmp_path_factory.mktemp("lm") / "llama.mlpackage"
    convert_causal_lm(model, out, max_context=24, precision="fp32")
    return model, out
