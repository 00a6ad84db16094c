"""The GPU check's steps: what each runs, its time budget, and how its results read.

Each step is one child process (runner.py) whose command is made when it starts, from what
earlier steps found; a step whose prerequisite is known to be missing is skipped with the
reason. The order puts what the first GPU run must not lose first: the build, the CUDA
kernels' tests, the op timings against their predictions, the sanitizer; then Triton's
tests and training, which take what the others leave.

Budgets (seconds; 470 in all, and 10 s of the 480 kept for the last kill's grace period and
the final pack: plan.RESERVE_S). Time a step leaves unused carries forward (runner.Schedule), so a generous
budget early costs the later steps nothing when it is not used. Measured on the development
machine (2 shared cores, no GPU, 2026-12-03), and the reasoning:

  environment   20  the worker took 4.2 s here (cold `import torch` 3.0 s); a fresh machine
                    adds CUDA initialisation and a cold page cache for torch's CUDA libraries.
                    It writes its JSON after each group of probes, and the build no longer
                    needs it (nvidia-smi gives the architecture), so a kill costs little.
  build        160  MSCA_FAST_SKIP_EMULATION=1 TORCH_CUDA_ARCH_LIST=9.0 MAX_JOBS=2 built _C in
                    227 s wall on 2 cores shared with other builds (load 3.4), using 157 s of
                    CPU in all (user + sys); ninja's log: msca_cpu.o 193 s and msca_cuda.o
                    222 s wall side by side, msca_library.o 27 s after. The emulated
                    extension, minutes more, is skipped. With a core per object (MAX_JOBS =
                    all cores) the build takes its longest object, about 80 s of CPU by those
                    shares, plus torch's import and the link: about 90 s, so 160 s leaves
                    1.8x for slower cores and a cold disk; no _C would fail every CUDA step.
  backends      20  the worker took 10.1 s here (importing msca_fast's backends 6.5 s), with no
                    CUDA initialisation.
  tests-cuda    45  the 91 tests `pytest -m gpu -k "not triton and not compile"` selects
                    (collected in 3.4 s here, 5 s with pytest's start): small problems, and 4
                    opchecks at 1-5 s each (measured on the CPU kernels).
  ops-float32   55  per case: the float64 reference, then cuda, triton, reference (accuracy,
  ops-bfloat16  55  3 public-API passes, 2 raw operators, 2 profiles). Triton compiles at its
                    first calls: 264 compiles of its GPU variants took 248 s on 2 workers
                    here (1.9 s each); 5 kernels x 2 K paddings x 1-3 autotune candidates is
                    20-50 s. cuda runs first, so a kill keeps its records.
  sanitizer     45  4 tools, each a fresh process (torch's start-up 3 s here, slower under
                    the tool) over 22 tiny cases (3.1 s with start-up on the CPU kernels);
                    the tools share what is left equally, one over its share is "timeout".
  tests-triton  30  the other 94 GPU tests: Triton compiles for every test shape (100 or more
                    compiles at about 1.9 s) cannot fit; it takes what the steps before leave,
                    and its per-test lines keep whatever finished.
  train-cuda    20  set-up, 1 warm-up and 5 timed iterations of the 256 preset (one G update).
  train-triton  20
"""

from __future__ import annotations

import os
from collections.abc import Callable

from benchmarks.gpu_check import op_results, results
from benchmarks.gpu_check.capability import query_arch_list
from benchmarks.gpu_check.context import ENVIRONMENT_FILE, Command, Context, Skip, Step
from benchmarks.gpu_check.pytest_results import render_test_lines
from benchmarks.gpu_check.sanitizer import find_sanitizer, missing_reason
from benchmarks.gpu_check.sanitizer import render as render_sanitizer

