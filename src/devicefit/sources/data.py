"""Validation data for ``devicefit check``: load it from ``--data`` or generate it from the input specs.

Accepted forms (arrays are always read with ``allow_pickle=False``):

* ``data.npz``: one array per model input, named like the input, plus an optional ``labels`` array.
* a folder of ``<input>.npy`` files (plus an optional ``labels.npy``).
* ``file.py:make_data``: a Python function returning a dict (input name -> array, optional ``labels``) or
  a tuple ``(input arrays..., [labels])`` in the model's input order.

Each array holds one or more samples: exactly the input's shape (one sample), that shape with an extra
leading sample axis, or several batches stacked along the batch axis. Samples are split to the model's
input shape, one feed dict per sample.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from devicefit.errors import InputError

LABELS = "labels"
MAX_DATA_BYTES_ENV = "DEVICEFIT_MAX_DATA_BYTES"
DEFAULT_MAX_DATA_BYTES = 4 << 30


def max_data_bytes(override: int | None = None) -> int:
    """The most bytes of arrays ``--data`` may hold: ``override``, else ``$DEVICEFIT_MAX_DATA_BYTES``, else 4 GiB.

    Raises:
        InputError: the environment variable is not a positive integer.
    """
    return bytes_limit(MAX_DATA_BYTES_ENV, DEFAULT_MAX_DATA_BYTES, override)


def bytes_limit(env: str, default: int, override: int | None = None) -> int:
    """A byte limit: ``override``, else the environment variable ``env``, else ``default``.

    Raises:
        InputError: the environment variable is not a positive integer.
    """
    if override is not None:
        return int(override)
    text = os.environ.get(env)
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise InputError(f"{env}={text[:40]!r} is not a positive number of bytes")
    return value


@dataclass
class Dataset:
    """Samples to validate on.

    Attributes:
        feeds: one dict (input name -> array at the model's input shape) per sample.
        labels: integer labels, one per row of the first output (None without labels).
        origin: where the data came from (for the report).
        notes: what was done to the data on the way (e.g. generated samples the model refused, left out).
    """

    feeds: list[dict[str, np.ndarray]]
    labels: np.ndarray | None
    origin: str
    notes: list[str] = field(default_factory=list)


def _spec_parts(spec: Any) -> tuple[str, tuple[int, ...], str]:
    shape = tuple(int(d) for d in (spec.shape or ()))
    return spec.name, shape, str(spec.dtype or "fp32")


def _is_float(dtype: str) -> bool:
    return dtype.startswith(("fp", "float", "bf"))


# Python's bookkeeping per generated sample, beyond the array data: a small numpy array object is ~116 bytes
# and a feed dict ~184 (measured, CPython 3.12); rounded up so a million one-float samples count as what they
# really cost, not 4 MB.
_ARRAY_OVERHEAD = 128
_SAMPLE_OVERHEAD = 256


def check_generated_samples(
    specs: Sequence[Any], samples: int, max_bytes: int | None = None, flag: str = "--samples"
) -> None:
    """Refuse to generate ``samples`` random samples of ``specs`` over :func:`max_data_bytes`, before allocating.

    Generated validation data is held in memory like loaded ``--data``, so it shares that limit.

    Raises:
        InputError: stating the size, the limit, the most samples that fit and how to proceed.
    """
    limit = max_data_bytes(max_bytes)
    per_sample = _SAMPLE_OVERHEAD
    for spec in specs:
        _, shape, dtype = _spec_parts(spec)
        itemsize = 1 if dtype == "bool" else 4  # generate() makes float32 / int32 / bool arrays
        per_sample += int(np.prod(shape, dtype=np.float64)) * itemsize + _ARRAY_OVERHEAD
    if samples * per_sample > limit:
        fit = limit // per_sample
        raise InputError(
            f"{flag} {samples:,}: that many random samples would take {samples * per_sample / 2**30:.1f} GiB, over "
            f"the {limit / 2**30:.1f} GiB limit for validation data; pass {flag} {fit:,} or fewer, or raise the "
            f"limit with ${MAX_DATA_BYTES_ENV} (bytes)"
        )


def generate(
    specs: Sequence[Any], samples: int, seed: int = 0, like: dict[str, Any] | None = None
) -> Dataset:
    """Random samples matching ``specs`` (standard normal floats, integers in [0, 8)).

    ``like``: the model's own example inputs. Integer inputs then take values within the example's range
    (an attention mask stays 0/1, token ids stay within the ids the model was shown): integers are indices
    and masks far more often than quantities, and values outside what the model accepts (a mask of 7
    summed into position ids past the embedding table) test nothing but the generator. An example holding only
    0 and 1 (a mask) gives right-padded rows: a random number of ones, at least one, then zeros.

    Raises:
        InputError: the samples would exceed the validation-data limit (:func:`check_generated_samples`).
    """
    check_generated_samples(specs, samples)
    rng = np.random.default_rng(seed)
    feeds = []
    for _ in range(samples):
        feed = {}
        for spec in specs:
            name, shape, dtype = _spec_parts(spec)
            if _is_float(dtype):
                feed[name] = rng.standard_normal(shape).astype(np.float32)
            elif dtype == "bool":
                feed[name] = rng.integers(0, 2, shape).astype(bool)
            else:
                low, high = _int_range((like or {}).get(name))
                if (low, high) == (0, 1) and shape:
                    feed[name] = _right_padded(rng, shape)
                else:
                    feed[name] = rng.integers(low, high + 1, shape).astype(np.int32)
        feeds.append(feed)
    return Dataset(feeds, None, f"{samples} random samples (seed {seed})")


def _right_padded(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """A 0/1 input (an attention mask) as real data has it: per row, ones for a random length >= 1, then zeros.

    NOTE: independent random bits put padding before a sequence's first token. In a causal LM those positions'
    rows then attend to nothing; their (unused) outputs are undefined and differ between PyTorch and Core ML,
    which made check call a correct conversion wrong. A 0/1 input that is not a mask (token type ids) takes any
    pattern, so this one serves both.
    """
    length = shape[-1]
    rows = int(np.prod(shape[:-1], dtype=np.int64))
    kept = rng.integers(1, length + 1, rows)[:, None]
    return (np.arange(length)[None, :] < kept).astype(np.int32).reshape(shape)


def _int_range(example: Any) -> tuple[int, int]:
    """Inclusive bounds for generated integers: the example's observed range, else [0, 7]."""
    if example is None:
        return 0, 7
    a = np.asarray(example)
    if a.size == 0 or a.dtype.kind not in "biu":
        return 0, 7
    return int(a.min()), int(a.max())


def split_samples(name: str, array: np.ndarray, shape: tuple[int, ...]) -> list[np.ndarray]:
    """Split ``array`` into samples of ``shape`` (see the module docstring for the accepted layouts)."""
    a = np.asarray(array)
    if a.shape == shape:
        return [a]
    if a.ndim == len(shape) + 1 and a.shape[1:] == shape:
        return list(a)
    if shape and a.ndim == len(shape) and a.shape[1:] == shape[1:] and a.shape[0] % shape[0] == 0:
        return [a[i : i + shape[0]] for i in range(0, a.shape[0], shape[0])]
    want = "x".join(map(str, shape)) or "scalar"
    got = "x".join(map(str, a.shape)) or "scalar"
    raise InputError(
        f"data for input {name!r} has shape {got}; expected {want}, N x {want}, or batches stacked on axis 0"
    )


def _cast(a: np.ndarray, dtype: str, name: str) -> np.ndarray:
    if a.dtype.kind not in "biuf":
        raise InputError(f"data for input {name!r} has dtype {a.dtype}; expected a numeric array")
    if _is_float(dtype):
        return a.astype(np.float32, copy=False)
    return a.astype(np.bool_ if dtype == "bool" else np.int32, copy=False)


def from_arrays(
    arrays: dict[str, Any], specs: Sequence[Any], origin: str, samples: int | None = None
) -> Dataset:
    """Build a dataset from whole arrays named like the inputs (plus optional ``labels``)."""
    names = [s.name for s in specs]
    missing = [n for n in names if n not in arrays]
    if missing:
        have = ", ".join(sorted(arrays)) or "nothing"
        raise InputError(
            f"{origin} has no array for input {missing[0]!r} (it has: {have}); name arrays like the inputs: {', '.join(names)}"
        )
    per_input: dict[str, list[np.ndarray]] = {}
    for spec in specs:
        name, shape, dtype = _spec_parts(spec)
        per_input[name] = [
            _cast(s, dtype, name) for s in split_samples(name, np.asarray(arrays[name]), shape)
        ]
    counts = {n: len(v) for n, v in per_input.items()}
    if len(set(counts.values())) > 1:
        raise InputError(
            f"{origin}: inputs have different sample counts {counts}; give every input the same number"
        )
    count = next(iter(counts.values()), 0)
    if count == 0:
        raise InputError(f"{origin} holds no samples; give at least one")
    keep = count if samples is None else min(samples, count)
    feeds = [{n: per_input[n][i] for n in per_input} for i in range(keep)]
    labels = None
    if arrays.get(LABELS) is not None:
        raw = np.asarray(arrays[LABELS])
        if raw.ndim > 1 and not (raw.ndim == 2 and raw.shape[1] == 1):
            raise InputError(
                f"{origin}: labels have shape {raw.shape} (one-hot or per-class scores?); give one integer "
                "class index per sample row"
            )
        labels = raw.reshape(-1)
        if labels.dtype.kind not in "iu":
            raise InputError(f"{origin}: labels have dtype {labels.dtype}; expected integer class indices")
        # one label per row of the model's batch axis: a sample whose first input holds B rows takes B labels
        first = per_input[next(iter(per_input))][0]
        rows = int(first.shape[0]) if first.ndim >= 1 else 1
        if len(labels) != count * rows:
            raise InputError(
                f"{origin}: {len(labels)} labels for {count} samples of {rows} row(s) each; "
                f"give exactly {count * rows} labels, one per sample row"
            )
        labels = labels[: keep * rows]
    return Dataset(feeds, labels, origin)


def _load_factory(spec: str) -> Any:
    path_text, _, func = spec.rpartition(":")
    path = Path(path_text)
    if not path.is_file():
        raise InputError(f"data factory file {path} not found; expected FILE.py:FUNCTION")
    module_spec = importlib.util.spec_from_file_location(f"devicefit_data_{path.stem}", path)
    if module_spec is None or module_spec.loader is None:
        raise InputError(f"cannot import {path} as Python; expected FILE.py:FUNCTION")
    from devicefit.errors import first_line

    module = importlib.util.module_from_spec(module_spec)
    try:
        module_spec.loader.exec_module(module)
    except Exception as exc:  # the user's code failed, not devicefit: bad input (exit 2), not a bug (3)
        from devicefit.sources.load import missing_module_hint

        what = missing_module_hint(exc, path) or "; fix the file"
        raise InputError(
            f"importing data factory {path} raised {type(exc).__name__}: {first_line(exc, 300)}{what}"
        ) from exc
    fn = getattr(module, func, None)
    if not callable(fn):
        raise InputError(
            f"{path} has no function {func!r}; expected FILE.py:FUNCTION returning a dict or tuple"
        )
    try:
        return fn()
    except Exception as exc:
        raise InputError(
            f"data factory {path.name}:{func}() raised {type(exc).__name__}: {first_line(exc, 300)}; fix the "
            "function"
        ) from exc


def _factory_arrays(result: Any, specs: Sequence[Any], origin: str) -> dict[str, Any]:
    if isinstance(result, dict):
        return result
    if isinstance(result, (tuple, list)):
        names = [s.name for s in specs]
        if len(result) == len(names) + 1:
            return {**dict(zip(names, result[:-1])), LABELS: result[-1]}
        if len(result) == len(names):
            return dict(zip(names, result))
        raise InputError(
            f"{origin} returned {len(result)} items; expected {len(names)} inputs (+ optional labels)"
        )
    raise InputError(f"{origin} returned {type(result).__name__}; expected a dict or a tuple of arrays")


def load_data(
    path: str | os.PathLike[str],
    specs: Sequence[Any],
    samples: int | None = None,
    max_bytes: int | None = None,
) -> Dataset:
    """Load validation data from a ``.npz``, a folder of ``.npy`` files or ``file.py:function``.

    Array files are read by :mod:`devicefit.sources.arrays`: only regular files (a FIFO in a data folder
    would block forever), no object arrays, and every header is checked before its array is read, so the
    declared sizes together must stay within ``max_bytes`` (a compressed ``.npz`` cannot decompress into
    more memory than that).

    Args:
        path: the ``--data`` argument.
        specs: the model's inputs (objects with ``name``, ``shape``, ``dtype``).
        samples: keep at most this many samples.
        max_bytes: the most bytes of arrays to read (default :func:`max_data_bytes`).

    Raises:
        InputError: missing file, unknown format, missing input arrays, wrong shapes or dtypes, arrays that
            are not plain numeric or over the limit.
    """
    from devicefit.sources.arrays import is_npz, read_npy, read_npz

    text = os.fspath(path)
    if text.endswith(".py") or ".py:" in text:
        target = text if ".py:" in text else f"{text}:make_data"
        made = _factory_arrays(_load_factory(target), specs, target)
        return from_arrays(made, specs, target, samples)
    p = Path(text)
    if not p.exists():
        raise InputError(f"data {p} not found; expected a .npz, a folder of .npy files or FILE.py:FUNCTION")
    limit = max_data_bytes(max_bytes)
    remedy = f"raise the limit with ${MAX_DATA_BYTES_ENV} (bytes) or pass fewer samples"
    if p.is_dir():
        arrays: dict[str, Any] = {}
        used = 0
        for f in sorted(p.glob("*.npy")):
            arrays[f.stem] = read_npy(f, "data file", limit, remedy, used)
            used += arrays[f.stem].nbytes
    elif p.suffix == ".npz" or is_npz(p):
        arrays = read_npz(p, "data", limit, remedy)
    else:
        raise InputError(
            f"data {p} has an unknown format; expected a .npz, a folder of .npy files or FILE.py:FUNCTION"
        )
    return from_arrays(arrays, specs, str(p), samples)
