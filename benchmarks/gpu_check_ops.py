"""GPU-check steps "ops-float32" / "ops-bfloat16": the op's backends timed side by side.

    python -m benchmarks.gpu_check_ops --dtype bfloat16 --out ops.jsonl [--device cuda]
        [--backends cuda triton reference] [--cases s0_256 ...] [--passes forward ...] [--seconds 0.03]

The benchmark cases (benchmarks/cases.py) in one dtype; for every case and pass the backends
run one after another on the same inputs, so each (case, pass) has every backend's time
before the next begins. A timing is the median of 3-20 rounds filling about ``--seconds``,
after one untimed call (its time, which includes any compilation, is kept as first_call_s).
Each result is compared with the float32 reference on the same inputs (relative error of the
output and the worst gradient), and written as one JSON line at once, so a run killed at its
deadline keeps what it measured.

The pytest-benchmark suite (benchmarks/test_msca_bench.py) is float32 only; this step is
where the 16-bit timings come from.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
from torch import Tensor

from benchmarks.cases import ARG_NAMES, CASES, PASSES, make_grad_out, make_inputs
from benchmarks.passes import make_call, pass_inputs
from msca_fast.backends import registered_backends
from msca_fast.ops import msca
from msca_fast.reference import msca_reference
from msca_fast.validation import validate_msca

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
MIN_ROUNDS, MAX_ROUNDS = 3, 20


def _rel_err(got: Tensor | None, want: Tensor | None) -> float | None:
    """||got - want|| / ||want|| in float64; None when either is missing or want is zero."""
    if got is None or want is None:
        return None
    want64 = want.detach().double()
    norm = float(want64.norm())
    return float((got.detach().double() - want64).norm()) / norm if norm > 0 else None


def errors(result: object, expected: object, pass_name: str) -> dict[str, float | None]:
    """Relative errors of a pass's result against the float32 reference's."""
    if pass_name == "forward":
        return {"out_rel_err": _rel_err(result, expected)}
    (out, grads), (want_out, want_grads) = result, expected
    # phi_bias's exact gradient is zero (it cancels in the softmax): the reference's is
    # rounding noise, against which no relative error means anything.
    grad_errs = [
        e for name, g, w in zip(ARG_NAMES, grads, want_grads) if name != "phi_bias"
        for e in [_rel_err(g, w)] if e is not None
    ]
    return {"out_rel_err": _rel_err(out, want_out), "grad_rel_err": max(grad_errs, default=None)}


def time_call(call, seconds: float) -> dict[str, float | int]:
    """first_call_s, then the median and min of enough rounds to fill ``seconds``."""
    start = time.perf_counter()
    call()
    first = time.perf_counter() - start
    start = time.perf_counter()
    call()
    estimate = time.perf_counter() - start
    rounds = max(MIN_ROUNDS, min(MAX_ROUNDS, int(seconds / max(estimate, 1e-9))))
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return {"first_call_s": first, "median_s": statistics.median(times), "min_s": min(times), "rounds": rounds}


def _why_not(backend: str, args: tuple[Tensor, ...]) -> str | None:
    known = {b.name: b for b in registered_backends()}
    if backend not in known:
        return f"not registered (registered: {', '.join(known)})"
    return known[backend].why_not(validate_msca(*args).problem)


def run(dtype_name: str, device: torch.device, backends: list[str], case_ids: list[str] | None,
        passes: list[str], seconds: float, emit) -> None:  # fmt: skip
    """Times every (case, pass, backend) and hands each record to ``emit``."""
    dtype = DTYPES[dtype_name]
    cases = [c for c in CASES if case_ids is None or c.id in case_ids]
    for case in cases:
        base = make_inputs(case, device)
        grad_base = make_grad_out(case, device)
        args = tuple(t.to(dtype) for t in base)
        grad_out = grad_base.to(dtype)
        for pass_name in passes:
            # The yardstick: the float32 reference on the same (rounded) values.
            ref_args = pass_inputs(tuple(t.float() for t in args), pass_name)
            expected = make_call(msca_reference, pass_name, ref_args, grad_out.float(), device)()
            for backend in backends:
                record = dict(case=case.id, shape=case.describe(), dtype=dtype_name, pass_name=pass_name,
                              backend=backend, device=str(device))  # fmt: skip
                timed_args = pass_inputs(args, pass_name)
                reason = _why_not(backend, timed_args)
                if reason is not None:
                    emit({**record, "status": "unavailable", "note": reason})
                    continue
                op = lambda *a, _name=backend: msca(*a, backend=_name)  # noqa: E731
                try:
                    call = make_call(op, pass_name, timed_args, grad_out, device)
                    record.update(errors(call(), expected, pass_name))
                    record.update(time_call(call, seconds))
                    record["status"] = "ok"
                except Exception as exc:  # noqa: BLE001 - one backend's failure must not stop the others
                    record.update(status="error", note=f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
                emit(record)
            del expected, ref_args
        del base, args, grad_out, grad_base
        if device.type == "cuda":
            torch.cuda.empty_cache()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dtype", choices=list(DTYPES), default="float32")
    parser.add_argument("--out", required=True, help="JSON lines file, one record per timing")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--backends", nargs="+", default=["cuda", "triton", "reference"])
    parser.add_argument("--cases", nargs="+", default=None, help=f"case ids (default: all of {[c.id for c in CASES]})")
    parser.add_argument("--passes", nargs="+", choices=list(PASSES), default=list(PASSES))
    parser.add_argument("--seconds", type=float, default=0.03, help="timed seconds per (case, pass, backend)")
    args = parser.parse_args(argv)
    if args.cases is not None:
        unknown = sorted(set(args.cases) - {c.id for c in CASES})
        if unknown:
            parser.error(f"--cases: unknown case ids {unknown}")

    with open(args.out, "w", encoding="utf-8") as out:

        def emit(record: dict) -> None:
            out.write(json.dumps(record) + "\n")
            out.flush()
            if record["status"] == "ok":
                detail = f"{record['median_s'] * 1e3:.3f} ms (first call {record['first_call_s']:.2f} s)"
            else:
                detail = f"{record['status']}: {record.get('note', '')}"
            print(f"{record['dtype']} {record['case']} {record['pass_name']} {record['backend']}: {detail}", flush=True)

        run(args.dtype, torch.device(args.device), args.backends, args.cases, args.passes, args.seconds, emit)


if __name__ == "__main__":
    main()
