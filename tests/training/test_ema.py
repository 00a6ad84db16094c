"""The EMA generator copy: frozen, averaged weights, copied buffers."""

from __future__ import annotations

import torch
from torch import nn

from msca_fast.training.ema import make_ema, update_ema


def test_update_averages_trainable_weights_and_copies_buffers():
    model = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    ema = make_ema(model)
    assert not ema.training and not any(p.requires_grad for p in ema.parameters())
    before = ema[0].weight.clone()
    with torch.no_grad():
        model[0].weight.add_(1.0)
        model[1].running_mean.fill_(5.0)
    update_ema(ema, model, decay=0.75)
    assert torch.allclose(ema[0].weight, 0.75 * before + 0.25 * model[0].weight)
    assert torch.equal(ema[1].running_mean, model[1].running_mean)


def test_the_average_starts_from_the_pretrained_weights(tmp_path):
    from tiny_run import train_tiny

    assert train_tiny(tmp_path, "--pretrain-steps", "2", "--steps", "0") == 0
    state = torch.load(sorted(tmp_path.glob("checkpoint_*.pt"))[-1], weights_only=True)
    assert state["pretrain_step"] == 2 and state["step"] == 0
    for name, value in state["generator"].items():
        torch.testing.assert_close(state["generator_ema"][name], value, rtol=0, atol=0, msg=name)
