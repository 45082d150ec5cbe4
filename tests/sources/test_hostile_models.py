"""Model paths that are not model files: FIFOs, devices, zip bombs. Refused at once, never a hang.

``load_source`` probed a FIFO given as MODEL with ``zipfile`` (and a ``.py`` one with the importer): the
open blocked forever, in ``check``, ``compress`` and ``profile`` alike. A ``.pt2`` or TorchScript entry
compressed 1000:1 was read whole by the consent checks (2 GiB in memory from a 2 MB file).
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import pytest
import torch

from devicefit.errors import ModelLoadError
from devicefit.sources import load_source
from tests.helpers import within


def _within(seconds: float, fn):
    return within(seconds, fn, "blocked opening the model path")


def _add_bomb(archive: Path, entry: str, megabytes: int = 32) -> None:
    """Append ``entry``: ``megabytes`` MiB of zeros, deflated to a few tens of KiB."""
    with zipfile.ZipFile(archive, "a", zipfile.ZIP_DEFLATED) as z, z.open(entry, "w") as f:
        for _ in range(megabytes):
            f.write(bytes(1 << 20))


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
@pytest.mark.parametrize("name", ["model.pt", "model.pt2", "model.py", "model.mlmodel", "model"])
def test_fifo_given_as_the_model_is_refused_without_blocking(tmp_path, name):
    fifo = tmp_path / name
    os.mkfifo(fifo)
    with pytest.raises(ModelLoadError, match=r"FIFO \(named pipe\), not a model file"):
        _within(20, lambda: load_source(str(fifo)))


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
def test_a_device_given_as_the_model_is_refused(tmp_path):
    with pytest.raises(ModelLoadError, match="is a device"):
        _within(20, lambda: load_source("/dev/zero"))


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_cli_profile_and_check_of_a_fifo_exit_2(tmp_path, capsys):
    from devicefit.cli import main

    fifo = tmp_path / "model.pt"
    os.mkfifo(fifo)
    for argv in (["profile", str(fifo), "--reps", "2"], ["check", str(fifo)]):
        assert _within(30, lambda argv=argv: main(argv)) == 2
        err = capsys.readouterr().err.strip()
        assert "FIFO" in err and len(err.splitlines()) == 1, err


def test_zip_bomb_in_an_exported_program_is_refused_before_reading(tmp_path):
    class Relu(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x.relu()

    archive = tmp_path / "bomb.pt2"
    torch.export.save(torch.export.export(Relu(), (torch.randn(2, 4),)), str(archive))
    root = zipfile.ZipFile(archive).namelist()[0].split("/")[0]
    _add_bomb(archive, f"{root}/extra/bomb.pt")
    assert archive.stat().st_size < 1_000_000
    with pytest.raises(ModelLoadError, match=r"would decompress .* into 33,554,432 .*crafted"):
        load_source(str(archive))


def test_zip_bomb_in_a_torch_file_is_refused_before_reading(tmp_path):
    saved = tmp_path / "weights.pt"
    torch.save({"w": torch.zeros(2)}, saved)
    root = zipfile.ZipFile(saved).namelist()[0].split("/")[0]
    _add_bomb(saved, f"{root}/data/9")
    with pytest.raises(ModelLoadError, match="would decompress"):
        load_source(str(saved))
    scripted = tmp_path / "scripted.pt"
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), str(scripted))
    root = zipfile.ZipFile(scripted).namelist()[0].split("/")[0]
    _add_bomb(scripted, f"{root}/code/__torch__/bomb.py")
    with pytest.raises(ModelLoadError, match="would decompress"):
        load_source(str(scripted))
