"""The two self-supervised tasks as modules, so each training update is one forward and one
backward of one module (what DistributedDataParallel needs).

Batch tensors (on the device, labels one-hot):
  c_p (B,C,P,P), x_p (B,3,P,P)   target patch p
  c_q (B,C,P,P), x_q (B,3,P,P)   exemplar patch q
  c (B,C,G,G),   x (B,3,G,G)     the whole image (global self-reconstruction)
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from msca_fast.losses import feature_matching_loss, hinge_d_loss, hinge_g_loss
from msca_fast.models.discriminator import MultiscaleDiscriminator
from msca_fast.models.generator import Generator


class Batch(NamedTuple):
    c_p: Tensor
    x_p: Tensor
    c_q: Tensor
    x_q: Tensor
    c: Tensor
    x: Tensor


class Reconstructions(nn.Module):
    """forward(batch) -> (x^_p = G(c_p, x_q, c_q) (Eq. 9), x^ = G(c, x, c) (Eq. 10))."""

    def __init__(self, generator: Generator) -> None:
        super().__init__()
        self.generator = generator

    def forward(self, c_p: Tensor, x_q: Tensor, c_q: Tensor, c: Tensor, x: Tensor) -> tuple[Tensor, Tensor]:
        return self.generator(c_p, x_q, c_q), self.generator(c, x, c)


class DiscriminatorObjective(nn.Module):
    """The D side of Eq. 11 with hinge losses: real and fake of each task in one D call.

    forward(batch..., fake_p, fake) -> (loss_patch, loss_global), each a scalar.
    """

    def __init__(self, discriminator: MultiscaleDiscriminator) -> None:
        super().__init__()
        self.discriminator = discriminator

    def _task(self, real: Tensor, fake: Tensor, c: Tensor, x_ex: Tensor, c_ex: Tensor) -> Tensor:
        n = real.shape[0]
        outputs = self.discriminator(
            torch.cat([fake, real]), torch.cat([c, c]), torch.cat([x_ex, x_ex]), torch.cat([c_ex, c_ex])
        )
        fake_out = [[f[:n] for f in features] for features in outputs]
        real_out = [[f[n:] for f in features] for features in outputs]
        return hinge_d_loss(real_out, fake_out)

    def forward(
        self, c_p: Tensor, x_p: Tensor, c_q: Tensor, x_q: Tensor, c: Tensor, x: Tensor, fake_p: Tensor, fake: Tensor
    ) -> tuple[Tensor, Tensor]:
        return self._task(x_p, fake_p, c_p, x_q, c_q), self._task(x, fake, c, x, c)


def generator_losses(
    discriminator: MultiscaleDiscriminator,
    vgg_loss: nn.Module,
    batch: Batch,
    fake_p: Tensor,
    fake: Tensor,
    lambda_feat: float,
    lambda_l1: float = 0.0,
    l1_pool: int = 1,
) -> dict[str, Tensor]:
    """G's terms of Eq. 11 per task: hinge GAN, feature matching (x lambda_feat), VGG, and with
    lambda_l1 > 0 an L1 loss (x lambda_l1; not in the paper) between the means of l1_pool x
    l1_pool blocks (1: pixels; larger leaves the texture's phase, which the exemplar does not
    determine, to the other terms).
    Keys: gan_patch, fm_patch, vgg_patch[, l1_patch], gan_global, fm_global, vgg_global[, l1_global]."""
    out: dict[str, Tensor] = {}
    tasks = {
        "patch": (batch.x_p, fake_p, batch.c_p, batch.x_q, batch.c_q),
        "global": (batch.x, fake, batch.c, batch.x, batch.c),
    }
    for task, (real, generated, c, x_ex, c_ex) in tasks.items():
        fake_out = discriminator(generated, c, x_ex, c_ex)
        with torch.no_grad():
            real_out = discriminator(real, c, x_ex, c_ex)
        out[f"gan_{task}"] = hinge_g_loss(fake_out)
        out[f"fm_{task}"] = feature_matching_loss(real_out, fake_out, weight=lambda_feat)
        out[f"vgg_{task}"] = vgg_loss(generated, real)
        if lambda_l1 > 0:
            difference = generated.float() - real.float()
            if l1_pool > 1:
                difference = F.avg_pool2d(difference, l1_pool, ceil_mode=True)
            out[f"l1_{task}"] = lambda_l1 * difference.abs().mean()
    return out
