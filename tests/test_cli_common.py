"""One command-line vocabulary (docs/cli.md): inputs, --json -, --target, --deployment-target, did-you-mean."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
import torch

from devicefit.cli import main
from devicefit.cli._common import deployment_target, device_id, input_arrays, input_specs, parse_input
from devicefit.errors import InputError


def test_one_input_parser_takes_both_forms(tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((2, 3), dtype=np.float32))
    data = parse_input(f"x={tmp_path / 'x.npy'}")
    declared = parse_input("ids:1x128:int32")
    assert data.path is not None and declared.declared is not None
    specs = input_specs([f"x={tmp_path / 'x.npy'}", "ids:1x128:int32"])
    assert [(s.name, tuple(s.shape), s.dtype) for s in specs] == [
        ("x", (2, 3), "float32"),
        ("ids", (1, 128), "int32"),
    ]
    assert list(input_arrays([f"x={tmp_path / 'x.npy'}", "ids:1x128:int32"])) == ["x"]
    for bad in ("x", "=a.npy", "x=", "x:1xa"):
        with pytest.raises(InputError):
            parse_input(bad)
    with pytest.raises(InputError, match="file not found"):
        parse_input(f"x={tmp_path / 'missing.npy'}").array()


def test_deployment_target_is_case_insensitive_with_did_you_mean():
    assert deployment_target("ios17") == deployment_target("IOS17") == "iOS17"
    with pytest.raises(argparse.ArgumentTypeError, match=r"did you mean .*'iOS17'.*\?\); choose one of"):
        deployment_target("iOS71")


def test_device_ids_case_insensitive_with_did_you_mean():
    assert device_id("iPhone-12") == "iphone-12" and device_id("iPhone 12") == "iphone-12"
    with pytest.raises(argparse.ArgumentTypeError, match="did you mean 'iphone-12'"):
        device_id("iphone12")


def test_unknown_target_is_a_one_line_error_with_did_you_mean(capsys):
    assert main(["check", "--target", "iphone12"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "did you mean 'iphone-12'" in err[0]


def test_json_dash_writes_to_stdout_and_no_file(tmp_path, capsys, monkeypatch):
    """Issue 12: ``--json -`` wrote a file named ``-``."""
    monkeypatch.chdir(tmp_path)
    assert main(["devices", "--catalog", "--json", "-"]) == 0
    captured = capsys.readouterr()
    rows = json.loads(captured.out)  # stdout is the JSON alone; the table went to stderr
    assert any(r["id"] == "iphone-12" for r in rows)
    assert "Apple device catalog" in captured.err
    assert not (tmp_path / "-").exists()


@pytest.mark.parametrize(
    "argv",
    [
        ["devices", "--catalog", "--json", "{out}", "--force"],
        ["check", "--json", "{out}", "--force"],
    ],
)
def test_force_never_replaces_a_folder_of_user_files(tmp_path, capsys, argv):
    """--force replaces what devicefit writes, never a folder (a typo'd --json DIR lost the user's files)."""
    folder = tmp_path / "results"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    code = main([a.replace("{out}", str(folder)) for a in argv])
    err = capsys.readouterr().err
    assert code == 2 and "is a folder" in err and len(err.strip().splitlines()) == 1
    assert (folder / "notes.txt").read_text() == "mine"


def test_output_paths_are_checked_before_the_work(tmp_path, capsys):
    from devicefit.cli._common import check_output_path

    blocker = tmp_path / "file"
    blocker.write_text("x")
    for bad in (blocker / "report.html", tmp_path / "missing" / "r.json", "/proc/devicefit-report.json"):
        with pytest.raises(InputError):
            check_output_path(bad, force=True)
    pkg = tmp_path / "m.mlpackage"
    pkg.mkdir()
    with pytest.raises(InputError, match="is a folder"):  # not a Core ML package: never replaced
        check_output_path(pkg, force=True)
    (pkg / "Manifest.json").write_text("{}")
    check_output_path(pkg, force=True)  # a package devicefit wrote: --force may replace it
    code = main(["check", "--html", str(blocker / "r.html")])
    assert code == 2 and "not a folder" in capsys.readouterr().err


def test_atomic_writes_never_replace_a_user_folder(tmp_path):
    """The shared writer (every command's outputs go through it) keeps folders devicefit did not write."""
    from devicefit.io import atomic_path, atomic_write_text

    user = tmp_path / "mine.mlpackage"
    user.mkdir()
    (user / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="never replaced"):
        with atomic_path(user) as tmp:
            tmp.mkdir()
    assert (user / "notes.txt").read_text() == "mine"
    with pytest.raises(InputError, match="cannot write"):
        atomic_write_text("/proc/devicefit-test/report.json", "{}")
    package = tmp_path / "made.mlpackage"
    package.mkdir()
    (package / "Manifest.json").write_text("{}")
    with atomic_path(package) as tmp:  # a package devicefit wrote: replaced whole
        tmp.mkdir()
        (tmp / "Manifest.json").write_text('{"new": 1}')
    assert (package / "Manifest.json").read_text() == '{"new": 1}'


def test_python_dash_m_devicefit_runs_the_cli():
    """``python -m devicefit`` is the same CLI as the ``devicefit`` command (it had no ``__main__``)."""
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-m", "devicefit", "devices", "--json", "-"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.lstrip().startswith(("{", "["))
    bad = subprocess.run(
        [sys.executable, "-m", "devicefit", "no-such-command"], capture_output=True, text=True
    )
    assert bad.returncode == 2


def test_cache_clear_never_deletes_a_folder_of_user_files(tmp_path, monkeypatch, capsys):
    """With $DEVICEFIT_CACHE_DIR pointing at a folder in use, `cache clear` deleted its hashes/ and entries/."""
    from devicefit.cli import main

    user = tmp_path / "home"
    (user / "hashes").mkdir(parents=True)
    (user / "entries" / "photos").mkdir(parents=True)
    (user / "hashes" / "mine.txt").write_text("precious")
    (user / "entries" / "photos" / "a.jpg").write_text("precious")
    (user / "notes.txt").write_text("precious")
    monkeypatch.setenv("DEVICEFIT_CACHE_DIR", str(user))
    assert main(["cache", "clear"]) == 2
    err = capsys.readouterr().err.strip()
    assert "did not write" in err and len(err.splitlines()) == 1, err
    assert (user / "hashes" / "mine.txt").read_text() == "precious"
    assert (user / "entries" / "photos" / "a.jpg").read_text() == "precious"
    # a real cache (only what devicefit writes) is still cleared
    cache = tmp_path / "cache"
    monkeypatch.setenv("DEVICEFIT_CACHE_DIR", str(cache))
    assert main(["cache", "ls"]) == 0
    assert main(["cache", "clear"]) == 0
    assert "removed 0 cache entries" in capsys.readouterr().out


def test_outputs_never_overwrite_each_other_or_an_input(tmp_path, capsys):
    """``--json r --html r`` lost the JSON; ``run m.mlpackage --out m.mlpackage --force`` replaced the model."""
    import shutil

    from devicefit.cli import main
    from tests.helpers import convert

    model = tmp_path / "m.mlpackage"
    convert(torch.nn.Linear(4, 3).eval(), torch.randn(2, 4)).save(str(model))
    other = tmp_path / "other.mlpackage"
    shutil.copytree(model, other)
    same = tmp_path / "same.json"
    cases = [
        (["profile", str(model), "--json", str(same), "--html", str(same)], "same file"),
        (["lint", str(model), "--json", str(model), "--force"], "would overwrite the model"),
        (["run", str(model), "--out", str(model), "--force"], "would overwrite the model"),
        (["run", str(model), "--out", str(other), "--force"], "folder"),  # an .npz never replaces a package
        (["check", str(model), "--json", str(same), "--html", str(same)], "same file"),
        (
            ["compress", str(model), "--budget", "cosine>=0.9", "--json", str(same), "--plan", str(same)],
            "same",
        ),
    ]
    for argv, message in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1, (argv, err)
    assert not same.exists()
    assert (model / "Manifest.json").is_file() and (other / "Manifest.json").is_file()


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs resource limits")
def test_a_full_disk_is_a_one_line_error_and_keeps_the_old_output(tmp_path):
    """Writing past a file-size limit (as on a full disk) was an internal error (exit 3, OSError)."""
    import os
    import resource
    import subprocess
    import sys

    out = tmp_path / "devices.json"
    out.write_text("previous")

    def limit_file_size() -> None:  # runs in the child only
        resource.setrlimit(resource.RLIMIT_FSIZE, (64, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))

    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run(
        [sys.executable, "-m", "devicefit", "devices", "--json", str(out), "--force"],
        capture_output=True,
        text=True,
        preexec_fn=limit_file_size,
        env=env,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    assert "cannot write" in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert out.read_text() == "previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["devices.json"]  # no temporary left


def test_dash_is_stdout_for_json_only(tmp_path, monkeypatch, capsys):
    """``run --out -`` and ``--html -`` wrote a file named '-' (and overwrote one without --force)."""
    from devicefit.cli import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "-").write_text("the user's file")
    model = tmp_path / "m.mlmodel"
    model.write_bytes(b"")  # never read: the outputs are refused first
    for argv in (
        ["run", str(model), "--out", "-"],
        ["profile", str(model), "--html", "-"],
        ["check", str(model), "--html", "-"],
        ["check", str(model), "-o", "-"],
        ["compress", str(model), "--budget", "cosine>=0.9", "--plan", "-"],
    ):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert "cannot be '-'" in err and len(err.splitlines()) == 1, (argv, err)
    assert (tmp_path / "-").read_text() == "the user's file"
