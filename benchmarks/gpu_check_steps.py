"""The GPU check's steps: what each runs, its time budget, and how its results read.

Each step is one child process (see benchmarks/gpu_check_runner.py). Its command is made
when the step starts, from what earlier steps found (the environment step's compute
capability sets the build's TORCH_CUDA_ARCH_LIST, for instance); a step whose prerequisite
is known to be missing is skipped with the reason. The budgets add up to 480 s.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from benchmarks import gpu_check_results as results

TOTAL_BUDGET_S = 480.0
TRAIN_BACKENDS = ("cuda", "triton", "reference")
OP_DTYPES = ("float32", "bfloat16")


class Skip(Exception):
    """Raised by a step's ``prepare`` when it should not run; the message says why."""


ENVIRONMENT_FILE = "environment.json"


@dataclass
class Context:
    """What the steps share: where things are, and what earlier steps found (in ``work``)."""

    repo: Path
    work: Path  # result files and logs
    python: str

    @property
    def environment(self) -> dict:
        """The environment step's JSON; empty until it has run, or if it failed."""
        return results.read_json(self.work / ENVIRONMENT_FILE) or {}

    def has_cuda(self) -> bool | None:
        """True / False as the environment step found, None when unknown."""
        return self.environment.get("cuda_available")

    def has_package(self, name: str) -> bool | None:
        """Whether the environment step found the package installed; None when unknown."""
        packages = self.environment.get("packages")
        return None if packages is None else packages.get(name) is not None

    def arch(self) -> str | None:
        """The local GPU's architecture for TORCH_CUDA_ARCH_LIST, e.g. "9.0"."""
        capability = self.environment.get("capability")
        return f"{capability[0]}.{capability[1]}" if isinstance(capability, list) and len(capability) == 2 else None


@dataclass(frozen=True)
class Command:
    """argv, and variables added to the environment."""

    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Step:
    """name: short id (--only / --skip); title: what it does; budget_s: its time budget;
    shows: the command as --dry-run prints it; prepare(ctx) -> Command (or raises Skip);
    render(ctx) -> its markdown section, from the files it wrote."""

    name: str
    title: str
    budget_s: float
    shows: str
    prepare: Callable[[Context], Command]
    render: Callable[[Context], str] | None = None


def _needs_cuda(ctx: Context) -> None:
    if ctx.has_cuda() is False:
        raise Skip("no CUDA device (torch.cuda.is_available() is False)")


def _needs_package(ctx: Context, name: str) -> None:
    if ctx.has_package(name) is False:
        raise Skip(f"{name} is not installed (pip install {name})")


# --- the steps -----------------------------------------------------------------------------------


def _environment(ctx: Context) -> Command:
    return Command([ctx.python, "-m", "benchmarks.gpu_check_env", "--out", str(ctx.work / ENVIRONMENT_FILE)])


def _build(ctx: Context) -> Command:
    _needs_cuda(ctx)
    env = {"FORCE_CUDA": "1", "MAX_JOBS": str(os.cpu_count() or 2)}
    arch = ctx.arch()
    if arch is not None:  # unknown: setup.py's default list
        env["TORCH_CUDA_ARCH_LIST"] = arch
    return Command([ctx.python, "setup.py", "build_ext", "--inplace"], env)


def _backends(ctx: Context) -> Command:
    device = "cpu" if ctx.has_cuda() is False else "cuda"
    return Command([ctx.python, "-m", "benchmarks.gpu_check_backends", "--device", device,
                    "--out", str(ctx.work / "backends.json")])  # fmt: skip


def _gpu_tests(ctx: Context) -> Command:
    _needs_cuda(ctx)
    _needs_package(ctx, "pytest")
    return Command([ctx.python, "-m", "pytest", "-m", "gpu", "tests", "-q", "-rfE", "-p", "no:cacheprovider",
                    f"--junitxml={ctx.work / 'gpu_tests.xml'}"])  # fmt: skip


def _ops(dtype: str) -> Callable[[Context], Command]:
    def prepare(ctx: Context) -> Command:
        _needs_cuda(ctx)
        return Command([ctx.python, "-m", "benchmarks.gpu_check_ops", "--dtype", dtype, "--device", "cuda",
                        "--out", str(ctx.work / f"ops_{dtype}.jsonl")])  # fmt: skip

    return prepare


