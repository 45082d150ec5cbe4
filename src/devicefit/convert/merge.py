"""Merge single-function Core ML packages into one multi-function package with shared weights.

coremltools' multi-function support (``ct.utils.MultiFunctionDescriptor`` + ``ct.utils.save_multifunction``)
stores each distinct constant once, so functions that share weights (e.g. the same backbone traced at two
input sizes, or a base model and its adapters) cost about one copy on disk. :func:`merge` measures what
that saved: the inputs' weight files against the merged package's.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from devicefit.errors import InputError, ModelLoadError, OutputExistsError, first_line

__all__ = ["MergeResult", "merge", "weight_bytes"]

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass
class MergeResult:
    """What :func:`merge` wrote.

    Attributes:
        output: the merged ``.mlpackage``.
        functions: function names, in input order.
        default_function: the function Core ML runs when none is named.
        input_weight_bytes: weight-file bytes per input package (by function name).
        merged_weight_bytes: weight-file bytes of the merged package.
    """

    output: Path
    functions: list[str]
    default_function: str
    input_weight_bytes: dict[str, int] = field(default_factory=dict)
    merged_weight_bytes: int = 0

    @property
    def saved_bytes(self) -> int:
        """Bytes saved by shared weights: sum of the inputs' weight files minus the merged one."""
        return sum(self.input_weight_bytes.values()) - self.merged_weight_bytes


def weight_bytes(package: str | os.PathLike[str]) -> int:
    """Total size of the weight files of an ``.mlpackage``."""
    weights = Path(package) / "Data" / "com.apple.CoreML" / "weights"
    return sum(p.stat().st_size for p in weights.rglob("*") if p.is_file()) if weights.is_dir() else 0


def _default_function(path: Path) -> str:
    from devicefit._lazy import coremltools

    ct = coremltools()
    if not path.is_dir() or not (path / "Manifest.json").exists():
        raise ModelLoadError(f"{path} is not an .mlpackage folder; merge needs ML Program packages")
    from devicefit.sources.coreml_package import check_package

    check_package(path)  # coremltools trusts a package: Manifest.json paths, weight offsets
    try:
        spec = ct.models.MLModel(str(path), skip_model_load=True).get_spec()
    except Exception as e:
        raise ModelLoadError(f"could not read {path}: {first_line(e)}") from e
    if spec.WhichOneof("Type") != "mlProgram":
        raise ModelLoadError(f"{path} is not an ML Program; re-convert it with convert_to='mlprogram'")
    functions = list(spec.mlProgram.functions)
    if len(functions) > 1:  # its weight file holds every function's weights: "bytes saved" would be wrong
        raise InputError(
            f"{path} is already multi-function ({', '.join(sorted(functions))}); merge single-function packages"
        )
    return spec.description.defaultFunctionName or "main"


def _check_names(names: Sequence[str], count: int) -> list[str]:
    names = [n.strip() for n in names]
    if len(names) != count:
        raise InputError(f"got {len(names)} function names for {count} models; give one name per model")
    bad = [n for n in names if not _NAME.fullmatch(n)]
    if bad:
        raise InputError(
            f"function name {bad[0]!r} is not an identifier (letters, digits, _; not starting with a digit)"
        )
    if len(set(names)) != len(names):
        raise InputError(f"function names must be distinct, got {', '.join(names)}")
    return names


def merge(
    models: Sequence[str | os.PathLike[str]],
    output: str | os.PathLike[str],
    names: Sequence[str] | None = None,
    default: str | None = None,
    force: bool = False,
) -> MergeResult:
    """Merge ``models`` (``.mlpackage`` paths) into one multi-function ``.mlpackage`` at ``output``.

    Args:
        models: two or more distinct single-function ML Program packages.
        output: the ``.mlpackage`` to write, atomically (it appears whole or not at all).
        names: one function name per model (default: ``model0``, ``model1``...).
        default: the default function (default: the first name).
        force: overwrite ``output`` if it exists.

    Raises:
        InputError: fewer than two models, the same package twice, a multi-function input, bad names,
            or an output that is not ``.mlpackage``.
        ModelLoadError: an input that is not a readable ML Program package.
        OutputExistsError: ``output`` exists and ``force`` is False.
    """
    from devicefit._lazy import coremltools
    from devicefit.io import atomic_path

    ct = coremltools()
    paths = [Path(m) for m in models]
    if len(paths) < 2:
        raise InputError(f"merge needs at least two models, got {len(paths)}")
    out = Path(output)
    if out.suffix != ".mlpackage":
        raise InputError(f"output {out} must end with .mlpackage")
    if out.exists() and not force:
        raise OutputExistsError(f"{out} exists; pass --force to overwrite it or choose another path")
    if any(p.resolve() == out.resolve() for p in paths):
        raise InputError(f"output {out} is also an input; write the merged package elsewhere")
    for p in paths:
        if not p.exists():
            raise ModelLoadError(f"model not found: {p}")
    seen: dict[Path, Path] = {}
    for p in paths:
        if p.resolve() in seen:
            raise InputError(f"{p} is given twice (as {seen[p.resolve()]}); give each package once")
        seen[p.resolve()] = p
    fn_names = _check_names(names or [f"model{i}" for i in range(len(paths))], len(paths))
    default = default or fn_names[0]
    if default not in fn_names:
        raise InputError(f"default function {default!r} is not one of {', '.join(fn_names)}")
    desc = ct.utils.MultiFunctionDescriptor()
    for path, name in zip(paths, fn_names):
        desc.add_function(str(path), src_function_name=_default_function(path), target_function_name=name)
    desc.default_function_name = default
    with atomic_path(out) as tmp:
        ct.utils.save_multifunction(desc, str(tmp))
    return MergeResult(
        output=out,
        functions=fn_names,
        default_function=default,
        input_weight_bytes={n: weight_bytes(p) for n, p in zip(fn_names, paths)},
        merged_weight_bytes=weight_bytes(out),
    )
