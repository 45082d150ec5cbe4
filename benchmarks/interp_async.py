"""Async and batch throughput of the interp engine vs sync ``predict``, interleaved round by round.

For each model (a small depthwise-separable CNN, the zoo's ViT and BERT encoder, a tiny MLP for the "any model
size" floor, and the same CNN at several input sizes so the crossover between the inline and the worker path is
visible) it loads ``devicefit.load(pkg, engine="interp", max_in_flight=2)`` with the compiled path (default) and,
for the main rows, with ``compiled=False`` (the plain interpreter), torch at 1 thread. Each round runs, one
block after the other: N sync ``predict`` calls; N ``predict_async`` calls from 2 concurrent callers, each
awaiting its request before sending the next (a closed loop); N ``predict_async`` calls started at once
(``asyncio.gather``, the shape issue 13 measured); 2 callers through the least possible round trip (control: a
SimpleQueue to 2 bare threads running ``predict``, ``call_soon_threadsafe`` back: the ceiling of any
await-a-thread design for closed-loop callers on this machine); 2 callers awaiting a bare coroutine that calls
``predict`` (control: the floor of running requests on the awaiting thread); the same from 2 callers through the stdlib pattern ``await loop.run_in_executor(ThreadPoolExecutor(2), handle.predict,
feeds)`` (control: what plain asyncio + threads gets); N ``predict`` calls split over 2 plain threads (control:
how far the engine itself parallelises); one ``predict_batch`` of N. Reported: medians over rounds of each
throughput / sync throughput of the same round, the route the inline policy settled on (with its measured
call times alone and on a worker, and the worker handoff), and, before and after, two threads of a GIL-free matmul vs one (the
parallel capacity the machine gave: 2.0 on two idle cores). Targets (issue 13): async >= 1.6x sync for the small
CNN with 2 in flight and never below 1.0x; batch >= 1.0x.

    .venv/bin/python benchmarks/interp_async.py [--rounds 7] [--n 200] [--models ...] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import queue
import statistics
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
warnings.filterwarnings("ignore")


def small_cnn(size: int = 96):  # type: ignore[no-untyped-def]
    """Depthwise-separable conv net (MobileNet-v1 style), ~0.7 ms per 96x96 image on one thread."""
    import torch
    from torch import nn

    def dws(cin: int, cout: int, stride: int) -> list[nn.Module]:
        return [
            nn.Conv2d(cin, cin, 3, stride, 1, groups=cin),
            nn.ReLU(),
            nn.Conv2d(cin, cout, 1),
            nn.ReLU(),
        ]

    layers: list[nn.Module] = [nn.Conv2d(3, 16, 3, 2, 1), nn.ReLU()]
    layers += dws(16, 32, 1) + dws(32, 64, 2) + dws(64, 64, 1) + dws(64, 128, 2)
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(128, 10)]
    torch.manual_seed(0)
    return nn.Sequential(*layers).eval(), (torch.randn(1, 3, size, size),), ["x"]


def tiny_mlp():  # type: ignore[no-untyped-def]
    import torch
    from torch import nn

    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 4)).eval(), (torch.randn(1, 16),), ["x"]


def zoo_model(name: str):  # type: ignore[no-untyped-def]
    from tests.zoo import ZOO, build

    entry = next(e for e in ZOO if e.name == name)
    model, inputs = build(entry, batch=1)
    return model, inputs, entry.input_names


MODELS = {
    "small_cnn": small_cnn,
    "vit": lambda: zoo_model("vit"),
    "bert_encoder": lambda: zoo_model("bert_encoder"),
    "tiny_mlp": tiny_mlp,
    # the request-size sweep (compiled path only): the same CNN at other input sizes
    "small_cnn_64px": lambda: small_cnn(64),
    "small_cnn_128px": lambda: small_cnn(128),
    "small_cnn_160px": lambda: small_cnn(160),
}
SWEEP = {"small_cnn_64px", "small_cnn_128px", "small_cnn_160px"}


def measure(pkg: Path, feeds: dict, compiled: bool, rounds: int, n: int, inline_off: bool = False) -> dict:
    from concurrent.futures import ThreadPoolExecutor

    import devicefit

    options: dict = {"inline_below_s": None} if inline_off else {}
    handle = devicefit.load(pkg, engine="interp", max_in_flight=2, cache=False, compiled=compiled, **options)
    # control: the same, one engine call per request (no coalescing / gathering: the behaviour before them)
    single = devicefit.load(
        pkg, engine="interp", max_in_flight=2, cache=False, compiled=compiled, max_batch=1, **options
    )
    for _ in range(10):
        handle.predict(feeds)
        single.predict(feeds)
    executor = ThreadPoolExecutor(2)
    loop = asyncio.new_event_loop()

    def two_callers(submit) -> float:  # type: ignore[no-untyped-def]
        async def main() -> float:
            left = [n]

            async def caller() -> None:
                while left[0] > 0:
                    left[0] -= 1
                    await submit()

            start = time.perf_counter()
            await asyncio.gather(caller(), caller())
            return time.perf_counter() - start

        return loop.run_until_complete(main())

    def handle_async():  # type: ignore[no-untyped-def]
        return handle.predict_async(feeds)

    def gathered(h=handle) -> float:  # type: ignore[no-untyped-def]
        # the other common shape of async load: every request started at once (asyncio.gather over a list,
        # the way issue 13 measured it: 60 requests), max_in_flight=2 bounding how many run
        async def main() -> float:
            start = time.perf_counter()
            await asyncio.gather(*[h.predict_async(feeds) for _ in range(n)])
            return time.perf_counter() - start

        return loop.run_until_complete(main())

    # Control: the least any "await a result computed on another thread" design costs, with nothing but the
    # round trip itself (a SimpleQueue to 2 bare threads, call_soon_threadsafe back): what 2 closed-loop
    # callers can reach on this machine whatever the scheduler does.
    bare_queue: queue.SimpleQueue = queue.SimpleQueue()

    def bare_worker() -> None:
        while (item := bare_queue.get()) is not None:
            fut, result_loop = item
            result = handle.predict(feeds)
            result_loop.call_soon_threadsafe(fut.set_result, result)

    bare_threads = [threading.Thread(target=bare_worker, daemon=True) for _ in range(2)]
    for t in bare_threads:
        t.start()

    async def bare_inline():  # type: ignore[no-untyped-def]
        # control: the least an awaited request run on the awaiting thread can cost (a coroutine around predict)
        return handle.predict(feeds)

    def bare_round_trip():  # type: ignore[no-untyped-def]
        fut = loop.create_future()
        bare_queue.put((fut, loop))
        return fut

    def stdlib_executor():  # type: ignore[no-untyped-def]
        return loop.run_in_executor(executor, handle.predict, feeds)

    def two_threads() -> float:
        def work(count: int) -> None:
            for _ in range(count):
                handle.predict(feeds)

        threads = [threading.Thread(target=work, args=(k,)) for k in (n // 2, n - n // 2)]
        start = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return time.perf_counter() - start

    def sync() -> float:
        start = time.perf_counter()
        for _ in range(n):
            handle.predict(feeds)
        return time.perf_counter() - start

    def batch() -> float:
        start = time.perf_counter()
        handle.predict_batch([feeds] * n)
        return time.perf_counter() - start

    for _ in range(2):  # the interpreter's batched graphs are built on a batch size's second use (not timed)
        handle.predict_batch([feeds] * n)
    two_callers(handle_async)  # start the worker threads; the inline policy takes its first measurements
    two_callers(stdlib_executor)
    two_callers(bare_round_trip)
    gathered()
    two_callers(lambda: single.predict_async(feeds))
    gathered(single)
    ratios: dict[str, list[float]] = {
        "async": [],
        "async_single": [],
        "gathered": [],
        "gathered_single": [],
        "bare": [],
        "bare_inline": [],
        "executor": [],
        "threads": [],
        "batch": [],
    }
    sync_ms = []
    for _ in range(rounds):
        base = sync()
        ratios["async"].append(base / two_callers(handle_async))
        ratios["gathered"].append(base / gathered())
        ratios["async_single"].append(base / two_callers(lambda: single.predict_async(feeds)))
        ratios["gathered_single"].append(base / gathered(single))
        ratios["bare"].append(base / two_callers(bare_round_trip))
        ratios["bare_inline"].append(base / two_callers(bare_inline))
        ratios["executor"].append(base / two_callers(stdlib_executor))
        ratios["threads"].append(base / two_threads())
        ratios["batch"].append(base / batch())
        sync_ms.append(base / n * 1e3)
    loop.close()
    executor.shutdown()
    for _ in bare_threads:
        bare_queue.put(None)
    for t in bare_threads:
        t.join()
    sched = handle._scheduler
    policy = getattr(sched, "policy", None)  # None: no scheduler yet, or a checkout before the policy
    handle.unload()
    single.unload()
    return {
        "sync_ms": statistics.median(sync_ms),
        "async_ratio": statistics.median(ratios["async"]),
        "async_min": min(ratios["async"]),
        "gathered_ratio": statistics.median(ratios["gathered"]),
        "async_single_ratio": statistics.median(ratios["async_single"]),
        "gathered_single_ratio": statistics.median(ratios["gathered_single"]),
        "batched_calls": getattr(sched, "batched_runs", 0)
        + getattr(getattr(sched, "gathering", None), "batches", 0),
        "bare_ratio": statistics.median(ratios["bare"]),
        "bare_inline_ratio": statistics.median(ratios["bare_inline"]),
        "executor_ratio": statistics.median(ratios["executor"]),
        "threads_ratio": statistics.median(ratios["threads"]),
        "batch_ratio": statistics.median(ratios["batch"]),
        "route": "inline" if policy is not None and policy.prefers_inline() else "workers",
        "call_us": None if policy is None or policy.call_s is None else policy.call_s * 1e6,
        "handoff_us": None if policy is None or policy.handoff_s is None else policy.handoff_s * 1e6,
        "worker_call_us": None
        if policy is None or policy.worker_call_s is None
        else policy.worker_call_s * 1e6,
        "lane_call_us": None
        if policy is None or getattr(policy, "lane_call_s", None) is None
        else policy.lane_call_s * 1e6,
    }


def machine_parallelism(seconds: float = 1.0) -> float:
    """Throughput of 2 threads over 1 on a GIL-free torch matmul loop: what 2 in flight can gain right now.

    On a shared machine other processes take cores; this control says how much parallel capacity the
    async figures were measured with (2.0 on two idle cores).
    """

    import torch

    a = torch.randn(256, 256)

    def work(count: int) -> None:
        for _ in range(count):
            torch.mm(a, a)

    work(20)
    start = time.perf_counter()
    count = 0
    while time.perf_counter() - start < seconds:
        work(20)
        count += 20
    serial = time.perf_counter() - start
    threads = [threading.Thread(target=work, args=(count // 2,)) for _ in range(2)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return serial / (time.perf_counter() - start)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", default=",".join(MODELS), help=f"comma-separated, of {', '.join(MODELS)}")
    parser.add_argument("--rounds", type=int, default=7)
    # NOTE: 200, not 40: a block of 40 (~27 ms on the small CNN) was dominated by start-up (the 2-thread
    # control starts its threads per block, and a new thread's first TorchScript call costs ~5 ms), which read
    # 1.2x for two plain threads that reach 1.9x in longer blocks
    parser.add_argument("--n", type=int, default=200, help="requests per block")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument(
        "--compiled-only", action="store_true", help="skip the plain-interpreter rows (compiled path only)"
    )
    parser.add_argument(
        "--inline-off",
        action="store_true",
        help="load with inline_below_s=None: every async request on a worker",
    )
    args = parser.parse_args()

    import torch

    from devicefit._malloc import tune_malloc
    from tests.helpers import convert

    tune_malloc()
    torch.set_num_threads(1)
    rows = []
    header = (
        f"{'model':16s} {'path':11s} {'sync ms':>8s} {'async/sync':>14s} {'gathered':>9s} {'1-call':>11s} "
        f"{'bare':>6s} {'inl.':>5s} "
        f"{'executor':>9s} {'2 threads':>9s} "
        f"{'batch':>6s} {'route (c / w / h / l us)':>30s} {'machine':>8s}"
    )
    print(header, flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            model, inputs, names = MODELS[name]()
            pkg = Path(tmp) / f"{name}.mlpackage"
            convert(model, inputs, target="iOS18", precision="fp32", input_names=names).save(str(pkg))
            feeds = {n: t.numpy() for n, t in zip(names, inputs)}
            for compiled in (True,) if name in SWEEP or args.compiled_only else (True, False):
                before = machine_parallelism(0.5)
                r = measure(pkg, feeds, compiled, args.rounds, args.n, args.inline_off)
                r["machine_parallelism"] = (before + machine_parallelism(0.5)) / 2
                rows.append({"model": name, "compiled": compiled, **r})
                known = [r["call_us"], r["worker_call_us"], r["handoff_us"], r["lane_call_us"]]
                learned = (
                    f"{r['route']} ({' / '.join('-' if v is None else f'{v:.0f}' for v in known)})"
                    if None not in known[:3]
                    else r["route"]
                )
                print(
                    f"{name:16s} {'compiled' if compiled else 'interpreter':11s} {r['sync_ms']:8.3f} "
                    f"{r['async_ratio']:5.2f}x (>={r['async_min']:.2f}) {r['gathered_ratio']:8.2f}x "
                    f"{r['async_single_ratio']:4.2f}/{r['gathered_single_ratio']:4.2f}x {r['bare_ratio']:5.2f}x "
                    f"{r['bare_inline_ratio']:4.2f}x "
                    f"{r['executor_ratio']:8.2f}x "
                    f"{r['threads_ratio']:8.2f}x {r['batch_ratio']:5.2f}x {learned:>30s} "
                    f"{r['machine_parallelism']:7.2f}x",
                    flush=True,
                )
    print(
        "async/sync (2 callers, each awaiting its request before the next), gathered (N predict_async started at "
        "once, as issue 13 measured), 1-call (control: the same two with max_batch=1, one engine call per request, "
        "no coalescing or gathering: closed loop / gathered), bare (control: 2 callers through the least possible round trip, a SimpleQueue "
        "to 2 bare threads and call_soon_threadsafe back), inl. (control: 2 callers awaiting a bare coroutine around "
        "predict, the floor of any request run on the awaiting thread), executor (stdlib run_in_executor, 2 threads), 2 threads (plain threads on predict) and batch "
        "(per sample): throughput / sync throughput, medians over rounds (>= the worst round); route: where the "
        "inline policy sent requests, from c (engine call alone), w (call on a worker under this load), h (worker "
        "handoff) and l (call on the caller lane); machine: 2 threads / 1 on a GIL-free matmul (2.0 = two idle cores)"
    )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
