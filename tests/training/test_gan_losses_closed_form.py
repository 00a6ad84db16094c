"""The training step's GAN losses (msca_fast.training.losses_step) on a probe discriminator whose
outputs are known in closed form: D's hinge loss per task, G's hinge, feature-matching,
perceptual and L1 terms, each against a value computed by hand.

The probe has two scales, like the multi-scale discriminator: scale 0 sees the input, scale 1
its 2x2 average; each returns one feature map and then a prediction (B,1,h,w).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.testing import assert_close

from msca_fast.training.losses_step import Batch, DiscriminatorObjective, generator_losses

NUM_CLASSES = 3
SCALE_1_OFFSET = -1.0


def condition_code(c: torch.Tensor, x_ex: torch.Tensor, c_ex: torch.Tensor) -> torch.Tensor:
    """(B,1,H,W) telling apart which label map, exemplar and exemplar labels D was given."""
    classes = torch.arange(NUM_CLASSES, dtype=c.dtype).view(1, -1, 1, 1)
    return 0.1 * x_ex.mean(1, keepdim=True) + 0.01 * (c * classes).sum(1, keepdim=True) + 0.001 * (
        c_ex * classes
    ).sum(1, keepdim=True)


def probe_outputs(x, c, x_ex, c_ex) -> list[list[torch.Tensor]]:
    """Scale 0: feature [x, code], prediction mean_channels(x) + code; scale 1: the same of the
    2x2-averaged input, the prediction shifted by SCALE_1_OFFSET."""
    code = condition_code(c, x_ex, c_ex)
    prediction = x.mean(1, keepdim=True) + code
    feature = torch.cat([x, code], 1)
    return [
        [feature, prediction],
        [F.avg_pool2d(feature, 2), F.avg_pool2d(prediction, 2) + SCALE_1_OFFSET],
    ]


class ProbeDiscriminator(nn.Module):
    def forward(self, x, c, x_ex, c_ex):
        return probe_outputs(x, c, x_ex, c_ex)


def one_hot_map(class_id: int, size: int = 4, batch: int = 2) -> torch.Tensor:
    labels = torch.zeros(batch, NUM_CLASSES, size, size)
    labels[:, class_id] = 1
    return labels


def constant(value: float, size: int = 4, batch: int = 2) -> torch.Tensor:
    return torch.full((batch, 3, size, size), value)


def random_images(seed: int, size: int = 4, batch: int = 2) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(batch, 3, size, size, generator=g) * 2.4 - 1.2  # some past the hinge margins


def random_batch() -> Batch:
    """Every tensor different, so a task fed the wrong one shows."""
    g = torch.Generator().manual_seed(7)

    def labels():
        ids = torch.randint(0, NUM_CLASSES, (2, 4, 4), generator=g)
        return F.one_hot(ids, NUM_CLASSES).permute(0, 3, 1, 2).float()

    return Batch(c_p=labels(), x_p=random_images(1), c_q=labels(), x_q=random_images(2), c=labels(), x=random_images(3))


# --- D: the hinge loss of each task -----------------------------------------------------------


def test_d_step_loss_on_constant_images_matches_hand_values():
    """The probe's predictions are the images' values (scale 1: minus 1) plus the condition code:
    0 for the patch task (labels all class 0, exemplar 0), 0.1 * -0.5 for the global one."""
    zeros = one_hot_map(0)
    batch = Batch(c_p=zeros, x_p=constant(0.5), c_q=zeros, x_q=constant(0.0), c=zeros, x=constant(-0.5))
    d_patch, d_global = DiscriminatorObjective(ProbeDiscriminator())(
        *batch, constant(-0.25), constant(0.8)  # fake_p, fake
    )
    # patch, real 0.5, fake -0.25: scale 0 relu(1 - 0.5) + relu(1 - 0.25) = 0.5 + 0.75;
    #                              scale 1 relu(1 + 0.5) + relu(1 - 1.25) = 1.5 + 0
    assert_close(d_patch, torch.tensor((1.25 + 1.5) / 2))
    # global: its exemplar is the real image itself (x = -0.5: code -0.05).
    # real -0.55: scale 0 relu(1.55) = 1.55, scale 1 relu(2.55) = 2.55;
    # fake 0.75:  scale 0 relu(1.75) = 1.75, scale 1 relu(0.75) = 0.75
    assert_close(d_global, torch.tensor((1.55 + 1.75 + 2.55 + 0.75) / 2))


def hand_hinge_d(real_outputs, fake_outputs) -> torch.Tensor:
    """mean over scales of mean(relu(1 - real prediction)) + mean(relu(1 + fake prediction))."""
    terms = [
        torch.clamp(1 - real[-1], min=0).mean() + torch.clamp(1 + fake[-1], min=0).mean()
        for real, fake in zip(real_outputs, fake_outputs)
    ]
    return sum(terms) / len(terms)


def test_d_step_loss_judges_each_task_on_its_own_pair_and_conditions():
    """Patch: x_p against fake_p, conditioned on c_p, x_q, c_q; global: x against fake, on c, x, c."""
    batch = random_batch()
    fake_p, fake = random_images(4), random_images(5)
    d_patch, d_global = DiscriminatorObjective(ProbeDiscriminator())(*batch, fake_p, fake)
    patch_conditions = (batch.c_p, batch.x_q, batch.c_q)
    global_conditions = (batch.c, batch.x, batch.c)
    expected_patch = hand_hinge_d(probe_outputs(batch.x_p, *patch_conditions), probe_outputs(fake_p, *patch_conditions))
    expected_global = hand_hinge_d(probe_outputs(batch.x, *global_conditions), probe_outputs(fake, *global_conditions))
    assert_close(d_patch, expected_patch)
    assert_close(d_global, expected_global)


def test_d_step_loss_gradient_raises_real_and_lowers_fake_predictions():
    """Inside the margins, D's loss falls as the probe rates the real patch higher and the fake
    one lower (its predictions grow with the image): negative gradient on real, positive on fake."""
    zeros = one_hot_map(0)
    real, fake_p = constant(0.5).requires_grad_(), constant(-0.5).requires_grad_()
    batch = Batch(zeros, real, zeros, constant(0.0), zeros, constant(0.5))
    d_patch, _ = DiscriminatorObjective(ProbeDiscriminator())(*batch, fake_p, constant(-0.5))
    grad_real, grad_fake = torch.autograd.grad(d_patch, (real, fake_p))
    assert torch.all(grad_real < 0) and torch.all(grad_fake > 0)


# --- G: hinge, feature matching, perceptual, L1 ---------------------------------------------


def perceptual_probe(fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """A stand-in for VGGLoss with its contract: value from both, gradient to ``fake`` only."""
    return (fake - real.detach()).abs().mean()


def test_generator_losses_match_hand_values():
    batch = random_batch()
    fake_p, fake = random_images(4), random_images(5)
    lambda_feat, lambda_l1 = 3.0, 2.0
    terms = generator_losses(ProbeDiscriminator(), perceptual_probe, batch, fake_p, fake, lambda_feat, lambda_l1)
    tasks = {
        "patch": (batch.x_p, fake_p, (batch.c_p, batch.x_q, batch.c_q)),
        "global": (batch.x, fake, (batch.c, batch.x, batch.c)),
    }
    assert set(terms) == {f"{kind}_{task}" for kind in ("gan", "fm", "vgg", "l1") for task in tasks}
    for task, (real, generated, conditions) in tasks.items():
        real_out, fake_out = probe_outputs(real, *conditions), probe_outputs(generated, *conditions)
        # -mean of the fake prediction, averaged over the two scales
        gan = -(fake_out[0][1].mean() + fake_out[1][1].mean()) / 2
        # lambda_feat / (number of scales) * sum over scales of the features' mean |fake - real|
        fm = lambda_feat / 2 * sum((f[0] - r[0]).abs().mean() for f, r in zip(fake_out, real_out))
        assert_close(terms[f"gan_{task}"], gan, msg=f"gan_{task}")
        assert_close(terms[f"fm_{task}"], fm, msg=f"fm_{task}")
        assert_close(terms[f"vgg_{task}"], (generated - real).abs().mean(), msg=f"vgg_{task}")
        assert_close(terms[f"l1_{task}"], lambda_l1 * (generated - real).abs().mean(), msg=f"l1_{task}")
        assert terms[f"fm_{task}"] > 0


def test_pooled_l1_compares_block_means_and_ignores_the_phase_within_a_block():
    batch = random_batch()
    fake_p, fake = random_images(4), random_images(5)
    terms = generator_losses(ProbeDiscriminator(), perceptual_probe, batch, fake_p, fake, 1.0, 2.0, l1_pool=2)
    for real, generated, task in ((batch.x_p, fake_p, "patch"), (batch.x, fake, "global")):
        blocks = (F.avg_pool2d(generated, 2) - F.avg_pool2d(real, 2)).abs().mean()
        assert_close(terms[f"l1_{task}"], 2.0 * blocks, msg=f"l1_{task}")
    # a checkerboard against the same checkerboard shifted by a pixel: same 2x2 means
    checker = (torch.arange(4).view(1, 4) + torch.arange(4).view(4, 1)) % 2 * 2.0 - 1.0
    real, shifted = checker.expand(2, 3, 4, 4), checker.roll(1, -1).expand(2, 3, 4, 4)
    shifted_batch = batch._replace(x_p=real)
    pooled = generator_losses(ProbeDiscriminator(), perceptual_probe, shifted_batch, shifted, fake, 1.0, 2.0, 2)
    pixels = generator_losses(ProbeDiscriminator(), perceptual_probe, shifted_batch, shifted, fake, 1.0, 2.0, 1)
    assert pooled["l1_patch"] == 0 and pixels["l1_patch"] == 4.0


def test_generator_losses_train_the_fakes_only():
    batch = Batch(*(t.clone().requires_grad_() for t in random_batch()))
    fake_p, fake = random_images(4).requires_grad_(), random_images(5).requires_grad_()
    terms = generator_losses(ProbeDiscriminator(), perceptual_probe, batch, fake_p, fake, 10.0, 1.0)
    for name, term in terms.items():
        generated = fake_p if name.endswith("patch") else fake
        (grad_fake,) = torch.autograd.grad(term, generated, retain_graph=True)
        assert grad_fake.abs().sum() > 0, name
        # The real image is a constant of the D-judged and perceptual terms (not of L1, a plain
        # distance); the global task's real image is also its exemplar, a condition of D.
        if name in ("gan_patch", "fm_patch", "vgg_patch"):
            (grad_real,) = torch.autograd.grad(term, batch.x_p, allow_unused=True)
            assert grad_real is None or grad_real.abs().sum() == 0, name


def test_generator_hinge_gradient_raises_the_fake_prediction():
    """G's adversarial term falls as D rates the fakes higher: d gan / d fake > 0 nowhere."""
    batch = random_batch()
    fake_p = random_images(4).requires_grad_()
    terms = generator_losses(ProbeDiscriminator(), perceptual_probe, batch, fake_p, random_images(5), 1.0)
    (grad,) = torch.autograd.grad(terms["gan_patch"], fake_p)
    assert torch.all(grad < 0)  # the probe's prediction grows with the image
