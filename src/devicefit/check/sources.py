"""Stage 1: the model and its validation data."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from devicefit.check.types import DEFAULT_GENERATED_SAMPLES, CheckOptions
from devicefit.errors import InputError


@dataclass
class Sources:
    """The loaded model and the data ``check`` validates it on.

    Attributes:
        source: a :class:`devicefit.sources.SourceModel` (or the demo's).
        dataset: a :class:`devicefit.sources.data.Dataset`.
    """

    source: Any
    dataset: Any

    @property
    def has_reference(self) -> bool:
        """Whether PyTorch can run the model (False for a model given as Core ML)."""
        return has_reference(self.source)


def has_reference(source: Any) -> bool:
    """Whether ``source`` carries a PyTorch module or exported program to compare with."""
    return getattr(source, "module", None) is not None or getattr(source, "exported", None) is not None


def load_model(options: CheckOptions) -> Any:
    """The model source for ``options.model`` (the bundled demo when None)."""
    if options.model is None:
        from devicefit import demo

        if options.inputs:
            raise InputError("--input needs a MODEL; the demo's input is fixed (image: 1x1x8x8 float32)")
        return demo.demo_source()
    from devicefit.sources import load_source, parse_input_arg

    specs = [parse_input_arg(text) for text in options.inputs] or None
    return load_source(options.model, inputs=specs, trust_pickle=options.trust_pickle)


def load_dataset(source: Any, options: CheckOptions) -> Any:
    """Validation samples; loaded before converting so bad data fails fast."""
    dataset = _samples(source, options)
    _round_half_inputs(list(source.input_specs), dataset, noted=has_reference(source))
    return dataset


def _round_half_inputs(specs: list[Any], dataset: Any, noted: bool) -> None:
    """Feed both sides the float16 values a float16 input holds, as float32, with a note naming the input.

    NOTE: a float16 example to a float32 model (one that casts its input) makes the input float16 to PyTorch (the reference rounds every sample to fp16),
    while the converted model declares float32 there (Core ML inputs are float32 unless converted with an fp16
    input type). Fed float32 samples, Core ML computed on values PyTorch never saw: a NeRF-style encoding
    (sin of 512x the input) read 31 dB and a "conversion problem" for an exact conversion.
    """
    halves = [s.name for s in specs if str(s.dtype) == "float16"]
    if not halves or not dataset.feeds:
        return
    for feeds in dataset.feeds:
        for name in halves:
            if name in feeds:
                feeds[name] = np.asarray(feeds[name]).astype(np.float16).astype(np.float32)
    if not noted:  # a Core ML source declares float16 itself: its inputs hold exactly these values
        return
    named = ", ".join(repr(n) for n in halves)
    dataset.notes.append(
        f"input {named} is float16 to the PyTorch model, and the converted model takes float32 there (Core ML's "
        "input type for float tensors): check fed PyTorch and Core ML the same float16 values; the app passes "
        "them as float32"
    )


def _samples(source: Any, options: CheckOptions) -> Any:
    from devicefit.sources import data as data_mod

    specs = list(source.input_specs)
    if options.data is not None:
        return data_mod.load_data(options.data, specs, options.samples)
    if options.model is None:
        from devicefit import demo

        held = demo.held_out(options.samples)
        return data_mod.Dataset(held.feeds, held.labels, "scikit-learn digits, held-out split")
    examples = getattr(source, "example_inputs", None) or {}
    names = {s.name for s in specs}
    if getattr(source, "labels", None) is not None and set(examples) == names:
        # A factory that returns labels describes labelled example inputs: validate on exactly those.
        feeds = {k: np.asarray(v) for k, v in examples.items()}
        return data_mod.Dataset(
            [feeds], np.asarray(source.labels).reshape(-1), f"{source.origin} example inputs"
        )
    count = options.samples or DEFAULT_GENERATED_SAMPLES
    generated = data_mod.generate(specs, count, options.seed, like=examples)
    if examples and set(examples) == names:
        # The source's own example comes first: it is the one input known to be realistic.
        generated.feeds[0] = {k: np.asarray(v) for k, v in examples.items()}
        generated.origin = f"{generated.origin} (the first sample is the model's own example input)"
        if has_reference(source):
            if any(_is_int(s.dtype) for s in specs):
                _fit_index_columns(source, generated, options.seed)
                _drop_refused(source, generated)
            _drop_nonfinite(source, generated)
    return generated


def _is_int(dtype: Any) -> bool:
    return str(dtype).startswith(("int", "uint"))  # InputSpec dtypes are numpy names: int32, int64


def _fit_index_columns(source: Any, dataset: Any, seed: int) -> None:
    """Keep generated integer columns inside the tables they index (check/index_ranges.py), with a note."""
    from devicefit.check.index_ranges import column_bounds, fit_generated

    bounds = column_bounds(source, dataset.feeds[0])
    dataset.notes.extend(fit_generated(dataset, bounds, seed))


def _drop_refused(source: Any, dataset: Any) -> None:
    """Leave out the generated samples the PyTorch model itself refuses, with a note saying why.

    NOTE: generated integers stay within the example's range, but an integer input may have structure
    random values break (LayoutLM's ``[x0, y0, x1, y1]`` boxes: ``x1 - x0`` indexes a table and must not be
    negative). PyTorch raises on such a sample and the converted model reads out of bounds; blaming the user
    ("check the values fed") for data check made up is wrong. The example input (sample 0) always stays.
    """
    refused: list[tuple[int, BaseException]] = []
    for i, feeds in enumerate(dataset.feeds[1:], start=1):
        try:
            source.reference(feeds)
        except Exception as exc:  # NOTE: whatever the model raises, the sample is not one it takes
            refused.append((i, exc))
    if not refused:
        return
    gone = {i for i, _ in refused}
    dataset.feeds = [f for i, f in enumerate(dataset.feeds) if i not in gone]
    dataset.origin = f"{dataset.origin}; {len(gone)} the model refused left out"
    _, first = refused[0]
    from devicefit.sources.module import one_line, raised_at

    where = raised_at(first)
    ints = [name for name, value in dataset.feeds[0].items() if np.asarray(value).dtype.kind in "iu"]
    named = f" of {', '.join(map(repr, ints))}" if ints else ""
    dataset.notes.append(
        f"{len(refused)} of {len(gone) + len(dataset.feeds)} generated samples were refused by the PyTorch model "
        f"itself ({type(first).__name__}{f' at {where}' if where else ''}: {one_line(first)[:120]}) and were "
        f"left out: random integers{named} in the example's range break a structure the model relies on (ids "
        "it computes from them, out of a table's range); pass real inputs with --data to validate on more samples"
    )


def _nonfinite_outputs(outputs: dict[str, Any]) -> set[str]:
    return {
        name
        for name, value in outputs.items()
        if np.asarray(value).dtype.kind == "f" and not np.isfinite(np.asarray(value)).all()
    }


def _drop_nonfinite(source: Any, dataset: Any) -> None:
    """Leave out the generated samples on which the PyTorch model itself returns inf/NaN, with a note.

    NOTE: standard-normal floats leave many inputs' domain (a 0/1 adjacency whose row sums go negative under
    ``rsqrt``, a variance under ``log``). When the model's own example gives finite outputs and a generated
    sample does not, PyTorch and Core ML both compute garbage there, and comparing garbage called an exact
    conversion a "conversion problem". The example input (sample 0) always stays.
    """
    if len(dataset.feeds) < 2:
        return
    try:
        example = source.reference(dataset.feeds[0])
    except Exception:  # NOTE: the example's own failure is reported by the stages that follow
        return
    finite_on_example = set(example) - _nonfinite_outputs(example)
    dropped: list[int] = []
    names: set[str] = set()
    for i, feeds in enumerate(dataset.feeds[1:], start=1):
        try:
            bad = _nonfinite_outputs(source.reference(feeds)) & finite_on_example
        except (
            Exception
        ):  # NOTE: a refusal is _drop_refused's to judge (integer inputs) or the run's to report
            continue
        if bad:
            dropped.append(i)
            names |= bad
    if not dropped:
        return
    gone = set(dropped)
    total = len(dataset.feeds)
    dataset.feeds = [f for i, f in enumerate(dataset.feeds) if i not in gone]
    dataset.origin = f"{dataset.origin}; {len(gone)} on which the model returns inf/NaN left out"
    outputs = ", ".join(repr(n) for n in sorted(names))
    dataset.notes.append(
        f"{len(gone)} of {total} generated samples made the PyTorch model itself return inf/NaN (output "
        f"{outputs}; finite on the model's own example input) and were left out: random standard-normal "
        "values are outside what the model takes (a 0/1 mask or adjacency, a positive scale); pass real "
        "inputs with --data to validate on more samples"
    )


def load(options: CheckOptions) -> Sources:
    """Stage 1: load the model, then its data (bad data fails before any conversion work)."""
    source = load_model(options)
    return Sources(source, load_dataset(source, options))


@dataclass
class DataScreen:
    """Samples with inf/NaN in a float input: bad data, kept out of the comparisons.

    Attributes:
        clean: the dataset without those samples (labels filtered alike).
        bad_samples: indices of the samples left out.
        findings: one line per input with non-finite values (input, values, samples).
    """

    clean: Any
    bad_samples: list[int]
    findings: list[str]


def screen_data(dataset: Any) -> DataScreen:
    """Split off samples whose float inputs hold inf/NaN: comparing on them would blame the model."""
    from devicefit.sources.data import Dataset

    bad: list[int] = []
    per_input: dict[str, list[int]] = {}  # input -> [values, samples]
    for i, feeds in enumerate(dataset.feeds):
        sample_bad = False
        for name, value in feeds.items():
            arr = np.asarray(value)
            if arr.dtype.kind != "f":
                continue
            count = int((~np.isfinite(arr)).sum())
            if count:
                entry = per_input.setdefault(name, [0, 0])
                entry[0] += count
                entry[1] += 1
                sample_bad = True
        if sample_bad:
            bad.append(i)
    if not bad:
        return DataScreen(dataset, [], [])
    keep = [i for i in range(len(dataset.feeds)) if i not in set(bad)]
    if not keep:  # nothing left to validate on: the data is wrong, not the model (exit 2 before any work)
        inputs = ", ".join(repr(n) for n in per_input)
        raise InputError(
            f"{dataset.origin}: every one of its {len(dataset.feeds)} sample(s) holds NaN/inf (in input {inputs}), "
            "so there is nothing to validate on; pass finite data"
        )
    labels = dataset.labels
    if labels is not None:
        labels = np.asarray(labels)
        per = len(labels) // len(dataset.feeds)  # label rows per sample (a batch axis gives several)
        if per * len(dataset.feeds) == len(labels):
            labels = labels.reshape(len(dataset.feeds), per, *labels.shape[1:])[keep].reshape(
                -1, *labels.shape[1:]
            )
        else:
            labels = None
    clean = Dataset([dataset.feeds[i] for i in keep], labels, dataset.origin)
    findings = [
        f"input {name!r}: {values} NaN/inf value(s) in {samples} of {len(dataset.feeds)} sample(s)"
        for name, (values, samples) in per_input.items()
    ]
    return DataScreen(clean, bad, findings)
