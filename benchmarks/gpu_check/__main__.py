"""One command for a fresh GPU machine: build, test, time, sanitize and report, within 8 minutes.

    python -m benchmarks.gpu_check [--out-dir gpu_check_out] [--work-dir DIR] [--dry-run]
                                   [--only STEP ...] [--skip STEP ...] [--total-seconds 470] [--quiet]

Runs from the repository root, with torch and triton installed (pytest for the test steps;
no lpips or torch-fidelity). The steps (``--dry-run`` lists them with budgets and commands;
benchmarks/gpu_check/steps.py has the measurements behind the budgets):

 1. environment: versions, GPU, compute capability, nvcc, packages;
 2. build: ``python setup.py build_ext --inplace`` for the local architecture only, without
    the emulated extension, on every core;
 3. backends: what registered, and whom "auto" picks;
 4. tests-cuda: the CUDA kernels' GPU tests;
 5. ops-float32, ops-bfloat16: every backend's accuracy against the tolerance table, the
    public API and raw operators timed, each CUDA kernel profiled beside its prediction;
 6. sanitizer: compute-sanitizer's four tools over the CUDA operators on tiny shapes;
 7. tests-triton: the other GPU tests (Triton, torch.compile);
 8. train-cuda, train-triton: a few iterations of the 256 preset.

Every step is a child process with a deadline; one that fails or overruns (killed) is
reported and the next one runs. Everything the check writes goes to ``--out-dir``, rewritten
after every step: ``report.md`` (versions, device, results, failures, and whether the timings
confirm "auto"'s order between cuda and triton) and ``logs.tar.gz`` (every step's log and
result file). Steps work in ``--work-dir`` (default: a new temporary folder). Progress goes
to stdout. Exit status 1 when a step failed or timed out.
"""

from __future__ import annotations

import argparse
import datetime
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.gpu_check import pack
from benchmarks.gpu_check.check import run_steps
from benchmarks.gpu_check.context import Context
from benchmarks.gpu_check.plan import dry_run_text, scaled, select
from benchmarks.gpu_check.steps import default_steps

REPO = Path(__file__).resolve().parents[2]
DEFAULT_OUT_DIR = "gpu_check_out"


def _git_commit() -> str:
    try:
        done = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=REPO, capture_output=True, text=True,
                              timeout=10)  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return "unknown (git unavailable)"
    return done.stdout.strip() or "unknown (not a git checkout)"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gpu_check", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--out-dir", default=DEFAULT_OUT_DIR,
                        help=f"where {pack.REPORT_NAME} and {pack.ARCHIVE_NAME} go "
                        f"(default: {DEFAULT_OUT_DIR})")  # fmt: skip
    parser.add_argument("--work-dir", default=None,
                        help="the steps' logs and result files (default: a new temporary folder)")  # fmt: skip
    parser.add_argument("--dry-run", action="store_true", help="list the steps, budgets and commands; run nothing")
    parser.add_argument("--only", nargs="+", metavar="STEP", help="run only these steps")
    parser.add_argument("--skip", nargs="+", metavar="STEP", help="leave these steps out")
    parser.add_argument("--total-seconds", type=float, default=None,
                        help="time for the selected steps; their budgets are scaled to add up to it "
                        "(default: their own budgets)")  # fmt: skip
    parser.add_argument("--quiet", action="store_true", help="print only the step lines, not the steps' output")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.total_seconds is not None and not args.total_seconds > 0:
        parser.error(f"--total-seconds: expected a positive number, got {args.total_seconds}")
    try:
        steps = select(default_steps(), args.only, args.skip)
    except ValueError as exc:
        parser.error(str(exc))
    if not steps:
        parser.error("no steps left to run")
    total_s = sum(s.budget_s for s in steps) if args.total_seconds is None else args.total_seconds
    steps = scaled(steps, total_s)
    if args.dry_run:
        print(dry_run_text(steps))
        return 0

    out_dir = Path(args.out_dir).resolve()
    work = Path(args.work_dir).resolve() if args.work_dir else Path(tempfile.mkdtemp(prefix="msca_gpu_check_"))
    if work == out_dir or out_dir in work.parents:
        parser.error(f"--work-dir: expected a folder outside --out-dir {out_dir}, got {work}")
    work.mkdir(parents=True, exist_ok=True)
    ctx = Context(REPO, work, sys.executable)
    header = [
        (
            "command",
            shlex.join(["python", "-m", "benchmarks.gpu_check", *(argv if argv is not None else sys.argv[1:])]),
        ),
        ("started", datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")),
        ("commit", _git_commit()),
        ("logs", f"{pack.ARCHIVE_NAME} (from {work})"),
    ]

    def echo(line: str) -> None:
        if not (args.quiet and line.startswith("    ")):
            print(line, flush=True)

    done = run_steps(steps, ctx, total_s, out_dir, header, echo)
    print(f"report: {out_dir / pack.REPORT_NAME}")
    return 1 if any(s.outcome.status in ("failed", "timeout") for s in done) else 0


if __name__ == "__main__":
    sys.exit(main())
