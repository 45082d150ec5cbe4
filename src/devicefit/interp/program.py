"""The load stage: an ML Program (``.mlpackage``, ``.mlmodel`` or ``MLModel``) as a pymil Program.

Files are read and validated by ``sources/coreml_package.py``; the pymil program is compiled into a plan by
``compile.py`` and run by ``run.py``. The plan types are re-exported here because engines and analyses
import them from this module.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from devicefit.errors import ModelLoadError, first_line
from devicefit.interp.compile import compile_function
from devicefit.interp.features import feature_spec
from devicefit.interp.plan import Block, FunctionPlan, Step, TensorSpec
from devicefit.sources.coreml_package import check_weight_blobs, read_spec

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
        raise ModelLoadError(
            f"{origin} is {f'a {kind}' if kind else 'an empty'} model, not an ML Program; {hint}"
        )
    from coremltools.converters.mil.frontend.milproto.load import load as milproto_load

    if weights_dir is not None and not Path(weights_dir).exists():
        weights_dir = None
    check_weight_blobs(spec, weights_dir, origin)
    try:
        with _variadic_dims_readable():
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


@contextlib.contextmanager
def _variadic_dims_readable() -> Iterator[None]:
    """Let coremltools' proto reader accept values of unknown rank (a variadic dim, e.g. ``fill`` with a
    run-time shape of run-time length), which it refuses with "Variadic dimensions not yet implemented".

    NOTE: patched only while loading, and the replacement only differs where the original raises.
    """
    from coremltools.converters.mil.frontend.milproto import helper
    from coremltools.converters.mil.mil import get_new_variadic_symbol

    original = helper.get_proto_dim

    def get_proto_dim(dim: Any) -> Any:
        if dim.WhichOneof("dimension") != "constant" and dim.unknown.variadic:
            return get_new_variadic_symbol()
        return original(dim)

    helper.get_proto_dim = get_proto_dim
    try:
        yield
    finally:
        helper.get_proto_dim = original
