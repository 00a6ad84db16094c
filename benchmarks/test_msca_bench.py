"""Times every contender on every case and pass; one pytest-benchmark group per case+pass.

Before a contender is timed its result is checked once against the eager reference, its
first call (which includes any compilation) is timed, and its peak memory is measured.
Timed seconds per benchmark: $MSCA_BENCH_SECONDS (default 1.0), 3 to 30 rounds of one call.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

import pytest
import torch
from torch import Tensor

from benchmarks.cases import CASES, PASSES, Case, make_grad_out, make_inputs
from benchmarks.checks import check_grads, check_output
from benchmarks.contenders import all_contenders, why_not
from benchmarks.machine import Machine
from benchmarks.memory import peak_memory_bytes
from benchmarks.passes import make_call, pass_inputs
from benchmarks.roofline import achieved, case_work
from msca_fast.reference import msca_reference

CONTENDERS = all_contenders()
SECONDS_PER_BENCHMARK = float(os.environ.get("MSCA_BENCH_SECONDS", "1.0"))
MIN_ROUNDS, MAX_ROUNDS = 3, 30


@dataclass
class CaseTensors:
    """One case's inputs on the benchmark device, and the reference results, made once."""

    case: Case
    device: torch.device
    args: tuple[Tensor, ...]
    grad_out: Tensor  # (B,N,H,W)
    _expected: dict = field(default_factory=dict)

    def expected(self, pass_name: str) -> object:
        """The eager reference's result of ``pass_name``: out, or (out, grads)."""
        if pass_name not in self._expected:
            inputs = pass_inputs(self.args, pass_name)
            call = make_call(msca_reference, pass_name, inputs, self.grad_out, self.device)
            self._expected[pass_name] = call()
        return self._expected[pass_name]


@pytest.fixture(scope="module", params=CASES, ids=lambda c: c.id)
def case_tensors(request, machine: Machine) -> CaseTensors:
    # Module scope: pytest runs all of one case's tests together, so only one case's
    # tensors are alive at a time.
    case, device = request.param, torch.device(machine.device)
    return CaseTensors(case, device, make_inputs(case, device), make_grad_out(case, device))


def _check(result: object, expected: object, pass_name: str, who: str) -> None:
    if pass_name == "forward":
        check_output(result, expected, who)
    else:
        check_output(result[0], expected[0], who)
        check_grads(result[1], expected[1], who)


def _seconds(call) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


@pytest.mark.parametrize("contender", CONTENDERS, ids=lambda c: c.name)
@pytest.mark.parametrize("pass_name", PASSES)
def test_msca(benchmark, machine: Machine, case_tensors: CaseTensors, pass_name: str, contender) -> None:
    case, device = case_tensors.case, case_tensors.device
    who = f"{contender.name} on {case.id} {pass_name}"
    args = pass_inputs(case_tensors.args, pass_name)
    reason = why_not(contender, args)
    if reason is not None:
        pytest.skip(f"{who}: {reason}")
    call = make_call(contender.build(), pass_name, args, case_tensors.grad_out, device)

    start = time.perf_counter()
    result = call()  # includes compilation for compiled contenders
    first_call_s = time.perf_counter() - start
    _check(result, case_tensors.expected(pass_name), pass_name, who)
    del result
    estimate_s = _seconds(call)
    peak = peak_memory_bytes(call, device)
    rounds = max(MIN_ROUNDS, min(MAX_ROUNDS, int(SECONDS_PER_BENCHMARK / estimate_s)))

    work = case_work(case, pass_name)
    benchmark.group = f"{case.id} {pass_name}"
    benchmark.extra_info.update(
        case=case.id,
        shape=case.describe(),
        pass_name=pass_name,
        contender=contender.name,
        kind=contender.kind,
        min_bytes=work.bytes,
        min_flops=work.flops,
        peak_memory_bytes=peak,
        first_call_s=first_call_s,
        **{f"machine_{k}": v for k, v in machine.as_dict().items()},
    )
    benchmark.pedantic(call, rounds=rounds, iterations=1, warmup_rounds=0)

    if benchmark.stats:  # absent under --benchmark-disable
        median_s = benchmark.stats.stats.median
        rates = achieved(work, median_s, machine.copy_gbs, machine.gemm_gflops)
        benchmark.extra_info.update(
            rates_from="median",
            achieved_gbs=rates.gbs,
            achieved_gflops=rates.gflops,
            roofline_s=rates.roofline_s,
            roofline_fraction=rates.fraction,
            bound=rates.bound,
        )
