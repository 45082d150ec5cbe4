"""Stage 3: run the converted program (fp32 and fp16) and PyTorch on the data, and compare them."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from devicefit.check.sources import has_reference
from devicefit.check.types import CheckOptions, Progress

SMALL_VALUE_ELEMENTS = 1 << 18
# torch's thread count is process-wide: concurrent checks share one setting, restored by the last to leave
_THREADS_LOCK = threading.Lock()
_THREADS_USERS = 0
_THREADS_BEFORE = 0


def _largest_value(program: Any) -> int:
    sizes = [
        int(np.prod([d or 1 for d in shape])) if shape else 1
        for step in program.plan.block.steps
        for shape in step.ctx.output_shapes
        if shape is not None
    ]
    return max(sizes, default=0)


@contextlib.contextmanager
def threads_for(program: Any) -> Iterator[None]:
    """Run small models single-threaded while validating; the thread count is restored on exit.

    NOTE: per-sample runs of small tensors spend their time in thread hand-offs: on a busy 2-core machine
    the demo validates ~10x faster with one torch thread. Large values still get every thread. torch's
    setting is process-wide, so nested / concurrent uses are counted and the first caller's value is
    restored when the last one leaves.
    """
    global _THREADS_USERS, _THREADS_BEFORE
    if _largest_value(program) >= SMALL_VALUE_ELEMENTS:
        yield
        return
    import torch

    with _THREADS_LOCK:
        if _THREADS_USERS == 0:
            _THREADS_BEFORE = torch.get_num_threads()
            torch.set_num_threads(1)
        _THREADS_USERS += 1
    try:
        yield
    finally:
        with _THREADS_LOCK:
            _THREADS_USERS -= 1
            if _THREADS_USERS == 0:
                torch.set_num_threads(_THREADS_BEFORE)


def program_feeds(feeds: dict[str, Any], image_inputs: dict[str, Any], program: Any = None) -> dict[str, Any]:
    """The data as the converted model takes it: image inputs as pixels, bool masks as floats.

    Data (and PyTorch) use the normalised tensor ``x``; a Core ML image input applies ``pixel * scale + bias``
    itself, so the program is fed ``(x - bias) / scale`` per channel (axis 1). Core ML has no bool inputs:
    coremltools declares a bool tensor input (a padding mask) as fp32, so with ``program`` given, a bool array
    for an input the program declares float is fed as 0.0 / 1.0 (what an app passes on the device).
    """
    out = dict(feeds)
    if program is not None:
        from devicefit.interp import dtypes

        for spec in program.inputs:
            value = out.get(spec.name)
            if value is not None and np.asarray(value).dtype == np.bool_ and dtypes.is_float(spec.dtype):
                out[spec.name] = np.asarray(value, dtype=np.float32)
    for name, img in image_inputs.items():
        if name not in out:
            continue
        x = np.asarray(out[name], dtype=np.float32)
        bias = np.asarray(img.bias, dtype=np.float32).reshape([1, -1] + [1] * (x.ndim - 2))
        out[name] = ((x - bias) / np.float32(img.scale)).astype(np.float32)
    if program is not None:
        for name, saved in renamed_inputs(list(out), program).items():
            out[saved] = out.pop(name)
    return out


def renamed_inputs(names: list[str], program: Any) -> dict[str, str]:
    """PyTorch input name -> the converted program's, for the inputs coremltools renamed (an input called
    ``state`` or ``tensor``, words MIL reserves, is ``state_workaround`` in the program): the app feeds that
    name, and check feeds the program by it."""
    from devicefit.convert.options import saved_value_name

    declared = {spec.name for spec in program.inputs}
    out = {}
    for name in names:
        if name not in declared:
            saved = saved_value_name(name)
            if saved in declared and saved not in names:
                out[name] = saved
    return out


@dataclass
class Runs:
    """Per-sample outputs of each run (outputs only: intermediates are compared as they are produced).

    Attributes:
        torch: PyTorch's outputs (empty without a reference).
        fp32: the program computing in float32.
        fp16: the program emulating fp16.
        divergence: the fp16-vs-fp32 per-op comparison over the first samples.
        divergence_shapes: value name -> shape, as seen in the first sample's run.
        padding: where the data's attention mask marks padding (:class:`devicefit.compare.padding.Padding`,
            None without padding): those positions are left out of the output comparisons.
    """

    torch: list[dict[str, Any]] = field(default_factory=list)
    fp32: list[dict[str, Any]] = field(default_factory=list)
    fp16: list[dict[str, Any]] = field(default_factory=list)
    divergence: Any = None
    divergence_shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    padding: Any = None


def run_samples(
    program: Any, source: Any, dataset: Any, options: CheckOptions, progress: Progress | None = None
) -> Runs:
    """Run reference, fp32 and fp16 on every sample; the first few are compared op by op."""
    from devicefit.compare.divergence import DivergenceTracker
    from devicefit.compare.padding import find_padding

    with threads_for(program):
        runs = Runs(padding=find_padding(dataset.feeds))
        tracker = DivergenceTracker(program)
        with_ref = has_reference(source)
        outputs = [o.name for o in program.outputs]
        total = len(dataset.feeds)
        for i, feeds in enumerate(dataset.feeds):
            model_feeds = program_feeds(feeds, options.image_inputs, program)
            if i < options.divergence_samples:
                tokens = None if runs.padding is None else runs.padding.tokens[i]
                out32, out16 = tracker.add_sample(model_feeds, tokens)
            else:
                out32 = program.run(model_feeds, precision="fp32")
                out16 = program.run(model_feeds, precision="fp16")
            runs.fp32.append({k: out32[k] for k in outputs})
            runs.fp16.append({k: out16[k] for k in outputs})
            if with_ref:
                runs.torch.append(source.reference(feeds))
            if progress is not None:
                progress("validating", i + 1, total)
        runs.divergence = tracker.result()
        runs.divergence_shapes = dict(tracker.observed_shapes)
    return runs


def run_outputs(program: Any, dataset: Any, options: CheckOptions, precision: str) -> list[dict[str, Any]]:
    """The program's outputs on every sample at ``precision`` (nothing else kept)."""
    with threads_for(program):
        return [
            program.run(program_feeds(f, options.image_inputs, program), precision=precision)
            for f in dataset.feeds
        ]
