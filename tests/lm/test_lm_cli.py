"""``devicefit check`` / ``compress`` on a causal-LM folder (slow: several conversions)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from devicefit.cli import main
from tests.lm.families import tiny_lm


@pytest.fixture(scope="module")
def llama_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("hf") / "tiny-llama"
    tiny_lm("llama").save_pretrained(folder)
    return folder


@pytest.mark.slow
def test_check_detects_a_causal_lm_and_reports_generation(llama_folder: Path, tmp_path: Path) -> None:
    report = tmp_path / "r.json"
    code = main(["check", str(llama_folder), "--steps", "4", "--max-context", "24", "--json", str(report)])
    data = json.loads(report.read_text())
    assert data["task"] == "text-generation" and data["family"] == "llama"
    runs = {r["name"]: r for r in data["generation"]["runs"]}
    assert set(runs) == {"fp32", "fp16", "int4"}
    assert runs["fp32"]["token_agreement"] == 1.0 and runs["fp32"]["verdict"] == "pass"
    assert data["summary"]["lm.int4.weight_mb"] < data["summary"]["lm.fp16.weight_mb"]
    assert code == 0  # fp32 passes; fp16 / int4 losses are warnings, not failures
    # a gate on the int4 run's agreement can trip (random weights: int4 flips near-ties)
    gated = main(
        ["check", str(llama_folder), "--steps", "4", "--max-context", "24", "--no-int4",
         "--fail-on", "lm.fp32.token_agreement<1", "--fail-on", "lm.fp16.min_cosine<0"]
    )  # fmt: skip
    assert gated == 0
    assert main(["check", str(llama_folder), "--steps", "30", "--max-context", "24", "--no-int4"]) == 2


@pytest.mark.slow
def test_compress_lm_budget_chooses_a_plan_meeting_it(llama_folder: Path, tmp_path: Path) -> None:
    out, report = tmp_path / "c.mlpackage", tmp_path / "c.json"
    code = main(["compress", str(llama_folder), "--budget", "perplexity<=+50%", "--max-context", "32",
                 "-o", str(out), "--json", str(report)])  # fmt: skip
    data = json.loads(report.read_text())
    chosen = data["chosen"]
    assert code == 0 and out.exists()
    assert chosen["perplexity"] <= data["reference_perplexity"] * 1.5
    assert chosen["weight_bytes"] < data["baseline_weight_bytes"] / 2


@pytest.mark.slow
def test_check_lm_json_dash_writes_stdout(
    llama_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # issue 12: `--json -` wrote a file named '-' (and a second run refused: '-' exists)
    monkeypatch.chdir(tmp_path)
    code = main(
        ["check", str(llama_folder), "--steps", "4", "--max-context", "24", "--no-int4", "--json", "-"]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert not (tmp_path / "-").exists()
    assert json.loads(captured.out)["task"] == "text-generation"  # the tables went to stderr


def test_max_context_beyond_the_models_positions_is_refused_before_converting(
    llama_folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # the tiny llama has 256 positions; a KV cache of 10^9 positions would be allocated (and the positions
    # past 256 are not ones the model was built for)
    assert main(["check", str(llama_folder), "--steps", "4", "--max-context", "1000000000", "--no-int4"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "256" in err and "--max-context" in err


def test_compress_max_context_beyond_the_models_positions_is_refused(
    llama_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "small.mlpackage"
    code = main(
        [
            "compress",
            str(llama_folder),
            "--budget",
            "perplexity<=+50%",
            "--max-context",
            "100000",
            "-o",
            str(out),
        ]
    )
    assert code == 2 and not out.exists()
    assert "256" in capsys.readouterr().err


@pytest.mark.parametrize(("family", "table"), [("gpt2", "transformer.wpe"), ("opt", "embed_positions")])
def test_context_past_a_learned_position_table_is_refused(
    family: str, table: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """GPT-2 / OPT positions are a learned table (256 rows here): a longer cache is --max-context too large."""
    folder = tmp_path / family
    tiny_lm(family).save_pretrained(folder)
    assert main(["check", str(folder), "--steps", "4", "--max-context", "257", "--no-int4"]) == 2
    err = capsys.readouterr().err.strip()
    assert (
        len(err.splitlines()) == 1 and "--max-context 257 exceeds the 256 positions" in err and table in err
    )


@pytest.mark.slow
def test_check_a_gpt2_folder_runs_the_lm_path(tmp_path: Path) -> None:
    """A user's first `devicefit check gpt2-folder` (Conv1D, learned positions, tied head) passes, int4 included."""
    folder = tmp_path / "gpt2"
    tiny_lm("gpt2").save_pretrained(folder)
    report = tmp_path / "r.json"
    code = main(["check", str(folder), "--steps", "8", "--max-context", "24", "--json", str(report)])
    data = json.loads(report.read_text())
    runs = {r["name"]: r for r in data["generation"]["runs"]}
    assert data["family"] == "gpt2" and runs["fp32"]["token_agreement"] == 1.0 and code == 0
    assert data["summary"]["lm.int4.weight_mb"] < data["summary"]["lm.fp16.weight_mb"]
