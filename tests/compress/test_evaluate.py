"""Candidate evaluation substitutes constants on a copy: the loaded base program is never mutated, so one
base serves concurrent evaluations (issue 9)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from devicefit import demo, interp
from devicefit.compress.evaluate import with_constants
from tests.helpers import convert


def _base():
    ml = convert(demo.load_module(), torch.zeros(1, 1, 8, 8), target="iOS18", input_names=["image"])
    return interp.load(ml)


def _weight_slot(prog):
    for step in prog.plan.block.steps:
        for param, value in step.consts.items():
            if isinstance(value, torch.Tensor) and value.is_floating_point() and value.numel() >= 64:
                return step, param, value
    raise AssertionError("no weight")


def test_substitution_leaves_the_base_untouched_and_is_thread_safe():
    prog = _base()
    step, param, weight = _weight_slot(prog)
    before = weight.clone()
    feeds = demo.held_out(4).feeds
    expected_base = [prog.run(f)[prog.outputs[0].name] for f in feeds]
    variants = [with_constants(prog, {step.name: {param: weight * s}}) for s in (0.0, 0.5, 2.0)]
    serial = [[v.run(f)[v.outputs[0].name] for f in feeds] for v in variants]
    assert step.consts[param] is weight and torch.equal(weight, before)  # never mutated
    assert not np.allclose(serial[0][0], expected_base[0])  # the substitution took effect

    def run(i: int) -> list[np.ndarray]:
        v = variants[i % 3]
        return [v.run(f)[v.outputs[0].name] for f in feeds]

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(run, range(12)))
    for i, got in enumerate(results):
        for a, b in zip(got, serial[i % 3]):
            np.testing.assert_array_equal(a, b)
    for f, base in zip(feeds, expected_base):
        np.testing.assert_array_equal(prog.run(f)[prog.outputs[0].name], base)
