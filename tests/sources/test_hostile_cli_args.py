"""Absurd numbers on the command line: one line, exit 2, before any model is loaded."""

from __future__ import annotations

import pytest

from devicefit.cli import main


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0, err
    return err


def test_compress_negative_seed_is_bad_input_not_an_internal_error(tmp_path, capsys):
    """--seed -1 reached numpy's generator and came back as 'internal error: ValueError' (exit 3)."""
    model = tmp_path / "absent.py"  # refused before the model is read
    assert main(["compress", f"{model}:make", "--budget", "cosine>=0.99", "--seed", "-1"]) == 2
    err = _one_line_error(capsys)
    assert "seed" in err and "-1" in err and "internal error" not in err


def test_profile_of_a_package_whose_one_sample_is_over_the_limit_says_so(tmp_path, capsys, monkeypatch):
    """A package declaring a 40 TB input was told 'use batch sizes up to 0'."""
    import torch

    from tests.helpers import convert

    path = tmp_path / "m.mlpackage"
    convert(torch.nn.Linear(6, 2), torch.zeros(1, 6)).save(str(path))
    monkeypatch.setenv("DEVICEFIT_MAX_INPUT_BYTES", "16")  # one sample: 24 bytes
    assert main(["profile", str(path)]) == 2
    err = _one_line_error(capsys)
    assert "one sample" in err and "24 bytes" in err and "up to 0" not in err


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"\xff\xfe not utf-8\n", r"not UTF-8 text \(byte 0"),  # was: internal error, UnicodeDecodeError
        (None, r"is a directory, not a text file"),  # was: 'prompts file not found' for a folder
    ],
)
def test_unreadable_prompts_are_one_line_input_errors(tmp_path, content, expected):
    from devicefit.check.lm import LMText
    from devicefit.errors import InputError

    path = tmp_path / "prompts.txt"
    if content is None:
        path.mkdir()
    else:
        path.write_bytes(content)
    with pytest.raises(InputError, match=expected):
        LMText.for_model(None, vocab_size=10).prompts(path, None)


@pytest.mark.parametrize("content", [b"{not json", b"123", b'["a", 5]', b"\xff"])
def test_a_broken_chars_vocabulary_is_an_input_error(tmp_path, content):
    """chars.json of a model folder: invalid JSON or a number was an internal error (JSONDecodeError, TypeError)."""
    from devicefit.check.lm import LMText
    from devicefit.errors import InputError

    (tmp_path / "chars.json").write_bytes(content)
    with pytest.raises(InputError, match=r"chars\.json|character vocabulary"):
        LMText.for_model(tmp_path, vocab_size=4)


def test_check_help_says_that_a_python_factory_runs_as_code(capsys):
    """--trust-code guards files that run code when read; a FILE.py factory is code by definition, and the help
    must say it runs without that flag rather than let a user think --trust-code guards it too."""
    with pytest.raises(SystemExit):
        main(["check", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "FILE.py:FUNCTION (your code: imported and run, no flag needed)" in text
    assert "FILE.py factory is code you chose to run and needs no flag" in text


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["check", "m", "--max-context", "-1"], "argument --max-context: expected an integer >= 2, got -1"),
        (
            ["compress", "m", "--budget", "tokens>=0.9", "--steps", "0"],
            "--steps: expected an integer >= 1, got 0",
        ),
        (["profile", "m", "--new-tokens", "1"], "--new-tokens: expected an integer >= 2, got 1"),
        (["check", "m", "--samples", "nan"], "argument --samples: invalid int value: 'nan'"),
    ],
)
def test_bad_numbers_are_one_line_without_the_usage_block(capsys, args, expected):
    """--max-context -1 reached the model and was blamed on the prompt; argparse's own errors printed the whole
    usage (15 lines) above the one line that matters."""
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    err = _one_line_error(capsys)
    assert expected in err and "--help" in err


def test_a_non_positive_compress_setting_is_named_with_its_flag_and_value():
    from devicefit.compress.search import SearchOptions
    from devicefit.errors import InputError

    for field_name, flag in (("workers", "--workers"), ("min_elements", "--min-elements")):
        with pytest.raises(InputError) as err:
            SearchOptions(budget="cosine>=0.99", **{field_name: 0}).validate()
        assert flag in str(err.value) and "got 0" in str(err.value)
