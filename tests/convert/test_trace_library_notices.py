"""Tracing passes the user's warnings on, not a library's notices about its own API (a check of DistilBERT
printed transformers' "`is_gradient_checkpointing` is deprecated" FutureWarning and its "`loss_type=None` was set
in the config but it is unrecognized" log line: tracing reads the model's properties)."""

from __future__ import annotations

import importlib.util
import sys
import warnings

import pytest
import torch

from devicefit.convert.frontends import trace_module
from devicefit.sources.module import from_module

LIBRARY_CODE = """
import warnings
import torch


class Noisy(torch.nn.Module):
    def forward(self, x):
        warnings.warn("`old_flag` is deprecated and will be removed in v9", FutureWarning)
        return x * 2
"""


def _library_module(tmp_path):  # type: ignore[no-untyped-def]
    folder = tmp_path / "lib" / "python3.11" / "site-packages"
    folder.mkdir(parents=True)
    path = folder / "noisylib.py"
    path.write_text(LIBRARY_CODE)
    spec = importlib.util.spec_from_file_location("noisylib", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class UserNoisy(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        warnings.warn("my own notice", FutureWarning)  # noqa: B028 (attributed to this file, the user's code)
        return x + 1


def test_a_library_deprecation_is_not_passed_on_but_the_users_own_warning_is(tmp_path):
    lib = _library_module(tmp_path)
    x = torch.ones(1, 3)
    source = from_module("noisy", "python", lib.Noisy(), (x,), None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trace_module(source)
    assert not [w for w in caught if "old_flag" in str(w.message)]
    source = from_module("user", "python", UserNoisy(), (x,), None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trace_module(source)
    assert [w for w in caught if "my own notice" in str(w.message)]


def test_transformers_logs_nothing_while_an_encoder_is_traced(capfd):
    import transformers

    torch.manual_seed(0)
    config = transformers.DistilBertConfig(
        vocab_size=64, dim=32, hidden_dim=64, n_layers=1, n_heads=2, max_position_embeddings=16, num_labels=2
    )
    model = transformers.DistilBertForSequenceClassification(config).eval()
    ids = torch.ones(1, 8, dtype=torch.long)
    source = from_module("distilbert", "python", model, {"input_ids": ids}, None)
    verbosity = transformers.utils.logging.get_verbosity()
    capfd.readouterr()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trace_module(source)
    err = capfd.readouterr().err
    assert "loss_type" not in err
    assert not [w for w in caught if issubclass(w.category, FutureWarning)]
    assert transformers.utils.logging.get_verbosity() == verbosity  # restored
    assert "transformers" in sys.modules


# slow (the fast suite's 15-minute budget, 2026-12-02): 8.5 s: a whole stateful LM conversion; the other notices above stay fast
@pytest.mark.slow
def test_the_stateful_lm_conversion_passes_on_no_transformers_deprecation(tmp_path):
    # `devicefit check` on a GPT-2 folder printed transformers' is_gradient_checkpointing FutureWarning: the
    # tracer reads every property of the wrapped model
    from devicefit.convert.stateful import convert_causal_lm
    from tests.lm.conftest import tiny_lm

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        convert_causal_lm(tiny_lm("llama"), tmp_path / "lm.mlpackage", max_context=8, precision="fp32")
    assert not [w for w in caught if issubclass(w.category, FutureWarning) and "transformers" in w.filename]
