"""An exponential moving average of the generator's weights, used for sampling."""

from __future__ import annotations

import copy

import torch
from torch import nn


def make_ema(model: nn.Module) -> nn.Module:
    """A frozen copy of ``model`` in eval mode."""
    ema = copy.deepcopy(model).eval()
    ema.requires_grad_(False)
    return ema


@torch.no_grad()
def update_ema(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """ema <- decay * ema + (1 - decay) * model for trainable floating-point weights; buffers
    (BatchNorm statistics, spectral-norm vectors) and frozen weights are copied."""
    ema_params = dict(ema.named_parameters())
    for name, p in model.named_parameters():
        if p.requires_grad:
            ema_params[name].lerp_(p.detach(), 1 - decay)
        else:
            ema_params[name].copy_(p)
    ema_buffers = dict(ema.named_buffers())
    for name, b in model.named_buffers():
        ema_buffers[name].copy_(b)
