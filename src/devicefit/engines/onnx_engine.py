"""The ``onnxruntime`` engine: a given ``.onnx`` file, or an ``nn.Module`` / TorchScript file exported with
``torch.onnx``.

ONNX Runtime's optimized graph (``SessionOptions.optimized_model_filepath``) is the cached specialization
when ``cache_optimized_graph=True``: a cache hit loads it with graph optimizations off, skipping the optimizer
passes. Off by default (measured slower than re-optimizing on small models). ONNX files exported from an
nn.Module are always cached.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import platform
import warnings
import zipfile
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from devicefit.engines.base import Availability, Engine, InputSpec
from devicefit.errors import InputError, ModelLoadError, first_line

# Core ML's compute units -> ONNX Runtime execution providers, in preference order (CPU always last).
PROVIDERS = {
    "cpu_only": ["CPUExecutionProvider"],
    "cpu_and_gpu": [
        "CUDAExecutionProvider",
        "ROCMExecutionProvider",
        "DmlExecutionProvider",
        "CPUExecutionProvider",
    ],
    "cpu_and_ne": ["CoreMLExecutionProvider", "CPUExecutionProvider"],
    "all": [
        "CoreMLExecutionProvider",
        "CUDAExecutionProvider",
        "ROCMExecutionProvider",
        "DmlExecutionProvider",
        "CPUExecutionProvider",
    ],
}
_NP = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(double)": np.float64,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(int8)": np.int8,
    "tensor(uint8)": np.uint8,
    "tensor(bool)": np.bool_,
}


def providers_for(compute_units: str) -> list[str]:
    """The available ONNX Runtime providers for ``compute_units``, best first."""
    import onnxruntime as ort

    have = set(ort.get_available_providers())
    return [p for p in PROVIDERS[compute_units] if p in have]


def module_fingerprint(module: Any, examples: dict[str, Any]) -> str:
    """Content hash of an nn.Module (structure, weights) and its example input signature."""
    import torch

    h = hashlib.sha256(repr(module).encode())
    h.update(torch.__version__.encode())
    for name, t in module.state_dict().items():
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    for name, v in examples.items():
        arr = np.asarray(v.detach().cpu().numpy() if hasattr(v, "detach") else v)
        h.update(f"{name}:{arr.dtype}:{arr.shape}".encode())
    return h.hexdigest()


def export_onnx(
    module: Any,
    examples: dict[str, Any],
    path: Path,
    dynamic_batch: bool = True,
    output_names: list[str] | None = None,
) -> None:
    """Export ``module`` with torch.onnx (the TorchScript exporter first: it is ~10x faster to run)."""
    import torch

    from devicefit.engines.torch_engine import flat_outputs, output_names_for

    args = tuple(torch.as_tensor(np.asarray(v)) if not hasattr(v, "detach") else v for v in examples.values())
    names = list(examples)
    # NOTE: the outputs are named as the torch engine names them (the exporter numbers them: '3'), so one module
    # answers under the same names on every engine; a nested structure keeps the exporter's names
    with torch.no_grad():
        out = module.eval()(*args)
    output_names = output_names or (
        output_names_for(out) if all(isinstance(v, torch.Tensor) for v in flat_outputs(out)) else None
    )
    axes = {n: {0: "batch"} for n in names} if dynamic_batch else None
    errors = []
    for dynamo in (False, True):
        try:
            with warnings.catch_warnings():  # exporter chatter (e.g. ScriptModules have no signature)
                warnings.simplefilter("ignore")
                torch.onnx.export(
                    module.eval(),
                    args,
                    str(path),
                    input_names=names,
                    output_names=output_names,
                    dynamic_axes=axes,
                    dynamo=dynamo,
                )
            return
        except Exception as e:  # exporter failures come in many types
            errors.append(first_line(e))
    raise ModelLoadError(
        f"torch.onnx could not export the model ({'; '.join(errors)}); pass an .onnx file instead"
    )


class OnnxRuntimeEngine(Engine):
    """Runs an ONNX model with ONNX Runtime; providers follow ``compute_units``.

    Options:
        example_inputs: required for an nn.Module or a TorchScript file (dict or tuple of arrays) to export it.
        trust_code: load TorchScript that uses custom C++ classes (native code) too.
        threads: intra-op threads (default: ONNX Runtime's choice, all cores).
    """

    name: ClassVar[str] = "onnxruntime"

    @classmethod
    def availability(cls) -> Availability:
        try:
            import onnxruntime as ort
        except ImportError as e:
            return Availability(
                "onnxruntime", False, f"onnxruntime is not installed ({e}); pip install onnxruntime"
            )
        return Availability(
            "onnxruntime",
            True,
            devices=list(ort.get_available_providers()),
            version=f"onnxruntime-{ort.__version__}",
        )

    def _session_options(self, optimize_to: Path | None, optimize: bool) -> Any:
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.log_severity_level = 3
        threads = self.options.get("threads")
        if threads:
            so.intra_op_num_threads = int(threads)
            so.inter_op_num_threads = 1
        so.graph_optimization_level = (
            ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            if optimize
            else ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        )
        if optimize_to is not None:
            so.optimized_model_filepath = str(optimize_to)
        return so

    def _onnx_path(self, held: contextlib.ExitStack) -> tuple[Path, str | None]:
        """(path of the .onnx to run, its content hash if known); a cache entry it points into is held
        against eviction (``SpecializationCache.reading``) until ``held`` closes."""
        model = self.model
        if isinstance(model, (str, os.PathLike)):
            path = Path(model)
            if not path.exists():
                raise ModelLoadError(f"model not found: {path} (expected an .onnx file)")
            if not zipfile.is_zipfile(path):  # an ONNX file is one protobuf message; TorchScript is a zip
                cache = self.cache()
                return path, cache.content_hash(path) if cache is not None else None
            from devicefit.engines.torch_engine import load_torchscript

            # a TorchScript file is exported to ONNX like an nn.Module (ORT would fail on it with a protobuf error)
            model = load_torchscript(path, bool(self.options.get("trust_code", False)))
        import torch

        if not isinstance(model, torch.nn.Module):
            raise InputError(
                f"the onnxruntime engine takes an .onnx path or an nn.Module, got {type(model).__name__}"
            )
        from devicefit.engines.torch_engine import normalize_examples

        examples = normalize_examples(self.options.get("example_inputs"), self.options.get("input_names"))
        if not examples:
            raise InputError(
                "exporting an nn.Module or TorchScript to ONNX needs example inputs; pass example_inputs={name: array} "
                "(from the CLI: --input NAME:DIMxDIM[:DTYPE] or NAME=FILE.npy)"
            )
        fp = module_fingerprint(model, examples)
        named = list(self.options.get("output_names") or []) or None
        cache = self.cache()
        if cache is None:
            import tempfile

            self._tmp = tempfile.TemporaryDirectory(prefix="devicefit-onnx-")
            path = Path(self._tmp.name) / "model.onnx"
            export_onnx(model, examples, path, output_names=named)
            return path, None
        # the output naming is part of the key (exports made before it named outputs '3')
        params = {"output_names": named or "as the torch engine"}
        key = cache.key(fp, "torch.onnx.export", params, f"torch-{torch.__version__}")
        held.enter_context(cache.reading(key))
        entry, _ = cache.get_or_build(
            key,
            "torch.onnx.export",
            params,
            lambda d: export_onnx(model, examples, d / "model.onnx", output_names=named),
        )
        path = entry.path / "model.onnx"
        return path, cache.content_hash(path)

    def _load(self) -> bool | None:
        # cache entries read while loading (the exported .onnx, the optimized graph) stay un-evictable
        # until ONNX Runtime has built the session from them
        with contextlib.ExitStack() as held:
            return self._load_held(held)

    def _load_held(self, held: contextlib.ExitStack) -> bool | None:
        import onnxruntime as ort

        if self.precision == "fp16":
            raise InputError(
                "onnxruntime runs the model in the precision it was exported in; use precision='fp32', "
                "or engine='interp' to emulate fp16"
            )
        path, digest = self._onnx_path(held)
        providers = providers_for(self.compute_units)
        cache = self.cache()
        hit: bool | None = None
        try:
            # NOTE: caching ORT's optimized graph is opt-in (cache_optimized_graph=True): measured on MLPs and
            # convnets, loading the saved optimized graph was slower than optimizing again (0.7-0.8x,
            # docs/performance.md); it can pay off for large graphs with expensive optimizer passes.
            if cache is None or digest is None or not self.options.get("cache_optimized_graph", False):
                self.session = ort.InferenceSession(
                    str(path), self._session_options(None, True), providers=providers
                )
            else:
                options = {"providers": providers, "threads": self.options.get("threads"), "level": "all"}
                version = f"{self.availability().version}-{platform.machine()}"
                key = cache.key(digest, self.name, options, version)

                def build(folder: Path) -> None:
                    ort.InferenceSession(
                        str(path), self._session_options(folder / "model.opt.onnx", True), providers=providers
                    )

                held.enter_context(cache.reading(key))
                entry, hit = cache.get_or_build(key, self.name, options, build)
                try:
                    self.session = ort.InferenceSession(
                        str(entry.path / "model.opt.onnx"),
                        self._session_options(None, False),
                        providers=providers,
                    )
                except Exception as e:  # an entry ORT refuses: drop it, prepare from the original
                    cache.discard(entry, f"onnxruntime refused it: {e}")
                    hit = False
                    self.session = ort.InferenceSession(
                        str(path), self._session_options(None, True), providers=providers
                    )
        except ModelLoadError:
            raise
        except Exception as e:
            first = first_line(e)
            raise ModelLoadError(
                f"onnxruntime could not load {path}: {first}; check the file is a valid ONNX model"
            ) from e
        self.providers = self.session.get_providers()
        self._dtypes = {i.name: _NP.get(i.type) for i in self.session.get_inputs()}
        self.inputs = [
            InputSpec(
                i.name,
                _kind_of(i.type),
                tuple(d if isinstance(d, int) else None for d in i.shape) if i.shape is not None else None,
            )
            for i in self.session.get_inputs()
        ]
        self.output_names = [o.name for o in self.session.get_outputs()]
        return hit

    def _predict(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        cast = {
            n: (a.astype(self._dtypes[n], copy=False) if self._dtypes.get(n) else a) for n, a in feeds.items()
        }
        outs = self.session.run(self.output_names, cast)
        return dict(zip(self.output_names, outs))

    def _unload(self) -> None:
        self.session = None
        tmp = getattr(self, "_tmp", None)
        if tmp is not None:
            tmp.cleanup()
            self._tmp = None  # type: ignore[assignment]


def _kind_of(onnx_type: str) -> str | None:
    if "float" in onnx_type or "double" in onnx_type:
        return "float"
    if "bool" in onnx_type:
        return "bool"
    if "int" in onnx_type:
        return "int"
    return None
