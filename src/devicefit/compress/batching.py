"""Batched candidate evaluation: many samples per interpreter run where the program allows it.

The interpreter's cost on a small model is mostly Python per op, paid once per run; running a chunk of
samples at once pays it once per chunk. Three modes, chosen once per search by a probe on the base program:

* ``"stack"``: samples concatenated along axis 0 and run as one batch (:func:`devicefit.interp.stacked.run_stacked`).
  Tried only when the package *declares* a batch axis that takes the chunk (a range or enumerated shape): a
  package converted at batch 1 may hard-code it (a flatten becomes a reshape to ``[1, 64]``; an op may reduce
  over axis 0), and running it at a shape it never declared hands kernels shapes its types never promised
  (torch's fused ``lstm`` crashed the process on one). Even then the probe accepts it only when every output
  comes back as the samples' outputs concatenated, values matching a per-sample run.
* ``"vmap"``: the samples stacked on a new axis and the program run under ``torch.func.vmap``
  (:func:`devicefit.interp.stacked.run_vmapped`): every kernel sees one sample's shapes, so a hard-coded batch 1 is
  fine, and samples cannot mix. Kernels reading tensor values into Python (a gather bounds check, ``lstm``
  without a batching rule) raise, and the probe falls through.
* ``"per-sample"``: one run per sample, as before.

The probe runs in fp32 (whether the program is polymorphic does not depend on precision, and fp32 agrees to
~1e-7, so the tolerance can be tight). In fp16 a batched convolution or matmul may sum in another order and
round a value to the neighbouring float16, so metrics agree to about one fp16 step, not bit for bit.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from devicefit.errors import first_line

MODES = ("stack", "vmap", "per-sample")
# At most this many samples per run: past ~32 the per-op overhead is already amortised.
MAX_CHUNK = 32
# And at most this many bytes of activations per run (4 bytes per held float; a declared fp16 value counts 2).
CHUNK_BYTES = 512 * 2**20
# Probe tolerance (fp32): max |batched - per-sample| <= RTOL * max |per-sample| for each float output.
RTOL = 1e-5


@dataclass(frozen=True)
class Batching:
    """How candidates are evaluated.

    Attributes:
        mode: ``"stack"``, ``"vmap"`` or ``"per-sample"``.
        chunk: samples per interpreter run (1 for per-sample).
        reason: why this mode (and why the faster ones were refused).
        probe_s: seconds the probe took.
    """

    mode: str
    chunk: int
    reason: str
    probe_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"mode": self.mode, "chunk": self.chunk, "reason": self.reason, "probe_s": self.probe_s}


PER_SAMPLE = Batching("per-sample", 1, "batched evaluation not requested")


def run_samples(
    prog: Any, feeds: Sequence[dict[str, np.ndarray]], precision: str, batching: Batching = PER_SAMPLE
) -> dict[str, np.ndarray]:
    """Run ``prog`` on every sample; outputs as float32, stacked on a new leading axis (the same in every mode)."""
    names = [o.name for o in prog.outputs]
    if batching.mode == "per-sample" or len(feeds) < 2:
        outs = _stack([prog.run(f, precision=precision) for f in feeds], names)
    else:
        parts = [
            _run_chunk(prog, list(feeds[i : i + batching.chunk]), precision, batching.mode)
            for i in range(0, len(feeds), batching.chunk)
        ]
        outs = {n: np.concatenate([p[n] for p in parts]) for n in names}
    return {n: v.astype(np.float32, copy=False) for n, v in outs.items()}


def choose_batching(
    prog: Any, feeds: Sequence[dict[str, np.ndarray]], max_chunk: int = MAX_CHUNK
) -> Batching:
    """Probe ``prog`` on the first samples: the fastest mode whose outputs match a per-sample run."""
    start = time.perf_counter()
    chunk = min(max_chunk, _chunk_by_memory(prog), len(feeds))
    if chunk < 2:
        why = "fewer than 2 samples" if len(feeds) < 2 else "one sample's activations fill the chunk memory"
        return Batching("per-sample", 1, why, time.perf_counter() - start)
    if prog.states:
        return Batching("per-sample", 1, "stateful program", time.perf_counter() - start)
    sample = list(feeds[:chunk])
    expected = _stack([prog.run(f, precision="fp32") for f in sample], [o.name for o in prog.outputs])
    refused = []
    modes = ["vmap"]
    if _declares_batch(prog, chunk):
        modes.insert(0, "stack")
    else:
        refused.append("stack: not tried, the package declares no batch of that size on axis 0")
    for mode in modes:
        try:
            got = _run_chunk(prog, sample, "fp32", mode)
        except Exception as e:  # any failure means "not this mode"; the per-sample run stays the reference
            refused.append(f"{mode}: {_short(e)}")
            continue
        mismatch = _mismatch(expected, got)
        if mismatch is None:
            why = _accepted_reason(prog, chunk, mode)
            if refused:
                why += f" (refused {'; '.join(refused)})"
            return Batching(mode, chunk, why, time.perf_counter() - start)
        refused.append(f"{mode}: {mismatch}")
    return Batching("per-sample", 1, "; ".join(refused), time.perf_counter() - start)


def _run_chunk(
    prog: Any, chunk: list[dict[str, np.ndarray]], precision: str, mode: str
) -> dict[str, np.ndarray]:
    from devicefit.interp.stacked import run_stacked, run_vmapped

    if mode == "vmap":
        return run_vmapped(prog, chunk, precision)
    joined = {name: np.concatenate([np.asarray(f[name]) for f in chunk]) for name in chunk[0]}
    out = run_stacked(prog, joined, precision)
    n = len(chunk)
    result = {}
    for name, value in out.items():
        arr = np.asarray(value)
        if arr.ndim == 0 or arr.shape[0] % n:
            raise ValueError(f"output {name!r} has shape {arr.shape}, no axis 0 of {n} samples")
        result[name] = arr.reshape(n, arr.shape[0] // n, *arr.shape[1:])
    return result


def _mismatch(expected: dict[str, np.ndarray], got: dict[str, np.ndarray]) -> str | None:
    """Why ``got`` is not ``expected`` (None when it is, within ``RTOL``)."""
    for name, want in expected.items():
        have = np.asarray(got.get(name))
        if have.shape != want.shape:
            return f"output {name!r} comes back {have.shape}, per sample {want.shape}"
        if want.dtype.kind != "f":
            if not np.array_equal(have, want):
                return f"output {name!r} differs from the per-sample run"
            continue
        w, h = want.astype(np.float64), have.astype(np.float64)
        same_nonfinite = np.array_equal(~np.isfinite(w), ~np.isfinite(h)) and np.array_equal(
            w[~np.isfinite(w)], h[~np.isfinite(h)]
        )
        finite = np.isfinite(w)
        scale = float(np.abs(w[finite]).max(initial=0.0))
        err = float(np.abs(w[finite] - h[finite]).max(initial=0.0)) if same_nonfinite else np.inf
        if err > RTOL * max(scale, 1e-30):
            return f"output {name!r} differs from the per-sample run by {err:.3g} (scale {scale:.3g})"
    return None


def _declares_batch(prog: Any, chunk: int) -> bool:
    """Whether every input's declared shapes take ``chunk`` samples concatenated on axis 0."""
    from devicefit.interp.inputs import shape_allowed

    return all(
        not spec.shape or shape_allowed(spec, (chunk * spec.shape[0], *spec.shape[1:]))[0]
        for spec in prog.inputs
    )


def _accepted_reason(prog: Any, chunk: int, mode: str) -> str:
    if mode == "vmap":
        return f"vmap over {chunk} samples matches the per-sample run"
    return f"the declared inputs take {chunk} samples on axis 0; matches the per-sample run"


def _chunk_by_memory(prog: Any) -> int:
    """Samples per run keeping the activations under ``CHUNK_BYTES`` (from the declared value sizes)."""
    try:
        from devicefit.analyze.memory import program_activation_memory

        peak = program_activation_memory(prog).peak_bytes
    except Exception:  # an estimate only: a program the analysis cannot size is not worth failing over
        return MAX_CHUNK
    # NOTE: x2 because fp16-declared values are held as float32 by the interpreter
    return max(1, CHUNK_BYTES // max(2 * peak, 1))


def _short(e: Exception) -> str:
    """The first line of an error, without the interpreter's generic advice (the probe is not the user's run)."""
    text = first_line(e).split("; the program is invalid")[0]
    return text if len(text) <= 160 else text[:157] + "..."


def _stack(per_sample: Sequence[dict[str, np.ndarray]], names: Sequence[str]) -> dict[str, np.ndarray]:
    return {n: np.stack([np.asarray(s[n]) for s in per_sample]) for n in names}
