"""Crafted Hugging Face folders on the language-model path (``check --task text-generation``, LM compress):
the same guards as any folder, before transformers allocates anything."""

from __future__ import annotations

import json

import numpy as np
import pytest

from devicefit.convert.stateful import load_causal_lm
from devicefit.errors import ModelLoadError


def _folder(tmp_path, **config):
    from safetensors.numpy import save_file

    folder = tmp_path / "lm"
    folder.mkdir()
    base = {"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], "n_head": 2, "n_positions": 16}
    (folder / "config.json").write_text(json.dumps({**base, **config}))
    save_file({"unrelated": np.zeros((2, 2), np.float32)}, str(folder / "model.safetensors"))
    return folder


def test_causal_lm_config_declaring_a_huge_model_is_refused_before_allocating(tmp_path):
    """A 200-byte config.json made the LM path allocate 32 GB of random weights (it skipped the check)."""
    folder = _folder(tmp_path, n_layer=1, n_embd=4096, vocab_size=2_000_000)
    with pytest.raises(
        ModelLoadError, match=r"declares a model of at least [\d,]+ parameters.*hold only 96 bytes"
    ):
        load_causal_lm(str(folder))


def test_causal_lm_folder_missing_weights_is_an_error_not_random_weights(tmp_path):
    """Parameters the files lack were initialised at random and only logged: the check then compared noise."""
    folder = _folder(tmp_path, n_layer=1, n_embd=8, vocab_size=50)
    with pytest.raises(ModelLoadError, match=r"parameter\(s\) would be random"):
        load_causal_lm(str(folder))
