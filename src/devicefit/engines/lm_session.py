"""Token-by-token execution of a causal LM: the stateful package in the interpreter, or PyTorch.

Both runners keep one *session* (the tokens seen so far; for the package, its states: the KV cache, and
whatever other state the package declares, such as LFM2's ``conv_state``) and expose ``feed(ids) -> logits``
for the new tokens, so generation and perplexity code is written once for both. The interpreter runner loads
``prefill`` and ``decode`` once; sessions are cheap (a few state arrays each).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from devicefit.errors import InputError

__all__ = ["InterpLM", "LMRunner", "StepTrace", "TorchLM", "greedy", "nll_per_token"]


class LMRunner(Protocol):
    """One generation session."""

    max_context: int

    def reset(self) -> None:
        """Forget every token (a new session)."""

    def feed(self, ids: np.ndarray) -> np.ndarray:
        """Append ``ids`` (1-D ints) to the session; return their logits, shape (len(ids), vocab), float32."""


def _mask(seq: int, end: int) -> np.ndarray:
    from devicefit.convert.lm_wrapper import MASK_MIN

    rows = np.arange(seq)[:, None] + (end - seq)
    cols = np.arange(end)[None, :]
    return np.where(cols <= rows, 0.0, MASK_MIN).astype(np.float32)[None, None]


@dataclass
class _Functions:
    prefill: Any
    decode: Any
    max_context: int
    prefill_lengths: list[int] | None
    # every state decode declares (k_cache, v_cache, and e.g. conv_state): carried from call to call
    state_names: tuple[str, ...] = ("k_cache", "v_cache")

    @property
    def positional(self) -> bool:
        """True when every state is indexed by position (a KV cache): padded positions are overwritten later.
        A state without positions (a convolution state) would keep the padding, so prompts are not padded."""
        return set(self.state_names) <= {"k_cache", "v_cache"}


_LOADED: dict[tuple[str, float], _Functions] = {}
_MAX_LOADED = 4


def _load_functions(package: str | os.PathLike[str]) -> _Functions:
    import devicefit.interp as interp

    path = Path(package)
    key = (str(path.resolve()), path.stat().st_mtime if path.exists() else 0.0)
    if key in _LOADED:
        return _LOADED[key]
    decode = interp.load(path, function="decode")
    names = {s.name for s in decode.states}
    if not {"k_cache", "v_cache"} <= names:
        raise InputError(
            f"{path} is not a devicefit stateful LM package (decode states: {sorted(names) or 'none'}); "
            "convert it with devicefit.convert.stateful.convert_causal_lm"
        )
    prefill = interp.load(path, function="prefill")
    ids = next(s for s in prefill.inputs if s.name == "input_ids")
    lengths = sorted(s[1] for s in ids.enumerated_shapes) if ids.enumerated_shapes else None
    k = next(s for s in decode.states if s.name == "k_cache")
    state_names = tuple(s.name for s in decode.states)
    fns = _Functions(prefill, decode, int(k.shape[3]) if k.shape else 0, lengths, state_names)
    if len(_LOADED) >= _MAX_LOADED:  # keep the few packages in use, not every one ever opened
        _LOADED.pop(next(iter(_LOADED)))
    _LOADED[key] = fns
    return fns


@dataclass
class InterpLM:
    """The package in devicefit's interpreter, one session.

    Args:
        package: a stateful LM package written by ``convert_causal_lm``.
        precision: ``"fp32"`` or ``"fp16"`` (emulated) interpreter precision.
    """

    package: str | os.PathLike[str]
    precision: str = "fp32"
    position: int = 0
    states: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._fns = _load_functions(self.package)
        self.max_context = self._fns.max_context
        self.reset()

    def reset(self) -> None:
        """Zero every state (the KV cache and any other)."""
        self.position = 0
        self.states = self._fns.decode.new_states()

    def _run(self, fn: Any, ids: np.ndarray, seq: int) -> np.ndarray:
        end = self.position + seq
        out = fn.run(
            {"input_ids": ids.astype(np.int32)[None], "causal_mask": _mask(seq, end)},
            precision=self.precision,
            states=self.states,
        )
        self.states = {name: out[name] for name in self._fns.state_names}
        return np.asarray(out["logits"], dtype=np.float32)[0]

    def feed(self, ids: np.ndarray) -> np.ndarray:
        """Append ``ids``: ``prefill`` for a prompt into an empty cache, ``decode`` token by token after."""
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        if self.position + len(ids) > self.max_context:
            raise InputError(
                f"{self.position + len(ids)} tokens exceed the package's context of {self.max_context}; "
                "re-convert with a larger --max-context or start a new session"
            )
        if self.position == 0 and len(ids) > 1:
            lengths = self._fns.prefill_lengths
            if lengths is None:
                logits = self._run(self._fns.prefill, ids, len(ids))
                self.position = len(ids)
                return logits
            fit = [n for n in lengths if n >= len(ids)] if self._fns.positional else []
            if fit:  # pad to the enumerated length; decode later overwrites the padded cache slots
                padded = np.concatenate([ids, np.zeros(fit[0] - len(ids), dtype=np.int64)])
                logits = self._run(self._fns.prefill, padded, fit[0])[: len(ids)]
                self.position = len(ids)
                return logits
        rows = []
        for token in ids:
            rows.append(self._run(self._fns.decode, np.array([token]), 1)[0])
            self.position += 1
        return np.stack(rows)

    def trace(self, ids: np.ndarray) -> StepTrace:
        """Append ``ids`` in one call, as :meth:`feed` would (a prompt into an empty cache: ``prefill``; one
        token: ``decode``), keeping every intermediate value: what localising a generation step compares."""
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        if self.position == 0 and len(ids) > 1:
            function, fn, padded = "prefill", self._fns.prefill, ids
            lengths = self._fns.prefill_lengths
            fit = [n for n in lengths or [] if n >= len(ids)]
            if lengths is not None and not fit:
                raise InputError(f"a {len(ids)}-token prompt exceeds every prefill length ({lengths})")
            if fit and fit[0] != len(ids) and not self._fns.positional:
                raise InputError(
                    f"a {len(ids)}-token prompt would be padded to {fit[0]}, and this package's "
                    f"{', '.join(n for n in self._fns.state_names if n not in ('k_cache', 'v_cache'))} state "
                    "would keep the padding; trace a prompt of an enumerated length"
                )
            if fit:
                padded = np.concatenate([ids, np.zeros(fit[0] - len(ids), dtype=np.int64)])
        elif len(ids) == 1 and self.position + 1 <= self.max_context:
            function, fn, padded = "decode", self._fns.decode, ids
        else:
            raise InputError("trace takes a prompt into an empty session, or one token that fits the context")
        end = self.position + len(padded)
        feeds = {"input_ids": padded.astype(np.int32)[None], "causal_mask": _mask(len(padded), end)}
        before = {k: np.array(v, dtype=np.float32, copy=True) for k, v in self.states.items()}
        values = fn.run(feeds, precision=self.precision, states=self.states, intermediates=True)
        self.states = {name: values[name] for name in self._fns.state_names}
        self.position += len(ids)
        return StepTrace(function, fn, feeds, before, values)


@dataclass
class StepTrace:
    """One call of a package function with every intermediate value (see :meth:`InterpLM.trace`).

    Attributes:
        function: ``"prefill"`` or ``"decode"``.
        program: the function's :class:`devicefit.interp.Program`.
        feeds: its inputs (``input_ids``, ``causal_mask``).
        states: the states it read (``k_cache`` / ``v_cache`` and any other, before the call).
        values: every named value it computed (outputs, intermediates and the states after).
    """

    function: str
    program: Any
    feeds: dict[str, np.ndarray]
    states: dict[str, np.ndarray]
    values: dict[str, Any]


class TorchLM:
    """The original PyTorch model: recomputes over the whole session each call (the plain reference)."""

    def __init__(self, model: Any, max_context: int):
        self.model = model
        self.max_context = max_context
        self.tokens: list[int] = []

    def reset(self) -> None:
        """Forget every token."""
        self.tokens = []

    def feed(self, ids: np.ndarray) -> np.ndarray:
        """Append ``ids`` and return their logits."""
        import torch

        from devicefit.convert.frontends import _library_logs_quiet

        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        self.tokens.extend(int(t) for t in ids)
        # quiet: transformers' notices about its own kernels (LFM2: "install causal_conv1d for the optimized
        # kernel", a CUDA package) say nothing about the model being checked
        with torch.no_grad(), _library_logs_quiet():
            logits = self.model(torch.tensor([self.tokens])).logits[0, -len(ids) :]
        return logits.float().numpy()


def greedy(runner: LMRunner, prompt: np.ndarray, steps: int, forced: np.ndarray | None = None) -> np.ndarray:
    """Greedy generation: the logits of each of ``steps`` generated positions, shape (steps, vocab).

    With ``forced`` (teacher forcing), the runner is fed those tokens instead of its own argmax, so its
    logits can be compared step by step with a reference that generated ``forced``.
    """
    runner.reset()
    logits = [runner.feed(np.asarray(prompt))[-1]]
    for i in range(steps - 1):
        token = int(forced[i]) if forced is not None else int(np.argmax(logits[-1]))
        logits.append(runner.feed(np.array([token]))[0])
    return np.stack(logits)


def nll_per_token(runner: LMRunner, tokens: np.ndarray) -> float:
    """Mean negative log-likelihood (nats) of ``tokens[1:]`` given the prefix, in one prompt feed."""
    runner.reset()
    tokens = np.asarray(tokens, dtype=np.int64)[: runner.max_context]
    logits = runner.feed(tokens).astype(np.float64)
    logits -= logits.max(axis=-1, keepdims=True)
    logp = logits - np.log(np.exp(logits).sum(axis=-1, keepdims=True))
    return float(-logp[np.arange(len(tokens) - 1), tokens[1:]].mean())
