"""Non-finite losses: the update is skipped, a streak stops the run with one line, checkpoints stay finite.

The bad iterations are forced with NaN pixels in the batch (a corrupt image), which make every
loss NaN and would poison BatchNorm's running statistics; the run's own weights stay finite.
"""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import pytest
import torch

from msca_fast.training import checkpoint as ckpt
from msca_fast.training.divergence import NonFiniteStreak, TrainingDiverged, describe, non_finite_tensors
from msca_fast.training.trainer import Trainer

from same_state import assert_same_state
from tiny_run import train_tiny
from tiny_trainer import first_batch, single_thread, tiny_trainer

# --- the pieces -------------------------------------------------------------------------------


def test_streak_counts_consecutive_non_finite_iterations_and_resets_on_a_finite_one():
    streak = NonFiniteStreak(max_bad_steps=3)
    assert [streak.record(f) for f in (False, False, True, False, False)] == [False] * 5
    assert (streak.consecutive, streak.total) == (2, 4)
    assert streak.record(False) is True
    restored = NonFiniteStreak(3)
    restored.load_state_dict(streak.state_dict())
    assert (restored.consecutive, restored.total) == (3, 5)


def test_describe_names_only_the_non_finite_losses():
    assert describe({"g_total": math.nan, "d_patch": 0.5, "d_global": math.inf}) == "g_total=nan, d_global=inf"
    assert describe({f"loss{i}": math.nan for i in range(5)}, most=2) == "loss0=nan, loss1=nan and 3 more"


def test_non_finite_tensors_finds_them_anywhere_in_a_checkpoint_state():
    state = {
        "generator": {"conv.weight": torch.ones(3), "conv.bias": torch.tensor([0.0, math.nan])},
        "optimizer_g": {"state": {0: {"exp_avg": torch.tensor([math.inf]), "step": torch.tensor(3.0)}}},
        "rng_cpu": torch.zeros(8, dtype=torch.uint8),
        "step": 4,
        "list": [torch.zeros(2), torch.full((2,), -math.inf)],
    }
    assert non_finite_tensors(state) == ["generator.conv.bias", "list.1", "optimizer_g.state.0.exp_avg"]
    assert non_finite_tensors({"w": torch.ones(2), "n": 1}) == []


def test_a_non_finite_state_is_not_written_and_rotation_keeps_the_finite_checkpoints(tmp_path):
    for step in (2, 4):
        ckpt.save_checkpoint({"model_config": {}, "w": torch.full((4,), float(step))}, tmp_path, step, keep=2)
    with pytest.raises(
        TrainingDiverged, match=r"iteration 6 not written: 1 tensors hold NaN.*\(w\).*checkpoint_00000004"
    ):
        ckpt.save_checkpoint({"model_config": {}, "w": torch.tensor([1.0, math.nan])}, tmp_path, 6, keep=2)
    assert [p.name for p in ckpt.list_checkpoints(tmp_path)] == ["checkpoint_00000002.pt", "checkpoint_00000004.pt"]
    assert not list(tmp_path.glob("*.tmp"))


# --- one iteration ----------------------------------------------------------------------------


def poisoned(batch):
    """The batch with every pixel of its target and exemplar images NaN."""
    nan = float("nan")
    return batch._replace(x_p=torch.full_like(batch.x_p, nan), x_q=torch.full_like(batch.x_q, nan),
                          x=torch.full_like(batch.x, nan))  # fmt: skip


def trained_state(trainer: Trainer) -> dict:
    """What an update changes: weights, buffers, EMA, optimizer and scaler states."""
    state = trainer.state_dict()
    return copy.deepcopy({k: v for k, v in state.items() if k not in ("step", "pretrain_step", "rng_cpu", "rng_cuda")})


