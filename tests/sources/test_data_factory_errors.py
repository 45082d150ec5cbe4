"""A ``--data FILE.py:FUNCTION`` that fails is the user's code failing: exit 2 with one line naming the
file, the function and the error, never "internal error" (exit 3)."""

from __future__ import annotations

import pytest

from devicefit.errors import InputError
from devicefit.sources.data import load_data
from devicefit.sources.spec import InputSpec

SPECS = [InputSpec("x", (1, 4))]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("def make_data():\n    raise ValueError('nope')\n", "make_data() raised ValueError: nope"),
        ("import not_a_module_anywhere\ndef make_data():\n    pass\n", "raised ModuleNotFoundError"),
        ("def make_data(:\n", "raised SyntaxError"),
    ],
)
def test_a_failing_data_factory_is_an_input_error(tmp_path, body, expected):
    path = tmp_path / "data.py"
    path.write_text(body)
    with pytest.raises(InputError, match=r"data\.py") as info:
        load_data(f"{path}:make_data", SPECS)
    assert expected in str(info.value) and len(str(info.value).splitlines()) == 1


def test_cli_check_with_a_failing_data_factory_exits_2(tmp_path, capsys):
    from devicefit.cli import main

    (tmp_path / "model.py").write_text(
        "import torch\ndef make_model():\n    return torch.nn.Linear(4, 2).eval(), torch.zeros(1, 4)\n"
    )
    (tmp_path / "data.py").write_text("def make_data():\n    raise ValueError('nope')\n")
    argv = ["check", f"{tmp_path / 'model.py'}:make_model", "--data", f"{tmp_path / 'data.py'}:make_data"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "internal error" not in err and "make_data() raised ValueError: nope" in err
