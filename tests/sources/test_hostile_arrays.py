"""Array files nothing vouches for (``--data``, ``--input NAME=FILE``): refused early, never a hang or a bomb.

Each case fails the way a careless ``np.load`` fails: a FIFO in a data folder blocks forever, an ``.npz``
of compressed zeros decompresses into gigabytes, a header declaring 2**40 floats allocates (or dies with
MemoryError, an internal error). The limits are passed small here so that the files stay tiny.
"""

from __future__ import annotations

import os
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest

from devicefit.errors import InputError
from devicefit.sources.data import load_data

SPEC = [type("S", (), {"name": "x", "shape": (2, 4), "dtype": "float32"})()]


def _header(shape: tuple[int, ...], descr: str = "<f4") -> bytes:
    import io

    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": descr, "fortran_order": False, "shape": shape})
    return buf.getvalue()


def _zeros_bomb(path: Path, megabytes: int) -> None:
    """An .npz whose one array is ``megabytes`` MiB of zeros, deflated to a few KiB."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z, z.open("x.npy", "w") as f:
        f.write(_header((megabytes * 2**18, 1)))
        for _ in range(megabytes):
            f.write(bytes(2**20))


def _without_hanging(fn, seconds: float = 20.0):
    """Run ``fn`` in a thread; fail (instead of hanging the suite) if it blocks."""
    result: dict[str, object] = {}

    def target() -> None:
        try:
            result["value"] = fn()
        except BaseException as e:  # handed back to the test thread
            result["error"] = e

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), "blocked: the reader opened something that never ends"
    if "error" in result:
        raise result["error"]  # type: ignore[misc]
    return result.get("value")


def test_zip_bomb_is_refused_before_decompressing(tmp_path):
    bomb = tmp_path / "bomb.npz"
    _zeros_bomb(bomb, 16)
    assert bomb.stat().st_size < 100_000
    with pytest.raises(InputError, match=r"16777216 bytes.*over the 1048576-byte limit.*DEVICEFIT_MAX_DATA"):
        load_data(bomb, SPEC, max_bytes=2**20)


def test_data_limit_counts_every_array_of_the_archive(tmp_path):
    data = tmp_path / "d.npz"
    np.savez(data, x=np.zeros((64, 2, 4), np.float32), labels=np.zeros(128, np.int64))
    assert len(load_data(data, SPEC, max_bytes=4096).feeds) == 64  # 2048 + 1024 bytes
    with pytest.raises(InputError, match="after 2048 bytes of arrays before it"):
        load_data(data, SPEC, max_bytes=2048 + 100)


def test_data_limit_environment_variable(tmp_path, monkeypatch):
    data = tmp_path / "d.npz"
    np.savez(data, x=np.zeros((64, 2, 4), np.float32))
    monkeypatch.setenv("DEVICEFIT_MAX_DATA_BYTES", "1000")
    with pytest.raises(InputError, match="1000-byte limit"):
        load_data(data, SPEC)
    monkeypatch.setenv("DEVICEFIT_MAX_DATA_BYTES", "lots")
    with pytest.raises(InputError, match="not a positive number"):
        load_data(data, SPEC)


def test_absurd_header_in_a_data_folder_is_refused_before_allocating(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "x.npy").write_bytes(_header((2**40,)) + bytes(64))
    with pytest.raises(InputError, match=r"over the .*-byte limit"):
        load_data(folder, SPEC)
    (folder / "x.npy").write_bytes(_header((2, 4)) + bytes(8))  # 32 bytes declared, 8 present
    with pytest.raises(InputError, match="truncated"):
        load_data(folder, SPEC)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_fifo_in_a_data_folder_is_refused_without_blocking(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    os.mkfifo(folder / "x.npy")
    with pytest.raises(InputError, match="not a regular file"):
        _without_hanging(lambda: load_data(folder, SPEC))


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
def test_device_linked_into_a_data_folder_is_refused(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "x.npy").symlink_to("/dev/zero")
    with pytest.raises(InputError, match="not a regular file"):
        _without_hanging(lambda: load_data(folder, SPEC))


def test_object_arrays_and_non_arrays_are_one_line_input_errors(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    np.save(folder / "x.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(InputError, match=r"object array.*no pickles"):
        load_data(folder, SPEC)
    (folder / "x.npy").write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(InputError, match=r"not a .npy array"):
        load_data(folder, SPEC)
    np.save(folder / "x.npy", np.zeros((2, 4), np.dtype([("\u00e9", "<f4")])))  # version 3.0: utf-8 names
    with pytest.raises(InputError, match="numeric"):
        load_data(folder, SPEC)
    not_zip = tmp_path / "fake.npz"
    not_zip.write_bytes(b"PK\x03\x04 this is no archive")
    with pytest.raises(InputError, match=r"not a readable .npz"):
        load_data(not_zip, SPEC)


def test_good_data_still_loads_from_every_form(tmp_path):
    x = np.arange(24, dtype=np.float32).reshape(3, 2, 4)
    np.savez_compressed(tmp_path / "d.npz", x=x, labels=np.arange(6).reshape(6, 1))
    folder = tmp_path / "data"
    folder.mkdir()
    np.save(folder / "x.npy", x)
    for source in (tmp_path / "d.npz", folder):
        ds = load_data(source, SPEC)
        assert len(ds.feeds) == 3
        np.testing.assert_array_equal(ds.feeds[2]["x"], x[2])


def test_input_files_of_every_command_share_the_checks(tmp_path, monkeypatch):
    """``--input NAME=FILE`` of profile and compress (``InputArg``) is read like ``run``'s."""
    from devicefit.cli._common import parse_input

    absurd = tmp_path / "absurd.npy"
    absurd.write_bytes(_header((2**40,)) + bytes(64))
    with pytest.raises(InputError, match=r"over the 268435456-byte limit.*DEVICEFIT_MAX_INPUT_BYTES"):
        parse_input(f"x={absurd}").array()
    archive = tmp_path / "one.npz"
    np.savez(archive, data=np.ones((2, 4), np.float32))  # an .npz of one array is that input's data
    got = parse_input(f"x={archive}").array()
    assert got is not None and got.shape == (2, 4)
    assert parse_input(f"x={archive}").spec().shape == (2, 4)
    _zeros_bomb(tmp_path / "bomb.npz", 16)
    monkeypatch.setenv("DEVICEFIT_MAX_INPUT_BYTES", str(2**20))
    with pytest.raises(InputError, match="over the 1048576-byte limit"):
        parse_input(f"x={tmp_path / 'bomb.npz'}").array()


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_cli_profile_input_fifo_and_absurd_header_exit_2(tmp_path, capsys):
    from devicefit.cli import main

    model = tmp_path / "m.onnx"
    model.write_bytes(b"")  # never read: the inputs are refused first
    absurd = tmp_path / "absurd.npy"
    absurd.write_bytes(_header((2**40,)) + bytes(64))
    os.mkfifo(tmp_path / "fifo.npy")
    for arg, message in ((f"x={absurd}", "over the"), (f"x={tmp_path / 'fifo.npy'}", "not a regular file")):
        assert _without_hanging(lambda arg=arg: main(["profile", str(model), "--input", arg])) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1, err
