"""The ``coreml`` engine: native Core ML through coremltools, on macOS only.

The compiled model (``.mlmodelc``, what ``MLModel.compileModel`` produces on device) is the cached
specialization; a hit opens it with ``CompiledMLModel`` and skips compilation.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from devicefit._lazy import coremltools, is_macos
from devicefit.engines.base import Availability, Engine
from devicefit.engines.interp_engine import input_spec_from_tensor_spec
from devicefit.errors import InputError, ModelLoadError

_UNITS = {"all": "ALL", "cpu_only": "CPU_ONLY", "cpu_and_gpu": "CPU_AND_GPU", "cpu_and_ne": "CPU_AND_NE"}


class CoreMLEngine(Engine):
    """Runs an ``.mlpackage`` / ``.mlmodel`` with the Core ML framework (macOS)."""

    name: ClassVar[str] = "coreml"

    @classmethod
    def availability(cls) -> Availability:
        if not is_macos():
            import platform

            return Availability(
                "coreml",
                False,
                f"native Core ML needs macOS (the Core ML framework ships only with Apple's OSes; this host is "
                f"{platform.system()}); use engine='interp' to run the ML Program with devicefit's interpreter",
            )
        ct = coremltools()
        try:
            from coremltools import libcoremlpython  # noqa: F401
        except ImportError as e:
            return Availability(
                "coreml", False, f"coremltools has no native Core ML bridge ({e}); reinstall coremltools"
            )
        return Availability(
            "coreml", True, devices=["cpu", "gpu", "neural_engine"], version=f"coremltools-{ct.__version__}"
        )

    def _load(self) -> bool | None:
        ct = coremltools()
        units = getattr(ct.ComputeUnit, _UNITS[self.compute_units])
        source = self.model
        if isinstance(source, ct.models.MLModel):
            self.mlmodel = source
            self._describe(source.get_spec())
            return None
        if not isinstance(source, (str, os.PathLike)):
            raise InputError(
                f"the coreml engine takes an .mlpackage path or an MLModel, got {type(source).__name__}"
            )
        path = Path(source)
        if not path.exists():
            raise ModelLoadError(f"model not found: {path} (expected a .mlpackage folder or .mlmodel file)")
        from devicefit.sources.coreml_package import check_package

        check_package(path)  # coremltools trusts a package: Manifest.json paths, weight offsets
        spec = ct.models.MLModel(str(path), skip_model_load=True).get_spec()
        self._describe(spec)
        cache = self.cache()
        if cache is None:
            self.mlmodel = ct.models.MLModel(str(path), compute_units=units)
            return None
        key = cache.key(cache.content_hash(path), self.name, {}, self.version())

        def build(folder: Path) -> None:
            ct.models.utils.compile_model(str(path), destination_path=str(folder / "model.mlmodelc"))

        with cache.reading(key):  # no process evicts the entry while Core ML opens it
            entry, hit = cache.get_or_build(key, self.name, {}, build)
            self.mlmodel = ct.models.CompiledMLModel(str(entry.path / "model.mlmodelc"), compute_units=units)
        return hit

    def _describe(self, spec: Any) -> None:
        from devicefit.interp.program import _feature_spec

        desc = spec.description
        self.inputs = [input_spec_from_tensor_spec(_feature_spec(f, None)) for f in desc.input]
        self.output_names = [f.name for f in desc.output]

    def _predict(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        out = self.mlmodel.predict(feeds)
        return {k: np.asarray(v) for k, v in out.items()}

    def predict_batch_validated(self, batch: list[dict[str, np.ndarray]]) -> list[dict[str, np.ndarray]]:
        # Core ML's own batch API (MLBatchProvider) when the model has no batch axis to stack on
        if self.batch_capacity() == 1 and len(batch) > 1:
            outs = self.mlmodel.predict(batch)
            return [{k: np.asarray(v) for k, v in o.items()} for o in outs]
        return super().predict_batch_validated(batch)

    def _unload(self) -> None:
        self.mlmodel = None
