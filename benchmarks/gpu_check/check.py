"""Runs the GPU check's steps in order under one schedule, and after each rewrites the
output folder (pack.py): the report, and the archive of every log and result so far. A step
that fails, overruns (killed) or cannot start is reported and the next one runs.
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path

from benchmarks.gpu_check import pack, report
from benchmarks.gpu_check.context import Context, Skip, Step
from benchmarks.gpu_check.runner import Outcome, Schedule, run_command
from benchmarks.gpu_check.steps import extra_sections

ALLOWED_ENV = "GPU_CHECK_ALLOWED_S"  # tells a step's worker how long it may run


def _section(step: Step, ctx: Context, outcome: Outcome) -> str:
    if step.render is None or outcome.status == "skipped":
        return ""
    try:
        return step.render(ctx)
    except Exception as exc:  # noqa: BLE001 - a bad result file must not lose the rest of the report
        return f"(could not read this step's results: {type(exc).__name__}: {exc})"


def _base_env(repo: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"  # progress lines as they happen, not at exit
    # The repository root first, so `python -m benchmarks...` and msca_fast import from the checkout.
    env["PYTHONPATH"] = str(repo) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def run_steps(steps: list[Step], ctx: Context, total_s: float, out_dir: Path, header: list[tuple[str, str]],
              echo=print) -> list[report.StepReport]:  # fmt: skip
    """Runs the steps within ``total_s`` seconds, rewriting ``out_dir`` after each."""
    schedule = Schedule(total_s)
    done: list[report.StepReport] = []
    pending = [report.StepReport(s.name, s.title, s.budget_s) for s in steps]
    names = {s.name for s in steps}

    def save(final: bool = False) -> None:
        when = [("wall time", f"{schedule.elapsed():.0f} s of {total_s:.0f} s")] if final else [("state", "running")]
        text = report.render(header + when, done + pending[len(done):], extra_sections(ctx, names))
        pack.write_report(out_dir, text)
        pack.write_archive(out_dir, ctx.work)

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
            allowed = schedule.to_deadline()  # less what preparing took (nvidia-smi, for the build)
            env = {**_base_env(ctx.repo), **command.env, ALLOWED_ENV: f"{allowed:.0f}"}
            echo("    $ " + " ".join([f"{k}={shlex.quote(v)}" for k, v in command.env.items()]
                                     + [shlex.join(command.argv)]))  # fmt: skip
            outcome = run_command(command.argv, allowed, cwd=ctx.repo, env=env, log_path=ctx.work / f"{step.name}.log",
                                  echo=lambda line: echo(f"    | {line}"))  # fmt: skip
        echo(f"<== {step.name}: {outcome.status} in {outcome.seconds:.1f} s"
             f"{': ' + outcome.note if outcome.note else ''}")  # fmt: skip
        done.append(report.StepReport(step.name, step.title, step.budget_s, outcome, _section(step, ctx, outcome)))
        save()
    save(final=True)
    return done
