"""A failing generation check names the PyTorch module and source line its first differing step diverges at.

The divergence is forced at a known module: the interpreter's ``silu`` kernel is broken (every LLaMA MLP's
``act_fn``), or one layer's weights are scaled until fp16 overflows there. Before, the finding named only the
step ("greedy tokens agree on 25% of steps, first at step 0").
"""

from __future__ import annotations

import dataclasses
import inspect
from pathlib import Path
from typing import Any

import numpy as np
import pytest


def _line_of(cls: type, text: str) -> str:
    """``modeling_x.py:N`` of the first line of ``cls.forward`` containing ``text``."""
    lines, start = inspect.getsourcelines(cls.forward)
    offset = next(i for i, line in enumerate(lines) if text in line)
    return f"{Path(inspect.getsourcefile(cls) or '').name}:{start + offset}"


def _generation(model: Any, candidates: dict[str, Any], steps: int = 6) -> Any:
    from devicefit.compare.generation import check_generation
    from devicefit.engines.lm_session import TorchLM

    prompts = [np.array([3, 5, 7, 9]), np.array([11, 2])]
    return check_generation(TorchLM(model, 24), candidates, prompts, steps)


@pytest.fixture
def broken_silu(monkeypatch: pytest.MonkeyPatch) -> None:
    """The interpreter's silu computes 1.5 x silu (packages loaded from here on bind it)."""
    import torch.nn.functional as F

    from devicefit.engines import lm_session
    from devicefit.interp import registry

    registry._ensure_loaded()
    kernel = registry._KERNELS["silu"][0]
    monkeypatch.setitem(
        registry._KERNELS, "silu", [dataclasses.replace(kernel, fn=lambda x: F.silu(x) * 1.5)]
    )
    monkeypatch.setattr(lm_session, "_LOADED", {})  # loaded programs bound the right kernel


def test_a_broken_kernel_is_named_with_its_module_and_line(llama_pkg: Any, broken_silu: None) -> None:
    from transformers.models.llama.modeling_llama import LlamaMLP

    from devicefit.check.lm_localize import localize_runs
    from devicefit.engines.lm_session import InterpLM

    model, package = llama_pkg
    generation = _generation(model, {"fp32": InterpLM(package)})
    (run,) = generation.runs
    assert run.verdict == "fail" and run.first_diff_step is not None
    localize_runs(generation, model, {"fp32": (package, "fp32")})
    found = run.localization
    expected = f"model.layers.0.mlp.act_fn (SiLUActivation) at {_line_of(LlamaMLP, 'self.act_fn(')}"
    assert found is not None and found["where"] == expected, found
    assert found["step"] == run.first_diff_step and found["function"] in ("prefill", "decode")
    assert found["rel_error"] > 0.1 and found["last_agreeing"].startswith("model.layers.0.mlp.gate_proj")
    # the user reads it in the verdict's reason, with what to do
    assert expected in run.reason and "conversion problem" in run.reason


def test_each_step_kind_is_localised(llama_pkg: Any, broken_silu: None) -> None:
    """prefill (step 0) and decode (a later step, with the cache the package wrote) both name the module."""
    from devicefit.check.lm_localize import localize_step
    from devicefit.engines.lm_session import TorchLM, greedy

    model, package = llama_pkg
    prompt = np.array([3, 5, 7, 9])
    forced = greedy(TorchLM(model, 24), prompt, 4).argmax(-1)
    for step, function in ((0, "prefill"), (3, "decode")):
        found = localize_step(model, package, "fp32", prompt, forced, step, "fp32")
        assert (found.function, found.step) == (function, step)
        assert found.where is not None and found.where.startswith(
            "model.layers.0.mlp.act_fn (SiLUActivation)"
        )


def test_a_correct_package_localises_nothing(llama_pkg: Any) -> None:
    """Every module of a correct step equals PyTorch's: the step is said to be a near-tie, no module is blamed."""
    from devicefit.check.lm_localize import localize_step
    from devicefit.engines.lm_session import TorchLM, greedy

    model, package = llama_pkg
    prompt = np.array([3, 5, 7, 9])
    forced = greedy(TorchLM(model, 24), prompt, 4).argmax(-1)
    found = localize_step(model, package, "fp32", prompt, forced, 2, "fp32")
    assert found.where is None and "near-tie" in found.reason, found.reason


def test_a_package_without_provenance_says_so(llama_pkg: Any, tmp_path: Path) -> None:
    import shutil

    from devicefit.check.lm_localize import localize_step
    from devicefit.convert.provenance import METADATA_KEY
    from devicefit.sources.coreml_package import _manifest_model_path, read_spec

    model, package = llama_pkg
    bare = tmp_path / "bare.mlpackage"
    shutil.copytree(package, bare)
    spec, _, _ = read_spec(bare)
    del spec.description.metadata.userDefined[METADATA_KEY]
    (bare / "Data" / _manifest_model_path(bare)).write_bytes(spec.SerializeToString())
    found = localize_step(model, bare, "fp32", np.array([1, 2]), np.array([4, 4]), 1, "fp32")
    assert found.where is None and "records no provenance" in found.reason and "re-convert" in found.reason


