"""The engines agree with each other on the zoo models: PyTorch, devicefit's interpreter (on the Core ML
conversion) and ONNX Runtime (on the torch.onnx export) give the same outputs for the same inputs."""

from __future__ import annotations

import numpy as np
import pytest

from devicefit.engines import create
from tests.helpers import convert, cosine, rel_error
from tests.zoo import BY_NAME, build

MODELS = ["resnet", "mobilenet_v3", "convnext", "vit", "bert_encoder", "unet", "lstm"]


@pytest.mark.parametrize("name", MODELS)
def test_torch_interp_onnxruntime_agree(name, tmp_path):
    from devicefit.engines.onnx_engine import export_onnx

    entry = BY_NAME[name]
    model, inputs = build(entry)
    feeds = {n: t.numpy() for n, t in zip(entry.input_names, inputs)}
    package = tmp_path / f"{name}.mlpackage"
    convert(model, inputs, target="iOS18", precision="fp32", input_names=entry.input_names).save(str(package))
    onnx = tmp_path / f"{name}.onnx"
    export_onnx(model, dict(feeds), onnx, dynamic_batch=False)

    outputs = {}
    for engine, source, extra in (
        ("torch", model, {"example_inputs": feeds}),
        ("interp", package, {}),
        ("onnxruntime", onnx, {}),
    ):
        with create(engine, source, cache=False, **extra) as e:
            result = e.predict(feeds)
        # output names differ per engine (each follows its own graph); their order follows the model's
        outputs[engine] = [np.asarray(v) for v in result.values()]

    reference = outputs["torch"]
    for engine in ("interp", "onnxruntime"):
        got = outputs[engine]
        assert len(got) == len(reference), engine
        for a, e in zip(got, reference):
            assert a.shape == e.shape, engine
            assert rel_error(a, e) <= 1e-4, engine
            assert cosine(a, e) >= 0.99999, engine
