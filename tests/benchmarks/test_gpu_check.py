"""The GPU check (python -m benchmarks.gpu_check), tested on CPU: the time budgets and the
runner, the step list and commands, the output folder, the report and its sections, the
per-test results of a killed test step, the op step's tolerance verdict, the sanitizer
step, and the workers that can run without a GPU."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import tarfile
import textwrap
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from benchmarks.gpu_check import (
    capability,
    check,
    op_kernels,
    op_results,
    pack,
    plan,
    predictions,
    report,
    results,
    sanitizer,
    steps,
)
from benchmarks.gpu_check.__main__ import main as gpu_check_main
from benchmarks.gpu_check.context import ENVIRONMENT_FILE, Command, Context, Skip, Step
from benchmarks.gpu_check.pytest_results import render_test_lines
from benchmarks.gpu_check.runner import Outcome, Schedule, run_command
from benchmarks.gpu_check.steps import BUDGETS_S, default_steps
from msca_fast import _extension

from repo_root import ROOT

NEEDS_CPU_KERNELS = pytest.mark.skipif(
    not _extension.extension_loaded(), reason=f"msca_fast._C: {_extension.load_error}"
)

PY = sys.executable


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


# --- time budgets ------------------------------------------------------------------------------


def test_schedule_gives_each_step_its_budget_and_carries_unused_time_forward():
    clock = FakeClock()
    schedule = Schedule(60, clock)
    assert schedule.allot(10) == 10
    clock.now += 2  # the first step took 2 of its 10 s
    assert schedule.allot(5) == 13
    clock.now += 13  # the second ran to its deadline
    assert schedule.allot(20) == 20
    assert schedule.elapsed() == 15 and schedule.remaining() == 45
    clock.now += 5  # preparing the third step's command took 5 s of its 20
    assert schedule.to_deadline() == 15


def test_schedule_never_allows_past_the_total():
    clock = FakeClock()
    schedule = Schedule(30, clock)
    assert schedule.allot(20) == 20
    clock.now += 20
    assert schedule.allot(20) == 10  # deadline 40 capped at the total, 30
    clock.now += 15
    assert schedule.allot(5) == 0 and schedule.remaining() == 0


def test_schedule_skips_only_steps_squeezed_by_the_total():
    assert Schedule.too_short(1.0, 60)  # the total is nearly spent
    assert not Schedule.too_short(0.9, 1.0)  # a short step, given about what it asked for
    assert Schedule.too_short(0.4, 1.0)
    assert not Schedule.too_short(30, 60)


@pytest.mark.parametrize("bad", [0, -1])
def test_schedule_rejects_non_positive_times(bad):
    with pytest.raises(ValueError, match="total_s: expected a positive number"):
        Schedule(bad)
    with pytest.raises(ValueError, match="budget_s: expected a positive number"):
        Schedule(10).allot(bad)


# --- the runner -------------------------------------------------------------------------------


def _pid_alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_a_step_that_sleeps_past_its_budget_is_killed_with_its_children(tmp_path):
    script = textwrap.dedent("""
        import subprocess, sys, time
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        print("grandchild", child.pid, flush=True)
        time.sleep(60)
    """)
    lines = []
    start = time.monotonic()
    outcome = run_command([PY, "-c", script], 1.5, cwd=tmp_path, log_path=tmp_path / "log", echo=lines.append)
    assert time.monotonic() - start < 15
    assert outcome.status == "timeout"
    assert outcome.allowed_s == 1.5 and 1.5 <= outcome.seconds < 15
    assert "killed after" in outcome.note
    grandchild = int(next(line for line in lines if line.startswith("grandchild")).split()[1])
    for _ in range(50):
        if not _pid_alive(grandchild):
            break
        time.sleep(0.1)
    assert not _pid_alive(grandchild), "the step's child process survived the kill"
    assert "grandchild" in (tmp_path / "log").read_text()


def test_a_failing_command_is_reported_with_its_exit_status_and_last_line(tmp_path):
    outcome = run_command([PY, "-c", "import sys; print('working'); sys.exit('broke: no GPU')"], 30, cwd=tmp_path)
    assert outcome.status == "failed" and outcome.returncode == 1
    assert outcome.note == "exit 1: broke: no GPU"
    assert "working" in outcome.tail


def test_a_command_that_cannot_start_fails_without_raising(tmp_path):
    outcome = run_command([str(tmp_path / "no-such-program")], 30, cwd=tmp_path)
    assert outcome.status == "failed" and "could not start" in outcome.note


def test_a_successful_command_streams_its_output(tmp_path):
    lines = []
    outcome = run_command([PY, "-c", "print('one'); print('two')"], 30, cwd=tmp_path, echo=lines.append,
                          env={**os.environ, "EXTRA": "x"})  # fmt: skip
    assert outcome.status == "ok" and outcome.returncode == 0
    assert lines == ["one", "two"] and outcome.tail == "one\ntwo"


def test_no_time_left_means_skipped_not_started(tmp_path):
    marker = tmp_path / "ran"
    outcome = run_command([PY, "-c", f"open({str(marker)!r}, 'w')"], 0, cwd=tmp_path)
    assert outcome.status == "skipped" and not marker.exists()


# --- the check's loop: degrade, do not abort ---------------------------------------------------------


def _python_step(name: str, budget: float, code: str, render=None) -> Step:
    return Step(name, f"step {name}", budget, f"python -c {code!r}", lambda ctx: Command([PY, "-c", code]), render)


def _skipping_step(ctx: Context) -> Command:
    raise Skip("nothing to do here")


def _broken_step(ctx: Context) -> Command:
    raise KeyError("a bug in the step")


def _dirs(tmp_path: Path) -> tuple[Context, Path]:
    work = tmp_path / "work"
    work.mkdir()
    return Context(ROOT, work, PY), tmp_path / "out"


def test_a_failing_or_overrunning_step_does_not_stop_the_others(tmp_path):
    ctx, out = _dirs(tmp_path)
    done_marker = tmp_path / "last step ran"
    steps_ = [
        _python_step("sleeper", 1, "import time; time.sleep(60)"),
        _python_step("failing", 20, "raise SystemExit(3)"),
        Step("skipping", "step skipping", 1, "-", _skipping_step),
        Step("broken", "step broken", 1, "-", _broken_step),
        _python_step("last", 20, f"open({str(done_marker)!r}, 'w').write('x'); print('last ok')"),
    ]
    lines = []
    done = check.run_steps(steps_, ctx, 42, out, [("command", "test")], echo=lines.append)
    assert [d.outcome.status for d in done] == ["timeout", "failed", "skipped", "failed", "ok"]
    assert done[1].outcome.returncode == 3
    assert done[2].outcome.note == "nothing to do here"
    assert "could not prepare: KeyError" in done[3].outcome.note
    assert done_marker.exists()
    assert any(line.startswith("==> [5/5] last") for line in lines)
    text = (out / pack.REPORT_NAME).read_text()
    assert "| sleeper | TIMEOUT |" in text and "| failing | FAILED |" in text and "| last | ok |" in text
    assert "## Failures" in text and "### sleeper: killed after" in text
    assert (ctx.work / "last.log").read_text() == "last ok\n"


def test_steps_squeezed_out_of_the_total_are_skipped(tmp_path):
    ctx, out = _dirs(tmp_path)
    steps_ = [_python_step("long", 1, "import time; time.sleep(60)"), _python_step("after", 10, "pass")]
    done = check.run_steps(steps_, ctx, 1.2, out, [], echo=lambda _: None)
    assert [d.outcome.status for d in done] == ["timeout", "skipped"]
    assert done[1].outcome.note.startswith("no time left")


def test_time_a_step_leaves_unused_goes_to_the_next(tmp_path):
    ctx, out = _dirs(tmp_path)
    told = "import os; print('allowed', os.environ['GPU_CHECK_ALLOWED_S'])"
    done = check.run_steps([_python_step("quick", 20, "pass"), _python_step("next", 5, told)], ctx, 25, out, [],
                           echo=lambda _: None)  # fmt: skip
    assert done[0].outcome.allowed_s == pytest.approx(20, abs=0.5)
    assert done[1].outcome.allowed_s > 20  # its own 5 s and most of the first step's 20
    assert int((ctx.work / "next.log").read_text().split()[1]) == round(done[1].outcome.allowed_s)


# --- a test step killed at its deadline keeps its finished tests ------------------------------------


PLUGIN_TESTS = """
import time
import pytest

