"""Absurd counts on the command line fail up front, one line, exit 2, naming the limit and what to do."""

from __future__ import annotations

import textwrap

import pytest
import torch

from devicefit.cli import main
from devicefit.errors import InputError
from devicefit.sources.data import check_generated_samples, generate
from devicefit.sources.spec import InputSpec
from tests.helpers import convert

MODEL = textwrap.dedent(
    """
    import torch

    def make():
        return torch.nn.Linear(4, 2), (torch.randn(1, 4),)
    """
)


@pytest.fixture
def model_file(tmp_path):
    path = tmp_path / "lin.py"
    path.write_text(MODEL)
    return path


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0, err
    return err


def test_check_refuses_a_billion_samples(model_file, capsys):
    assert main(["check", f"{model_file}:make", "--samples", "1000000000"]) == 2
    err = _one_line_error(capsys)
    assert "--samples 1,000,000,000" in err and "DEVICEFIT_MAX_DATA_BYTES" in err and "or fewer" in err


def test_compress_refuses_a_billion_samples_before_converting(model_file, capsys):
    args = ["compress", f"{model_file}:make", "--budget", "accuracy>=-1%", "--samples", "1000000000"]
    assert main(args) == 2
    assert "--samples 1,000,000,000" in _one_line_error(capsys)


def test_generated_samples_bound_counts_python_overhead(monkeypatch):
    specs = [InputSpec("x", (1, 4))]
    monkeypatch.setenv("DEVICEFIT_MAX_DATA_BYTES", "100000")
    with pytest.raises(InputError, match=r"pass --samples (\d+) or fewer") as err:
        check_generated_samples(specs, 10_000)
    fit = int(str(err.value).split("pass --samples ")[1].split(" ")[0].replace(",", ""))
    assert 0 < fit < 100_000 // 16  # 16 bytes of floats per sample, but bookkeeping counts too
    assert len(generate(specs, fit).feeds) == fit
    with pytest.raises(InputError):
        generate(specs, fit + 1)


def test_profile_refuses_a_batch_over_the_input_limit(tmp_path, capsys):
    path = tmp_path / "m.mlpackage"
    convert(torch.nn.Linear(6, 2), torch.zeros(1, 6)).save(str(path))
    assert main(["profile", str(path), "--batch-sizes", "1,100000000"]) == 2
    err = _one_line_error(capsys)
    assert (
        "--batch-sizes 100,000,000" in err and "24 bytes each" in err and "DEVICEFIT_MAX_INPUT_BYTES" in err
    )
