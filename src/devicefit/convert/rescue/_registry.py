"""The rescue table and its scoped installation into coremltools' torch op registry.

coremltools keeps one process-wide registry (``_TORCH_OPS_REGISTRY``) of torch op translations. devicefit's
translations are put there only for the duration of a conversion or scan (:func:`rescue_translations`) and
the registry is restored afterwards, so other coremltools users in the process see stock coremltools.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Rescue:
    """One translation: the torch op name (as coremltools sanitizes it), the function, and why it exists.

    Attributes:
        op: the sanitized torch op kind (``"diff"``, ``"upsample_bicubic2d"``).
        fn: ``fn(context, node)`` adding MIL ops for the node to the context.
        reason: why coremltools needs it (shown in docs and reports).
        override: replace coremltools' own translation (it exists but mishandles a case).
        aliases: further registry keys for the same translation.
    """

    op: str
    fn: Callable[[Any, Any], None]
    reason: str
    override: bool = False
    aliases: tuple[str, ...] = ()


RESCUES: dict[str, Rescue] = {}

# Returned by a translation that handed its node to coremltools' own translation (an override that fixes one
# case only, e.g. circular padding): the node is then not counted as a use of devicefit's translation.
DELEGATED = object()
_uses = threading.local()

# Nesting depth of rescue_translations() and what the outermost one replaced (key -> original or None).
_lock = threading.RLock()
_depth = 0
_saved: dict[str, Callable | None] = {}
_active: list[str] = []


def rescue(
    op: str, reason: str, override: bool = False, aliases: tuple[str, ...] = ()
) -> Callable[[Callable], Callable]:
    """Register ``fn(context, node)`` as the translation of torch op ``op`` in the rescue table.

    ``aliases`` are further registry keys for the same translation (installed under the same rule).
    """

    def wrap(fn: Callable) -> Callable:
        RESCUES[op] = Rescue(op=op, fn=fn, reason=reason, override=override, aliases=aliases)
        return fn

    return wrap


@contextlib.contextmanager
def rescue_translations() -> Iterator[list[str]]:
    """Install devicefit's translations into coremltools' torch frontend while the block runs.

    A translation whose op coremltools already handles is skipped (a newer coremltools wins) unless its
    entry says ``override``. Nested uses share one installation; the outermost exit restores every
    registry entry it changed (and removes the ones it added). Other threads converting with coremltools
    at the same time see the translations too: the registry is one dict.

    Yields:
        The names of the torch ops whose translation devicefit provides inside the block.
    """
    global _depth
    with _lock:
        if _depth == 0:
            _install()
        _depth += 1
        active = list(_active)
    try:
        yield active
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                _restore()


def _install() -> None:
    from devicefit.convert.rescue.passes import patch_passes

    _patch_early_exit()
    patch_passes()
    mapping = _registry().name_to_func_mapping
    get = _registry().get_func
    _saved.clear()
    _active.clear()
    for entry in RESCUES.values():
        if not entry.override and get(entry.op) is not None:
            continue
        translation = _named(entry.fn, entry.op)
        for key in (entry.op, *entry.aliases):
            if entry.override or key not in mapping:
                _saved.setdefault(key, mapping.get(key))
                mapping[key] = translation
        _active.append(entry.op)


def _restore() -> None:
    from devicefit.convert.rescue.passes import unpatch_passes

    _unpatch_early_exit()
    unpatch_passes()
    mapping = _registry().name_to_func_mapping
    for key, original in _saved.items():
        if original is None:
            mapping.pop(key, None)
        else:
            mapping[key] = original
    _saved.clear()
    _active.clear()


# TorchScript in-place ops that write into a tensor a graph output may alias (see rescue/index_put.py)
_PENDING_WRITES = frozenset({"index_put_"})
_early_exit: list[Callable] = []


def _patch_early_exit() -> None:
    """Keep coremltools' TorchScript loop converting until every ``index_put_`` node is translated.

    NOTE: coremltools stops converting as soon as every graph output has a value. An in-place write that comes
    after the output's producer (``y = x.clone(); y[i, j, :] = v; return y``) was never translated, so the model
    silently returned ``y`` unwritten.
    """
    from coremltools.converters.mil.frontend.torch import ops

    original = ops._all_outputs_present
    _early_exit.append(original)

    def outputs_present_and_writes_done(context: Any, graph: Any) -> bool:
        if not original(context, graph):
            return False
        for node in getattr(graph, "nodes", ()):
            if node.kind in _PENDING_WRITES:
                try:
                    context[node.outputs[0]]
                except ValueError:
                    return False
        return True

    ops._all_outputs_present = outputs_present_and_writes_done


def _unpatch_early_exit() -> None:
    from coremltools.converters.mil.frontend.torch import ops

    if _early_exit:
        ops._all_outputs_present = _early_exit.pop()


def _registry() -> Any:
    from devicefit._lazy import coremltools

    coremltools()
    from coremltools.converters.mil.frontend.torch.torch_op_registry import _TORCH_OPS_REGISTRY

    return _TORCH_OPS_REGISTRY


def is_rescue(fn: Callable | None) -> bool:
    """Whether ``fn`` (a coremltools registry entry) is one of devicefit's translations."""
    return getattr(fn, "_devicefit_rescue", False)


@contextlib.contextmanager
def recorded_uses() -> Iterator[set[str]]:
    """Collect, in this thread, the ops whose devicefit translation built a node's MIL ops itself."""
    previous = getattr(_uses, "ops", None)
    used: set[str] = set()
    _uses.ops = used
    try:
        yield used
    finally:
        _uses.ops = previous


def _named(fn: Callable, op: str) -> Callable:
    def translation(context: Any, node: Any) -> None:
        if fn(context, node) is not DELEGATED:
            used = getattr(_uses, "ops", None)
            if used is not None:
                used.add(op)

    translation.__name__ = op
    translation.__doc__ = fn.__doc__
    translation._devicefit_rescue = True  # type: ignore[attr-defined]
    return translation