@pytest.fixture
def broken_fixture():
    raise RuntimeError("fixture broke")

def test_passes():
    pass

def test_fails():
    assert 1 == 2, "one is not two"

def test_skips():
    pytest.skip("needs two GPUs")

def test_errors(broken_fixture):
    pass

def test_sleeps():
    time.sleep(60)

def test_never_reached():
    pass
"""


def test_a_test_step_killed_at_its_deadline_keeps_its_finished_tests(tmp_path):
    ctx, out = _dirs(tmp_path)
    (tmp_path / "test_sample.py").write_text(PLUGIN_TESTS)
    results_path = ctx.work / "tests.jsonl"
    argv = [PY, "-m", "pytest", str(tmp_path / "test_sample.py"), "-v", "-p", "no:cacheprovider",
            "-p", "benchmarks.gpu_check.pytest_plugin", "--gpu-check-results", str(results_path)]  # fmt: skip
    step = Step("tests", "Tests", 6, "pytest", lambda c: Command(argv), lambda c: render_test_lines(results_path))
    done = check.run_steps([step], ctx, 6, out, [], echo=lambda _: None)
    assert done[0].outcome.status == "timeout"
    text = (out / pack.REPORT_NAME).read_text()
    assert "1 passed, 1 failed, 1 error, 1 skipped." in text
    assert "Still running when the step was stopped: `" in text and "test_sleeps`" in text
    assert "- **failed** `" in text and "one is not two" in text
    assert "- **error** `" in text and "fixture broke" in text
    assert "- needs two GPUs (1)" in text
    assert "test_never_reached" not in text
    log = (ctx.work / "tests.log").read_text()
    assert "test_passes PASSED" in log  # -v: per-test names in the step's log


def test_test_lines_without_any_say_so(tmp_path):
    assert "No test results" in render_test_lines(tmp_path / "missing.jsonl")


# --- the output folder ----------------------------------------------------------------------------


def test_the_output_folder_holds_at_most_eight_files_and_the_archive_every_log(tmp_path):
    ctx, out = _dirs(tmp_path)
    # A step that writes many files, then one that reads the archive as it was after the first.
    many = "import pathlib, sys; [pathlib.Path(sys.argv[1], f'r{i}.json').write_text('{}') for i in range(20)]"
    steps_ = [
        Step("many", "many files", 10, "-", lambda c: Command([PY, "-c", many, str(c.work)])),
        _python_step("reader", 10, textwrap.dedent(f"""
            import tarfile
            print(sorted(tarfile.open({str(out / pack.ARCHIVE_NAME)!r}).getnames()))
        """)),
    ]
    check.run_steps(steps_, ctx, 20, out, [], echo=lambda _: None)
    files = sorted(p.name for p in out.iterdir())
    assert files == [pack.ARCHIVE_NAME, pack.REPORT_NAME] and len(files) <= 8
    with tarfile.open(out / pack.ARCHIVE_NAME) as tar:
        names = set(tar.getnames())
    every = {f"gpu_check/{p.relative_to(ctx.work).as_posix()}" for p in ctx.work.rglob("*") if p.is_file()}
    assert names == every and "gpu_check/many.log" in names and "gpu_check/reader.log" in names
    assert len(every) == 22
    seen_by_reader = (ctx.work / "reader.log").read_text()
    assert "gpu_check/many.log" in seen_by_reader and "gpu_check/r19.json" in seen_by_reader  # packed after step 1


def test_an_oversized_log_keeps_its_end(tmp_path, monkeypatch):
    monkeypatch.setattr(pack, "MAX_MEMBER_BYTES", 100)
    work = tmp_path / "work"
    work.mkdir()
    (work / "big.log").write_text("x" * 1000 + "the last line\n")
    archive = pack.write_archive(tmp_path / "out", work)
    with tarfile.open(archive) as tar:
        data = tar.extractfile("gpu_check/big.log").read().decode()
    assert data.startswith("[... cut: the first 914 bytes]") and data.endswith("the last line\n")


def test_main_refuses_a_work_dir_inside_the_out_dir(tmp_path, capsys):
    with pytest.raises(SystemExit):
        gpu_check_main(["--out-dir", str(tmp_path), "--work-dir", str(tmp_path / "w"), "--only", "environment"])
    assert "--work-dir: expected a folder outside --out-dir" in capsys.readouterr().err


# --- the step list ------------------------------------------------------------------------------


def test_default_steps_fit_in_eight_minutes():
    steps_ = default_steps()
    names = [s.name for s in steps_]
    assert len(set(names)) == len(names)
    assert names[:4] == ["environment", "build", "backends", "tests-cuda"]
    assert names.index("tests-cuda") < names.index("ops-float32") < names.index("tests-triton")
    for expected in ("ops-bfloat16", "sanitizer", "train-cuda", "train-triton"):
        assert expected in names
    assert sum(s.budget_s for s in steps_) == BUDGETS_S
    assert BUDGETS_S + plan.RESERVE_S <= 480
    assert all(s.budget_s > 0 for s in steps_)


def test_the_test_selections_split_the_gpu_tests_without_overlap():
    cuda, rest = steps.TEST_SELECTIONS["tests-cuda"], steps.TEST_SELECTIONS["tests-triton"]
    assert cuda == f"not {rest.replace(' or ', ' and not ')}"  # one is the other's complement


def _ctx(tmp_path: Path, environment: dict | None) -> Context:
    if environment is not None:
        (tmp_path / ENVIRONMENT_FILE).write_text(json.dumps(environment))
    return Context(ROOT, tmp_path, PY)


def _step(name: str) -> Step:
    return next(s for s in default_steps() if s.name == name)


H200 = {"cuda_available": True, "capability": [9, 0], "packages": {"pytest": "9", "pytest-benchmark": "5"}}


def test_build_skips_the_emulation_and_targets_nvidia_smis_architecture(tmp_path, monkeypatch):
    monkeypatch.setattr(steps, "query_arch_list", lambda: "9.0")
    command = _step("build").prepare(_ctx(tmp_path, {**H200, "capability": [8, 0]}))
    assert command.argv[1:] == ["setup.py", "build_ext", "--inplace"]
    assert command.env["MSCA_FAST_SKIP_EMULATION"] == "1" and command.env["FORCE_CUDA"] == "1"
    assert command.env["TORCH_CUDA_ARCH_LIST"] == "9.0"  # nvidia-smi first
    assert int(command.env["MAX_JOBS"]) == os.cpu_count()


def test_build_falls_back_to_the_environment_steps_capability_then_to_setup_defaults(tmp_path, monkeypatch):
    monkeypatch.setattr(steps, "query_arch_list", lambda: None)
    assert _step("build").prepare(_ctx(tmp_path, H200)).env["TORCH_CUDA_ARCH_LIST"] == "9.0"
    (tmp_path / ENVIRONMENT_FILE).unlink()
    assert "TORCH_CUDA_ARCH_LIST" not in _step("build").prepare(_ctx(tmp_path, None)).env


@pytest.mark.parametrize("output,expected", [
    ("9.0\n", "9.0"), ("9.0\n9.0\n", "9.0"), ("9.0\n8.0\n", "8.0;9.0"), ("10.0\n", "10.0"), ("  12.1  \n\n", "12.1"),
    ("[N/A]\n", None), ("", None), ("9.0\nNVIDIA-SMI has failed\n", None), ("9\n", None),
])  # fmt: skip
def test_compute_capability_from_nvidia_smi(output, expected):
    assert capability.parse_compute_caps(output) == expected


def test_no_nvidia_smi_means_no_architecture(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    assert capability.query_arch_list() is None


@pytest.mark.parametrize("name", ["build", "tests-cuda", "ops-float32", "ops-bfloat16", "sanitizer", "tests-triton",
                                  "train-triton"])  # fmt: skip
def test_gpu_steps_skip_without_a_cuda_device(tmp_path, name):
    with pytest.raises(Skip, match="no CUDA device"):
        _step(name).prepare(_ctx(tmp_path, {**H200, "cuda_available": False}))


def test_test_steps_skip_without_pytest(tmp_path):
    ctx = _ctx(tmp_path, {**H200, "packages": {"pytest": None}})
    for name in ("tests-cuda", "tests-triton"):
        with pytest.raises(Skip, match=r"pytest is not installed \(pip install pytest\)"):
            _step(name).prepare(ctx)


def test_step_commands(tmp_path):
    ctx = _ctx(tmp_path, H200)
    for name in ("tests-cuda", "tests-triton"):
        argv = _step(name).prepare(ctx).argv
        assert argv[1:6] == ["-m", "pytest", "-m", "gpu", "tests"] and "-v" in argv
        assert argv[argv.index("-k") + 1] == steps.TEST_SELECTIONS[name]
        assert argv[argv.index("-p", argv.index("no:cacheprovider")) + 1] == "benchmarks.gpu_check.pytest_plugin"
        assert argv[argv.index("--gpu-check-results") + 1] == str(tmp_path / steps.tests_file(name))
    ops = _step("ops-bfloat16").prepare(ctx).argv
    assert ops[1:3] == ["-m", "benchmarks.gpu_check.ops"]
    assert ops[ops.index("--dtype") + 1] == "bfloat16" and ops[ops.index("--device") + 1] == "cuda"
    train = _step("train-triton").prepare(ctx).argv
    assert train[train.index("--backend") + 1] == "triton" and train[train.index("--preset") + 1] == "256"


def test_select_and_scale():
    steps_ = default_steps()
    chosen = plan.select(steps_, ["train-cuda", "build"], None)
    assert [s.name for s in chosen] == ["build", "train-cuda"]  # the check's order, not the option's
    assert "build" not in [s.name for s in plan.select(steps_, None, ["build"])]
    with pytest.raises(ValueError, match=r"--skip: unknown steps \['nope'\]"):
        plan.select(steps_, None, ["nope"])
    halved = plan.scaled(steps_, BUDGETS_S / 2)
    assert sum(s.budget_s for s in halved) == pytest.approx(BUDGETS_S / 2)
    assert halved[1].budget_s == pytest.approx(steps_[1].budget_s / 2)


# --- --dry-run -----------------------------------------------------------------------------------


def test_dry_run_lists_steps_budgets_and_the_builds_environment_and_runs_nothing(tmp_path):
    out = tmp_path / "out"
    done = subprocess.run([PY, "-m", "benchmarks.gpu_check", "--dry-run", "--out-dir", str(out)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"10 steps, {BUDGETS_S:.0f} s of budgets; the check ends within 480 s")
    for step in default_steps():
        assert f"{step.name}" in done.stdout and f"{step.budget_s:.0f} s" in done.stdout
    build_line = next(line for line in done.stdout.splitlines() if "setup.py build_ext" in line)
    assert "MSCA_FAST_SKIP_EMULATION=1" in build_line and "TORCH_CUDA_ARCH_LIST=<nvidia-smi compute_cap" in build_line
    assert "-k 'not triton and not compile'" in done.stdout and "-k 'triton or compile'" in done.stdout
    assert not out.exists()


def test_dry_run_with_a_total_scales_the_budgets(capsys):
    assert gpu_check_main(["--dry-run", "--only", "build", "tests-cuda", "--total-seconds", "123"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("2 steps, 123 s of budgets")
    build, tests = (s.budget_s for s in plan.select(default_steps(), ["build", "tests-cuda"], None))
    assert f"build       {123 * build / (build + tests):5.0f} s" in text


# --- the report -----------------------------------------------------------------------------------


def test_report_shows_every_step_its_sections_and_failures():
    steps_ = [
        report.StepReport("environment", "Environment", 10, Outcome("ok", 2.0, 10, 0), "| what | value |"),
        report.StepReport("build", "Build", 150, Outcome("timeout", 151.0, 150, -9, "killed after 151 s",
                                                         "nvcc ...\n````\nlast line")),  # fmt: skip
        report.StepReport("tests-cuda", "GPU tests", 90, Outcome("skipped", 0.0, None, note="no CUDA device")),
        report.StepReport("train-cuda", "Training", 35),
    ]
    text = report.render([("device", "H200")], steps_, [("cuda or triton first?", "verdict here")])
    assert text.startswith("# MSCA GPU check\n\n- device: H200\n")
    assert "| environment | ok | 2.0 | 10 | 10 | Environment |  |" in text
    assert "| build | TIMEOUT | 151.0 | 150 | 150 | Build | killed after 151 s |" in text
    assert "| tests-cuda | skipped | - | 90 | - | GPU tests | no CUDA device |" in text
    assert "| train-cuda | not run yet |" in text
    assert text.index("## cuda or triton first?") < text.index("## Environment") < text.index("## Failures")
    failures = text[text.index("## Failures"):]
    assert "### build: killed after 151 s" in failures and "last line" in failures
    assert "tests-cuda" not in failures  # skipped is not a failure
    assert failures.count("````") == 2  # the tail's own fence cannot close the report's code block


# --- the op step: tolerance, timings, kernels, predictions ----------------------------------------------


def _accuracy(backend="cuda", fx2_err=1.5e-6, judged=True, dtype="float32", case="s0_256"):
    from benchmarks.gpu_check.op_accuracy import violations

    errors, bounds = {"output": 1e-7, "fx2": fx2_err}, {"output": 2e-6, "fx2": 2e-5}
    return dict(kind="accuracy", case=case, dtype=dtype, backend=backend, status="ok", errors=errors, bounds=bounds,
                judged=judged, violations=violations(errors, bounds, True) if judged else [])  # fmt: skip


def test_a_result_beyond_tolerance_fails_the_op_step_and_is_named():
    from benchmarks.gpu_check import ops
    from benchmarks.gpu_check.op_accuracy import violations

    assert violations({"output": 1e-7, "fx2": 3e-5}, {"output": 2e-6, "fx2": 2e-5}, True) == ["fx2 3.00e-05 > 2.00e-05"]
    assert violations({"output": float("nan")}, {"output": 2e-6}, True) == ["output nan > 2.00e-06"]
    assert violations({"output": 1e-7}, {"output": 2e-6}, False) == ["phi_bias gradient not exactly zero"]
    records = [_accuracy(), _accuracy("triton", fx2_err=3e-5), _accuracy("reference", fx2_err=1.0, judged=False),
               dict(kind="api", case="s0_256", dtype="float32", backend="cuda", pass_name="backward", status="error",
                    note="RuntimeError: CUDA error")]  # fmt: skip
    assert ops.failures(records) == [
        "float32 s0_256 triton accuracy: beyond tolerance: fx2 3.00e-05 > 2.00e-05",
        "float32 s0_256 cuda api backward: RuntimeError: CUDA error",
    ]
    text = op_results.render_accuracy(records)
    assert ("| s0_256 | ok: fx2 1.5e-06 / 2.0e-05 | BEYOND: fx2 3.0e-05 / 2.0e-05 "
            "| (not judged): fx2 1.0e+00 / 2.0e-05 |") in text
    assert "- **float32 s0_256 triton**: fx2 3.00e-05 > 2.00e-05" in text


@NEEDS_CPU_KERNELS
def test_the_op_worker_exits_1_when_a_backend_is_beyond_tolerance(tmp_path, monkeypatch, capsys):
    from benchmarks.gpu_check import op_accuracy, ops

    real_check = op_accuracy.check

    def off_by_a_little(backend, *args):
        found = real_check(backend, *args)
        found["errors"]["fx2"] = 3 * found["bounds"]["fx2"]
        found["violations"] = op_accuracy.violations(found["errors"], found["bounds"], True)
        return found

    monkeypatch.setattr(op_accuracy, "check", off_by_a_little)
    out = tmp_path / "ops.jsonl"
    status = ops.main(["--device", "cpu", "--backends", "cpu", "--cases", "s4_256", "--passes", "forward",
                       "--seconds", "0", "--out", str(out)])  # fmt: skip
    assert status == 1
    assert "FAILED: float32 s4_256 cpu accuracy: beyond tolerance: fx2 6.00e-05 > 2.00e-05" in capsys.readouterr().out
    assert results.read_json_lines(out)[0]["violations"] == ["fx2 6.00e-05 > 2.00e-05"]


@NEEDS_CPU_KERNELS
def test_op_worker_checks_and_times_on_cpu():
    import torch

    from benchmarks.gpu_check import ops

    records = []
    ops.run("bfloat16", torch.device("cpu"), ["cpu", "reference", "no-such-backend"], ["s4_256", "s3_256"],
            ["forward", "backward"], 0.0, True, records.append)  # fmt: skip
    s4 = [r for r in records if r["case"] == "s4_256"]
    assert [(r["backend"], r["kind"], r.get("pass_name") or r.get("op")) for r in s4] == [
        ("cpu", "accuracy", None), ("cpu", "api", "forward"), ("cpu", "api", "backward"), ("cpu", "raw", "forward"),
        ("cpu", "raw", "backward"),  # no kernel profile off CUDA
        ("reference", "accuracy", None), ("reference", "api", "forward"), ("reference", "api", "backward"),
        ("no-such-backend", "accuracy", None),
    ]  # fmt: skip
    # Backend by backend: the first one has every case before the next begins.
    order = list(dict.fromkeys((r["backend"], r["case"]) for r in records))
    assert order[:3] == [("cpu", "s3_256"), ("cpu", "s4_256"), ("reference", "s3_256")]  # CASES order
    cpu, reference = s4[0], s4[5]
    assert cpu["status"] == "ok" and cpu["judged"] and cpu["violations"] == []
    # bfloat16: bounded by twice the bfloat16 reference's own error, which is not zero.
    assert 0 < cpu["errors"]["output"] <= cpu["bounds"]["output"] < 3e-2
    assert not reference["judged"] and reference["violations"] == []
    assert all(r["median_s"] > 0 and r["rounds"] >= 5 for r in records if r["kind"] in ("api", "raw"))
    assert records[-1]["status"] == "unavailable" and "not registered" in records[-1]["note"]
    assert ops.failures(records) == []


def _timed(backend, kind, what, median_s, case="s0_256", dtype="float32", **extra):
    key = "pass_name" if kind == "api" else "op"
    return dict(
        kind=kind, case=case, dtype=dtype, backend=backend, status="ok", median_s=median_s, **{key: what}, **extra
    )


def _kernels(op, kernels, case="s0_256"):
    return dict(kind="kernels", case=case, dtype="float32", backend="cuda", op=op, status="ok",
                kernels=op_kernels.per_call(kernels, 5))  # fmt: skip


def test_timings_and_kernels_render_beside_their_predictions():
    fake = SimpleNamespace(
        kernel_predictions=lambda case, dtype, device: {"aggregate_kernel": 20.0, "combine_kernel": 4.0,
                                                        "sweep_a_kernel": 9.0},
        op_predictions=lambda case, dtype, device: {"forward": 40.0, "backward": 90.0},
    )
    aggregate = "void msca_fast::cuda_kernels::aggregate_kernel<8, float, float>(msca_fast::Dims, long)"
    combine = "void msca_fast::cuda_kernels::combine_kernel<8, float>(msca_fast::Dims, int)"
    records = [predictions.attach(r, fake, "H200") for r in (
        _timed("cuda", "api", "forward", 50e-6), _timed("triton", "api", "forward", 25e-6),
        _timed("cuda", "raw", "forward", 44e-6), _timed("triton", "raw", "forward", 20e-6),
        _kernels("forward", [(aggregate, 10, 300.0), (combine, 5, 10.0)]),
        _kernels("backward", [(combine, 5, 15.0), ("Memset (Device)", 5, 1.0)]))]  # fmt: skip
    assert records[0]["predicted_us"] == 40.0 and "predicted_us" not in records[1]  # cuda only
    text = op_results.render_ops(records)
    assert "| s0_256 | forward | 50.0 | 25.0 | not run | 2.00 | 40.0 |" in text  # api: triton 2x faster
    assert "| s0_256 | forward | 44.0 | 20.0 | 40.0 | 1.10 |" in text  # raw: measured / predicted
    # Kernels against predictions: summed over both operators (combine runs in each).
    assert "| s0_256 | forward+backward | aggregate_kernel | 60.0 | 20.0 | 3.00 |" in text
    assert "| s0_256 | forward+backward | combine_kernel | 5.0 | 4.0 | 1.25 |" in text
    assert "| s0_256 | forward+backward | sweep_a_kernel | not seen | 9.0 | - |" in text
    assert "| s0_256 | cuda | forward | aggregate_kernel | 2 | 60.0 |" in text
    assert "| s0_256 | cuda | backward | Memset | 1 | 0.2 |" in text


def test_predictions_are_optional():
    assert predictions.load("benchmarks.no_such_module") is None
    assert predictions.load("benchmarks.cases") is None  # imports, but has neither function
    assert predictions.predicted_device("NVIDIA H200") == "H200"
    assert predictions.predicted_device("NVIDIA H100 80GB HBM3") == "H100"
    assert predictions.predicted_device("NVIDIA A100-SXM4-80GB") is None
    record = _timed("cuda", "raw", "forward", 1e-5)
    assert "predicted_us" not in predictions.attach(dict(record), None, "H200")

    def broken(*args):
        raise KeyError("s0_256")

    failed = predictions.attach(dict(record), SimpleNamespace(kernel_predictions=broken, op_predictions=broken), "H200")
    assert "predicted_us" not in failed and failed["prediction_error"] == "KeyError: 's0_256'"


def test_kernel_names_are_shortened():
    name = "void msca_fast::cuda_kernels::sweep_b_kernel<16, c10::BFloat16, float>(msca_fast::Dims, long, float const*)"
    assert op_kernels.short_kernel_name(name) == "sweep_b_kernel"
    assert op_kernels.short_kernel_name("_aggregate_kernel") == "_aggregate_kernel"
    assert op_kernels.short_kernel_name("Memset (Device)") == "Memset"


@pytest.mark.filterwarnings("ignore:CUDA is not available")
def test_the_profiler_keeps_only_device_events():
    import torch

    assert op_kernels.profile_kernels(lambda: torch.ones(64) * 2, calls=2) == []  # CPU work only


@pytest.mark.parametrize(
    "cuda_s,triton_s,priorities,verdict",
    [
        (2.0, 1.0, {"triton": 20, "cuda": 10}, "**confirm**"),
        (1.0, 2.0, {"triton": 20, "cuda": 10}, "**reverse**"),
        (1.0, 2.0, {"triton": 5, "cuda": 10}, "**confirm**"),
    ],
)
def test_auto_order_verdict(cuda_s, triton_s, priorities, verdict):
    records = [_timed("cuda", "api", "forward", cuda_s), _timed("triton", "api", "forward", triton_s),
               _timed("cuda", "api", "forward", cuda_s, dtype="bfloat16"),
               _timed("triton", "api", "forward", triton_s, dtype="bfloat16"),
               _timed("triton", "raw", "forward", 1e-9)]  # raw timings do not vote  # fmt: skip
    text = op_results.auto_order_verdict(records, priorities)
    assert verdict in text
    assert f"- float32: triton faster in {int(cuda_s > triton_s)} of 1" in text
    assert "- bfloat16:" in text


def test_auto_order_verdict_without_both_timings_says_unverified():
    records = [_timed("cuda", "api", "forward", 1.0), dict(kind="api", case="s0_256", dtype="float32", backend="triton",
                                                           pass_name="forward", status="error", note="x")]  # fmt: skip
    assert "stays unverified" in op_results.auto_order_verdict(records, None)


# --- the sanitizer step -----------------------------------------------------------------------------


def test_the_sanitizer_step_says_why_it_skips_without_the_tool(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    monkeypatch.setenv("CUDA_HOME", str(tmp_path / "cuda"))
    monkeypatch.setattr(sanitizer, "DEFAULT_DIRS", (str(tmp_path / "usr-local-cuda-bin"),))
    looked = f"PATH, {tmp_path / 'cuda' / 'bin'}, {tmp_path / 'usr-local-cuda-bin'}"
    expected = f"compute-sanitizer not found (looked on {looked})"
    with pytest.raises(Skip) as skipped:
        _step("sanitizer").prepare(_ctx(tmp_path, H200))
    assert str(skipped.value) == expected


def _fake_sanitizer(directory: Path, body: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    tool = directory / "compute-sanitizer"
    tool.write_text("#!/bin/sh\n" + body)
    tool.chmod(tool.stat().st_mode | stat.S_IXUSR)
    return tool


def test_the_sanitizer_is_found_in_cuda_home(tmp_path, monkeypatch):
    tool = _fake_sanitizer(tmp_path / "cuda" / "bin", "exit 0\n")
    monkeypatch.setattr(sanitizer, "DEFAULT_DIRS", ())
    found = sanitizer.find_sanitizer(str(tmp_path / "empty"), str(tmp_path / "cuda"))
    assert found == (str(tool), ["PATH", str(tool.parent)])
    monkeypatch.setenv("PATH", f"{tool.parent}{os.pathsep}{os.environ['PATH']}")
    command = _step("sanitizer").prepare(_ctx(tmp_path, H200)).argv
    assert command[1:3] == ["-m", "benchmarks.gpu_check.sanitizer"]


@pytest.mark.parametrize("text,returncode,status,errors", [
    ("case ok\n========= ERROR SUMMARY: 0 errors\n", 0, "clean", 0),
    ("========= Invalid __global__ read of size 4 bytes\n=========     at sweep_b_kernel\n"
     "========= ERROR SUMMARY: 3 errors\n", 1, "errors", 3),
    ("========= RACECHECK SUMMARY: 2 hazards displayed (1 error, 1 warning)\n", 0, "errors", 1),
    ("========= RACECHECK SUMMARY: 0 hazards displayed (0 errors, 0 warnings)\n", 0, "clean", 0),
    ("========= Error: Device not supported\n", 1, "refused", None),
    ("Traceback ...\nRuntimeError: boom\n", 1, "failed", None),
    ("RuntimeError: boom\n========= ERROR SUMMARY: 0 errors\n", 1, "failed", 0),
])  # fmt: skip
def test_sanitizer_output_is_summarised(text, returncode, status, errors):
    found = sanitizer.parse_output(text, returncode)
    assert (found["status"], found["errors"]) == (status, errors)
    if status == "errors" and errors == 3:
        assert found["note"] == "Invalid __global__ read of size 4 bytes"
    if status == "refused":
        assert found["note"] == "Error: Device not supported"


def test_the_sanitizer_step_counts_each_tools_errors(tmp_path, capsys):
    # A stand-in that reports 2 errors under racecheck and none under the others.
    tool = _fake_sanitizer(tmp_path / "bin", textwrap.dedent("""\
        echo "running $2"
        if [ "$2" = racecheck ]; then echo "========= ERROR SUMMARY: 2 errors"; exit 0; fi
        echo "========= ERROR SUMMARY: 0 errors"
    """))
    saved = []
    summary = sanitizer.run(list(sanitizer.TOOLS), 30, tmp_path, saved.append, sanitizer=str(tool))
    assert {t: (r["status"], r["errors"]) for t, r in summary["tools"].items()} == {
        "memcheck": ("clean", 0), "racecheck": ("errors", 2), "synccheck": ("clean", 0), "initcheck": ("clean", 0)}
    assert len(saved) == 4 and (tmp_path / "sanitizer_racecheck.log").read_text().startswith("running racecheck")
    text = sanitizer.render(summary)
    assert "| racecheck | errors | 2 |" in text and "| memcheck | clean | 0 |" in text
    assert sanitizer.render({"skipped": "compute-sanitizer not found (looked on PATH)", "tools": {}}) == \
        "Skipped: compute-sanitizer not found (looked on PATH)."


@NEEDS_CPU_KERNELS
def test_the_sanitized_workload_runs_on_the_cpu_kernels(capsys):
    from benchmarks.gpu_check import sanitized_ops

    assert sanitized_ops.main(["--device", "cpu"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(sanitized_ops.cases()) and all(line.endswith(": ok") for line in lines)
    ks = {shape[4] for shape, _, _ in sanitized_ops.cases()}
    assert {1, 16, 27, 32} <= ks


# --- result readers and renderers ---------------------------------------------------------------------


def test_json_lines_cut_off_by_a_kill_are_dropped(tmp_path):
    path = tmp_path / "ops.jsonl"
    path.write_text(json.dumps({"a": 1}) + "\n" + '{"a": 2, "b"')
    assert results.read_json_lines(path) == [{"a": 1}]
    assert results.read_json_lines(tmp_path / "missing.jsonl") == []


def test_training_table():
    record = dict(backend="triton", preset="256", batch_size=8, patch_size=256, global_size=256, amp="bf16",
                  g_every=5, num_classes=12, setup_s=9.5, timed_iterations=5, mean_s=0.5, g_update_s=1.5,
                  d_only_s=0.25, images_per_s=32.0, peak_memory_gib=20.25)  # fmt: skip
    text = results.render_training([record])
    assert "Preset 256: batch 8" in text
    assert "| triton | 5 | 0.500 | 1.500 | 0.250 | 32.0 | 20.2 | 9.500 |" in text


def test_environment_and_backends_sections():
    env = {"device_name": "NVIDIA H200", "capability": [9, 0], "arch_list": "9.0", "torch": "2.8.0",
           "packages": {"lpips": None}}  # fmt: skip
    text = results.render_environment(env)
    assert "| GPU | NVIDIA H200 |" in text and "| package lpips | not installed |" in text
    assert "| TORCH_CUDA_ARCH_LIST (nvidia-smi) | 9.0 |" in text
    backends = {"device": "cuda", "backends": [{"name": "triton", "priority": 20, "description": "d"}],
                "extension_error": None, "extension_built_with_cuda": True, "triton_error": None,
                "choices": [{"case": "s0_256", "dtype": "float32", "requires_grad": False, "auto": "triton",
                             "reasons": {"cuda": "K too large", "triton": None}}]}  # fmt: skip
    text = results.render_backends(backends)
    assert "| triton | 20 | d |" in text and "| s0_256 | triton |" in text and "- cuda: K too large (1)" in text


# --- workers that run on CPU ------------------------------------------------------------------------


def test_environment_worker_records_versions_after_each_group_of_probes():
    from benchmarks.gpu_check import env as env_worker

    saved = []
    env = env_worker.collect(lambda found: saved.append(dict(found)))
    assert env["python"] == sys.version.split()[0]
    assert env["packages"]["torch"] is not None
    assert isinstance(env["cuda_available"], bool)
    assert "torch" not in saved[0] and "nvcc" in saved[0]  # the quick probes are saved before torch is imported
    assert saved[-1] == env
    json.dumps(env)  # the report reads it back as JSON


def test_backends_worker_records_auto_and_every_reason():
    import torch

    from benchmarks.gpu_check import backends as backends_worker
    from msca_fast.backends import registered_backends

    found = backends_worker.collect(torch.device("cpu"))
    names = {b.name for b in registered_backends()}
    assert {b["name"] for b in found["backends"]} == names
    assert len(found["choices"]) == 6 * 2 * 2  # cases x dtypes x with/without gradients
    for choice in found["choices"]:
        assert set(choice["reasons"]) == names
        assert choice["auto"] in names and choice["reasons"][choice["auto"]] is None


def test_training_worker_times_iterations_on_cpu(monkeypatch):
    import torch

    from benchmarks.gpu_check import train

    # The trainer is built for real; its iteration (27 s on the CPU, tested in tests/training/)
    # is replaced by a short stand-in: what is tested here is the timing and saving around it.
    ran = []
    monkeypatch.setattr(
        train.Trainer, "adversarial_iteration", lambda self, batch: (ran.append(batch), time.sleep(0.01))
    )
    saved = []
    record = train.run("reference", "cpu-demo", torch.device("cpu"), warmup=1, iterations=2, num_images=8,
                       save=lambda r: saved.append(json.loads(json.dumps(r))))  # fmt: skip
    assert len(ran) == 3 and record["backend"] == "reference" and record["timed_iterations"] == 2
    assert [it["timed"] for it in record["iterations"]] == [False, True, True]
    assert record["mean_s"] >= 0.01 and (
        record["images_per_s"] == pytest.approx(2 * record["batch_size"] / record["mean_s"])
    )
    assert len(saved) == 4 and saved[0]["iterations"] == []  # after set-up, and after each iteration