@pytest.mark.slow
def test_fp16_overflow_in_one_layer_is_named_by_the_lm_check(tmp_path: Path) -> None:
    """End to end (``run_lm_check``): layer 1's up_proj weights scaled until its output passes 65504 in fp16."""
    import torch
    from transformers.models.llama.modeling_llama import LlamaMLP

    from devicefit.check.lm import LMCheckOptions, run_lm_check
    from tests.lm.families import tiny_lm

    model = tiny_lm("llama")
    with torch.no_grad():
        model.model.layers[1].mlp.up_proj.weight.mul_(2e4)  # outputs ~1e5, weights still < 65504
    result = run_lm_check(LMCheckOptions(model=model, max_context=24, steps=6, int4=False))
    runs = {r.name: r for r in result.generation.runs}
    assert runs["fp32"].first_diff_step is None  # fp32 computes it: the conversion is right
    fp16 = runs["fp16"]
    assert fp16.verdict == "warn" and fp16.localization is not None
    expected = f"model.layers.1.mlp.up_proj (Linear) at {_line_of(LlamaMLP, 'self.up_proj(')}"
    assert fp16.localization["where"] == expected, fp16.localization
    assert expected in fp16.reason and "overflows fp16" in fp16.reason and 'precision="fp32"' in fp16.reason
    assert result.to_json()["generation"]["runs"][1]["localization"]["where"] == expected


@pytest.mark.slow
@pytest.mark.parametrize("family", ["mixtral", "gpt2", "falcon_alibi", "stablelm"])
def test_correct_packages_of_other_families_localise_nothing(family: str, tmp_path: Path) -> None:
    """No module is blamed in a correct package. Mixtral's router returns (logits, weights, indices): pairing
    its first output with the program's last value of that shape (the softmax) blamed model.layers.0.mlp.gate
    at relative error 0.9."""
    from devicefit.check.lm_localize import localize_step
    from devicefit.convert.stateful import convert_causal_lm
    from devicefit.engines.lm_session import TorchLM, greedy
    from tests.lm.families import tiny_lm

    model = tiny_lm(family)
    package = tmp_path / "lm.mlpackage"
    convert_causal_lm(model, package, 16, "fp32")
    prompt = np.array([3, 5, 7])
    forced = greedy(TorchLM(model, 16), prompt, 3).argmax(-1)
    for step in (0, 2):
        found = localize_step(model, package, "fp32", prompt, forced, step, "fp32")
        assert found.where is None and "near-tie" in found.reason, found.reason


def test_a_failing_run_whose_tokens_all_agree_is_localised_at_its_lowest_cosine(
    llama_pkg: Any, broken_silu: None
) -> None:
    """The logits (or perplexity) moved without flipping a token: the step of lowest cosine is localised."""
    from devicefit.check.lm_localize import localize_runs
    from devicefit.engines.lm_session import InterpLM

    model, package = llama_pkg
    generation = _generation(model, {"fp32": InterpLM(package)}, steps=4)
    (run,) = generation.runs
    for p in run.prompts:  # as if no greedy token had moved
        p.first_diff_step = None
    run.first_diff_step, run.verdict = None, "fail"
    run.step_cosine = [1.0, 1.0, 0.9, 1.0]
    localize_runs(generation, model, {"fp32": (package, "fp32")})
    assert run.localization is not None and run.localization["step"] == 2
    assert run.localization["where"].startswith("model.layers.0.mlp.act_fn (SiLUActivation)")


def test_compressed_embeddings_are_blamed_on_the_embedding(llama_pkg: Any, tmp_path: Path) -> None:
    """int4 embeddings: the finding names model.embed_tokens, not the first norm after it.

    Compression re-runs coremltools' passes, whose new index ops took names the source package used elsewhere at the
    wrapper's top level ('select_0'); their stale top-level provenance split the embedding's run of ops in two, so
    it was never paired and the first norm (which has no compressed weights) was blamed: 'keep that module's
    weights wider' named a module without weights.
    """
    from devicefit.check.lm_localize import localize_step
    from devicefit.compress.lm import compress_lm
    from devicefit.engines.lm_session import TorchLM, greedy

    model, package = llama_pkg
    int4 = compress_lm(package, {"embeddings": "int4-b32"}, tmp_path / "int4.mlpackage")
    prompt = np.array([3, 5, 7, 9])
    forced = greedy(TorchLM(model, 24), prompt, 2).argmax(-1)
    found = localize_step(model, int4, "fp16", prompt, forced, 0, "int4", provenance_package=package)
    assert found.where is not None and found.where.startswith("model.embed_tokens"), found.reason
