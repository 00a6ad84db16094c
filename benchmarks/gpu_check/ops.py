"""GPU-check steps "ops-float32" / "ops-bfloat16": every backend's accuracy, its public API
and raw operators timed, and the CUDA kernels profiled, at the benchmark cases.

    python -m benchmarks.gpu_check.ops --dtype bfloat16 --out ops.jsonl [--device cuda]
        [--backends cuda triton reference] [--cases s0_256 ...] [--passes forward ...]
        [--seconds 0.02] [--no-profile]

Backend by backend (cuda first), each at every benchmark case (benchmarks/cases.py) in one
dtype on the same inputs, writing records (one JSON line each, at once, so a run killed at
its deadline keeps what it measured) of four kinds:
  accuracy  forward+backward through msca_fast.ops.msca against the float64 reference,
            judged by the conformance suite's tolerance table (op_accuracy.py);
  api       msca_fast.ops.msca's forward / backward / forward+backward (benchmarks/passes.py),
            timed by CUDA events (op_timing.py): what a caller pays, Python and autograd in;
  raw       the backend's raw operators (torch.ops.msca_fast.msca_forward / msca_backward for
            cuda, triton_forward / triton_backward for triton), timed the same way;
  kernels   on CUDA, torch.profiler around the raw operators: each kernel's launches and
            device time per call (op_kernels.py).
The cuda backend's records carry predicted times when benchmarks/cuda_prediction.py
provides them (predictions.py). Exit status 1 when a judged backend is beyond tolerance, or
raises on inputs it said it serves; the last lines name each (case, backend, what).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass

import torch

from benchmarks.cases import CASES, PASSES, Case, make_grad_out, make_inputs
from benchmarks.gpu_check import op_accuracy, predictions
from benchmarks.gpu_check.op_kernels import profile_kernels
from benchmarks.gpu_check.op_results import worst
from benchmarks.gpu_check.op_timing import RAW_OPS, raw_calls, time_rounds
from benchmarks.passes import make_call, pass_inputs
from msca_fast.backends import registered_backends
from msca_fast.op_arguments import validate_msca
from msca_fast.ops import msca
from msca_fast.tolerances import TOLERANCE

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def _first_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0]}"[:300]


def _why_not(backend: str, args: tuple[torch.Tensor, ...]) -> str | None:
    known = {b.name: b for b in registered_backends()}
    if backend not in known:
        return f"not registered (registered: {', '.join(known)})"
    return known[backend].why_not(validate_msca(*pass_inputs(args, "forward+backward")).problem)


def _measured(record: dict, measure) -> dict:
    """``record`` with what ``measure()`` returns and status "ok", or status "error" and the
    exception's first line: one backend's failure must not stop the others."""
    try:
        return {**record, **measure(), "status": "ok"}
    except Exception as exc:  # noqa: BLE001
        return {**record, "status": "error", "note": _first_line(exc)}


def _kernels(call) -> dict:
    call()  # compilation and autotuning stay out of the profile
    return {"kernels": profile_kernels(call)}


@dataclass(frozen=True)
class Yardstick:
    """One case's inputs in the dtype, and the references a backend is judged against: the
    float64 reference on the same (rounded) values, and for 16-bit dtypes the reference in
    that dtype, whose own error sets the bound."""

    args: tuple[torch.Tensor, ...]
    grad_out: torch.Tensor
    exact: op_accuracy.Result
    low_precision: op_accuracy.Result | None


def yardstick(case: Case, dtype: torch.dtype, device: torch.device) -> Yardstick:
    args = tuple(t.to(dtype) for t in make_inputs(case, device))
    grad_out = make_grad_out(case, device).to(dtype)
    exact = op_accuracy.forward_backward(tuple(a.double() for a in args), grad_out.double(), "reference")
    low_precision = None if dtype in TOLERANCE else op_accuracy.forward_backward(args, grad_out, "reference")
    return Yardstick(args, grad_out, exact, low_precision)


def run_backend(backend: str, ys: Yardstick, head: dict, device: torch.device, passes: list[str],
                seconds: float, profile: bool, emit) -> None:  # fmt: skip
    """Every record of one backend on one case: accuracy, API passes, raw operators, kernels."""
    reason = _why_not(backend, ys.args)
    if reason is not None:
        emit({**head, "kind": "accuracy", "status": "unavailable", "note": reason})
        return
    emit(_measured({**head, "kind": "accuracy"},
                   lambda: op_accuracy.check(backend, ys.args, ys.grad_out, ys.exact, ys.low_precision)))  # fmt: skip
    op = lambda *a: msca(*a, backend=backend)  # noqa: E731
    for pass_name in passes:
        emit(_measured({**head, "kind": "api", "pass_name": pass_name}, lambda: time_rounds(
            make_call(op, pass_name, pass_inputs(ys.args, pass_name), ys.grad_out, device),
            device, seconds)))  # fmt: skip
    if backend not in RAW_OPS:
        return
    try:
        calls = raw_calls(backend, ys.args, ys.grad_out)
    except Exception as exc:  # noqa: BLE001
        emit({**head, "kind": "raw", "op": "forward", "status": "error", "note": _first_line(exc)})
        return
    for op_name, call in calls.items():
        emit(_measured({**head, "kind": "raw", "op": op_name}, lambda: time_rounds(call, device, seconds)))
        if profile and device.type == "cuda":
            emit(_measured({**head, "kind": "kernels", "op": op_name}, lambda: _kernels(call)))


def run(dtype_name: str, device: torch.device, backends: list[str], case_ids: list[str] | None,
        passes: list[str], seconds: float, profile: bool, emit) -> None:  # fmt: skip
    """Checks and times every (backend, case), backend by backend in the order given (so a
    run stopped early has the first backends at every case), handing each record to ``emit``."""
    dtype = DTYPES[dtype_name]
    on_cuda = device.type == "cuda"
    predicted_by = predictions.load() if on_cuda else None
    gpu = predictions.predicted_device(torch.cuda.get_device_name(device)) if on_cuda else None
    cases = [c for c in CASES if case_ids is None or c.id in case_ids]
    yardsticks: dict[str, Yardstick] = {}  # made once per case, at its first use
    for backend in backends:
        for case in cases:
            if case.id not in yardsticks:
                yardsticks[case.id] = yardstick(case, dtype, device)
            head = dict(case=case.id, shape=case.describe(), dtype=dtype_name, backend=backend, device=str(device))
            run_backend(backend, yardsticks[case.id], head, device, passes, seconds, profile,
                        lambda record: emit(predictions.attach(record, predicted_by, gpu)))  # fmt: skip
            if on_cuda:
                torch.cuda.empty_cache()


def failures(records: list[dict]) -> list[str]:
    """One line per failure: a judged backend beyond tolerance, or any record in error."""
    found = []
    for r in records:
        where = " ".join(str(r.get(k)) for k in ("dtype", "case", "backend", "kind") if r.get(k) is not None)
        what = r.get("pass_name") or r.get("op")
        where += f" {what}" if what else ""
        if r.get("status") == "error":
            found.append(f"{where}: {r.get('note', '')}")
        elif r.get("violations"):
            found.append(f"{where}: beyond tolerance: {'; '.join(r['violations'])}")
    return found


def describe(record: dict) -> str:
    """The record's progress line."""
    what = record.get("pass_name") or record.get("op") or ""
    head = f"{record['dtype']} {record['case']} {record['backend']} {record['kind']} {what}".rstrip()
    if record["status"] != "ok":
        return f"{head}: {record['status']}: {record.get('note', '')}"
    if record["kind"] == "accuracy":
        name = worst(record["errors"], record["bounds"])
        verdict = (
            "BEYOND TOLERANCE" if record["violations"] else "within tolerance" if record["judged"] else "not judged"
        )
        return f"{head}: {verdict} (worst {name} {record['errors'][name]:.2e}, bound {record['bounds'][name]:.2e})"
    if record["kind"] == "kernels":
        return f"{head}: " + ", ".join(
            f"{k['name']} x{k['launches']:g} {k['device_us']:.1f} us" for k in record["kernels"]
        )
    return f"{head}: {record['median_s'] * 1e6:.1f} us (first call {record['first_call_s']:.2f} s)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dtype", choices=list(DTYPES), default="float32")
    parser.add_argument("--out", required=True, help="JSON lines file, one record per line")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--backends", nargs="+", default=["cuda", "triton", "reference"])
    parser.add_argument("--cases", nargs="+", default=None, help=f"case ids (default: all of {[c.id for c in CASES]})")
    parser.add_argument("--passes", nargs="+", choices=list(PASSES), default=list(PASSES))
    parser.add_argument("--seconds", type=float, default=0.02, help="timed seconds per (case, backend, pass)")
    parser.add_argument("--no-profile", action="store_true", help="do not profile the CUDA kernels")
    args = parser.parse_args(argv)
    if args.cases is not None:
        unknown = sorted(set(args.cases) - {c.id for c in CASES})
        if unknown:
            parser.error(f"--cases: unknown case ids {unknown}")

    records = []
    with open(args.out, "w", encoding="utf-8") as out:

        def emit(record: dict) -> None:
            records.append(record)
            out.write(json.dumps(record) + "\n")
            out.flush()
            print(describe(record), flush=True)

        run(args.dtype, torch.device(args.device), args.backends, args.cases, args.passes, args.seconds,
            not args.no_profile, emit)  # fmt: skip
    found = failures(records)
    for line in found:
        print(f"FAILED: {line}")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
