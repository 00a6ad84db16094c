"""The trainer's adversarial iteration: its D update on a separable toy pair (real images all +1,
generated ones fixed at -1, from a stand-in generator, so only D learns), and how both updates
weigh the patch and global tasks (Eq. 11: patch + lambda_global * global).
"""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from msca_fast.training.losses_step import Batch

from tiny_trainer import first_batch, single_thread, tiny_trainer


class FixedFakes(nn.Module):
    """Reconstructions stand-in: every generated patch is ``patch``, every global image ``whole``."""

    def __init__(self, patch: float, whole: float) -> None:
        super().__init__()
        self.patch, self.whole = patch, whole

    def forward(self, c_p, x_q, c_q, c, x):
        return torch.full_like(x_q, self.patch), torch.full_like(x, self.whole)


def toy_batch(batch: Batch, real: float = 1.0) -> Batch:
    """``batch``'s label maps, every image ``real``."""
    return batch._replace(x_p=torch.full_like(batch.x_p, real), x_q=torch.full_like(batch.x_q, real),
                          x=torch.full_like(batch.x, real))  # fmt: skip


def d_only_trainer(out, *extra: str):
    """A tiny trainer whose next iterations update D only (G every 1000th, and step 1 is not one)."""
    torch.manual_seed(0)
    trainer = tiny_trainer(out, "--g-every", "1000", "--lr-d", "1e-3", *extra)
    trainer.reconstructions = FixedFakes(-1.0, -1.0)
    trainer.step = 1
    return trainer


@torch.no_grad()
def mean_logits(trainer, batch: Batch, images: torch.Tensor) -> float:
    """D's mean patch prediction over all scales for ``images`` judged as the patch task (eval
    mode, so spectral norm's power iteration leaves D as it is)."""
    d = trainer.discriminator
    d.eval()
    outputs = d(images, batch.c_p, batch.x_q, batch.c_q)
    d.train()
    return sum(features[-1].mean().item() for features in outputs) / len(outputs)


def test_d_steps_raise_real_logits_and_lower_fake_logits(tmp_path):
    with single_thread():
        trainer = d_only_trainer(tmp_path)
        batch = toy_batch(first_batch(trainer))
        real, fake = batch.x_p, torch.full_like(batch.x_p, -1.0)
        before = mean_logits(trainer, batch, real), mean_logits(trainer, batch, fake)
        losses = [trainer.adversarial_iteration(batch) for _ in range(3)]
        after = mean_logits(trainer, batch, real), mean_logits(trainer, batch, fake)
    assert all("g_total" not in logs for logs in losses)  # D only
    assert after[0] > before[0] and after[1] < before[1], (before, after)
    assert losses[-1]["d_patch"] < losses[0]["d_patch"] and losses[-1]["d_global"] < losses[0]["d_global"]


def d_parameters_after_one_step(trainer, batch: Batch) -> dict[str, torch.Tensor]:
    """D's parameters after one D update from the trainer's current state; the state is then restored."""
    saved = copy.deepcopy((trainer.discriminator.state_dict(), trainer.opt_d.state_dict(), trainer.step))
    trainer.adversarial_iteration(batch)
    after = {name: p.detach().clone() for name, p in trainer.discriminator.named_parameters()}
    trainer.discriminator.load_state_dict(saved[0])
    trainer.opt_d.load_state_dict(saved[1])
    trainer.step = saved[2]
    return after


def same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return all(torch.equal(a[name], b[name]) for name in a)


@pytest.mark.parametrize("lambda_global", [0.0, 1.0])
def test_d_loss_weighs_the_global_task_by_lambda_global(tmp_path, lambda_global):
    """D's update is d_patch + lambda_global * d_global: with lambda_global 0 changing the global
    real or generated images leaves it as it was; changing the patch ones never does."""
    with single_thread():
        trainer = d_only_trainer(tmp_path, "--lambda-global", str(lambda_global))
        batch = toy_batch(first_batch(trainer))
        reference = d_parameters_after_one_step(trainer, batch)
        assert same(reference, d_parameters_after_one_step(trainer, batch))  # the restore is exact
        changed = {
            "global real": d_parameters_after_one_step(trainer, batch._replace(x=torch.full_like(batch.x, 0.5))),
            "patch real": d_parameters_after_one_step(trainer, batch._replace(x_p=torch.full_like(batch.x_p, 0.5))),
        }
        trainer.reconstructions = FixedFakes(-1.0, 0.5)
        changed["global fake"] = d_parameters_after_one_step(trainer, batch)
        trainer.reconstructions = FixedFakes(0.5, -1.0)
        changed["patch fake"] = d_parameters_after_one_step(trainer, batch)
    unchanged = {name for name, after in changed.items() if same(reference, after)}
    assert unchanged == ({"global real", "global fake"} if lambda_global == 0.0 else set())


def test_g_loss_is_patch_terms_plus_lambda_global_times_global_terms(tmp_path):
    torch.manual_seed(0)
    with single_thread():
        trainer = tiny_trainer(tmp_path, "--lambda-global", "0.25")
        logs = trainer.adversarial_iteration(first_batch(trainer))
    patch = [logs[f"{kind}_patch"] for kind in ("gan", "fm", "vgg", "l1")]
    whole = [logs[f"{kind}_global"] for kind in ("gan", "fm", "vgg", "l1")]
    assert logs["g_total"] == pytest.approx(sum(patch) + 0.25 * sum(whole), rel=1e-6)
    assert sum(whole) > 0  # the global terms are there to be weighed
