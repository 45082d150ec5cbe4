"""Gathering reuses a no for a few requests while no more callers come, and still sees a burst at once."""

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


def test_two_callers_told_no_reuse_it_and_a_burst_after_them_gathers_at_once():
    g = _gathering()

    async def main():  # type: ignore[no-untyped-def]
        async def one() -> int:
            return g.wanted(lambda: 16, 40e-6)

        async def caller(each: int) -> list[int]:
            out = []
            for _ in range(each):
                out.append(await one())  # in the caller's own task, as predict_async
                await asyncio.sleep(0)  # its request awaited: the other caller's turn
            return out

        closed = [w for ws in await asyncio.gather(caller(20), caller(20)) for w in ws]
        asked = g.costs._stale.copy()
        burst = await asyncio.gather(*[asyncio.create_task(one()) for _ in range(WINDOW + 8)])
        return closed, list(burst), asked

    closed, burst, asked = asyncio.run(main())
    assert not any(closed)  # two callers: a batch of 2 gains nothing, never gathered
    # the estimate was asked about 2 callers once per QUIET requests or so, not on every one of the 40
    assert 1 <= asked[2] <= 40 // QUIET + 1
    # a third caller asks again at once: the burst gathers as soon as its callers are counted (3 callers: a size
    # class never measured, so a trial; 8: measured cheaper)
    assert burst[0] == 16 and burst[-8:] == [16] * 8


def test_a_burst_of_calls_shorter_than_a_lone_turn_still_gathers_where_batches_are_cheap():
    """onnxruntime's 11 us MLP: batches of 16 cost 2.5 us a request. Costing every turn at the 15 us two callers
    pay kept a 400-request asyncio.gather from ever gathering (0.5x-0.6x sync, one call each); the loop pass a
    turn takes is shared by the callers in it, so a burst gathers while two callers still do not."""
    g = Gathering()
    for _ in range(3):
        g.record(2, 2 * 11.3e-6)  # a batch of two: no cheaper than two calls
        g.record(16, 16 * 2.5e-6)

    async def main():  # type: ignore[no-untyped-def]
        async def one() -> int:
            return g.wanted(lambda: 16, 11e-6)

        async def caller(each: int) -> list[int]:
            out = []
            for _ in range(each):
                out.append(await one())
                await asyncio.sleep(0)
            return out

        closed = [w for ws in await asyncio.gather(caller(20), caller(20)) for w in ws]
        burst = await asyncio.gather(*[asyncio.create_task(one()) for _ in range(WINDOW + 32)])
        return closed, list(burst)

    closed, burst = asyncio.run(main())
    assert not any(closed)
    assert all(w == 16 for w in burst[WINDOW:]), burst  # once the window holds the burst's callers
