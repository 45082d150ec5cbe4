"""The bundled demo LM: a trained LLaMA-config model whose perplexity means something."""

from __future__ import annotations

import math
from pathlib import Path

import devicefit
from devicefit.check.lm import LMText, is_lm_source
from devicefit.convert.stateful import load_causal_lm
from devicefit.engines.lm_session import TorchLM, nll_per_token

DEMO = Path(devicefit.__file__).parent / "data" / "demo_lm"


def test_demo_lm_is_small_trained_and_has_its_texts() -> None:
    assert is_lm_source(DEMO)
    weights = sum(p.stat().st_size for p in DEMO.iterdir())
    assert weights < 2 * 2**20
    model = load_causal_lm(DEMO)
    assert model.config.model_type == "llama"
    text = LMText.for_model(DEMO, model.config.vocab_size)
    held_out = text.held_out(DEMO)
    corpus = (DEMO / "corpus.txt").read_text()
    assert corpus.endswith((DEMO / "heldout.txt").read_text())  # held out = the corpus' tail, not trained on
    ppl = math.exp(nll_per_token(TorchLM(model, 192), held_out[:192]))
    assert ppl < 25, ppl  # a uniform guess over 96 characters is 96: the model has learned the text
    prompts = text.prompts(None, DEMO)
    assert len(prompts) == 4 and all(len(p) > 5 for p in prompts)
