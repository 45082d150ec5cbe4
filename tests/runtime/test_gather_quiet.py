"""Gathering's check skips a few requests after it said no, and still sees a burst that follows."""

from __future__ import annotations

import asyncio

from devicefit.runtime.gather import QUIET, WINDOW, Gathering


def _gathering() -> Gathering:
    g = Gathering()
    # a call costs 40 us; measured: a batch of 2 as much per request (no), a batch of 8 and up 2 us (yes)
    for _ in range(3):
        g.record(2, 2 * 40e-6)
        g.record(8, 8 * 2e-6)
    return g


def test_two_callers_told_no_skip_the_check_then_a_burst_gathers():
    g = _gathering()

    async def main() -> tuple[list[int], list[int]]:
        async def one() -> int:
            return g.wanted(lambda: 16, 40e-6)

        async def caller(each: int) -> list[int]:
            return [await asyncio.create_task(one()) for _ in range(each)]

        closed = [w for ws in await asyncio.gather(caller(20), caller(20)) for w in ws]
        burst = await asyncio.gather(*[asyncio.create_task(one()) for _ in range(QUIET + WINDOW + 8)])
        return closed, list(burst)

    closed, burst = asyncio.run(main())
    assert not any(closed)  # two callers: a batch of 2 gains nothing, never gathered
    assert burst[:QUIET] == [0] * QUIET  # told no just before: quiet
    assert burst[-8:] == [16] * 8  # then the many callers are counted and gather at the engine's limit
