"""devicefit's reference interpreter for Core ML ML Programs.

Runs ``.mlpackage`` / ``.mlmodel`` ML Programs on any machine, in fp32 and in emulated fp16, with every
intermediate value available::

    import devicefit.interp as interp
    prog = interp.load("model.mlpackage")
    outputs = prog.run({"x": x}, precision="fp16", intermediates=True)
    fast = interp.compile_program(prog, "fp32")     # traced per input shape, GIL-free (exact=True: bit-identical)
    outputs = fast.run({"x": x})

The stages, each a module that imports only the ones before it (a test checks there is no cycle):

* load: ``files.py`` (reading untrusted files: paths kept inside the package, special files refused,
  sizes bounded), ``package.py`` (Manifest.json, the model proto, weight-blob checks) and ``program.py``
  (the proto as a coremltools pymil Program);
* compile: ``features.py`` (the description's inputs / outputs, checked against the program), ``compile.py``
  (pymil -> the flat plan of ``plan.py``, with kernels from ``registry.py`` and ``ops/``);
* run: ``step.py`` (one kernel call and the kernel contract), ``inputs.py`` (what a caller feeds, checked
  against the program) and ``run.py`` (the loop and :class:`Program`); ``compiled.py`` / ``specialize.py``
  trace the same plan into a faster path.
"""

from __future__ import annotations

from devicefit.errors import InputError, KernelMissingError, ModelLoadError
from devicefit.interp.compiled import CompiledProgram, compile_program
from devicefit.interp.plan import TensorSpec
from devicefit.interp.registry import register, registered_ops
from devicefit.interp.run import PRECISIONS, STRICT_TYPES_ENV, Program, load
from devicefit.interp.step import (
    DeclaredTypeError,
    KernelContractError,
    KernelFailedError,
    OpFailedError,
    TypeMismatch,
)

__all__ = [
    "PRECISIONS",
    "STRICT_TYPES_ENV",
    "CompiledProgram",
    "DeclaredTypeError",
    "InputError",
    "KernelContractError",
    "KernelFailedError",
    "KernelMissingError",
    "ModelLoadError",
    "OpFailedError",
    "Program",
    "TensorSpec",
    "TypeMismatch",
    "compile_program",
    "load",
    "register",
    "registered_ops",
]