@pytest.mark.parametrize("stage", ["pretrain", "adversarial"])
def test_an_iteration_with_non_finite_losses_changes_nothing_but_the_counters(tmp_path, stage):
    with single_thread():
        trainer = tiny_trainer(tmp_path, "--param-free-norm", "batch")  # BatchNorm buffers see the NaN pixels
        iterate = trainer.pretrain_iteration if stage == "pretrain" else trainer.adversarial_iteration
        batch = first_batch(trainer)
        iterate(batch)  # Adam's state and the EMA exist from here on
        before = trained_state(trainer)
        values = iterate(poisoned(batch))
        assert values and all(math.isnan(v) for v in values.values())
        assert_same_state(trained_state(trainer), before, "state after a skipped iteration")
        assert trainer.iteration == 2
        assert not non_finite_tensors(trainer.state_dict())

        iterate(batch)  # a finite batch trains again
        with pytest.raises(AssertionError):
            assert_same_state(trained_state(trainer), before)


# --- a whole run ------------------------------------------------------------------------------

TOTAL = 8
SCHEDULE = ("--pretrain-steps", "2", "--steps", str(TOTAL - 2), "--checkpoint-every", "2", "--keep-checkpoints", "2")


def poison_from(monkeypatch, first_bad: int) -> None:
    """Iterations ``first_bad`` onwards (1-based) get NaN images."""
    real = Trainer.to_batch

    def to_batch(self, samples):
        batch = real(self, samples)
        return poisoned(batch) if self.iteration + 1 >= first_bad else batch

    monkeypatch.setattr(Trainer, "to_batch", to_batch)


def assert_every_checkpoint_finite(out: Path) -> list[Path]:
    found = ckpt.list_checkpoints(out)
    for path in found:
        assert non_finite_tensors(ckpt.load_checkpoint(path)) == [], path.name
    return found


def test_a_streak_of_non_finite_losses_stops_the_run_with_one_line_and_exit_1(tmp_path, monkeypatch, capsys):
    poison_from(monkeypatch, first_bad=4)
    with single_thread():
        code = train_tiny(tmp_path, *SCHEDULE, "--max-bad-steps", "3")
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert err[-1].startswith("train.py: error: training diverged: 3 iterations in a row had non-finite losses")
    assert "iteration 6" in err[-1] and "checkpoint_00000004.pt" in err[-1] and "unexpected" not in err[-1]
    # iteration 4's update was skipped, so its checkpoint holds iteration 3's weights; the stop
    # at 6 saves nothing
    names = [p.name for p in assert_every_checkpoint_finite(tmp_path)]
    assert names == ["checkpoint_00000002.pt", "checkpoint_00000004.pt"]
    assert ckpt.load_checkpoint(tmp_path / names[-1])["non_finite"] == {"consecutive": 1, "total": 1}
    rows = [json.loads(line) for line in (tmp_path / "losses.jsonl").read_text().splitlines()]
    skipped = [row["iteration"] for row in rows if row.get("skipped")]
    assert skipped == [4, 5, 6]
    assert all(math.isnan(row["d_patch"]) for row in rows if row.get("skipped"))

    monkeypatch.undo()  # the bad data is gone: resuming trains to the end
    with single_thread():
        assert train_tiny(tmp_path, *SCHEDULE, "--max-bad-steps", "3", "--resume", "latest") == 0
    final = assert_every_checkpoint_finite(tmp_path)[-1]
    assert ckpt.load_checkpoint(final)["non_finite"] == {"consecutive": 0, "total": 1}


def test_isolated_non_finite_iterations_are_skipped_and_counted_and_the_run_finishes(tmp_path, monkeypatch):
    real = Trainer.to_batch

    def to_batch(self, samples):  # iterations 3 and 6 are bad
        batch = real(self, samples)
        return poisoned(batch) if self.iteration + 1 in (3, 6) else batch

    monkeypatch.setattr(Trainer, "to_batch", to_batch)
    with single_thread():
        assert train_tiny(tmp_path, *SCHEDULE, "--max-bad-steps", "2") == 0
    final = assert_every_checkpoint_finite(tmp_path)[-1]
    state = ckpt.load_checkpoint(final)
    assert state["non_finite"] == {"consecutive": 0, "total": 2}
    assert (state["pretrain_step"], state["step"]) == (2, TOTAL - 2)
