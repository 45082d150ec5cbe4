"""Provenance: which PyTorch module and source line each op of a converted ML Program came from.

coremltools keeps the torch scope of every MIL op while it converts (``op.scopes`` on the in-memory pymil
program, ``mlmodel._mil_program``), but does not save it in the package. :func:`collect` reads it right after
a conversion, :func:`attach` stores it compactly in the model's user-defined metadata under
``devicefit.provenance`` so that commands run later on the saved ``.mlpackage`` can name PyTorch modules, and
:func:`load_from_package` reads it back.

What each frontend gives:

* TorchScript: the module names and types of the scope (``["block", "conv", "input.1"]`` /
  ``["Block", "Conv2d", "_convolution"]``; the last entry is the graph node and its aten kind). The source line
  comes from the traced graph's source ranges (the innermost frame of the user's code, library frames skipped),
  matched by module path and aten kind; without a traced graph, from the line of the parent module's
  ``forward`` that calls the submodule.
* torch.export: the FX node's ``stack_trace`` (innermost user frame = the line); the module path and type come
  from the ExportedProgram's ``nn_module_stack`` of the node with the same stack trace.

Ops created by graph passes inherit the scope of the op they replace, so fused and cast ops keep their origin.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devicefit.convert import _provenance_frontends as frontends

__all__ = ["METADATA_KEY", "Origin", "Provenance", "attach", "collect", "load_from_package", "where"]

METADATA_KEY = "devicefit.provenance"


@dataclass(frozen=True)
class Origin:
    """Where in the PyTorch model an op came from.

    Attributes:
        module_path: dotted submodule path (``"features.3.conv"``); ``""`` is the top module; None unknown.
        module_type: the module's class name (``"Conv2d"``); None unknown.
        location: ``file:line`` of the PyTorch source; None unknown.
    """

    module_path: str | None
    module_type: str | None
    location: str | None

    def to_dict(self) -> dict[str, str | None]:
        return {"module_path": self.module_path, "module_type": self.module_type, "location": self.location}

    def label(self) -> str:
        """``"features.3.conv (Conv2d) at models/net.py:42"``; parts that are unknown are left out."""
        if self.module_path is None:
            name = ""
        elif self.module_path == "":
            name = "the top module"
        else:
            name = self.module_path
        if self.module_type:
            name = f"{name} ({self.module_type})" if name else self.module_type
        if self.location:
            return f"{name} at {self.location}" if name else self.location
        return name or "unknown origin"


class Provenance:
    """MIL value name (an op's output name) -> :class:`Origin`."""

    def __init__(self, origins: dict[str, Origin] | None = None):
        self._origins: dict[str, Origin] = dict(origins or {})

    def get(self, mil_name: str) -> Origin | None:
        """The origin of the op producing ``mil_name``; None when unknown."""
        return self._origins.get(mil_name)

    def find(self, *mil_names: str) -> Origin | None:
        """The origin of the first of ``mil_names`` that is known (an op's outputs, then its name)."""
        for name in mil_names:
            origin = self._origins.get(name)
            if origin is not None:
                return origin
        return None

    def label(self, mil_name: str) -> str:
        """``origin.label() (mil_name)`` when known, else the MIL name alone."""
        return where(self.get(mil_name), mil_name)

    def __len__(self) -> int:
        return len(self._origins)

    def __contains__(self, mil_name: object) -> bool:
        return mil_name in self._origins

    def items(self) -> Iterator[tuple[str, Origin]]:
        return iter(self._origins.items())

    def to_json(self) -> dict[str, Any]:
        """A compact dict: distinct origins listed once, each name pointing at its origin's index."""
        table: dict[Origin, int] = {}
        names: dict[str, int] = {}
        for name, origin in self._origins.items():
            names[name] = table.setdefault(origin, len(table))
        return {
            "version": 1,
            "origins": [[o.module_path, o.module_type, o.location] for o in table],
            "names": names,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Provenance:
        """Inverse of :meth:`to_json`; raises ValueError on a malformed dict."""
        try:
            origins = [Origin(*row) for row in d["origins"]]
            return cls({name: origins[i] for name, i in d["names"].items()})
        except (KeyError, TypeError, IndexError) as exc:
            raise ValueError(f"malformed provenance: {exc}") from exc


def collect(mlmodel: Any, source: Any = None, *, root: str = "") -> Provenance:
    """Provenance of a freshly converted model, from coremltools' op scopes.

    Args:
        mlmodel: a ``coremltools.models.MLModel`` straight from ``ct.convert`` (a loaded package has no
            scopes: use :func:`load_from_package`).
        source: what was converted, for source lines and module types: the traced ``torch.jit.ScriptModule``,
            the ``torch.export.ExportedProgram``, or the ``nn.Module``; None gives module paths only.
        root: submodule path of the user's model inside ``source`` when ``source`` wraps it (devicefit's
            flat-output wrapper keeps it as ``inner``); module paths are given relative to it.

    Returns:
        The Provenance (empty when the model carries no scopes).
    """
    program = getattr(mlmodel, "_mil_program", None)
    if program is None:
        return Provenance()
    from coremltools.converters.mil.mil.scope import ScopeSource

    ts_lines = frontends.torchscript_lines(source)
    ts_node_paths = frontends.torchscript_node_paths(source)
    ts_node_lines = frontends.torchscript_node_lines(source)
    fx_modules = frontends.export_modules(source)
    module = frontends.nn_module(source)
    seen_per_key: dict[tuple[str, str], list[str]] = defaultdict(list)
    origins: dict[str, Origin] = {}

    def origin_of(op: Any) -> tuple[str | None, str | None, str | None] | None:
        scopes = op.scopes
        names = scopes.get(ScopeSource.TORCHSCRIPT_MODULE_NAME)
        if names:
            return frontends.torchscript_origin(
                list(names),
                list(scopes.get(ScopeSource.TORCHSCRIPT_MODULE_TYPE) or []),
                ts_lines,
                module,
                seen_per_key,
                tree=source,
                node_paths=ts_node_paths,
                node_lines=ts_node_lines,
            )
        traces = scopes.get(ScopeSource.EXIR_STACK_TRACE) or []
        trace = next((t for t in traces if isinstance(t, str) and "File " in t), None)
        handle = next(
            (h for h in scopes.get(ScopeSource.EXIR_DEBUG_HANDLE) or [] if isinstance(h, int)), None
        )
        return frontends.export_origin(trace, fx_modules, handle) if trace else None

    for op in _walk(program):
        found = _fused_conv_origin(op, origin_of, ScopeSource) or origin_of(op)
        if found is None:
            continue
        origin = _relative(Origin(*found), root)
        for out in op.outputs:
            origins[out.name] = origin
    return Provenance(origins)


# a conv's own parameters: the fusing passes rewrite weight and bias, never these
_CONV_OWN_PARAMS = ("dilations", "strides", "pad", "pad_type", "groups")


def _fused_conv_origin(op: Any, origin_of: Any, scope_source: Any) -> Any:
    """The origin of the Conv2d a BatchNorm / bias / scale was fused into, not of the fused layer.

    ``fuse_conv_batchnorm`` (and ``fuse_conv_bias`` / ``fuse_conv_scale``) give the new conv the scope of the
    op it replaces, the BatchNorm, so a finding about the convolution (a dilated kernel, its FLOPs) would
    blame ``bn (BatchNorm2d)``. The conv's own parameter constants (dilations, strides) keep its scope.
    """
    if op.op_type not in ("conv", "conv_transpose"):
        return None
    passes = op.scopes.get(scope_source.COREMLTOOLS_GRAPH_PASS) or []
    if not any(str(p).startswith("fuse_conv") for p in passes):
        return None
    for param in _CONV_OWN_PARAMS:
        var = op.inputs.get(param)
        producer = getattr(var, "op", None)
        if producer is not None and producer.op_type == "const":
            found = origin_of(producer)
            if found is not None:
                return found
    return None


def attach(mlmodel: Any, provenance: Provenance) -> None:
    """Store ``provenance`` in ``mlmodel``'s user-defined metadata, so a saved package carries it."""
    if len(provenance):
        mlmodel.user_defined_metadata[METADATA_KEY] = json.dumps(provenance.to_json(), separators=(",", ":"))


def load_from_package(mlmodel_or_path: Any) -> Provenance | None:
    """The provenance stored in a package's metadata (see :func:`attach`); None when it has none.

    Args:
        mlmodel_or_path: a ``.mlpackage`` / ``.mlmodel`` path, an MLModel, a ``devicefit.interp.Program``, or
            a Core ML ``Model`` proto.
    """
    spec = mlmodel_or_path
    if isinstance(mlmodel_or_path, (str, os.PathLike)):
        path = Path(mlmodel_or_path)
        if not path.exists():
            return None
        from devicefit.sources.coreml_package import read_spec

        try:  # the checked reader: coremltools follows Manifest.json anywhere
            spec, _, _ = read_spec(path)
        except Exception:  # an unreadable package has no provenance; the loader reports the real error
            return None
    elif hasattr(mlmodel_or_path, "get_spec"):
        spec = mlmodel_or_path.get_spec()
    elif hasattr(mlmodel_or_path, "spec"):  # a devicefit.interp.Program keeps the spec it was loaded from
        spec = mlmodel_or_path.spec
    try:
        raw = spec.description.metadata.userDefined.get(METADATA_KEY)
    except (AttributeError, TypeError):
        return None
    if not raw:
        return None
    try:
        return Provenance.from_json(json.loads(raw))
    except ValueError:
        return None


# --- shared --------------------------------------------------------------------------------------------


def _relative(origin: Origin, root: str) -> Origin:
    """``origin`` with its module path relative to ``root``; ops of the wrapper itself lose path and type."""
    path = origin.module_path
    if not root or path is None:
        return origin
    if path == root:
        return Origin("", origin.module_type, origin.location)
    if path.startswith(root + "."):
        return Origin(path[len(root) + 1 :], origin.module_type, origin.location)
    return Origin(None, None, origin.location)


def _walk(program: Any) -> Iterable[Any]:
    def visit(block: Any) -> Iterator[Any]:
        for op in block.operations:
            yield op
            for inner in op.blocks:
                yield from visit(inner)

    for function in program.functions.values():
        yield from visit(function)


def where(origin: Origin | None, mil_name: str) -> str:
    """What a finding leads with: ``origin.label() (mil_name)``, or the MIL name alone when unknown."""
    return f"{origin.label()} ({mil_name})" if origin is not None else mil_name
