"""Ctrl-C at a random moment, then --resume: the run ends bit for bit where a straight run ends.

The straight run saves a checkpoint after every iteration; the interrupted run gets a real
SIGINT from a timer thread at a fixed fraction of a given iteration's measured duration (where
exactly it lands still depends on the machine's timing, which the outcome must not). Its checkpoint must
equal the straight run's at the same iteration (so it was taken at an iteration boundary),
and resuming from it must give the straight run's final checkpoint and loss log.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from msca_fast.training import checkpoint as ckpt
from msca_fast.training import trainer as trainer_module
from msca_fast.training.interrupt import StopAtBoundary, StopRequested

from same_state import assert_same_state
from tiny_run import train_tiny

SCHEDULE = ("--pretrain-steps", "1", "--steps", "3", "--g-every", "2")  # G+D, D only, G+D
TOTAL = 4


def training_state(path: Path) -> dict:
    """Everything a checkpoint holds but its options (which name the output folder and --resume)."""
    state = ckpt.load_checkpoint(path)
    del state["train_config"]
    return state


def log_rows(out: Path) -> list[dict]:
    rows = [json.loads(line) for line in (out / "losses.jsonl").read_text().splitlines()]
    return [{k: v for k, v in row.items() if k != "images_per_s"} for row in rows]


def timed_iterations(monkeypatch, on_start) -> list[float]:
    """Wrap both iteration kinds: call ``on_start(trainer)`` before each; returns their durations."""
    durations: list[float] = []
    for name in ("pretrain_iteration", "adversarial_iteration"):
        original = getattr(trainer_module.Trainer, name)

        def wrapped(self, batch, original=original):
            on_start(self)
            started = time.perf_counter()
            try:
                return original(self, batch)
            finally:
                durations.append(time.perf_counter() - started)

        monkeypatch.setattr(trainer_module.Trainer, name, wrapped)
    return durations


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    out = tmp_path_factory.mktemp("straight")
    with pytest.MonkeyPatch.context() as patch:
        durations = timed_iterations(patch, lambda trainer: None)
        assert train_tiny(out, *SCHEDULE, "--checkpoint-every", "1", "--keep-checkpoints", str(TOTAL)) == 0
    return out, min(durations)


# (0-based iteration, share of it, the signal, train.py's exit code): Ctrl-C, and a scheduler's SIGTERM
@pytest.mark.parametrize(
    "when, fraction, signum, exit_code", [(0, 0.1, signal.SIGINT, 130), (1, 0.7, signal.SIGTERM, 143)]
)
def test_a_stop_signal_at_any_moment_resumes_exactly(straight, when, fraction, signum, exit_code, tmp_path, monkeypatch,
                                                     capsys):  # fmt: skip
    straight_dir, iteration_seconds = straight
    delay = fraction * iteration_seconds
    moment = f"{signal.Signals(signum).name} {delay:.3f}s into iteration {when + 1} of {TOTAL}"
    timers: list[threading.Timer] = []

    def arm(trainer):
        if trainer.iteration == when and not timers:
            timers.append(threading.Timer(delay, os.kill, (os.getpid(), signum)))
            timers[0].start()

    late, running = [], [True]

    def outside_the_trainer(signum, frame):  # Python's default while training, never pytest's
        if running[0]:
            raise KeyboardInterrupt
        late.append(signum)

    previous = signal.signal(signum, outside_the_trainer)
    try:
        timed_iterations(monkeypatch, arm)
        code = train_tiny(tmp_path, *SCHEDULE)
        running[0] = False
        timers[0].join()
    finally:
        signal.signal(signum, previous)
    assert not late and code == exit_code, f"{moment}: it did not arrive while training ran (exit code {code})"
    saved = ckpt.latest_checkpoint(tmp_path)
    stopped_at = int(ckpt.PATTERN.match(saved.name).group(1))
    assert when + 1 <= stopped_at < TOTAL, f"{moment}: saved at iteration {stopped_at}"
    assert f"stopped: saved {saved}" in capsys.readouterr().out
    assert_same_state(training_state(saved), training_state(straight_dir / saved.name), f"{moment}: {saved.name}")

    monkeypatch.undo()
    assert train_tiny(tmp_path, *SCHEDULE, "--resume") == 0
    final = ckpt.checkpoint_name(TOTAL)
    assert_same_state(training_state(tmp_path / final), training_state(straight_dir / final), f"{moment}: {final}")
    assert log_rows(tmp_path) == log_rows(straight_dir)


def test_a_second_ctrl_c_quits_at_once_without_saving(tmp_path, monkeypatch, capsys):
    def interrupt_twice(trainer):
        if trainer.iteration == 1:
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGINT)

    timed_iterations(monkeypatch, interrupt_twice)
    assert train_tiny(tmp_path, *SCHEDULE) == 130
    assert ckpt.latest_checkpoint(tmp_path) is None
    assert "interrupted inside iteration 2: nothing saved; there is no checkpoint yet" in capsys.readouterr().out
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the trainer put it back


def test_the_first_stop_signal_names_the_exit_code_and_a_second_quits_at_once(capfd):
    with StopAtBoundary() as stop:
        os.kill(os.getpid(), signal.SIGUSR1)
        assert stop.requested and stop.signum == signal.SIGUSR1
        with pytest.raises(StopRequested) as second:
            os.kill(os.getpid(), signal.SIGTERM)
    assert second.value.exit_code == 128 + signal.SIGUSR1  # the first signal's: 138
    assert "SIGUSR1: stopping after this iteration" in capfd.readouterr().err
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1):
        assert signal.getsignal(signum) is not stop._handle  # put back


def _interrupt_myself() -> None:
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(0.2)  # a KeyboardInterrupt would end this process with exit code 1


def test_forked_data_loader_workers_keep_serving_on_ctrl_c(capfd):
    """A terminal's Ctrl-C reaches the DataLoader workers too; they inherit the handler and
    must neither die (the iteration in progress needs them) nor print the notice again."""
    import multiprocessing

    with StopAtBoundary() as stop:
        worker = multiprocessing.get_context("fork").Process(target=_interrupt_myself)
        worker.start()
        worker.join(timeout=30)
    assert worker.exitcode == 0 and not stop.requested
    assert "Ctrl-C" not in capfd.readouterr().err
