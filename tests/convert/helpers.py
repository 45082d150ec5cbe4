"""Convert a module built in a test and compare the package's interpreter outputs with PyTorch."""

from __future__ import annotations

from typing import Any

import numpy as np

from devicefit import interp
from devicefit.convert import ConversionResult, ConvertOptions, convert
from devicefit.sources import SourceModel
from tests.helpers import rel_error


def source_of(net: Any, example: Any, origin: str = "test model") -> SourceModel:
    """A SourceModel for a module built in the test (``example``: a tuple or a name -> tensor dict)."""
    from devicefit.sources.module import from_module

    return from_module(origin, "python", net, example, None)


def convert_and_compare(
    net: Any,
    example: Any,
    frontend: str = "torchscript",
    tol: float = 1e-5,
    precision: str = "fp32",
) -> tuple[ConversionResult, dict[str, np.ndarray]]:
    """Convert through ``frontend`` and assert every output matches PyTorch within ``tol`` relative error."""
    source = source_of(net, example)
    result = convert(source, ConvertOptions(precision=precision, frontend=frontend))
    assert result.frontend == frontend
    outputs = interp.load(result.mlmodel).run(source.coreml_feeds(source.example_inputs), precision=precision)
    reference = source.reference(source.example_inputs)
    for name, expected in reference.items():
        got = outputs[name]
        assert got.shape == expected.shape, (name, got.shape, expected.shape)
        if expected.dtype.kind in "iub":
            np.testing.assert_array_equal(got, expected.astype(got.dtype), err_msg=name)
        else:
            assert rel_error(got, expected) < tol, (name, rel_error(got, expected))
    return result, outputs


def ct_convert(ct: Any, model: Any, x: Any, frontend: str) -> tuple[Any, Any]:
    """``model`` on the one input ``x`` through coremltools alone (iOS17 ML Program): ``(mlmodel, source)``, the
    source being the traced ScriptModule (``"torchscript"``) or the decomposed ExportedProgram (any other)."""
    import torch

    if frontend == "torchscript":
        source = torch.jit.trace(model, x)
        inputs = [ct.TensorType(name="x", shape=x.shape)]
    else:
        source = torch.export.export(model, (x,)).run_decompositions({})
        inputs = None
    mlmodel = ct.convert(
        source, inputs=inputs, convert_to="mlprogram", minimum_deployment_target=ct.target.iOS17
    )
    return mlmodel, source
