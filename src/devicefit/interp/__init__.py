"""devicefit's reference interpreter for Core ML ML Programs.

Runs ``.mlpackage`` / ``.mlmodel`` ML Programs on any machine, in fp32 and in emulated fp16, with every
intermediate value available::

    import devicefit.interp as interp
    prog = interp.load("model.mlpackage")
    outputs = prog.run({"x": x}, precision="fp16", intermediates=True)
"""

from __future__ import annotations

from devicefit.errors import InputError, KernelMissingError, ModelLoadError
from devicefit.interp.plan import TensorSpec
from devicefit.interp.registry import register, registered_ops
from devicefit.interp.run import PRECISIONS, Program, load
from devicefit.interp.step import KernelContractError

__all__ = [
    "PRECISIONS",
    "InputError",
    "KernelContractError",
    "KernelMissingError",
    "ModelLoadError",
    "Program",
    "TensorSpec",
    "load",
    "register",
    "registered_ops",
]