BUDGETS_S = 470.0  # with plan.RESERVE_S, the check takes at most 480 s
TRAIN_BACKENDS = ("cuda", "triton")
OP_DTYPES = ("float32", "bfloat16")
# The GPU tests in two runs: the CUDA kernels', then the rest (Triton, torch.compile).
TEST_SELECTIONS = {"tests-cuda": "not triton and not compile", "tests-triton": "triton or compile"}
BUILD_ENV_SHOWN = ("MSCA_FAST_SKIP_EMULATION=1 FORCE_CUDA=1 MAX_JOBS=<all cores> "
                   "TORCH_CUDA_ARCH_LIST=<nvidia-smi compute_cap, else the environment step's>")


def _needs_cuda(ctx: Context) -> None:
    if ctx.has_cuda() is False:
        raise Skip("no CUDA device (torch.cuda.is_available() is False)")


def _needs_package(ctx: Context, name: str) -> None:
    if ctx.has_package(name) is False:
        raise Skip(f"{name} is not installed (pip install {name})")


def _module(ctx: Context, name: str, *args: str) -> list[str]:
    return [ctx.python, "-m", f"benchmarks.gpu_check.{name}", *args]


# --- the commands ---------------------------------------------------------------------------------


def _environment(ctx: Context) -> Command:
    return Command(_module(ctx, "env", "--out", str(ctx.work / ENVIRONMENT_FILE)))


def build_env(ctx: Context, cores: int) -> dict[str, str]:
    """The build's variables: no emulated extension, CUDA or fail, every core, and the local
    architecture only (nvidia-smi's, else the environment step's; neither: setup.py's list)."""
    env = {"MSCA_FAST_SKIP_EMULATION": "1", "FORCE_CUDA": "1", "MAX_JOBS": str(cores)}
    arch = query_arch_list() or ctx.arch()
    if arch is not None:
        env["TORCH_CUDA_ARCH_LIST"] = arch
    return env


def _build(ctx: Context) -> Command:
    _needs_cuda(ctx)
    return Command([ctx.python, "setup.py", "build_ext", "--inplace"], build_env(ctx, os.cpu_count() or 2))


def _backends(ctx: Context) -> Command:
    device = "cpu" if ctx.has_cuda() is False else "cuda"
    return Command(_module(ctx, "backends", "--device", device, "--out", str(ctx.work / "backends.json")))


def tests_file(name: str) -> str:
    return f"{name.replace('-', '_')}.jsonl"


def _tests(name: str) -> Callable[[Context], Command]:
    def prepare(ctx: Context) -> Command:
        _needs_cuda(ctx)
        _needs_package(ctx, "pytest")
        return Command([ctx.python, "-m", "pytest", "-m", "gpu", "tests", "-k", TEST_SELECTIONS[name], "-v", "-rfE",
                        "--tb=short", "-p", "no:cacheprovider", "-p", "benchmarks.gpu_check.pytest_plugin",
                        "--gpu-check-results", str(ctx.work / tests_file(name))])  # fmt: skip

    return prepare


def _ops(dtype: str) -> Callable[[Context], Command]:
    def prepare(ctx: Context) -> Command:
        _needs_cuda(ctx)
        out = str(ctx.work / f"ops_{dtype}.jsonl")
        return Command(_module(ctx, "ops", "--dtype", dtype, "--device", "cuda", "--out", out))

    return prepare


def _sanitizer(ctx: Context) -> Command:
    _needs_cuda(ctx)
    tool, looked = find_sanitizer()
    if tool is None:
        raise Skip(missing_reason(looked))
    return Command(_module(ctx, "sanitizer", "--out", str(ctx.work / "sanitizer.json"), "--log-dir", str(ctx.work)))


def _train(backend: str) -> Callable[[Context], Command]:
    def prepare(ctx: Context) -> Command:
        _needs_cuda(ctx)
        return Command(_module(ctx, "train", "--backend", backend, "--preset", "256", "--device", "cuda",
                               "--warmup", "1", "--iterations", "5",
                               "--out", str(ctx.work / f"train_{backend}.json")))  # fmt: skip

    return prepare


