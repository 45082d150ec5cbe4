"""The cache library never deletes what it did not write: a cache root that is a folder in use (a project or
home folder with its own ``entries/`` or ``hashes/``, via ``$DEVICEFIT_CACHE_DIR``) keeps its files through
``clear()``; only the CLI refused it before (the library deleted the user's folders under ``entries/`` and the
whole ``hashes/``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from devicefit.engines.cache import SpecializationCache
from devicefit.errors import InputError


def _weights(d: Path) -> None:
    (d / "weights.bin").write_bytes(b"\0" * 64)


def test_clear_refuses_a_root_holding_foreign_files_and_deletes_nothing(tmp_path):
    root = tmp_path / "project"
    (root / "entries" / "photos").mkdir(parents=True)
    (root / "entries" / "photos" / "cat.jpg").write_bytes(b"jpg")
    (root / "hashes").mkdir()
    (root / "hashes" / "notes.txt").write_text("mine")
    (root / "README.md").write_text("a project")
    cache = SpecializationCache(root)
    with pytest.raises(InputError, match="did not write"):
        cache.clear()
    assert (root / "entries" / "photos" / "cat.jpg").read_bytes() == b"jpg"
    assert (root / "hashes" / "notes.txt").read_text() == "mine"


def test_clear_leaves_folders_under_entries_it_cannot_tell_are_its_own(tmp_path):
    root = tmp_path / "c"
    cache = SpecializationCache(root)
    cache.get_or_build("0" * 40, "test", {}, _weights)
    (root / "entries" / "photos").mkdir()
    (root / "entries" / "photos" / "cat.jpg").write_bytes(b"jpg")
    damaged = root / "entries" / ("a" * 40)
    damaged.mkdir()
    (damaged / "manifest.json").write_text("{")  # one of its entries, damaged: removed
    assert cache.clear() == 1
    assert (root / "entries" / "photos" / "cat.jpg").read_bytes() == b"jpg"
    assert not damaged.exists() and not (root / "entries" / ("0" * 40)).exists()


def test_clear_of_a_cache_of_its_own_still_removes_everything(tmp_path):
    root = tmp_path / "c"
    cache = SpecializationCache(root)
    for key in ("1" * 40, "2" * 40):
        cache.get_or_build(key, "test", {}, _weights)
    model = tmp_path / "m.bin"
    model.write_bytes(b"model")
    cache.content_hash(model)
    assert any((root / "hashes").iterdir())
    assert cache.clear() == 2 and not cache.entries()
    assert not any((root / "hashes").glob("*.json"))
