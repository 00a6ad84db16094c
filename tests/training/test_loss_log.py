"""losses.jsonl after a crash: resuming drops the rows logged after the checkpoint it starts from."""

from __future__ import annotations

import json
from pathlib import Path

from msca_fast.training import checkpoint as ckpt
from msca_fast.training.loss_log import append_row, truncate_after

from tiny_run import train_tiny


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_truncate_after_keeps_rows_up_to_the_iteration(tmp_path):
    log = tmp_path / "losses.jsonl"
    assert truncate_after(log, 3) == 0 and not log.exists()  # no log yet: nothing to do
    for iteration in (1, 2, 3, 4, 5):
        append_row(log, {"iteration": iteration, "loss": iteration / 10})
    with open(log, "a") as handle:
        handle.write('{"iteration": 6, "lo')  # a kill -9 in the middle of a write
    assert truncate_after(log, 3) == 3
    assert rows(log) == [{"iteration": i, "loss": i / 10} for i in (1, 2, 3)]
    assert truncate_after(log, 3) == 0
    assert not list(tmp_path.glob("*.tmp"))


def test_resume_after_kill_logs_each_iteration_once(tmp_path):
    schedule = ("--pretrain-steps", "1", "--steps", "3", "--checkpoint-every", "2")
    assert train_tiny(tmp_path, *schedule) == 0
    log = tmp_path / "losses.jsonl"
    straight = rows(log)
    assert [r["iteration"] for r in straight] == [1, 2, 3, 4]
    # What kill -9 after iteration 4 was logged, but before its checkpoint was written, leaves:
    (tmp_path / ckpt.checkpoint_name(4)).unlink()
    with open(log, "a") as handle:
        handle.write('{"iteration": 5, "phase": "tr')
    assert ckpt.latest_checkpoint(tmp_path).name == ckpt.checkpoint_name(2)

    assert train_tiny(tmp_path, *schedule, "--resume") == 0
    resumed = rows(log)
    assert [r["iteration"] for r in resumed] == [1, 2, 3, 4]
    strip = lambda r: {k: v for k, v in r.items() if k != "images_per_s"}  # noqa: E731
    assert [strip(r) for r in resumed] == [strip(r) for r in straight]  # iterations 3-4 again, exactly
