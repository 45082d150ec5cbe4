"""Fuzz: hundreds of damaged packages through the library and the CLI (issue 11, item 3).

Every case must end in success or a DevicefitError from ``interp.load(...).run(...)``, and in exit code
0 or 2 from ``devicefit run`` (3 means an internal error: a Python exception escaped), each within a time
bound (a hang fails the case). Seeded, so a failure reproduces: the message names the seed and case.

The default suite runs ``DEVICEFIT_FUZZ_CASES`` (200) cases per package; ``make fuzz`` runs thousands.
"""

from __future__ import annotations

import collections
import contextlib
import io
import os
import random
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from devicefit import interp
from devicefit.cli import main
from devicefit.errors import DevicefitError
from tests.helpers import convert
from tests.interp.fuzz_cases import Case, mutate

CASES = int(os.environ.get("DEVICEFIT_FUZZ_CASES", "200"))
SEED = int(os.environ.get("DEVICEFIT_FUZZ_SEED", "0"))
CASE_SECONDS = 30.0
ADDRESS_SPACE_HEADROOM = 2 << 30
OUTCOMES: collections.Counter[str] = collections.Counter()  # library outcome -> cases, printed with -s


class _Conv(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.fc = torch.nn.Linear(4, 3)

    def forward(self, x):
        y = torch.relu(self.conv(x)).mean((2, 3))
        return torch.softmax(self.fc(y), -1)


class _Embed(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.table = torch.nn.Embedding(12, 8)
        self.norm = torch.nn.LayerNorm(8)

    def forward(self, ids):
        return self.norm(self.table(ids)).sum(-1)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> dict[str, Path]:
    """Two tiny packages (fp16 conv net with an fp32 input; int32 ids into an embedding), built once."""
    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("fuzz-pristine")
    conv, embed = root / "conv.mlpackage", root / "embed.mlpackage"
    convert(_Conv().eval(), torch.randn(1, 3, 8, 8), precision="fp16").save(str(conv))
    convert(_Embed().eval(), torch.tensor([[1, 5, 7]], dtype=torch.int32), input_names=["ids"]).save(
        str(embed)
    )
    return {"conv": conv, "embed": embed}


@contextlib.contextmanager
def _bounded_address_space() -> Iterator[None]:
    """Cap this process's address space a few GiB above its current size while fuzzing, so a mutated
    shape that asks for terabytes fails as an allocation error instead of swapping the machine."""
    try:
        import resource

        with open("/proc/self/statm") as f:
            current = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
        old = resource.getrlimit(resource.RLIMIT_AS)
        resource.setrlimit(resource.RLIMIT_AS, (current + ADDRESS_SPACE_HEADROOM, old[1]))
    except (ImportError, OSError, ValueError):
        yield
        return
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, old)


def _within(seconds: float, fn: Callable[[], object]) -> tuple[bool, object]:
    """(finished, result or exception) of ``fn`` in a thread; a hang leaves a daemon thread behind."""
    box: list[object] = []

    def target() -> None:
        try:
            box.append(fn())
        except BaseException as e:  # handed back to the test
            box.append(e)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    return (not thread.is_alive()), (box[0] if box else None)


def _library(path: Path) -> object:
    prog = interp.load(path)
    return prog.run(prog.example_inputs(), precision=random.Random(str(path)).choice(["fp32", "fp16"]))


def _cli(path: Path) -> object:
    sink = io.StringIO()
    with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
        code = main(["run", str(path)])
    return code, sink.getvalue()


def _one_case(pristine_pkg: Path, tmp: Path, rng: random.Random, index: int) -> tuple[Case, list[str]]:
    case = mutate(pristine_pkg, tmp / f"case{index}.mlpackage", rng, index)
    path = tmp / f"case{index}.mlpackage"
    problems: list[str] = []
    finished, result = _within(CASE_SECONDS, lambda: _library(path))
    OUTCOMES[type(result).__name__ if isinstance(result, BaseException) else "ran"] += 1
    if not finished:
        problems.append("library call hung")
    elif isinstance(result, BaseException) and not isinstance(result, DevicefitError):
        problems.append(f"library raised {type(result).__name__}: {str(result)[:200]}")
    finished, result = _within(CASE_SECONDS, lambda: _cli(path))
    if not finished:
        problems.append("CLI hung")
    elif isinstance(result, BaseException):
        problems.append(f"CLI raised {type(result).__name__}: {str(result)[:200]}")
    else:
        code, text = result  # type: ignore[misc]
        if code not in (0, 2):
            problems.append(f"CLI exit {code}: {text.strip()[-300:]}")
        elif code == 2 and len(text.strip().splitlines()) != 1:
            problems.append(f"CLI error not one line: {text.strip()[:300]}")
    return case, problems


@pytest.mark.parametrize("which", ["conv", "embed"])
def test_damaged_packages_give_devicefit_errors_only(pristine, which, tmp_path, monkeypatch):
    monkeypatch.setenv("DEVICEFIT_MAX_INPUT_BYTES", str(16 << 20))
    rng = random.Random(f"{SEED}-{which}")
    failures: list[str] = []
    OUTCOMES.clear()
    with _bounded_address_space(), np.errstate(all="ignore"):
        for index in range(CASES):
            case, problems = _one_case(pristine[which], tmp_path, rng, index)
            failures += [f"seed {SEED} {which} case {case.index} ({case.description}): {p}" for p in problems]
            if len(failures) >= 10:
                break
    print(f"\nfuzz {which}: {CASES} cases, seed {SEED}, library outcomes {dict(OUTCOMES)}")
    assert not failures, f"{len(failures)} unclean outcomes:\n" + "\n".join(failures)
