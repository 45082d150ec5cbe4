"""A damaged cache is rebuilt, never served and never an exception: swapped weight words, manifests of the wrong
JSON shape, files where folders belong; ``cache ls / clear`` stay 0 (or 2 for a bad setting, never 3)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from devicefit.cli import main
from devicefit.engines import _plan_io
from devicefit.engines.cache import SpecializationCache
from devicefit.errors import InputError


def _weights(d: Path) -> None:
    # 2 MiB of distinct 64-bit words: large enough for the old "sum of words" path
    np.arange(1, 2**18 + 1, dtype=np.uint64).tofile(d / "weights.bin")


def test_swapped_words_are_detected(tmp_path):
    cache = SpecializationCache(tmp_path / "c")
    entry, hit = cache.get_or_build("k", "test", {}, _weights)
    assert not hit
    weights = entry.path / "weights.bin"
    words = np.fromfile(weights, dtype=np.uint64)
    words[[10, 20]] = words[[20, 10]]  # same bytes, same sum, another file
    words.tofile(weights)
    assert cache.get("k") is None
    assert any(ev.startswith("corrupt k") and "checksum" in ev for ev in cache.events)
    entry, hit = cache.get_or_build("k", "test", {}, _weights)
    assert not hit and np.fromfile(entry.path / "weights.bin", dtype=np.uint64)[10] == 11


@pytest.mark.parametrize(
    "manifest",
    ["null", "[]", '{"files": null}', "FILES_NULL", "SIZE_STR", "42", '"text"', "[" * 100_000],
    ids=["null", "list", "only-files-null", "files-null", "size-string", "int", "string", "deep"],
)
def test_malformed_manifest_is_rebuilt(tmp_path, manifest, capsys, monkeypatch):
    cache = SpecializationCache(tmp_path / "c")
    entry, _ = cache.get_or_build("k", "test", {}, _weights)
    path = entry.path / "manifest.json"
    real = json.loads(path.read_text())
    if manifest == "FILES_NULL":
        manifest = json.dumps({**real, "files": None})
    elif manifest == "SIZE_STR":
        manifest = json.dumps({**real, "files": {"weights.bin": {"size": "2097152", "checksum": "x"}}})
    path.write_text(manifest)
    assert cache.entries() == []  # listed as nothing, not an AttributeError
    monkeypatch.setenv("DEVICEFIT_CACHE_DIR", str(tmp_path / "c"))
    assert main(["cache", "ls", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["entries"] == []
    entry, hit = cache.get_or_build("k", "test", {}, _weights)
    assert not hit and entry.size_bytes == 2**21
    path.write_text(manifest)
    assert main(["cache", "clear"]) == 0
    assert not any((tmp_path / "c" / "entries").iterdir())


def _damage(root: Path, folder: str) -> None:
    """Put a file where ``folder`` belongs."""
    target = root / folder
    if target.is_dir():
        shutil.rmtree(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text("not a folder")


@pytest.mark.parametrize("folder", ["entries", "locks", "tmp", "hashes", "entries/k"])
def test_a_file_where_a_folder_belongs_is_repaired(tmp_path, folder, monkeypatch, capsys):
    root = tmp_path / "c"
    cache = SpecializationCache(root)
    cache.get_or_build("other", "test", {}, _weights)
    _damage(root, folder)
    entry, hit = cache.get_or_build("k", "test", {}, _weights)
    assert not hit and (entry.path / "weights.bin").stat().st_size == 2**21
    assert cache.get_or_build("k", "test", {}, _weights)[1] is True
    _damage(root, folder)
    assert len(cache.content_hash(tmp_path / "c")) == 64 or folder == "hashes"
    monkeypatch.setenv("DEVICEFIT_CACHE_DIR", str(root))
    for action in (["cache", "ls"], ["cache", "ls", "--json"], ["cache", "clear"]):
        _damage(root, folder)
        assert main(action) == 0, action
    capsys.readouterr()


def test_bad_max_bytes_is_one_line_exit_2(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DEVICEFIT_CACHE_DIR", str(tmp_path / "c"))
    monkeypatch.setenv("DEVICEFIT_CACHE_MAX_BYTES", "lots")
    with pytest.raises(InputError, match=r"DEVICEFIT_CACHE_MAX_BYTES.*'lots'"):
        SpecializationCache()
    assert main(["cache", "ls"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "DEVICEFIT_CACHE_MAX_BYTES" in err
    for text, expected in [("4G", 4 * 1024**3), ("500M", 500 * 1024**2), ("123", 123), ("2GiB", 2 * 1024**3)]:
        monkeypatch.setenv("DEVICEFIT_CACHE_MAX_BYTES", text)
        assert SpecializationCache().max_bytes == expected


def test_cache_root_that_is_a_file_is_exit_2(tmp_path, monkeypatch, capsys):
    (tmp_path / "c").write_text("a file")
    monkeypatch.setenv("DEVICEFIT_CACHE_DIR", str(tmp_path / "c"))
    assert main(["cache", "ls"]) == 2
    assert "DEVICEFIT_CACHE_DIR" in capsys.readouterr().err


def test_events_are_bounded(tmp_path):
    cache = SpecializationCache(tmp_path / "c")
    for _ in range(3000):
        cache.get_or_build("k", "test", {}, lambda d: (d / "f").write_bytes(b"1"))
    assert 0 < len(cache.events) <= 1000 and cache.events[-1] == "hit k"


def test_interp_key_covers_plan_format_and_coremltools_and_is_memoised(monkeypatch):
    import importlib.metadata

    _plan_io.interp_fingerprint.cache_clear()
    base = _plan_io.interp_fingerprint()
    assert _plan_io.interp_fingerprint() == base and _plan_io.interp_fingerprint.cache_info().hits >= 1

    real_version = importlib.metadata.version
    monkeypatch.setattr(
        importlib.metadata, "version", lambda n: "0.0-other" if n == "coremltools" else real_version(n)
    )
    _plan_io.interp_fingerprint.cache_clear()
    assert _plan_io.interp_fingerprint() != base
    monkeypatch.undo()

    real_read = Path.read_bytes
    plan_io_file = Path(_plan_io.__file__)
    monkeypatch.setattr(
        Path, "read_bytes", lambda self: real_read(self) + (b"# changed" if self == plan_io_file else b"")
    )
    _plan_io.interp_fingerprint.cache_clear()
    assert _plan_io.interp_fingerprint() != base
    monkeypatch.undo()
    _plan_io.interp_fingerprint.cache_clear()
    assert _plan_io.interp_fingerprint() == base


def test_engines_use_only_the_public_cache_api():
    import devicefit.engines as engines_pkg

    root = Path(engines_pkg.__file__).parent
    for source in root.glob("*_engine.py"):
        text = source.read_text()
        assert "cache._" not in text and "cache.events" not in text, source.name
