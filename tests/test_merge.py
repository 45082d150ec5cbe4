"""Multi-function merge: shared weights deduplicated, functions runnable, safe output handling."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from devicefit import interp
from devicefit.cli import main as cli_main
from devicefit.convert.merge import merge, weight_bytes
from devicefit.errors import InputError, ModelLoadError, OutputExistsError
from tests.helpers import convert


@pytest.fixture(scope="module")
def packages(tmp_path_factory):
    """The same weights traced at two input sizes, and an unrelated model."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 8))
    d = tmp_path_factory.mktemp("pkgs")
    small, large, other = d / "small.mlpackage", d / "large.mlpackage", d / "other.mlpackage"
    convert(net, torch.randn(1, 64)).save(str(small))
    convert(net, torch.randn(4, 64)).save(str(large))
    convert(nn.Linear(64, 8), torch.randn(1, 64)).save(str(other))
    return net, small, large, other


def test_merge_deduplicates_shared_weights_and_runs_each_function(packages, tmp_path):
    net, small, large, _ = packages
    out = tmp_path / "merged.mlpackage"
    result = merge([small, large], out, names=["small", "large"])
    assert result.functions == ["small", "large"] and result.default_function == "small"
    total = weight_bytes(small) + weight_bytes(large)
    assert result.merged_weight_bytes == weight_bytes(out) < total
    assert result.saved_bytes == total - result.merged_weight_bytes
    assert result.saved_bytes > 0.4 * weight_bytes(small)
    for name, batch in (("small", 1), ("large", 4)):
        prog = interp.load(out, function=name)
        x = np.random.default_rng(0).standard_normal((batch, 64)).astype(np.float32)
        got = next(iter(prog.run({"x": x}).values()))
        np.testing.assert_allclose(got, net(torch.from_numpy(x)).detach().numpy(), rtol=1e-4, atol=1e-5)


def test_refuses_overwrite_without_force(packages, tmp_path):
    _, small, _, other = packages
    out = tmp_path / "m.mlpackage"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(OutputExistsError):
        merge([small, other], out)
    assert (out / "keep.txt").read_text() == "mine"
    # --force replaces what devicefit writes, never a folder of the user's files (issue 11: data loss)
    with pytest.raises(InputError, match="never replaced"):
        merge([small, other], out, names=["a", "b"], default="b", force=True)
    assert (out / "keep.txt").read_text() == "mine"
    made = tmp_path / "made.mlpackage"
    merge([small, other], made, names=["a", "b"])
    result = merge([small, other], made, names=["a", "b"], default="b", force=True)
    assert result.default_function == "b"


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"names": ["a"]}, InputError, "one name per model"),
        ({"names": ["a", "a"]}, InputError, "distinct"),
        ({"names": ["a", "1b"]}, InputError, "identifier"),
        ({"default": "zzz"}, InputError, "default function"),
    ],
)
def test_bad_arguments_are_one_line_errors(packages, tmp_path, kwargs, error, match):
    _, small, large, _ = packages
    with pytest.raises(error, match=match) as e:
        merge([small, large], tmp_path / "m.mlpackage", **kwargs)
    assert "\n" not in str(e.value)
    assert not (tmp_path / "m.mlpackage").exists()


def test_bad_inputs(packages, tmp_path):
    _, small, _, _ = packages
    with pytest.raises(InputError, match="at least two"):
        merge([small], tmp_path / "m.mlpackage")
    with pytest.raises(ModelLoadError, match="not found"):
        merge([small, tmp_path / "missing.mlpackage"], tmp_path / "m.mlpackage")
    with pytest.raises(InputError, match=r"\.mlpackage"):
        merge([small, small], tmp_path / "m.zip")


def test_refuses_the_same_package_twice(packages, tmp_path):
    _, small, _, _ = packages
    alias = small.parent / "." / small.name  # another spelling of the same path
    with pytest.raises(InputError, match="given twice") as e:
        merge([small, alias], tmp_path / "m.mlpackage")
    assert "\n" not in str(e.value) and not (tmp_path / "m.mlpackage").exists()


def test_refuses_a_multi_function_input(packages, tmp_path):
    # its weight file holds every function's weights though only one would be merged
    _, small, large, other = packages
    multi = tmp_path / "multi.mlpackage"
    merge([small, large], multi)
    with pytest.raises(InputError, match=r"already multi-function .*single-function") as e:
        merge([multi, other], tmp_path / "m.mlpackage")
    assert "\n" not in str(e.value) and not (tmp_path / "m.mlpackage").exists()


def test_cli_merge(packages, tmp_path, capsys):
    _, small, large, _ = packages
    out = tmp_path / "cli.mlpackage"
    argv = ["merge", str(small), str(large), "-o", str(out), "--names", "small,large"]
    assert cli_main(argv) == 0
    assert "saved" in capsys.readouterr().out
    assert cli_main(argv) == 2  # exists
    assert "--force" in capsys.readouterr().err
