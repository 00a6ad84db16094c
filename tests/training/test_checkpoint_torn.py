"""A checkpoint write that dies part-way, by an exception or with its process killed, leaves
the previous checkpoint the newest one: loadable, what ``--resume latest`` picks, with nothing
half-written under a checkpoint's name; the next save sweeps up what the crash left. And the
newest checkpoint, for resuming and for rotation, is the one of the highest iteration.
"""

from __future__ import annotations

import errno
import io
import multiprocessing
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from msca_fast.training import checkpoint as ckpt
from msca_fast.training.config import make_config
from msca_fast.training.run import resume_state

PREVIOUS, TORN, NEXT = 9, 10, 11  # 9 before 10: unpadded names in text order would say otherwise
TORN_AFTER = 1 << 20  # bytes written of the ~4 MiB file


def big_state(step: int) -> dict:
    """A checkpoint-shaped state (load_checkpoint accepts it) of about 4 MiB."""
    return {"model_config": {"num_classes": 3}, "step": step, "weights": torch.full((1 << 20,), float(step))}


def torn_save(limit: int, then: Callable[[], None]) -> Callable:
    """A stand-in for torch.save: the first ``limit`` bytes of what torch.save would write, to
    the same destination (an open file or a path), then ``then()`` (which raises or blocks)."""
    real_save = torch.save

    def save(obj, destination, *args, **kwargs):
        buffer = io.BytesIO()
        real_save(obj, buffer, *args, **kwargs)
        data = buffer.getvalue()
        assert len(data) > limit, f"the state serialises to {len(data)} bytes, not more than {limit}"
        handle = destination if hasattr(destination, "write") else open(destination, "wb")  # noqa: SIM115
        handle.write(data[:limit])
        handle.flush()
        then()

    return save


def names(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def assert_the_previous_checkpoint_survives(directory: Path) -> None:
    """What a crash while writing checkpoint TORN (keep=1) must leave behind; and that the next
    save (at another iteration, so that it does not merely overwrite TORN's temporary file)
    succeeds and leaves nothing else."""
    torn = ckpt.checkpoint_name(TORN)
    assert not (directory / torn).exists(), f"a half-written file is named {torn}"
    previous = directory / ckpt.checkpoint_name(PREVIOUS)
    assert ckpt.list_checkpoints(directory) == [previous]
    assert ckpt.latest_checkpoint(directory) == previous
    state = ckpt.load_checkpoint(previous)
    assert state["step"] == PREVIOUS and torch.equal(state["weights"], big_state(PREVIOUS)["weights"])
    resumed = resume_state(make_config(output_dir=str(directory), resume="latest"))  # --resume latest
    assert resumed is not None and resumed["step"] == PREVIOUS

    ckpt.save_checkpoint(big_state(NEXT), directory, NEXT, keep=1)
    assert names(directory) == [ckpt.checkpoint_name(NEXT)], "the next save left stray files or old checkpoints"
    assert ckpt.load_checkpoint(directory)["step"] == NEXT


def raise_disk_full() -> None:
    raise OSError(errno.ENOSPC, "No space left on device")


def raise_ctrl_c() -> None:
    raise KeyboardInterrupt


@pytest.mark.parametrize("failure", [raise_disk_full, raise_ctrl_c], ids=["disk full", "Ctrl-C"])
def test_a_write_that_raises_midway_keeps_the_previous_checkpoint(tmp_path, monkeypatch, failure):
    ckpt.save_checkpoint(big_state(PREVIOUS), tmp_path, PREVIOUS, keep=1)
    monkeypatch.setattr(torch, "save", torn_save(TORN_AFTER, failure))
    with pytest.raises((OSError, KeyboardInterrupt)):
        ckpt.save_checkpoint(big_state(TORN), tmp_path, TORN, keep=1)
    monkeypatch.undo()
    assert_the_previous_checkpoint_survives(tmp_path)


def write_and_stall(directory: Path, state: dict, stalled) -> None:
    """The killed process: save ``state`` as checkpoint TORN, stopping TORN_AFTER bytes in."""

    def stall() -> None:
        stalled.set()
        time.sleep(600)

    # save_checkpoint checks the state is finite with torch ops; in a child forked from a parent
    # whose OpenMP pool has run, GNU OpenMP's first parallel region would hang (it is not
    # fork-safe), so the child computes on its own thread.
    torch.set_num_threads(1)
    torch.save = torn_save(TORN_AFTER, stall)
    ckpt.save_checkpoint(state, directory, TORN, keep=1)


def test_a_process_killed_midway_keeps_the_previous_checkpoint(tmp_path):
    ckpt.save_checkpoint(big_state(PREVIOUS), tmp_path, PREVIOUS, keep=1)
    # Forked, so the writer needs no imports of its own; the state is built before the fork.
    context = multiprocessing.get_context("fork")
    stalled = context.Event()
    writer = context.Process(target=write_and_stall, args=(tmp_path, big_state(TORN), stalled))
    writer.start()
    try:
        deadline = time.monotonic() + 60
        while not stalled.wait(timeout=0.05):
            assert writer.is_alive() and time.monotonic() < deadline, (
                f"the writer did not stop mid-write (exit code {writer.exitcode})"
            )
    finally:
        writer.kill()  # SIGKILL
        writer.join(timeout=60)
    assert writer.exitcode == -signal.SIGKILL
    assert_the_previous_checkpoint_survives(tmp_path)


def test_the_newest_checkpoint_is_the_highest_iteration(tmp_path):
    for step in (10, 9):  # saved out of order, as after resuming from an older checkpoint
        ckpt.save_checkpoint(big_state(step), tmp_path, step)
    assert ckpt.latest_checkpoint(tmp_path).name == ckpt.checkpoint_name(10)
    # Past the zero padding (iteration 10**8) names sort differently from iterations.
    for step in (99_999_999, 100_000_000):
        ckpt.save_checkpoint(big_state(step), tmp_path, step, keep=4)
    assert [int(ckpt.PATTERN.match(p.name).group(1)) for p in ckpt.list_checkpoints(tmp_path)] == [
        9, 10, 99_999_999, 100_000_000,
    ]  # fmt: skip
    assert ckpt.load_checkpoint(tmp_path)["step"] == 100_000_000


def test_rotation_keeps_the_newest_iterations(tmp_path):
    for step in (8, 9, 10, 11):
        ckpt.save_checkpoint(big_state(step), tmp_path, step, keep=2)
    assert names(tmp_path) == [ckpt.checkpoint_name(10), ckpt.checkpoint_name(11)]
    ckpt.save_checkpoint(big_state(100_000_000), tmp_path, 100_000_000, keep=1)
    assert names(tmp_path) == [ckpt.checkpoint_name(100_000_000)]