# --- their sections -------------------------------------------------------------------------------


def _render_environment(ctx: Context) -> str:
    return results.render_environment(results.read_json(ctx.work / ENVIRONMENT_FILE))


def _render_backends(ctx: Context) -> str:
    return results.render_backends(results.read_json(ctx.work / "backends.json"))


def _render_tests(name: str) -> Callable[[Context], str]:
    return lambda ctx: render_test_lines(ctx.work / tests_file(name))


def _render_ops(dtype: str) -> Callable[[Context], str]:
    return lambda ctx: op_results.render_ops(results.read_json_lines(ctx.work / f"ops_{dtype}.jsonl"))


def _render_sanitizer(ctx: Context) -> str:
    return render_sanitizer(results.read_json(ctx.work / "sanitizer.json"))


def default_steps() -> list[Step]:
    """The check's steps in the order they run; their budgets add up to BUDGETS_S."""
    py = "python"
    tests = f"{py} -m pytest -m gpu tests -v -p benchmarks.gpu_check.pytest_plugin"
    steps = [
        Step("environment", "Environment", 20, f"{py} -m benchmarks.gpu_check.env", _environment, _render_environment),
        Step("build", "Build for the local GPU", 160, f"{BUILD_ENV_SHOWN} {py} setup.py build_ext --inplace", _build),
        Step("backends", "Backends and \"auto\"", 20, f"{py} -m benchmarks.gpu_check.backends", _backends,
             _render_backends),  # fmt: skip
        Step("tests-cuda", "GPU tests: the CUDA kernels", 45, f"{tests} -k '{TEST_SELECTIONS['tests-cuda']}'",
             _tests("tests-cuda"), _render_tests("tests-cuda")),  # fmt: skip
    ]
    for dtype in OP_DTYPES:
        steps.append(Step(f"ops-{dtype}", f"Ops, {dtype}: accuracy, timings, kernels", 55,
                          f"{py} -m benchmarks.gpu_check.ops --dtype {dtype} --device cuda", _ops(dtype),
                          _render_ops(dtype)))  # fmt: skip
    steps += [
        Step("sanitizer", "compute-sanitizer on the CUDA operators", 45,
             f"{py} -m benchmarks.gpu_check.sanitizer (memcheck, racecheck, synccheck, initcheck)", _sanitizer,
             _render_sanitizer),  # fmt: skip
        Step("tests-triton", "GPU tests: Triton and torch.compile", 30,
             f"{tests} -k '{TEST_SELECTIONS['tests-triton']}'", _tests("tests-triton"),
             _render_tests("tests-triton")),  # fmt: skip
    ]
    for backend in TRAIN_BACKENDS:
        steps.append(Step(f"train-{backend}", f"Training, MSCA backend {backend}", 20,
                          f"{py} -m benchmarks.gpu_check.train --backend {backend} --preset 256 --device cuda",
                          _train(backend)))  # fmt: skip
    return steps


def extra_sections(ctx: Context, names: set[str]) -> list[tuple[str, str]]:
    """Sections drawing on several steps: "auto"'s order from both op steps, the training table."""
    extra = []
    if names & {f"ops-{d}" for d in OP_DTYPES}:
        backends = results.read_json(ctx.work / "backends.json") or {}
        priorities = {b["name"]: b["priority"] for b in backends.get("backends", [])} or None
        records = [r for d in OP_DTYPES for r in results.read_json_lines(ctx.work / f"ops_{d}.jsonl")]
        extra.append(('cuda or triton first? ("auto"\'s order)', op_results.auto_order_verdict(records, priorities)))
    if names & {f"train-{b}" for b in TRAIN_BACKENDS}:
        found = (results.read_json(ctx.work / f"train_{b}.json") for b in TRAIN_BACKENDS)
        extra.append(("Training, 256 preset", results.render_training([r for r in found if r is not None])))
    return extra
