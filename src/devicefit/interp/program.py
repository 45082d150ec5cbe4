"""The load stage: an ML Program (``.mlpackage``, ``.mlmodel`` or ``MLModel``) as a pymil Program.

Files are read and validated by ``package.py``; the pymil program is compiled into a plan by
``compile.py`` and run by ``run.py``. The plan types are re-exported here because engines and analyses
import them from this module.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from devicefit.errors import ModelLoadError, first_line
from devicefit.interp.compile import compile_function
from devicefit.interp.features import feature_spec
from devicefit.interp.package import check_weight_blobs, read_spec
from devicefit.interp.plan import Block, FunctionPlan, Step, TensorSpec

# NOTE: the old private name, still imported by engines/coreml_engine.py.
_feature_spec = feature_spec

__all__ = ["Block", "FunctionPlan", "Step", "TensorSpec", "compile_function", "feature_spec", "load_pymil"]


def load_pymil(source: Any) -> tuple[Any, Any, str]:
    """(pymil Program, spec, origin) for a path or MLModel, with clear errors for bad files."""
    spec, weights_dir, origin = read_spec(source)
    kind = spec.WhichOneof("Type")
    if kind != "mlProgram":
        hint = (
            "re-convert it with coremltools.convert(..., convert_to='mlprogram')"
            if kind == "neuralNetwork"
            else "devicefit runs ML Programs only"
        )
        raise ModelLoadError(f"{origin} is a {kind or 'empty'} model, not an ML Program; {hint}")
    from coremltools.converters.mil.frontend.milproto.load import load as milproto_load

    if weights_dir is not None and not Path(weights_dir).exists():
        weights_dir = None
    check_weight_blobs(spec, weights_dir, origin)
    try:
        prog = milproto_load(
            spec,
            specification_version=spec.specificationVersion,
            file_weights_dir=weights_dir or "",
        )
    except ModelLoadError:
        raise
    except Exception as e:
        raise ModelLoadError(
            f"could not load the ML Program in {origin}: {first_line(e)}; the package is corrupted or was "
            "written by an unsupported coremltools version"
        ) from e
    return prog, spec, origin
