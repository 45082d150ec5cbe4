"""Library entry points that hand a package path to coremltools check it with the sources reader first (the
CLI stages did; ``compress.search`` / ``as_mlmodel``, ``convert.merge``, provenance reading and the fp16
constants pass called coremltools on the path directly, which follows Manifest.json anywhere)."""

from __future__ import annotations

import pytest

from devicefit.errors import ModelLoadError
from tests.sources.test_hostile_packages import _copy, _point_root_model_at, _within, package  # noqa: F401


def _outside(package, tmp_path):  # noqa: F811
    crafted = _copy(package, tmp_path)
    (tmp_path / "secret.txt").write_text("not a model, outside the package")
    _point_root_model_at(crafted, "../../secret.txt")
    return crafted


def test_compress_refuses_a_manifest_pointing_outside(package, tmp_path):  # noqa: F811
    from devicefit.compress.verbs import as_mlmodel

    crafted = _outside(package, tmp_path)
    with pytest.raises(ModelLoadError, match="must be a relative path inside"):
        _within(20, lambda: as_mlmodel(crafted))


def test_merge_refuses_a_manifest_pointing_outside(package, tmp_path):  # noqa: F811
    from devicefit.convert.merge import merge

    crafted = _outside(package, tmp_path)
    with pytest.raises(ModelLoadError, match="must be a relative path inside"):
        _within(20, lambda: merge([crafted, package], tmp_path / "out.mlpackage"))


def test_provenance_of_a_crafted_package_is_none_without_reading_outside(package, tmp_path, monkeypatch):  # noqa: F811
    from devicefit.convert import provenance

    crafted = _outside(package, tmp_path)
    import coremltools

    handed: list[object] = []
    real = coremltools.utils.load_spec
    monkeypatch.setattr(coremltools.utils, "load_spec", lambda *a, **k: (handed.append(a), real(*a, **k))[1])
    assert _within(20, lambda: provenance.load_from_package(crafted)) is None
    assert not handed, "coremltools was handed the crafted package"
