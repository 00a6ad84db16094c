"""The GPU check (python -m benchmarks.gpu_check), tested on CPU: the time budgets and the
runner, the step list, the report writer and result renderers, --dry-run, and the workers
that can run without a GPU."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from benchmarks import gpu_check, gpu_check_report, gpu_check_results, gpu_check_steps
from benchmarks.gpu_check_runner import Outcome, Schedule, run_command
from benchmarks.gpu_check_steps import TOTAL_BUDGET_S, Command, Context, Skip, Step, default_steps

ROOT = Path(__file__).resolve().parents[1]
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


def _python_step(name: str, budget: float, code: str) -> Step:
    return Step(name, f"step {name}", budget, f"python -c {code!r}", lambda ctx: Command([PY, "-c", code]))


def _skipping_step(ctx: Context) -> Command:
    raise Skip("nothing to do here")


def _broken_step(ctx: Context) -> Command:
    raise KeyError("a bug in the step")


def test_a_failing_or_overrunning_step_does_not_stop_the_others(tmp_path):
    done_marker = tmp_path / "last step ran"
    steps = [
        _python_step("sleeper", 1, "import time; time.sleep(60)"),
        _python_step("failing", 20, "raise SystemExit(3)"),
        Step("skipping", "step skipping", 1, "-", _skipping_step),
        Step("broken", "step broken", 1, "-", _broken_step),
        _python_step("last", 20, f"open({str(done_marker)!r}, 'w').write('x'); print('last ok')"),
    ]
    out = tmp_path / "report.md"
    ctx = Context(ROOT, tmp_path, PY)
    lines = []
    done = gpu_check.run_steps(steps, ctx, 42, out, [("command", "test")], echo=lines.append)
    assert [d.outcome.status for d in done] == ["timeout", "failed", "skipped", "failed", "ok"]
    assert done[1].outcome.returncode == 3
    assert done[2].outcome.note == "nothing to do here"
    assert "could not prepare: KeyError" in done[3].outcome.note
    assert done_marker.exists()
    assert any(line.startswith("==> [5/5] last") for line in lines)
    text = out.read_text()
    assert "| sleeper | TIMEOUT |" in text and "| failing | FAILED |" in text and "| last | ok |" in text
    assert "## Failures" in text and "### sleeper: killed after" in text
    assert (tmp_path / "last.log").read_text() == "last ok\n"


def test_steps_squeezed_out_of_the_total_are_skipped(tmp_path):
    steps = [_python_step("long", 1, "import time; time.sleep(60)"), _python_step("after", 10, "pass")]
    done = gpu_check.run_steps(steps, Context(ROOT, tmp_path, PY), 1.2, tmp_path / "r.md", [], echo=lambda _: None)
    assert [d.outcome.status for d in done] == ["timeout", "skipped"]
    assert done[1].outcome.note.startswith("no time left")


# --- the step list ------------------------------------------------------------------------------


def test_default_steps_cover_the_check_within_eight_minutes():
    steps = default_steps()
    names = [s.name for s in steps]
    assert len(set(names)) == len(names)
    assert names[:4] == ["environment", "build", "backends", "gpu-tests"]
    for expected in ("ops-float32", "ops-bfloat16", "train-cuda", "train-triton", "train-reference", "bench-suite"):
        assert expected in names
    assert sum(s.budget_s for s in steps) == TOTAL_BUDGET_S == 480
    assert all(s.budget_s > 0 for s in steps)


def _ctx(tmp_path: Path, environment: dict | None) -> Context:
    if environment is not None:
        (tmp_path / gpu_check_steps.ENVIRONMENT_FILE).write_text(json.dumps(environment))
    return Context(ROOT, tmp_path, PY)


def _step(name: str) -> Step:
    return next(s for s in default_steps() if s.name == name)


H200 = {"cuda_available": True, "capability": [9, 0], "packages": {"pytest": "9", "pytest-benchmark": "5"}}


def test_build_targets_the_local_architecture_only(tmp_path):
    command = _step("build").prepare(_ctx(tmp_path, H200))
    assert command.argv[1:] == ["setup.py", "build_ext", "--inplace"]
    assert command.env["TORCH_CUDA_ARCH_LIST"] == "9.0"
    assert command.env["FORCE_CUDA"] == "1" and int(command.env["MAX_JOBS"]) >= 1


def test_build_without_a_known_capability_keeps_setup_defaults(tmp_path):
    command = _step("build").prepare(_ctx(tmp_path, None))
    assert "TORCH_CUDA_ARCH_LIST" not in command.env


@pytest.mark.parametrize("name", ["build", "gpu-tests", "ops-float32", "ops-bfloat16", "train-triton", "bench-suite"])
def test_gpu_steps_skip_without_a_cuda_device(tmp_path, name):
    with pytest.raises(Skip, match="no CUDA device"):
        _step(name).prepare(_ctx(tmp_path, {**H200, "cuda_available": False}))


def test_steps_that_need_a_package_skip_without_it(tmp_path):
    ctx = _ctx(tmp_path, {**H200, "packages": {"pytest": None, "pytest-benchmark": None}})
    with pytest.raises(Skip, match=r"pytest is not installed \(pip install pytest\)"):
        _step("gpu-tests").prepare(ctx)
    with pytest.raises(Skip, match="pytest-benchmark is not installed"):
        _step("bench-suite").prepare(ctx)


def test_step_commands(tmp_path):
    ctx = _ctx(tmp_path, H200)
    tests = _step("gpu-tests").prepare(ctx).argv
    assert tests[1:6] == ["-m", "pytest", "-m", "gpu", "tests"]
    assert f"--junitxml={tmp_path / 'gpu_tests.xml'}" in tests
    ops = _step("ops-bfloat16").prepare(ctx).argv
    assert ops[ops.index("--dtype") + 1] == "bfloat16" and ops[ops.index("--device") + 1] == "cuda"
    train = _step("train-triton").prepare(ctx).argv
    assert train[train.index("--backend") + 1] == "triton" and train[train.index("--preset") + 1] == "256"
    suite = _step("bench-suite").prepare(ctx)
    assert suite.env["MSCA_BENCH_DEVICE"] == "cuda" and float(suite.env["MSCA_BENCH_SECONDS"]) <= 0.1
    assert suite.env["MSCA_BENCH_RESULTS_DIR"] == str(tmp_path / "bench_suite")
    assert "--benchmark-only" in suite.argv


def test_select_and_scale():
    steps = default_steps()
    chosen = gpu_check.select(steps, ["train-cuda", "build"], None)
    assert [s.name for s in chosen] == ["build", "train-cuda"]  # the check's order, not the option's
    assert "build" not in [s.name for s in gpu_check.select(steps, None, ["build"])]
    with pytest.raises(ValueError, match=r"--skip: unknown steps \['nope'\]"):
        gpu_check.select(steps, None, ["nope"])
    halved = gpu_check.scaled(steps, 240)
    assert sum(s.budget_s for s in halved) == pytest.approx(240)
    assert halved[1].budget_s == pytest.approx(steps[1].budget_s / 2)


# --- --dry-run -----------------------------------------------------------------------------------


def test_dry_run_lists_steps_and_budgets_and_runs_nothing(tmp_path):
    out = tmp_path / "report.md"
    done = subprocess.run([PY, "-m", "benchmarks.gpu_check", "--dry-run", "--out", str(out)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("10 steps, 480 s in all")
    for step in default_steps():
        assert f"{step.name}" in done.stdout and f"{step.budget_s:.0f} s" in done.stdout
    assert "TORCH_CUDA_ARCH_LIST=<local capability>" in done.stdout and "pytest -m gpu tests" in done.stdout
    assert not out.exists() and not (tmp_path / "report_files").exists()


def test_dry_run_with_a_total_scales_the_budgets(capsys):
    assert gpu_check.main(["--dry-run", "--only", "build", "gpu-tests", "--total-seconds", "120"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("2 steps, 120 s in all")
    assert "build         75 s" in text and "gpu-tests     45 s" in text


# --- the report -----------------------------------------------------------------------------------


def test_report_shows_every_step_its_sections_and_failures(tmp_path):
    steps = [
        gpu_check_report.StepReport("environment", "Environment", 10, Outcome("ok", 2.0, 10, 0), "| what | value |"),
        gpu_check_report.StepReport("build", "Build", 150, Outcome("timeout", 151.0, 150, -9, "killed after 151 s",
                                                                    "nvcc ...\n````\nlast line")),  # fmt: skip
        gpu_check_report.StepReport("gpu-tests", "GPU tests", 90, Outcome("skipped", 0.0, None, note="no CUDA device")),
        gpu_check_report.StepReport("train-cuda", "Training", 35),
    ]
    text = gpu_check_report.render([("device", "H200")], steps, [("cuda or triton first?", "verdict here")])
    assert text.startswith("# MSCA GPU check\n\n- device: H200\n")
    assert "| environment | ok | 2.0 | 10 | 10 | Environment |  |" in text
    assert "| build | TIMEOUT | 151.0 | 150 | 150 | Build | killed after 151 s |" in text
    assert "| gpu-tests | skipped | - | 90 | - | GPU tests | no CUDA device |" in text
    assert "| train-cuda | not run yet |" in text
    assert text.index("## cuda or triton first?") < text.index("## Environment") < text.index("## Failures")
    failures = text[text.index("## Failures"):]
    assert "### build: killed after 151 s" in failures and "last line" in failures
    assert "gpu-tests" not in failures  # skipped is not a failure
    # The tail's own fence cannot close the report's code block.
    assert failures.count("````") == 2
    path = gpu_check_report.write(tmp_path / "sub" / "gpu_check.md", text)
    assert path.read_text() == text and not list(tmp_path.glob("sub/*.partial"))


# --- result renderers ---------------------------------------------------------------------------


def _op(backend, median_s, dtype="float32", case="s0_256", pass_name="forward", status="ok", **extra):
    record = dict(case=case, dtype=dtype, pass_name=pass_name, backend=backend, status=status, **extra)
    if status == "ok":
        record.update(median_s=median_s, out_rel_err=1e-6)
    return record


def test_op_table_has_cuda_and_triton_columns_and_the_speed_up():
    records = [_op("cuda", 2e-3), _op("triton", 1e-3), _op("reference", 8e-3),
               _op("cuda", None, pass_name="backward", status="unavailable", note="K > 24")]  # fmt: skip
    text = gpu_check_results.render_ops(records)
    assert "| case | pass | cuda | triton | reference | triton speed-up over cuda |" in text
    assert "| s0_256 | forward | 2.000 ms (err 1.0e-06) | 1.000 ms (err 1.0e-06) | 8.000 ms (err 1.0e-06) | 2.00 |" in text
    assert "| s0_256 | backward | unavailable [1] | not run | not run | - |" in text
    assert "[1] cuda: K > 24" in text


@pytest.mark.parametrize(
    "cuda_s,triton_s,priorities,verdict",
    [
        (2.0, 1.0, {"triton": 20, "cuda": 10}, "**confirm**"),
        (1.0, 2.0, {"triton": 20, "cuda": 10}, "**reverse**"),
        (1.0, 2.0, {"triton": 5, "cuda": 10}, "**confirm**"),
    ],
)
def test_auto_order_verdict(cuda_s, triton_s, priorities, verdict):
    records = [_op("cuda", cuda_s), _op("triton", triton_s), _op("cuda", cuda_s, dtype="bfloat16"),
               _op("triton", triton_s, dtype="bfloat16")]  # fmt: skip
    text = gpu_check_results.auto_order_verdict(records, priorities)
    assert verdict in text
    assert f"- float32: triton faster in {int(cuda_s > triton_s)} of 1" in text
    assert "- bfloat16:" in text


def test_auto_order_verdict_without_both_timings_says_unverified():
    text = gpu_check_results.auto_order_verdict([_op("cuda", 1.0), _op("triton", None, status="error")], None)
    assert "stays unverified" in text


def test_junit_summary_lists_failures_and_skip_reasons(tmp_path):
    xml = tmp_path / "junit.xml"
    xml.write_text(textwrap.dedent("""\
        <testsuites><testsuite>
          <testcase classname="tests.test_triton" name="test_ok"/>
          <testcase classname="tests.test_triton" name="test_bad"><failure message="AssertionError: 1.25e-2 &gt; 3.4e-3">trace</failure></testcase>
          <testcase classname="tests.test_x" name="test_err"><error message="fixture failed">trace</error></testcase>
          <testcase classname="tests.test_x" name="test_s1"><skipped message="needs two GPUs"/></testcase>
          <testcase classname="tests.test_x" name="test_s2"><skipped message="needs two GPUs"/></testcase>
        </testsuite></testsuites>"""))
    text = gpu_check_results.render_junit(xml)
    assert text.startswith("1 passed, 2 failed or errored, 2 skipped.")
    assert "- **failure** `tests.test_triton::test_bad`: AssertionError: 1.25e-2 > 3.4e-3" in text
    assert "- **error** `tests.test_x::test_err`: fixture failed" in text
    assert "- needs two GPUs (2)" in text
    assert "did not write" in gpu_check_results.render_junit(tmp_path / "missing.xml")


def test_json_lines_cut_off_by_a_kill_are_dropped(tmp_path):
    path = tmp_path / "ops.jsonl"
    path.write_text(json.dumps({"a": 1}) + "\n" + '{"a": 2, "b"')
    assert gpu_check_results.read_json_lines(path) == [{"a": 1}]
    assert gpu_check_results.read_json_lines(tmp_path / "missing.jsonl") == []


def test_training_table():
    record = dict(backend="triton", preset="256", batch_size=8, patch_size=256, global_size=256, amp="bf16",
                  g_every=5, num_classes=12, setup_s=9.5, timed_iterations=5, mean_s=0.5, g_update_s=1.5,
                  d_only_s=0.25, images_per_s=32.0, peak_memory_gib=20.25)  # fmt: skip
    text = gpu_check_results.render_training([record])
    assert "Preset 256: batch 8" in text
    assert "| triton | 5 | 0.500 | 1.500 | 0.250 | 32.0 | 20.2 | 9.500 |" in text


def test_environment_and_backends_sections():
    env = {"device_name": "NVIDIA H200", "capability": [9, 0], "torch": "2.8.0", "packages": {"lpips": None}}
    text = gpu_check_results.render_environment(env)
    assert "| GPU | NVIDIA H200 |" in text and "| package lpips | not installed |" in text
    backends = {"device": "cuda", "backends": [{"name": "triton", "priority": 20, "description": "d"}],
                "extension_error": None, "extension_built_with_cuda": True, "triton_error": None,
                "choices": [{"case": "s0_256", "dtype": "float32", "requires_grad": False, "auto": "triton",
                             "reasons": {"cuda": "K too large", "triton": None}}]}  # fmt: skip
    text = gpu_check_results.render_backends(backends)
    assert "| triton | 20 | d |" in text and "| s0_256 | triton |" in text and "- cuda: K too large (1)" in text


# --- workers that run on CPU ------------------------------------------------------------------------


def test_environment_worker_records_versions(tmp_path):
    from benchmarks import gpu_check_env

    env = gpu_check_env.collect()
    assert env["python"] == sys.version.split()[0]
    assert env["packages"]["torch"] is not None
    assert isinstance(env["cuda_available"], bool)
    json.dumps(env)  # the report reads it back as JSON


def test_backends_worker_records_auto_and_every_reason():
    import torch

    from benchmarks import gpu_check_backends
    from msca_fast.backends import registered_backends

    found = gpu_check_backends.collect(torch.device("cpu"))
    names = {b.name for b in registered_backends()}
    assert {b["name"] for b in found["backends"]} == names
    assert len(found["choices"]) == 6 * 2 * 2  # cases x dtypes x with/without gradients
    for choice in found["choices"]:
        assert set(choice["reasons"]) == names
        assert choice["auto"] in names and choice["reasons"][choice["auto"]] is None


def test_ops_worker_times_and_checks_on_cpu():
    import torch

    from benchmarks import gpu_check_ops

    records = []
    gpu_check_ops.run("bfloat16", torch.device("cpu"), ["reference", "no-such-backend"], ["s4_256"],
                      ["forward", "forward+backward"], 0.0, records.append)  # fmt: skip
    assert [(r["pass_name"], r["backend"], r["status"]) for r in records] == [
        ("forward", "reference", "ok"), ("forward", "no-such-backend", "unavailable"),
        ("forward+backward", "reference", "ok"), ("forward+backward", "no-such-backend", "unavailable"),
    ]  # fmt: skip
    forward, both = records[0], records[2]
    assert forward["median_s"] > 0 and forward["rounds"] == 3 and forward["dtype"] == "bfloat16"
    # bfloat16 against the float32 reference: small but not zero.
    assert 0 < forward["out_rel_err"] < 3e-2
    assert 0 < both["grad_rel_err"] < 1e-1
    assert "not registered" in records[1]["note"]


def test_training_worker_times_iterations_on_cpu(tmp_path):
    import torch

    from benchmarks import gpu_check_train

    saved = []
    record = gpu_check_train.run("reference", "cpu-demo", torch.device("cpu"), warmup=0, iterations=1,
                                 num_images=8, save=lambda r: saved.append(json.loads(json.dumps(r))))  # fmt: skip
    assert record["backend"] == "reference" and record["timed_iterations"] == 1
    assert record["mean_s"] > 0 and record["images_per_s"] == pytest.approx(2 * record["batch_size"] / record["mean_s"])
    assert record["iterations"][0]["g_update"] is True  # cpu-demo updates G every iteration
    assert len(saved) == 2 and saved[0]["iterations"] == []  # after set-up, and after the iteration
