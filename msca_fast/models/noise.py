"""Fixed per-pixel noise for the generator's SPADE conditions: a source of texture.

Inside a region of one class every input of the generator is constant (the label features, and
MSCA's output, which mixes the exemplar's region vectors by the target's label features), and a
convolutional decoder maps a constant field to a constant field: without a spatially varying
input, regions come out as flat fills however the losses are weighted. OASIS (Schönfeld et al.,
ICLR 2021) adds per-pixel noise channels to SPADE's label map for the same reason. Here the noise
is a fixed field, a function of the pixel position only: outputs stay deterministic (one layout
and exemplar give one image, in training and synthesis alike) and the texture's phase, which the
exemplar does not determine, is the same in every output.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

NOISE_SEED = 20201  # any fixed value: the field is part of the architecture, not of the weights
BANK_SIDE = 256  # larger maps tile the bank


class PositionalNoise(nn.Module):
    """``noise(h, w)`` -> (1, channels, h, w): standard normal values fixed per pixel position,
    the same at every call, on the module's device. Not saved in the state dict (rebuilt from
    NOISE_SEED), so checkpoints are as without it."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(NOISE_SEED)
        bank = torch.randn(channels, BANK_SIDE, BANK_SIDE, generator=generator)
        self.register_buffer("bank", bank, persistent=False)

    def forward(self, height: int, width: int) -> Tensor:
        bank = self.bank
        if height > BANK_SIDE or width > BANK_SIDE:
            bank = bank.repeat(1, -(-height // BANK_SIDE), -(-width // BANK_SIDE))
        return bank[None, :, :height, :width]
