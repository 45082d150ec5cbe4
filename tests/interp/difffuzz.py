"""Differential fuzzer: random small PyTorch programs -> devicefit.convert -> the interpreter, against PyTorch eager.

A seed makes one program (:func:`generate`): 1-2 inputs (float, sometimes int; negatives, zeros, exact halves and
quarters, large values) and a chain / DAG of 2-8 ops drawn from ``difffuzz_ops.GRAMMAR``. :func:`run_case`
converts it with devicefit's own conversion (TorchScript, or torch.export for a quarter of the seeds; rescue
translations installed), runs the package on the plain interpreter in fp32 and on the compiled
path (exact and default builds), converts it again at fp16 and runs the fp16 emulation, and sorts the outcome into
one :data:`CATEGORIES` entry.

Tolerances are relative to each output's scale (``max |got - ref| <= rtol * max |ref|``, NaN / inf where PyTorch
has them), widened by how sensitive the program is to rounding: the program is rerun in float64 with each float
op's result perturbed by a relative ``eps`` (a few fp32 / fp16 ulps); a disagreement no larger than what that
perturbation itself causes (a floor / comparison / argmax tie that flips, a cancellation) is ``ill_conditioned``,
not a bug. The compiled path must equal the plain interpreter bit for bit (exact build) or within
``rewrites.FP32_RTOL`` / ``FP16_RTOL`` (default build), the contract tests/interp/test_compiled*.py state.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch

from devicefit.errors import ModelLoadError
from tests.interp.difffuzz_ops import GRAMMAR as GRAMMAR_BASE
from tests.interp.difffuzz_ops import Builder, Step
from tests.interp.difffuzz_ops_nn import GRAMMAR_NN

GRAMMAR = {**GRAMMAR_BASE, **GRAMMAR_NN}

FP32_RTOL = 1e-4  # relative to the output's scale; an 8-op fp32 chain is ~1e-6 when well conditioned
FP16_RTOL = 2e-2  # fp16 storage of every value (eps 2**-11) through up to 8 ops
# a disagreement within 20x of what a few-ulp perturbation causes is rounding, not a bug
SENSITIVITY_FACTOR = 20.0
FP16_MAX = 65504.0
FP16_TINY = 2.0**-14  # below fp16's smallest normal, values lose precision (and under 2**-25 become 0)

CATEGORIES = {
    "ok": "every check agreed",
    "refused": "(d) conversion refused the program (ConversionError naming the op)",
    "convert_crash": "(c) conversion failed inside coremltools without naming an unsupported op",
    "load_refused": "(d) the interpreter refused the package at load, naming the op (e.g. matmul of a 1-D x by a "
    "batched y, which the Core ML runtime refuses: see the matmul row)",
    "interp_error": "(a) the interpreter raised while loading or running the fp32 package",
    "fp32_mismatch": "(a)/(c) the fp32 interpreter disagrees with PyTorch beyond rounding",
    "undefined": "not compared: a result PyTorch leaves unspecified on these values (a float -> int cast of inf / "
    "NaN / beyond int32; the index order of tied values in topk / sort)",
    "ill_conditioned": "fp32 disagreement explained by rounding sensitivity (ties, cancellation)",
    "nonfinite": "(c) NaN / inf placement differs in a program whose PyTorch values include inf or NaN",
    "signed_zero": "(c) only the sign of a zero differs (coremltools folds -0.0 into +0.0, e.g. matmul -> linear; "
    "softshrink's zero, whose sign PyTorch leaves to its code path)",
    "compiled_mismatch": "(b) the compiled path disagrees with the plain interpreter",
    "compiled_fallback": "every result agreed, but the compiled path fell back to the interpreter (slower only)",
    "fp16_error": "(a) the interpreter raised while running the fp16 package",
    "fp16_mismatch": "(a)/(c) fp16 emulation outside the fp16 bound with no overflow to explain it",
    "fp16_range": "fp16 outside the bound, explained by a value beyond the fp16 range or below its normals (legitimate)",
}


# ------------------------------------------------------------------ programs
class FuzzModule(torch.nn.Module):
    """Runs the steps over an environment of values; ``noise`` (float64 runs only) perturbs float results."""

    def __init__(
        self,
        steps: list[Step],
        outputs: list[int],
        consts: dict[str, torch.Tensor],
        layers: dict[str, torch.nn.Module] | None = None,
    ):
        super().__init__()
        self.steps = steps
        self.outputs = outputs
        for name, tensor in consts.items():
            self.register_buffer(name, tensor.clone())
        for name, layer in (layers or {}).items():
            self.add_module(name, copy.deepcopy(layer))
        self.fdtype = torch.float32  # the dtype of casts to float (float64 for the sensitivity runs)
        self.noise: tuple[torch.Generator, float] | None = None
        self.round_to: torch.dtype | None = None  # store every float value at this precision (float64 runs)
        self.positive_zeros = False  # turn every -0.0 into +0.0 (float results only)
        self.negative_zeros = False  # turn every +0.0 into -0.0 (float results only)

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        env = [self._perturbed(x) for x in inputs]
        for step in self.steps:
            env.append(self._perturbed(step.fn(self, *[env[i] for i in step.args])))
        return tuple(env[i] for i in self.outputs)

    def _perturbed(self, value: torch.Tensor) -> torch.Tensor:
        if not value.is_floating_point():
            return value
        if self.positive_zeros:
            value = value + 0.0
        if self.negative_zeros:
            value = torch.where(value == 0, torch.full_like(value, -0.0), value)
        if self.round_to is not None:
            value = value.to(self.round_to).to(value.dtype)
        if self.noise is None:
            return value
        gen, eps = self.noise
        noise = eps * (2 * torch.rand(value.shape, generator=gen, dtype=value.dtype) - 1)
        # NOTE: small multiples of 1/64 are left alone: exact ops (floor, add of such values) keep them exact in
        # fp32 and fp16 alike, so perturbing them would call a rounding tie (round(2.5)) ill-conditioned
        on_grid = (value * 64 == torch.round(value * 64)) & (value.abs() < 1024)
        return torch.where(on_grid, value, value * (1 + noise))


@dataclass
class FuzzProgram:
    seed: int
    inputs: list[torch.Tensor]
    steps: list[Step]
    outputs: list[int]
    consts: dict[str, torch.Tensor]
    target: str
    families: list[str] = field(default_factory=list)
    frontend: str = "torchscript"
    layers: dict[str, torch.nn.Module] = field(default_factory=dict)

    def module(self) -> FuzzModule:
        return FuzzModule(self.steps, self.outputs, self.consts, self.layers).eval()

    def text(self) -> str:
        """The program as readable lines (``v0 = input float32[2, 3]``, ``v2 = exp(v1)``, ``return v2``)."""
        lines = [f"# seed {self.seed}, {self.target}, {self.frontend}"]
        lines += [f"v{i} = input {str(t.dtype)[6:]}{list(t.shape)}" for i, t in enumerate(self.inputs)]
        base = len(self.inputs)
        lines += [f"v{base + i} = {s.text}" for i, s in enumerate(self.steps)]
        lines += [f"{name} = {str(t.dtype)[6:]}{list(t.shape)}" for name, t in self.consts.items()]
        lines += [f"{name} = {layer!r}".replace("\n", " ") for name, layer in self.layers.items()]
        lines.append("return " + ", ".join(f"v{i}" for i in self.outputs))
        return "\n".join(lines)


def random_values(rng: np.random.Generator, shape: tuple[int, ...], integer: bool) -> torch.Tensor:
    """Values with negatives, exact zeros, small and (sometimes) large magnitudes."""
    if integer:
        return torch.from_numpy(np.asarray(rng.integers(-9, 10, size=shape), dtype=np.int64))
    if rng.random() < 0.25:  # exact small values: halves (rounding ties), quarters, integers, zeros
        return torch.from_numpy(np.asarray(rng.integers(-24, 25, size=shape) / 4, dtype=np.float32))
    data = np.asarray(rng.standard_normal(shape) * rng.choice([0.5, 1.0, 3.0]))
    mask = rng.random(shape)
    data[mask < 0.08] = 0.0
    if rng.random() < 0.25:
        big = mask > 0.95
        data[big] = rng.choice([-1.0, 1.0], size=int(big.sum())) * rng.uniform(100, 3000, size=int(big.sum()))
    return torch.from_numpy(data.astype(np.float32))


def _input_shape(rng: np.random.Generator) -> tuple[int, ...]:
    rank = int(rng.choice([1, 2, 3, 3, 4, 4]))
    sizes = [1, 2, 3, 4, 5, 6, 7]
    while True:
        shape = tuple(int(rng.choice(sizes)) for _ in range(rank))
        if int(np.prod(shape)) <= 300:
            return shape


def generate(seed: int) -> FuzzProgram:
    """The program of ``seed`` (same seed, same program)."""
    rng = np.random.default_rng(seed)
    first = _input_shape(rng)
    inputs = [random_values(rng, first, integer=False)]
    if rng.random() < 0.35:
        # a second input: same shape, a broadcastable one or any shape; sometimes integer
        choice = rng.integers(3)
        shape = (
            first
            if choice == 0
            else tuple(1 if rng.random() < 0.4 else d for d in first[-2:])
            if choice == 1
            else _input_shape(rng)
        )
        inputs.append(random_values(rng, shape, integer=bool(rng.random() < 0.3)))
    builder = Builder(rng, list(inputs))
    families, weights = zip(*[(name, w) for name, (_, w) in GRAMMAR.items()])
    probs = np.asarray(weights) / sum(weights)
    steps: list[Step] = []
    used: list[str] = []
    wanted = int(rng.integers(2, 9))
    for _ in range(60):
        if len(steps) >= wanted:
            break
        family = families[int(rng.choice(len(families), p=probs))]
        step = GRAMMAR[family][0](builder)
        if step is None:
            continue
        out = _try(step, builder)
        if out is None:
            continue
        steps.append(step)
        used.append(family)
        builder.values.append(out)
    n = len(inputs) + len(steps)
    outputs = [n - 1]
    if len(steps) > 1 and rng.random() < 0.3:
        outputs.insert(0, int(rng.integers(len(inputs), n - 1)))
    target = str(rng.choice(["iOS16", "iOS17", "iOS18"]))
    # drawn apart from the program's rng, so adding the choice left every seed's program as it was
    frontend = "torch.export" if np.random.default_rng([seed, 1]).random() < 0.25 else "torchscript"
    return FuzzProgram(seed, inputs, steps, outputs, builder.consts, target, used, frontend, builder.modules)


def family_programs(family: str, marker: str, count: int, start: int = 0) -> Iterator[FuzzProgram]:
    """``count`` one-step programs of one grammar family whose step text contains ``marker`` (e.g.
    ``"masked_scatter"``), from consecutive draws after ``start``: a family's every form kept in reach of a test
    without running whole random programs. Frontend and target alternate."""
    made = 0
    for draw in range(start, start + 400 * count):
        if made >= count:
            return
        rng = np.random.default_rng([draw, 7])
        inputs = [random_values(rng, _input_shape(rng), integer=False)]
        builder = Builder(rng, list(inputs))
        step = GRAMMAR[family][0](builder)
        if step is None or marker not in step.text or _try(step, builder) is None:
            continue
        frontend = ("torchscript", "torch.export")[made % 2]
        target = ("iOS16", "iOS17", "iOS18")[made % 3]
        yield FuzzProgram(
            draw, inputs, [step], [1], builder.consts, target, [family], frontend, builder.modules
        )
        made += 1


def _try(step: Step, builder: Builder) -> torch.Tensor | None:
    """The step's value on the example values, or None when it raises or makes a tensor unfit for the pool."""
    consts = SimpleNamespace(fdtype=builder.fdtype, **builder.consts, **builder.modules)
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            out = step.fn(consts, *[builder.values[i] for i in step.args])
    except Exception:
        return None
    if not isinstance(out, torch.Tensor) or out.dim() > 5 or not 1 <= out.numel() <= 4096:
        return None
    if out.dtype not in (torch.float32, torch.int64, torch.int32, torch.bool):
        return None
    return out


