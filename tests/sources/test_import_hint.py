"""A model file that imports its own project's packages: the error says where that package is and what to set.

``devicefit check scripts/make.py:make`` puts the file's folder on the path (its neighbours import), not the
project root: ``from mypkg.models import Net`` in a script one folder down raised a bare
"ModuleNotFoundError: No module named 'mypkg'" (seen running the round-3 outside models from tests/corpus/).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from devicefit.errors import ModelLoadError
from devicefit.sources.load import load_source

MODEL = """
import torch
from {module} import WIDTH


def make():
    return torch.nn.Linear(WIDTH, 2), (torch.randn(1, WIDTH),)
"""


@pytest.fixture(autouse=True)
def _forget_the_package():
    """The hinted-PYTHONPATH test imports the package; each test starts and ends without it."""
    for name in [n for n in sys.modules if n.startswith("mypkg_hint")]:
        del sys.modules[name]
    yield
    for name in [n for n in sys.modules if n.startswith("mypkg_hint")]:
        del sys.modules[name]


def _project(tmp_path: Path, module: str) -> Path:
    pkg = tmp_path / "proj" / "mypkg_hint"
    (pkg / "models").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "models" / "__init__.py").write_text("WIDTH = 3\n")
    script = tmp_path / "proj" / "scripts" / "make.py"
    script.parent.mkdir()
    script.write_text(MODEL.format(module=module))
    return script


def test_a_package_of_the_project_is_named_with_the_folder_to_put_on_pythonpath(tmp_path):
    script = _project(tmp_path, "mypkg_hint.models")
    with pytest.raises(ModelLoadError) as err:
        load_source(f"{script}:make")
    message = str(err.value)
    assert "No module named 'mypkg_hint'" in message
    assert f"PYTHONPATH={tmp_path / 'proj'}" in message and "\n" not in message
    assert "mypkg_hint" not in sys.modules


def test_the_hinted_pythonpath_works(tmp_path, monkeypatch):
    script = _project(tmp_path, "mypkg_hint.models")
    monkeypatch.syspath_prepend(str(tmp_path / "proj"))
    assert load_source(f"{script}:make").module.in_features == 3


def test_a_module_found_nowhere_says_to_install_it(tmp_path):
    script = _project(tmp_path, "not_a_real_module_xyz")
    with pytest.raises(ModelLoadError) as err:
        load_source(f"{script}:make")
    message = str(err.value)
    assert "No module named 'not_a_real_module_xyz'" in message
    assert "install it" in message and "PYTHONPATH=" not in message


def test_a_data_factory_gets_the_same_hint(tmp_path):
    from devicefit.errors import InputError
    from devicefit.sources.data import _load_factory

    script = _project(tmp_path, "mypkg_hint.models")
    with pytest.raises(InputError) as err:
        _load_factory(f"{script}:make")
    assert f"PYTHONPATH={tmp_path / 'proj'}" in str(err.value)
