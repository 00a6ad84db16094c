"""One command for a fresh GPU machine: build, test, time, and report, within 8 minutes.

    python -m benchmarks.gpu_check [--out gpu_check.md] [--dry-run] [--only STEP ...] [--skip STEP ...]
                                   [--total-seconds 480] [--quiet]

Runs from the repository root, with the torch and triton already installed (no lpips or
torch-fidelity needed). The steps (``--dry-run`` lists them with their budgets):

1. environment: versions, GPU, compute capability, nvcc;
2. build: ``python setup.py build_ext --inplace`` for the local architecture only;
3. backends: what registered, and whom "auto" picks;
4. gpu-tests: ``pytest -m gpu tests``;
5. ops-float32, ops-bfloat16: the op's cuda, triton and reference backends on every
   benchmark scale, forward / backward / both;
6. train-cuda, train-triton, train-reference: a few iterations of the 256 preset;
7. bench-suite: the float32 pytest-benchmark suite with short rounds.

Every step is a child process with a time budget; one that fails or overruns (killed) is
reported and the next one runs. Progress goes to stdout; the report (versions, device,
results, failures, and whether the timings confirm "auto"'s order between cuda and triton)
is rewritten to ``--out`` after every step, and each step's output is logged next to it in
``<out stem>_files/``. Exit status 1 when a step failed or timed out.
"""

from __future__ import annotations

import argparse
import datetime
import os
import shlex
import subprocess
import sys
from pathlib import Path

from benchmarks import gpu_check_report as report
from benchmarks import gpu_check_results as results
from benchmarks.gpu_check_runner import Outcome, Schedule, run_command
from benchmarks.gpu_check_steps import TOTAL_BUDGET_S, Context, Skip, Step, default_steps, op_records, training_records

REPO = Path(__file__).resolve().parents[1]


def select(steps: list[Step], only: list[str] | None, skip: list[str] | None) -> list[Step]:
    """The steps named by --only (all when None), less those named by --skip, in their order."""
    names = [s.name for s in steps]
    for option, given in (("--only", only), ("--skip", skip)):
        unknown = sorted(set(given or ()) - set(names))
        if unknown:
            raise ValueError(f"{option}: unknown steps {unknown}; the steps are {names}")
    return [s for s in steps if (only is None or s.name in only) and s.name not in (skip or ())]


def scaled(steps: list[Step], total_s: float) -> list[Step]:
    """The steps with budgets scaled so that they add up to ``total_s``."""
    factor = total_s / sum(s.budget_s for s in steps)
    return [Step(s.name, s.title, s.budget_s * factor, s.shows, s.prepare, s.render) for s in steps]


def dry_run_text(steps: list[Step], total_s: float) -> str:
    """What --dry-run prints: each step with its budget and command, and the total."""
    width = max(len(s.name) for s in steps)
    lines = [f"{len(steps)} steps, {total_s:.0f} s in all (time a step leaves unused carries forward):", ""]
    for i, s in enumerate(steps, 1):
        lines.append(f"{i:2d}. {s.name:<{width}}  {s.budget_s:5.0f} s  {s.title}")
        lines.append(f"    {'':<{width}}           $ {s.shows}")
    return "\n".join(lines)


def _git_commit() -> str:
    try:
        done = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=REPO, capture_output=True, text=True,
                              timeout=10)  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return "unknown (git unavailable)"
    return done.stdout.strip() or "unknown (not a git checkout)"


def _extra_sections(ctx: Context, steps: list[Step]) -> list[tuple[str, str]]:
    names = {s.name for s in steps}
    extra = []
    if names & {"ops-float32", "ops-bfloat16"}:
        backends = results.read_json(ctx.work / "backends.json") or {}
        priorities = {b["name"]: b["priority"] for b in backends.get("backends", [])} or None
        extra.append(('cuda or triton first? ("auto"\'s order)', results.auto_order_verdict(op_records(ctx), priorities)))
    if names & {"train-cuda", "train-triton", "train-reference"}:
        extra.append(("Training, 256 preset", results.render_training(training_records(ctx))))
    return extra


