"""model.generate / stream_generate on a stateful LM package: greedy tokens, sessions, continuation."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from devicefit.engines.lm_session import TorchLM, greedy
from devicefit.errors import InputError
from devicefit.runtime import handle as runtime


def _torch_greedy(model: object, prompt: list[int], n: int) -> list[int]:
    return greedy(TorchLM(model, 24), np.array(prompt), n).argmax(axis=-1).tolist()


def test_generate_matches_pytorch_greedy(llama_pkg: tuple[object, Path]) -> None:
    model, pkg = llama_pkg
    handle = runtime.load(str(pkg), engine="interp", function="decode")
    assert handle.generate([5, 7, 11], 6) == _torch_greedy(model, [5, 7, 11], 6)


def test_sessions_are_independent_and_continue(llama_pkg: tuple[object, Path]) -> None:
    model, pkg = llama_pkg
    handle = runtime.load(str(pkg), engine="interp", function="decode")
    a, b = handle.new_session(), handle.new_session()
    first = handle.generate([1, 2], 3, session=a)
    other = handle.generate([9], 2, session=b)  # interleaved: must not disturb session a's cache
    more = handle.generate([4], 3, session=a)
    # the same conversation in one PyTorch run: prompt, 3 tokens, then [4], then 3 tokens
    ref_first = _torch_greedy(model, [1, 2], 3)
    ref_more = _torch_greedy(model, [1, 2, *ref_first, 4], 3)
    assert (first, more) == (ref_first, ref_more)
    assert other == _torch_greedy(model, [9], 2)


def test_stream_generate_yields_the_same_tokens(llama_pkg: tuple[object, Path]) -> None:
    _, pkg = llama_pkg
    handle = runtime.load(str(pkg), engine="interp", function="decode")

    async def collect() -> list[int]:
        return [t async for t in handle.stream_generate([3, 3], 4)]

    assert asyncio.run(collect()) == handle.generate([3, 3], 4)


def test_generate_rejects_what_does_not_fit(llama_pkg: tuple[object, Path]) -> None:
    _, pkg = llama_pkg
    handle = runtime.load(str(pkg), engine="interp", function="decode")
    with pytest.raises(InputError, match="exceed the context of 24"):
        handle.generate(list(range(20)), 10)
    with pytest.raises(InputError, match="prompt is empty"):
        handle.generate([], 2)
    with pytest.raises(InputError, match="max_new_tokens must be at least 1"):
        handle.generate([1], 0)