def _train(backend: str) -> Callable[[Context], Command]:
    def prepare(ctx: Context) -> Command:
        _needs_cuda(ctx)
        return Command([ctx.python, "-m", "benchmarks.gpu_check_train", "--backend", backend, "--preset", "256",
                        "--device", "cuda", "--out", str(ctx.work / f"train_{backend}.json")])  # fmt: skip

    return prepare


def _bench_suite(ctx: Context) -> Command:
    _needs_cuda(ctx)
    _needs_package(ctx, "pytest-benchmark")
    env = {"MSCA_BENCH_DEVICE": "cuda", "MSCA_BENCH_SECONDS": "0.05",
           "MSCA_BENCH_RESULTS_DIR": str(ctx.work / "bench_suite")}  # fmt: skip
    # torch.compile of the reference would spend the budget compiling 18 graphs.
    return Command([ctx.python, "-m", "pytest", "benchmarks/test_msca_bench.py", "--benchmark-only", "-q",
                    "-p", "no:cacheprovider", "-k", "not compiled_reference"], env)  # fmt: skip


# --- their sections -------------------------------------------------------------------------------


def _render_environment(ctx: Context) -> str:
    return results.render_environment(results.read_json(ctx.work / ENVIRONMENT_FILE))


def _render_backends(ctx: Context) -> str:
    return results.render_backends(results.read_json(ctx.work / "backends.json"))


def _render_tests(ctx: Context) -> str:
    return results.render_junit(ctx.work / "gpu_tests.xml")


def _render_ops(dtype: str) -> Callable[[Context], str]:
    return lambda ctx: results.render_ops(results.read_json_lines(ctx.work / f"ops_{dtype}.jsonl"))


def _render_suite(ctx: Context) -> str:
    path = ctx.work / "bench_suite" / "latest.md"
    if not path.exists():
        return "No report from the benchmark suite (it prints one only when it completes)."
    return "float32, pytest-benchmark, MSCA_BENCH_SECONDS=0.05 (short rounds):\n\n" + path.read_text(encoding="utf-8")


def default_steps() -> list[Step]:
    """The check's steps in the order they run; their budgets add up to TOTAL_BUDGET_S."""
    py = "python"
    steps = [
        Step("environment", "Environment", 10, f"{py} -m benchmarks.gpu_check_env", _environment, _render_environment),
        Step("build", "Build for the local GPU", 150,
             f"FORCE_CUDA=1 MAX_JOBS=<cores> TORCH_CUDA_ARCH_LIST=<local capability> {py} setup.py build_ext --inplace",
             _build),
        Step("backends", "Backends and \"auto\"", 10, f"{py} -m benchmarks.gpu_check_backends", _backends,
             _render_backends),
        Step("gpu-tests", "GPU tests", 90, f"{py} -m pytest -m gpu tests", _gpu_tests, _render_tests),
    ]
    for dtype in OP_DTYPES:
        steps.append(Step(f"ops-{dtype}", f"Op timings, {dtype}", 45,
                          f"{py} -m benchmarks.gpu_check_ops --dtype {dtype} --device cuda", _ops(dtype), _render_ops(dtype)))  # fmt: skip
    for backend, budget in zip(TRAIN_BACKENDS, (35, 35, 30)):
        steps.append(Step(f"train-{backend}", f"Training, MSCA backend {backend}", budget,
                          f"{py} -m benchmarks.gpu_check_train --backend {backend} --preset 256 --device cuda",
                          _train(backend)))  # fmt: skip
    steps.append(Step("bench-suite", "Benchmark suite (float32)", 30,
                      "MSCA_BENCH_DEVICE=cuda MSCA_BENCH_SECONDS=0.05 "
                      f"{py} -m pytest benchmarks/test_msca_bench.py --benchmark-only -k 'not compiled_reference'",
                      _bench_suite, _render_suite))  # fmt: skip
    return steps


def training_records(ctx: Context) -> list[dict]:
    """The training steps' JSON records that exist, in TRAIN_BACKENDS order."""
    found = (results.read_json(ctx.work / f"train_{b}.json") for b in TRAIN_BACKENDS)
    return [r for r in found if r is not None]


def op_records(ctx: Context) -> list[dict]:
    """Every op timing record of both dtypes."""
    return [r for dtype in OP_DTYPES for r in results.read_json_lines(ctx.work / f"ops_{dtype}.jsonl")]
