"""``Model.stream``: predictions on a live producer, keeping only the freshest frames."""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from devicefit.errors import InputError

if TYPE_CHECKING:
    from devicefit.runtime.handle import Model


@dataclass
class StreamResult:
    """One processed frame of :meth:`Model.stream`.

    Attributes:
        index: position of the frame in the producer's sequence.
        outputs: the prediction.
        skipped: frames the producer made that were replaced by fresher ones before this result.
    """

    index: int
    outputs: dict[str, np.ndarray]
    skipped: int


async def stream(
    model: Model, frames: AsyncIterable[Mapping[str, Any]] | Iterable[Mapping[str, Any]], keep: int = 1
) -> AsyncGenerator[StreamResult, None]:
    """Predict on a live producer (a camera), keeping only the freshest ``keep`` unprocessed frames.

    Frames that arrive while older ones wait are discarded oldest-first, so results never lag behind
    the producer by more than ``keep`` frames plus the one being processed.
    """
    if keep < 1:
        raise InputError(f"keep must be >= 1, got {keep}")
    pending: deque[tuple[int, Mapping[str, Any]]] = deque()
    arrived = asyncio.Event()
    state = {"done": False, "skipped": 0}

    async def pump() -> None:
        index = 0
        try:
            if isinstance(frames, AsyncIterable):
                async for f in frames:
                    _push(index, f)
                    index += 1
            else:
                for f in frames:
                    _push(index, f)
                    index += 1
                    await asyncio.sleep(0)
        finally:
            state["done"] = True
            arrived.set()

    def _push(index: int, f: Mapping[str, Any]) -> None:
        if len(pending) >= keep:
            pending.popleft()
            state["skipped"] += 1
        pending.append((index, f))
        arrived.set()

    producer = asyncio.create_task(pump())
    try:
        while True:
            if not pending:
                if state["done"]:
                    break
                arrived.clear()
                await arrived.wait()
                continue
            index, f = pending.popleft()
            skipped, state["skipped"] = state["skipped"], 0
            yield StreamResult(index, await model.predict_async(f), skipped)
        await producer  # surface a producer's exception
    finally:
        if not producer.done():
            producer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await producer
