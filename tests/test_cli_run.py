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


def _one_line_exit_2(capsys, argv, message):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err


def test_force_never_deletes_a_folder_of_user_files(package, tmp_path, capsys):
    path, _, _ = package
    folder = tmp_path / "results"
    folder.mkdir()
    (folder / "thesis.txt").write_text("years of work")
    _one_line_exit_2(capsys, ["run", str(path), "--out", str(folder), "--force"], "is a folder")
    assert (folder / "thesis.txt").read_text() == "years of work"
    # --force replaces what the command itself writes: a file
    out = tmp_path / "out.npz"
    out.write_bytes(b"old")
    assert main(["run", str(path), "--out", str(out), "--force"]) == 0
    with np.load(out) as data:
        assert len(data.files) == 1


def test_out_path_is_checked_before_the_model_is_even_loaded(package, tmp_path, capsys, monkeypatch):
    from devicefit import interp

    def must_not_run(*args, **kwargs):
        raise AssertionError("the model was loaded before --out was validated")

    monkeypatch.setattr(interp, "load", must_not_run)
    path, _, _ = package
    a_file = tmp_path / "plain"
    a_file.write_text("x")
    _one_line_exit_2(capsys, ["run", str(path), "--out", str(a_file / "out.npz")], "is not a folder")
    _one_line_exit_2(
        capsys, ["run", str(path), "--out", str(tmp_path / "nope" / "out.npz")], "does not exist"
    )
    _one_line_exit_2(capsys, ["run", str(path), "--out", "/proc/self/devicefit-out.npz"], "/proc/self")
    _one_line_exit_2(capsys, ["run", str(path), "--out", str(tmp_path / ("y" * 10_000))], "cannot be used")


def test_absurd_and_object_inputs_exit_2(package, tmp_path, capsys):
    path, _, _ = package
    absurd = tmp_path / "absurd.npy"
    with open(absurd, "wb") as f:  # a header declaring 2**40 floats, and no data
        np.lib.format.write_array_header_1_0(
            f, {"descr": "<f4", "fortran_order": False, "shape": (2**20, 2**20)}
        )
    _one_line_exit_2(capsys, ["run", str(path), "--input", f"x={absurd}"], "over the")
    short = tmp_path / "short.npy"
    with open(short, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False, "shape": (2, 6)})
    _one_line_exit_2(capsys, ["run", str(path), "--input", f"x={short}"], "truncated")
    objects = tmp_path / "objects.npz"
    np.savez(objects, x=np.array([[1, "a"]], dtype=object))
    _one_line_exit_2(capsys, ["run", str(path), "--input", f"x={objects}"], "object array")
    objects_npy = tmp_path / "objects.npy"
    np.save(objects_npy, np.array([[1, "a"]], dtype=object), allow_pickle=True)
    _one_line_exit_2(capsys, ["run", str(path), "--input", f"x={objects_npy}"], "object array")


@pytest.mark.skipif(not hasattr(__import__("os"), "mkfifo"), reason="needs FIFOs")
def test_fifo_input_is_refused_without_blocking(package, tmp_path, capsys):
    import os

    path, _, _ = package
    fifo = tmp_path / "x.npy"
    os.mkfifo(fifo)
    _one_line_exit_2(capsys, ["run", str(path), "--input", f"x={fifo}"], "not a regular file")


def test_random_input_limit_flag(package, capsys):
    path, _, _ = package
    _one_line_exit_2(capsys, ["run", str(path), "--max-input-mb", "0.00001"], "--max-input-mb")
    _one_line_exit_2(capsys, ["run", str(path), "--max-input-mb", "-1"], "positive")
    for odd in ("nan", "inf"):  # inf was an internal error (OverflowError converting it to bytes)
        _one_line_exit_2(capsys, ["run", str(path), "--max-input-mb", odd], "positive")


def test_run_takes_declared_shapes_like_every_command(package, capsys):
    """`--input NAME:SHAPE[:DTYPE]` (the shared vocabulary) fills that input with seeded random values."""
    path, _, _ = package
    assert main(["run", str(path), "--input", "x:2x6"]) == 0
    first = capsys.readouterr().out
    assert "2x3" in first
    assert main(["run", str(path), "--input", "x:2x6:float32"]) == 0
    assert capsys.readouterr().out == first  # seeded: the same numbers again
    assert main(["run", str(path), "--input", "x:3x6"]) == 2  # the program's shape decides
    assert main(["run", str(path), "--input", "x:100000x100000x100"]) == 2  # refused before allocating
    assert "limit" in capsys.readouterr().err
