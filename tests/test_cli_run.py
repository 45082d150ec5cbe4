"""`devicefit run`: outputs table, .npz written atomically, --force, bad inputs exit 2 with one line."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from devicefit.cli import main
from tests.helpers import convert


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.ReLU(), torch.nn.Linear(5, 3)).eval()
    x = torch.randn(2, 6)
    path = tmp_path_factory.mktemp("pkg") / "mlp.mlpackage"
    convert(model, x).save(str(path))
    return path, model, x


def test_run_writes_outputs(package, tmp_path, capsys):
    path, model, x = package
    np.save(tmp_path / "x.npy", x.numpy())
    out = tmp_path / "out.npz"
    assert main(["run", str(path), "--input", f"x={tmp_path / 'x.npy'}", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "2x3" in printed
    with np.load(out) as data:
        (name,) = data.files
        np.testing.assert_allclose(data[name], model(x).detach().numpy(), rtol=1e-5, atol=1e-6)
    # refuses to overwrite without --force, succeeds with it
    assert main(["run", str(path), "--input", f"x={tmp_path / 'x.npy'}", "--out", str(out)]) == 2
    assert "--force" in capsys.readouterr().err
    assert main(["run", str(path), "--out", str(out), "--force", "--precision", "fp16"]) == 0


def test_run_reads_an_npz_with_one_array_or_one_named_like_the_input(package, tmp_path):
    path, model, x = package
    expected = model(x).detach().numpy()
    np.savez(tmp_path / "single.npz", data=x.numpy())
    np.savez(tmp_path / "named.npz", x=x.numpy(), labels=np.arange(2))
    for archive in ("single.npz", "named.npz"):
        out = tmp_path / f"out_{archive}"
        assert main(["run", str(path), "--input", f"x={tmp_path / archive}", "--out", str(out)]) == 0
        with np.load(out) as written:
            (result,) = [written[k] for k in written.files]
        np.testing.assert_allclose(result, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--input", "x=missing.npy"], "not found"),
        (["--input", "nonsense"], "NAME=FILE"),
        (["--input", "y={npy}"], "unknown input 'y'"),
        (["--input", "x={bad}"], "has shape 6"),
        (["--input", "x={npz}"], "is an .npz archive with arrays a, b but none named 'x'; pass a .npy file"),
    ],
)
def test_run_bad_inputs_exit_2_one_line(package, tmp_path, capsys, args, message):
    path, _, _ = package
    np.save(tmp_path / "x.npy", np.zeros((2, 6), np.float32))
    np.save(tmp_path / "bad.npy", np.zeros((6,), np.float32))
    np.savez(tmp_path / "two.npz", a=np.zeros((2, 6), np.float32), b=np.zeros((2, 6), np.float32))
    args = [
        a.format(npy=tmp_path / "x.npy", bad=tmp_path / "bad.npy", npz=tmp_path / "two.npz") for a in args
    ]
    assert main(["run", str(path), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err
    assert len(err.splitlines()) == 1
    assert "Traceback" not in err


def test_run_missing_and_corrupt_model(tmp_path, capsys):
    assert main(["run", str(tmp_path / "none.mlpackage")]) == 2
    assert "not found" in capsys.readouterr().err
    broken = tmp_path / "broken.mlmodel"
    broken.write_bytes(b"\x08\x07\x12\xff\xff garbage")
    assert main(["run", str(broken)]) == 2
    assert "Traceback" not in capsys.readouterr().err


def test_internal_error_is_one_line_with_exit_3(package, monkeypatch, capsys):
    from devicefit import interp

    def boom(*args, **kwargs):
        raise RuntimeError("kernel exploded\nsecond line")

    monkeypatch.setattr(interp.Program, "run", boom)
    path, _, _ = package
    assert main(["run", str(path)]) == 3
    err = capsys.readouterr().err.strip()
    assert err == (
        "devicefit run: internal error: RuntimeError: kernel exploded; "
        "rerun with --debug for the traceback and please report it"
    )
    with pytest.raises(RuntimeError):
        main(["--debug", "run", str(path)])
