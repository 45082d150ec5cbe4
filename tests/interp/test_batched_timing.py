"""A batched graph is used only where it was timed faster than the single calls it replaces.

A 96 px CNN's batch of 16 costs 0.56x sixteen single calls, the same CNN at 160 px 1.15x (its activations no
longer fit the cache): ``predict_batch`` then ran 0.87x-0.93x slower per sample than N ``predict`` calls.
"""

from __future__ import annotations

from devicefit.interp.batched import BatchedGraph
from tests.interp.test_batched import assert_matches, engine_for, requests


def test_a_build_times_the_batched_call_against_the_single_calls():
    engine, shape = engine_for("mlp")
    batch = requests(shape, 4)
    engine.predict_validated(batch[0])  # the single graph compiled
    engine.predict_batch_validated(batch)
    engine.predict_batch_validated(batch)  # second need: built, checked and timed
    (graph,) = engine.batched.graphs
    assert graph.size == 4
    assert graph.batched_s is not None and graph.batched_s > 0
    assert graph.singles_s is not None and graph.singles_s > 0
    assert graph.faster == (graph.batched_s < graph.singles_s)


def test_a_batched_graph_timed_slower_is_not_used(monkeypatch):
    engine, shape = engine_for("mlp")
    batch = requests(shape, 4)
    want = [engine.predict_validated(f) for f in batch]
    engine.predict_batch_validated(batch)
    engine.predict_batch_validated(batch)
    (graph,) = engine.batched.graphs
    graph.batched_s, graph.singles_s = 2e-3, 1e-3  # as a 160 px CNN's batches time
    assert not graph.faster
    calls: list[int] = []
    run = BatchedGraph.run

    def counting(self, stacked):  # type: ignore[no-untyped-def]
        calls.append(self.size)
        return run(self, stacked)

    monkeypatch.setattr(BatchedGraph, "run", counting)
    got = engine.predict_batch_validated(batch)
    assert calls == []  # one single-graph call per request
    assert_matches(got, want, None)  # the single graph's own outputs, bit for bit
    graph.batched_s = 0.5e-3  # timed faster: used
    engine.predict_batch_validated(batch)
    assert calls == [4]