def _section(step: Step, ctx: Context) -> str:
    if step.render is None:
        return ""
    try:
        return step.render(ctx)
    except Exception as exc:  # noqa: BLE001 - a bad result file must not lose the rest of the report
        return f"(could not read this step's results: {type(exc).__name__}: {exc})"


def run_steps(steps: list[Step], ctx: Context, total_s: float, out: Path, header: list[tuple[str, str]],
              echo=print) -> list[report.StepReport]:  # fmt: skip
    """Runs the steps under one schedule, rewriting the report at ``out`` after each."""
    schedule = Schedule(total_s)
    done: list[report.StepReport] = []
    pending = [report.StepReport(s.name, s.title, s.budget_s) for s in steps]

    def save(final: bool = False) -> None:
        when = [("wall time", f"{schedule.elapsed():.0f} s of {total_s:.0f} s")] if final else [("state", "running")]
        text = report.render(header + when, done + pending[len(done):], _extra_sections(ctx, steps))
        report.write(out, text)

    save()
    for index, step in enumerate(steps, 1):
        allowed = schedule.allot(step.budget_s)
        echo(f"==> [{index}/{len(steps)}] {step.name}: {step.title} (budget {step.budget_s:.0f} s, "
             f"allowed {allowed:.0f} s, {schedule.remaining():.0f} s left in all)")  # fmt: skip
        try:
            if Schedule.too_short(allowed, step.budget_s):
                raise Skip(f"no time left ({allowed:.1f} s of the {total_s:.0f} s total)")
            command = step.prepare(ctx)
        except Skip as why:
            outcome = Outcome("skipped", 0.0, None, note=str(why))
        except Exception as exc:  # noqa: BLE001 - a broken step must not stop the others
            outcome = Outcome("failed", 0.0, allowed, note=f"could not prepare: {type(exc).__name__}: {exc}")
        else:
            env = {**_base_env(), **command.env}
            echo("    $ " + " ".join([f"{k}={shlex.quote(v)}" for k, v in command.env.items()] + [shlex.join(command.argv)]))
            outcome = run_command(command.argv, allowed, cwd=ctx.repo, env=env, log_path=ctx.work / f"{step.name}.log",
                                  echo=lambda line: echo(f"    | {line}"))  # fmt: skip
        echo(f"<== {step.name}: {outcome.status} in {outcome.seconds:.1f} s{': ' + outcome.note if outcome.note else ''}")
        done.append(report.StepReport(step.name, step.title, step.budget_s, outcome, _section(step, ctx)))
        save()
    save(final=True)
    return done


def _base_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"  # progress lines as they happen, not at exit
    # The repository root first, so `python -m benchmarks...` and msca_fast import from the checkout.
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="gpu_check.md", help="the markdown report (default: gpu_check.md)")
    parser.add_argument("--dry-run", action="store_true", help="list the steps and their budgets; run nothing")
    parser.add_argument("--only", nargs="+", metavar="STEP", help="run only these steps")
    parser.add_argument("--skip", nargs="+", metavar="STEP", help="leave these steps out")
    parser.add_argument("--total-seconds", type=float, default=None,
                        help="time for the selected steps; their budgets are scaled to add up to it "
                        f"(default: their own budgets, {TOTAL_BUDGET_S:.0f} s for all steps)")
    parser.add_argument("--quiet", action="store_true", help="print only the step lines, not the steps' output")
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
        print(dry_run_text(steps, total_s))
        return 0

    out = Path(args.out).resolve()
    work = out.with_name(out.stem + "_files")
    work.mkdir(parents=True, exist_ok=True)
    ctx = Context(REPO, work, sys.executable)
    header = [
        ("command", shlex.join(["python", "-m", "benchmarks.gpu_check", *(argv if argv is not None else sys.argv[1:])])),
        ("started", datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")),
        ("commit", _git_commit()),
        ("logs", str(work)),
    ]

    def echo(line: str) -> None:
        if not (args.quiet and line.startswith("    ")):
            print(line, flush=True)

    done = run_steps(steps, ctx, total_s, out, header, echo)
    print(f"report: {out}")
    return 1 if any(s.outcome.status in ("failed", "timeout") for s in done) else 0


if __name__ == "__main__":
    sys.exit(main())
