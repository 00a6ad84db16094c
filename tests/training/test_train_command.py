"""train.py end to end on the synthetic scenes at tiny sizes: steps, outputs, resume, Ctrl-C, DDP, errors."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from msca_fast.train import main
from msca_fast.training import checkpoint as ckpt
from msca_fast.training import trainer as trainer_module

from repo_root import ROOT
from tiny_run import TINY_ARGS, train_tiny
from tiny_trainer import tiny_trainer


def losses(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "losses.jsonl").read_text().splitlines()]


def test_two_training_steps_write_checkpoint_samples_and_log(tmp_path, capsys):
    assert train_tiny(tmp_path, "--pretrain-steps", "1", "--steps", "2", "--g-every", "1") == 0
    final = ckpt.latest_checkpoint(tmp_path)
    assert final.name == "checkpoint_00000003.pt"
    state = ckpt.load_checkpoint(final)
    assert (state["step"], state["pretrain_step"]) == (2, 1)
    assert (tmp_path / "samples" / "latest.png").is_file()
    records = losses(tmp_path)
    assert [r["phase"] for r in records] == ["pretrain", "train", "train"]
    assert all(torch.isfinite(torch.tensor(r["g_total"])) for r in records[1:])
    g = ckpt.load_generator(final)
    assert not g.training
    out = capsys.readouterr().out
    assert "load_generator" in out and str(final) in out


def test_a_config_without_samples_builds_and_writes_no_grid(tmp_path):
    trainer = tiny_trainer(tmp_path, num_samples=0)  # TrainConfig allows 0; train.py has no flag for it
    assert trainer.write_samples() is None and not (tmp_path / "samples").exists()


def test_resume_continues_exactly(tmp_path):
    straight, split = tmp_path / "straight", tmp_path / "split"
    common = ("--pretrain-steps", "1", "--g-every", "2")
    assert train_tiny(straight, *common, "--steps", "4") == 0
    assert train_tiny(split, *common, "--steps", "2") == 0
    assert train_tiny(split, *common, "--steps", "4", "--resume") == 0
    a = ckpt.load_checkpoint(straight)
    b = ckpt.load_checkpoint(split)
    for key in ("generator", "generator_ema", "discriminator", "pretrain_head"):
        for name, tensor in a[key].items():
            assert torch.equal(tensor, b[key][name]), f"{key}.{name} differs after resuming"
    assert a["optimizer_d"]["state"][0]["exp_avg"].equal(b["optimizer_d"]["state"][0]["exp_avg"])
    straight_log = [r for r in losses(straight) if r["iteration"] > 3]
    split_log = [r for r in losses(split) if r["iteration"] > 3]
    strip = lambda r: {k: v for k, v in r.items() if k != "images_per_s"}  # noqa: E731
    assert [strip(r) for r in straight_log] == [strip(r) for r in split_log]


def test_ctrl_c_saves_a_checkpoint_and_resume_finishes(tmp_path, monkeypatch, capsys):
    original = trainer_module.Trainer.adversarial_iteration

    def interrupted(self, batch):
        if self.step == 1:
            os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C: the iteration finishes, then the run stops
        return original(self, batch)

    monkeypatch.setattr(trainer_module.Trainer, "adversarial_iteration", interrupted)
    assert train_tiny(tmp_path, "--pretrain-steps", "1", "--steps", "3") == 130
    assert ckpt.latest_checkpoint(tmp_path).name == "checkpoint_00000003.pt"
    assert "--resume" in capsys.readouterr().out
    monkeypatch.setattr(trainer_module.Trainer, "adversarial_iteration", original)
    assert train_tiny(tmp_path, "--pretrain-steps", "1", "--steps", "3", "--resume") == 0
    assert ckpt.load_checkpoint(tmp_path)["step"] == 3


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_process_ddp_with_gloo(tmp_path):
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(free_port()),
        str(ROOT / "train.py"), "--output-dir", str(tmp_path), *TINY_ARGS, "--pretrain-steps", "1", "--steps", "2",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "2 process(es)" in result.stdout
    assert [p.name for p in ckpt.list_checkpoints(tmp_path)] == ["checkpoint_00000003.pt"]
    assert len(losses(tmp_path)) == 3  # rank 0 logs alone


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--dataset", "folder", "--data-root", "/nonexistent"], "--label-nc"),
        (["--dataset", "ade20k"], "needs --data-root"),
        (["--dataset", "ade20k", "--data-root", "/nonexistent/ade"], "/nonexistent/ade"),
        (["--batch-size", "0"], "batch_size: expected a positive int"),
        (["--resume", "/nonexistent/ckpt.pt"], "no such checkpoint"),
    ],
)
def test_bad_options_end_with_a_message_and_exit_2(tmp_path, capsys, argv, message):
    assert main(["--output-dir", str(tmp_path), *TINY_ARGS, *argv]) == 2
    err = capsys.readouterr().err
    assert "train.py: error:" in err and message in err


def test_resuming_with_another_class_count_is_refused(tmp_path, capsys):
    assert train_tiny(tmp_path, "--pretrain-steps", "0", "--steps", "1") == 0
    state = ckpt.load_checkpoint(tmp_path)
    state["model_config"]["num_classes"] += 1
    torch.save(state, tmp_path / "checkpoint_00000009.pt")
    assert main(["--output-dir", str(tmp_path), *TINY_ARGS, "--steps", "2", "--resume"]) == 2
    assert "classes" in capsys.readouterr().err


def test_trains_on_a_label_folder(tmp_path):
    from PIL import Image

    root = tmp_path / "data"
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    gen = torch.Generator().manual_seed(0)
    for i in range(4):
        pixels = torch.randint(0, 256, (40, 48, 3), generator=gen, dtype=torch.uint8).numpy()
        Image.fromarray(pixels).save(root / "images" / f"scene{i}.png")
        ids = torch.randint(0, 3, (40, 48), generator=gen, dtype=torch.uint8).numpy()
        Image.fromarray(ids).save(root / "labels" / f"scene{i}.png")
    out = tmp_path / "run"
    argv = ["--dataset", "folder", "--data-root", str(root), "--label-nc", "3", "--num-images", "4"]
    assert train_tiny(out, *argv, "--pretrain-steps", "1", "--steps", "1") == 0
    assert ckpt.load_checkpoint(out)["model_config"]["num_classes"] == 3


def test_bf16_autocast_and_channels_last(tmp_path):
    assert train_tiny(tmp_path, "--pretrain-steps", "1", "--steps", "1", "--amp", "bf16", "--channels-last") == 0
    assert all(torch.isfinite(torch.tensor(r.get("g_total", 0.0))) for r in losses(tmp_path))


def test_epochs_replace_steps(tmp_path):
    # 8 images in batches of 2: 4 iterations per epoch, so 2 epochs are 8 iterations.
    assert train_tiny(tmp_path, "--pretrain-steps", "1", "--epochs", "2", "--steps", "999") == 0
    state = ckpt.load_checkpoint(tmp_path)
    assert (state["pretrain_step"], state["step"]) == (1, 7)