# ------------------------------------------------------------------ comparing
def scaled_error(got: np.ndarray, ref: np.ndarray) -> float:
    """max |got - ref| / max |ref| over finite reference values; inf when NaN / inf patterns differ."""
    got = np.asarray(got, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    if got.shape != ref.shape:
        return float("inf")
    finite = np.isfinite(ref)
    if not np.array_equal(got[~finite], ref[~finite], equal_nan=True) or not np.isfinite(got[finite]).all():
        return float("inf")
    if not finite.any():
        return 0.0
    scale = max(float(np.abs(ref[finite]).max()), 1e-30)
    return float(np.abs(got[finite] - ref[finite]).max() / scale)


def _as_reference_shape(got: np.ndarray, ref: np.ndarray) -> np.ndarray:
    # NOTE: a Core ML output has rank >= 1: a 0-d PyTorch result comes back as shape (1,)
    got = np.asarray(got)
    if ref.ndim == 0 and got.shape == (1,):
        return got.reshape(())
    return got


def output_error(got: np.ndarray, ref: np.ndarray) -> float:
    """0 when equal; integers / bools must match exactly (inf otherwise), floats by :func:`scaled_error`."""
    got = _as_reference_shape(got, ref)
    if got.shape != ref.shape:
        return float("inf")
    if ref.dtype.kind in "iub":
        return 0.0 if np.array_equal(got.astype(np.float64), ref.astype(np.float64)) else float("inf")
    return scaled_error(got, ref)


def sensitivity(
    program: FuzzProgram, eps: float, runs: int = 4, round_to: torch.dtype | None = None
) -> list[float]:
    """Per output, the largest error that a relative ``eps`` perturbation of every float value causes (float64
    runs), and, with ``round_to``, storing every float value at that precision."""
    module = copy.deepcopy(program.module()).double()
    module.fdtype = torch.float64
    feeds = [t.double() if t.is_floating_point() else t for t in program.inputs]
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        base = [o.numpy() for o in module(*feeds)]
        worst = [0.0] * len(base)
        settings: list[tuple[tuple[torch.Generator, float] | None, torch.dtype | None]] = [
            ((torch.Generator().manual_seed(k), eps), None) for k in range(runs)
        ]
        for noise, dtype in settings:
            module.noise, module.round_to = noise, dtype
            for i, out in enumerate(module(*feeds)):
                worst[i] = max(worst[i], output_error(out.numpy(), base[i]))
        if round_to is not None:
            # the package stores the constants at that precision too (fp16 weights)
            rounded = copy.deepcopy(module)
            rounded.noise, rounded.round_to = None, round_to
            for buffer in [*rounded.buffers(), *rounded.parameters()]:
                if buffer.is_floating_point():
                    buffer.copy_(buffer.to(round_to).to(buffer.dtype))
            for i, out in enumerate(rounded(*feeds)):
                worst[i] = max(worst[i], output_error(out.numpy(), base[i]))
    return worst


class _ReferenceForms(torch.overrides.TorchFunctionMode):
    """Runs the ops whose eager kernels give a zero a sign of their own (softshrink: +0 in the vectorized loop)
    as PyTorch's reference implementations in ``torch._refs`` (softshrink: ``x * 0``, the sign of ``x``), which
    its scalar loop and torch.export's decomposition follow."""

    def __torch_function__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        import torch._refs.nn.functional as refs

        if func is torch._C._nn.softshrink:
            return refs.softshrink(*args, **(kwargs or {}))
        return func(*args, **(kwargs or {}))


def matches_with_one_zero_sign(program: FuzzProgram, got: list[np.ndarray]) -> bool:
    """Whether ``got`` equals PyTorch fp32 once the zeros on the way take another sign: every zero +0.0, every
    zero -0.0, or the sign PyTorch's reference implementations give (:class:`_ReferenceForms`). The sign of a
    zero is then all that differs: ``1 / x`` of a zero whose sign the conversion did not keep, or of softshrink's
    zero, whose sign PyTorch leaves to the code path (+0 vectorized, ``x * 0`` in its scalar loop and
    torch.export's decomposition)."""
    for flag in ("positive_zeros", "negative_zeros", "reference_forms"):
        module = program.module()
        if flag != "reference_forms":
            setattr(module, flag, True)
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if flag == "reference_forms":
                with _ReferenceForms():
                    reference = [o.numpy() for o in module(*program.inputs)]
            else:
                reference = [o.numpy() for o in module(*program.inputs)]
        if all(output_error(g, r) <= FP32_RTOL for g, r in zip(got, reference)):
            return True
    return False


def _reference(program: FuzzProgram) -> tuple[list[np.ndarray], tuple[float, float], bool]:
    """PyTorch eager fp32 outputs, the (smallest nonzero, largest) magnitude of any float value on the way, and
    whether a step is undefined on its values."""
    module = program.module()
    env_max, env_min = 0.0, float("inf")
    undefined = False
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        env = list(program.inputs)
        for step in program.steps:
            args = [env[i] for i in step.args]
            undefined = undefined or bool(step.undefined and step.undefined(*args))
            env.append(step.fn(module, *args))
        for value in env:
            if value.is_floating_point() and value.numel():
                finite = value[torch.isfinite(value)]
                env_max = max(env_max, float(finite.abs().max()) if finite.numel() else float("inf"))
                nonzero = finite[finite != 0].abs()
                env_min = min(env_min, float(nonzero.min()) if nonzero.numel() else env_min)
                if not torch.isfinite(value).all():
                    env_max = float("inf")
    return [env[i].numpy() for i in program.outputs], (env_min, env_max), undefined


# ------------------------------------------------------------------ running
@dataclass
class CaseResult:
    """What happened to one program: its category, a one-line detail and the program text."""

    seed: int
    category: str
    detail: str
    program: str
    families: list[str] = field(default_factory=list)
    checks: list[str] = field(default_factory=list)


def run_case(seed: int, fp16: bool = True, compiled: bool = True) -> CaseResult:
    """Generate, convert, run and judge the program of ``seed``."""
    return run_program(generate(seed), fp16=fp16, compiled=compiled)


def run_program(program: FuzzProgram, fp16: bool = True, compiled: bool = True) -> CaseResult:
    """Convert, run and judge ``program``."""
    seed = program.seed
    text = program.text()

    def result(category: str, detail: str = "", checks: list[str] | None = None) -> CaseResult:
        return CaseResult(seed, category, detail, text, program.families, checks or [])

    reference, env_range, undefined = _reference(program)
    if undefined:
        return result("undefined")
    converted = _convert(program, "fp32")
    if isinstance(converted, CaseResult):
        return result(converted.category, converted.detail)
    mlmodel, feeds = converted
    from devicefit import interp

    checks: list[str] = []
    fallbacks: list[str] = []
    try:
        loaded = interp.load(mlmodel)
    except ModelLoadError as e:  # a program the Core ML runtime would not run, refused with a reason
        return result("load_refused", _first_line(e))
    try:
        outputs = loaded.run(feeds, precision="fp32")
    except Exception as e:
        return result("interp_error", f"{type(e).__name__}: {_first_line(e)}")
    got = [outputs[o.name] for o in loaded.outputs]
    verdict = _judge_fp32(program, got, reference, env_range)
    if verdict is not None and verdict[0] == "fp32_mismatch":
        return result(*verdict)
    if verdict is None:
        checks.append("fp32")
    if compiled:  # the compiled path answers to the interpreter, whatever PyTorch says
        bad = _compiled_check(loaded, feeds, outputs, program, "fp32", fallbacks)
        if bad:
            return result("compiled_mismatch", bad)
        checks.append("compiled fp32")
    if verdict is not None:
        return result(*verdict, checks=checks)
    if fp16:
        outcome = _fp16_check(program, reference, env_range, compiled, fallbacks)
        if outcome is not None:
            return result(*outcome, checks=checks)
        checks.append("fp16")
    if fallbacks:
        return result("compiled_fallback", "; ".join(dict.fromkeys(fallbacks)), checks)
    return result("ok", "", checks)


def _judge_fp32(
    program: FuzzProgram, got: list[np.ndarray], reference: list[np.ndarray], env_range: tuple[float, float]
) -> tuple[str, str] | None:
    """None when the fp32 interpreter agrees with PyTorch, else (category, detail)."""
    errors = [output_error(g, r) for g, r in zip(got, reference)]
    if all(e <= FP32_RTOL for e in errors):
        return None
    sens = sensitivity(program, eps=2**-20)
    if all(e <= FP32_RTOL or e <= SENSITIVITY_FACTOR * s for e, s in zip(errors, sens)):
        return ("ill_conditioned", f"errors {_fmt(errors)}, sensitivity {_fmt(sens)}")
    if matches_with_one_zero_sign(program, got):
        return (
            "signed_zero",
            f"errors {_fmt(errors)}; equal to PyTorch with other signs of zero (all +0, all -0 or torch._refs forms)",
        )
    # NOTE: a wrong shape also scores inf, but no inf / NaN placement explains it (seed 2076: einsum's ellipsis)
    reshaped = any(_as_reference_shape(g, r).shape != r.shape for g, r in zip(got, reference))
    if not reshaped and not np.isfinite(env_range[1]) and all(e <= FP32_RTOL or np.isinf(e) for e in errors):
        return ("nonfinite", f"errors {_fmt(errors)}; " + _describe(got, reference))
    return ("fp32_mismatch", f"errors {_fmt(errors)}, sensitivity {_fmt(sens)}; " + _describe(got, reference))


def _convert(program: FuzzProgram, precision: str) -> tuple[Any, dict[str, np.ndarray]] | CaseResult:
    from devicefit.convert import ConversionError, ConvertOptions, convert
    from devicefit.sources.module import from_module

    source = from_module(
        f"difffuzz seed {program.seed}", "python", program.module(), tuple(program.inputs), None
    )
    options = ConvertOptions(target=program.target, precision=precision, frontend=program.frontend)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            converted = convert(source, options)
    except ConversionError as e:
        # a refusal names each unsupported torch op and its source line; anything else is coremltools failing
        named = "unsupported op" in str(e)
        return CaseResult(program.seed, "refused" if named else "convert_crash", _first_line(e), "")
    except Exception as e:
        return CaseResult(program.seed, "convert_crash", f"{type(e).__name__}: {_first_line(e)}", "")
    return converted.mlmodel, source.coreml_feeds(source.example_inputs)


def _compiled_check(
    loaded: Any, feeds: dict, plain: dict, program: FuzzProgram, precision: str, fallbacks: list[str]
) -> str:
    """'' when the compiled path (exact and default builds) agrees with the plain interpreter, else what differs;
    the reasons of fallbacks to the interpreter (no wrong result, a slower one) are added to ``fallbacks``."""
    from devicefit.interp.agreement import same_array
    from devicefit.interp.compiled import compile_program
    from devicefit.interp.rewrites import FP16_RTOL as C16
    from devicefit.interp.rewrites import FP32_RTOL as C32

    rng = np.random.default_rng(program.seed + 10**6)
    other = {
        name: random_values(rng, v.shape, integer=v.dtype.kind == "i").numpy().astype(v.dtype)
        for name, v in feeds.items()
    }
    for exact in (True, False):
        runner = compile_program(loaded, precision, exact=exact)
        rtol = None if exact else (C16 if precision == "fp16" else C32)
        for which, inputs in (("example", feeds), ("second", other)):
            try:
                reference = plain if which == "example" else loaded.run(inputs, precision=precision)
            except Exception:
                continue  # the second input is invalid for this program (e.g. an index read from it)
            got = runner.run(inputs)
            for name, ref in reference.items():
                if not same_array(np.asarray(got[name]), np.asarray(ref), rtol):
                    return f"exact={exact} {which} input: output {name} differs"
        for fb in runner.fallbacks:
            if "differs" in fb.reason:
                return f"exact={exact}: fallback {fb.describe()}"
            fallbacks.append(f"{precision} exact={exact}: {_first_line(Exception(fb.reason))[:160]}")
    return ""


def _fp16_check(
    program: FuzzProgram,
    reference: list[np.ndarray],
    env_range: tuple[float, float],
    compiled: bool,
    fallbacks: list[str],
) -> tuple[str, str] | None:
    from devicefit import interp

    converted = _convert(program, "fp16")
    if isinstance(converted, CaseResult):
        return ("fp16_error", f"fp16 conversion: {converted.category}: {converted.detail}")
    mlmodel, feeds = converted
    try:
        loaded = interp.load(mlmodel)
        every = loaded.run(feeds, precision="fp16", intermediates=True)
    except Exception as e:
        return ("fp16_error", f"{type(e).__name__}: {_first_line(e)}")
    outputs = {o.name: every[o.name] for o in loaded.outputs}
    # an fp16 value the program stores inside an op's decomposition (var's sum of squares) may overflow
    # where no PyTorch-level value does
    overflowed = any(
        isinstance(v, np.ndarray) and v.dtype == np.float16 and np.isinf(v).any() for v in every.values()
    )
    if compiled:
        bad = _compiled_check(loaded, feeds, outputs, program, "fp16", fallbacks)
        if bad:
            return ("compiled_mismatch", "fp16 " + bad)
    got = [outputs[o.name] for o in loaded.outputs]
    errors = [output_error(g, r) for g, r in zip(got, reference)]
    if all(e <= FP16_RTOL for e in errors):
        return None
    sens = sensitivity(program, eps=2**-11, runs=8, round_to=torch.float16)
    if all(e <= FP16_RTOL or e <= SENSITIVITY_FACTOR * s for e, s in zip(errors, sens)):
        # fp16 rounding itself moves this program that much: within the fp16 bound by construction
        return None
    if env_range[1] > FP16_MAX or env_range[0] < FP16_TINY or (overflowed and np.isfinite(env_range[1])):
        return ("fp16_range", f"errors {_fmt(errors)}; values span {env_range[0]:.3g} .. {env_range[1]:.3g}")
    return ("fp16_mismatch", f"errors {_fmt(errors)}, sensitivity {_fmt(sens)}; " + _describe(got, reference))


def _describe(got: list[np.ndarray], reference: list[np.ndarray]) -> str:
    """The first element that differs in each output (index, the interpreter's value, PyTorch's)."""
    parts = []
    for g, r in zip(got, reference):
        g = _as_reference_shape(g, r)
        if g.shape != r.shape:
            parts.append(f"shape {g.shape} vs torch {r.shape}")
            continue
        g64, r64 = g.astype(np.float64), r.astype(np.float64)
        finite = r64[np.isfinite(r64)]
        scale = float(np.abs(finite).max()) if finite.size else 0.0
        with np.errstate(invalid="ignore"):  # inf - inf where both have the same infinity
            same = (g64 == r64) | (np.isnan(g64) & np.isnan(r64)) | (np.abs(g64 - r64) <= FP32_RTOL * scale)
        bad = np.argwhere(~same)
        if bad.size:
            i = tuple(int(k) for k in bad[0])
            parts.append(f"at {list(i)}: {g[i]!r} vs torch {r[i]!r} ({len(bad)} differ)")
    return "; ".join(parts)


def _fmt(values: list[float]) -> str:
    return "[" + ", ".join(f"{v:.2g}" for v in values) + "]"


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0][:300] if text else type(e).__name__


def run_seeds(seeds: range | list[int], fp16: bool = True, compiled: bool = True) -> Iterator[CaseResult]:
    for seed in seeds:
        yield run_case(seed, fp16=fp16, compiled=compiled)
