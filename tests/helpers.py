"""Test helpers: convert small torch models with coremltools and compare results."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

TARGETS = {"iOS15": 15, "iOS16": 16, "iOS17": 17, "iOS18": 18}


def convert(
    module: torch.nn.Module,
    example: tuple[torch.Tensor, ...] | torch.Tensor,
    target: str = "iOS16",
    precision: str = "fp32",
    input_names: list[str] | None = None,
    **kwargs: Any,
):
    """Trace ``module`` and convert it to an ML Program at ``target`` with coremltools."""
    from devicefit._lazy import coremltools

    ct = coremltools()
    if isinstance(example, torch.Tensor):
        example = (example,)
    module = module.eval()
    with torch.no_grad():
        traced = torch.jit.trace(module, example)
    names = input_names or [f"x{i}" if len(example) > 1 else "x" for i in range(len(example))]
    inputs = kwargs.pop("inputs", None) or [
        ct.TensorType(name=n, shape=t.shape, dtype=_ct_dtype(ct, t)) for n, t in zip(names, example)
    ]
    return ct.convert(
        traced,
        inputs=inputs,
        convert_to="mlprogram",
        minimum_deployment_target=getattr(ct.target, target),
        compute_precision=ct.precision.FLOAT32 if precision == "fp32" else ct.precision.FLOAT16,
        **kwargs,
    )


def _ct_dtype(ct, t: torch.Tensor):
    return np.int32 if not t.is_floating_point() else np.float32


def rel_error(actual: np.ndarray, expected: np.ndarray) -> float:
    """max |a - e| / max |e| (0 when both are zero)."""
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    scale = max(np.abs(expected).max(initial=0.0), 1e-30)
    return float(np.abs(actual - expected).max(initial=0.0) / scale)


def cosine(actual: np.ndarray, expected: np.ndarray) -> float:
    a = np.asarray(actual, dtype=np.float64).ravel()
    b = np.asarray(expected, dtype=np.float64).ravel()
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na == 0 and nb == 0:
        return 1.0
    return float(a @ b / max(na * nb, 1e-300))


def custom_class_torchscript(folder: Any) -> Any:
    """A TorchScript file whose code names a custom C++ class (``torch.classes.devicefit_test.Marker``).

    Built from a scripted Linear by appending the class annotation to its code, so no custom class needs
    to be registered: the consent checks must refuse it by reading the archive, before torch loads it.
    The unmodified original is left beside it as ``plain.pt``.
    """
    import zipfile
    from pathlib import Path

    plain = Path(folder) / "plain.pt"
    torch.jit.save(torch.jit.script(torch.nn.Linear(4, 2)), str(plain))
    crafted = Path(folder) / "custom.pt"
    with zipfile.ZipFile(plain) as src, zipfile.ZipFile(crafted, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if "/code/" in info.filename and info.filename.endswith(".py"):
                data += b"\n  _cls : __torch__.torch.classes.devicefit_test.Marker\n"
            dst.writestr(info, data)
    return crafted


def within(seconds: float, fn: Any, blocked: str = "blocked on a file") -> Any:
    """``fn()`` in a daemon thread: the test fails (``blocked``) instead of hanging the suite when it blocks."""
    import threading

    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as e:  # re-raised in the test thread
            box["error"] = e

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), blocked
    if "error" in box:
        raise box["error"]
    return box.get("value")
