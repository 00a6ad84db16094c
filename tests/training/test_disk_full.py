"""A full disk: one line naming the file, the free space and the size needed; nothing good is lost.

Writers that fail partway stand in for the disk (torch's checkpoint writer reports a failed
write as "unexpected pos", without the ENOSPC); where the tests run as root and may mount, a
real tmpfs too small for the second checkpoint does it for real.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from msca_fast.training import checkpoint as ckpt
from msca_fast.training import disk_full, loss_log
from msca_fast.training import trainer as trainer_module
from msca_fast.training.disk_full import DiskFull, size_text

from tiny_run import train_tiny
from tiny_trainer import single_thread

TORCH_WRITER_ERROR = "[enforce fail at inline_container.cc:672] . unexpected pos 46527168 vs 46527056"


def state(step: int) -> dict:
    return {"model_config": {"num_classes": 3}, "step": step, "weights": torch.full((1 << 18,), float(step))}


def failing_torch_save(error: BaseException):
    """torch.save that writes the first 1000 bytes, then raises ``error``."""
    real_save = torch.save

    def save(obj, handle):
        real_save(obj, handle)
        handle.seek(1000)
        handle.truncate()
        raise error

    return save


def test_size_text():
    assert [size_text(n) for n in (0, 999, 1000, 46_527_168, 3 * 10**12)] == [
        "0 bytes", "999 bytes", "1.0 kB", "46.5 MB", "3000.0 GB",
    ]  # fmt: skip


@pytest.mark.parametrize(
    "error", [RuntimeError(TORCH_WRITER_ERROR), OSError(errno.ENOSPC, "No space left on device")], ids=["torch", "os"]
)
def test_a_checkpoint_write_that_runs_out_of_space_gives_one_line_and_keeps_the_previous(tmp_path, monkeypatch, error):
    ckpt.save_checkpoint(state(2), tmp_path, 2)
    monkeypatch.setattr(ckpt.torch, "save", failing_torch_save(error))
    monkeypatch.setattr(
        disk_full.shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10**9, 10**9 - 5000, 5000)
    )
    with pytest.raises(DiskFull) as caught:
        ckpt.save_checkpoint(state(4), tmp_path, 4)
    message = str(caught.value)
    assert message == (
        f"checkpoint: no space left on the device for {tmp_path / 'checkpoint_00000004.pt'}: 5.0 kB free, it needs "
        f"about 1.0 MB; the previous checkpoint {tmp_path / 'checkpoint_00000002.pt'} is intact; free some space "
        f"or choose another --output-dir"
    )
    assert caught.value.errno == errno.ENOSPC and "\n" not in message
    monkeypatch.undo()
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint_00000002.pt"]
    assert ckpt.load_checkpoint(tmp_path)["step"] == 2


def test_a_torch_writer_failure_with_space_left_is_not_called_a_full_disk(tmp_path, monkeypatch):
    monkeypatch.setattr(ckpt.torch, "save", failing_torch_save(RuntimeError(TORCH_WRITER_ERROR)))
    with pytest.raises(RuntimeError, match="unexpected pos") as caught:
        ckpt.save_checkpoint(state(4), tmp_path, 4)
    assert not isinstance(caught.value, DiskFull)
    assert list(tmp_path.iterdir()) == []


def enospc(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


@pytest.mark.parametrize(
    ("patch", "what", "file"),
    [
        (lambda mp: mp.setattr(trainer_module, "save_grid", enospc), "samples", "samples/iter_00000002.png"),
        (lambda mp: mp.setattr(loss_log, "open", enospc, raising=False), "loss log", "losses.jsonl"),
    ],
    ids=["samples", "loss-log"],
)
def test_samples_and_the_loss_log_report_a_full_disk_alike(tmp_path, monkeypatch, capsys, patch, what, file):
    patch(monkeypatch)
    with single_thread():
        code = train_tiny(tmp_path, "--pretrain-steps", "1", "--steps", "1", "--sample-every", "2")
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err[-1].startswith(f"train.py: error: {what}: no space left on the device for {tmp_path / file}: ")
    assert "free some space or choose another --output-dir" in err[-1]


def mount_tmpfs(where: Path, size: int) -> bool:
    """Mount a tmpfs of ``size`` bytes at ``where``; False where this process may not mount."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    where.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], capture_output=True)
    return done.returncode == 0


def test_a_real_full_disk_ends_the_run_with_one_line_and_the_previous_checkpoint_loads(tmp_path, capsys):
    probe = tmp_path / "probe"
    with single_thread():
        assert train_tiny(probe, "--pretrain-steps", "1", "--steps", "1") == 0
    size = ckpt.latest_checkpoint(probe).stat().st_size
    disk = tmp_path / "disk"
    if not mount_tmpfs(disk, int(size * 1.5)):
        pytest.skip("mounting a tmpfs needs root and CAP_SYS_ADMIN")
    try:
        capsys.readouterr()
        with single_thread():
            code = train_tiny(disk / "run", "--pretrain-steps", "1", "--steps", "3", "--checkpoint-every", "2")
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2
        assert err[-1].startswith(f"train.py: error: checkpoint: no space left on the device for {disk / 'run'}")
        assert "checkpoint_00000002.pt is intact" in err[-1]
        assert sorted(p.name for p in (disk / "run").glob("checkpoint_*")) == ["checkpoint_00000002.pt"]
        assert ckpt.load_checkpoint(disk / "run")["step"] == 1
    finally:
        subprocess.run(["umount", str(disk)], check=True)
