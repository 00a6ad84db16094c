"""Checkpoint files: atomic writes, pruning, interrupted writes, loading errors."""

from __future__ import annotations

import pytest
import torch

from msca_fast.training import checkpoint as ckpt


def state(step: int) -> dict:
    return {"model_config": {"num_classes": 3}, "step": step, "weights": torch.full((4,), float(step))}


def test_save_keeps_the_newest_n(tmp_path):
    for step in (10, 20, 30, 40):
        ckpt.save_checkpoint(state(step), tmp_path, step, keep=2)
    assert [p.name for p in ckpt.list_checkpoints(tmp_path)] == ["checkpoint_00000030.pt", "checkpoint_00000040.pt"]
    assert ckpt.load_checkpoint(tmp_path)["step"] == 40  # a folder means its latest checkpoint


def test_interrupted_write_leaves_the_previous_checkpoint_loadable(tmp_path, monkeypatch):
    ckpt.save_checkpoint(state(1), tmp_path, 1)
    real_save = torch.save

    def crash_midway(obj, handle, *args, **kwargs):
        handle.write(b"partial bytes of a checkpoint")
        raise KeyboardInterrupt  # Ctrl-C while writing

    monkeypatch.setattr(torch, "save", crash_midway)
    with pytest.raises(KeyboardInterrupt):
        ckpt.save_checkpoint(state(2), tmp_path, 2)
    monkeypatch.setattr(torch, "save", real_save)
    assert ckpt.latest_checkpoint(tmp_path).name == "checkpoint_00000001.pt"
    assert ckpt.load_checkpoint(ckpt.latest_checkpoint(tmp_path))["step"] == 1
    assert not list(tmp_path.glob("*.tmp"))


def test_stray_temporary_files_are_ignored_and_cleaned(tmp_path):
    (tmp_path / "checkpoint_00000009.pt.tmp").write_bytes(b"garbage")
    assert ckpt.latest_checkpoint(tmp_path) is None
    ckpt.save_checkpoint(state(3), tmp_path, 3)
    assert not list(tmp_path.glob("*.tmp"))


def test_loading_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such checkpoint"):
        ckpt.load_checkpoint(tmp_path / "missing.pt")
    with pytest.raises(FileNotFoundError, match="no checkpoint_\\*.pt in"):
        ckpt.load_checkpoint(tmp_path)
    (tmp_path / "bad.pt").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="bad.pt' is not a checkpoint file torch can read"):
        ckpt.load_checkpoint(tmp_path / "bad.pt")
    torch.save({"something": 1}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="other.pt' is not an msca-fast training checkpoint"):
        ckpt.load_checkpoint(tmp_path / "other.pt")


def test_loading_refuses_pickled_objects(tmp_path):
    torch.save({"model_config": {}, "evil": object()}, tmp_path / "pickled.pt")
    with pytest.raises(ValueError, match=r"pickled.pt' .* holds a pickled Python object \(object\)"):
        ckpt.load_checkpoint(tmp_path / "pickled.pt")
