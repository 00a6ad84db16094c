"""The trainer's EMA generator against the closed-form recurrence of the generator's weight history.

After the n-th G update (n = 0, 1, ...) the average is
    ema_{n+1} = d_n * ema_n + (1 - d_n) * G_{n+1},   d_n = min(ema_decay, (1 + n) / (10 + n)),
starting from the generator as built (ema_0 = G_0); buffers are the generator's at its last update.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from msca_fast.training.ema import make_ema, update_ema

from tiny_trainer import first_batch, single_thread, tiny_trainer

G_EVERY = 2
ITERATIONS = 6  # G updates at iterations 0, 2 and 4
EMA_DECAY = 0.2
# min(0.2, (1 + n) / (10 + n)) for n = 0, 1, 2: the warm-up, then the cap.
DECAYS = (1 / 10, 2 / 11, 0.2)


def trainable(module: nn.Module) -> dict[str, torch.Tensor]:
    return {name: p.detach().double().clone() for name, p in module.named_parameters() if p.requires_grad}


def buffers(module: nn.Module) -> dict[str, torch.Tensor]:
    return {name: b.clone() for name, b in module.named_buffers()}


@pytest.fixture(scope="module")
def history(tmp_path_factory):
    """Six adversarial iterations of a tiny trainer: the generator's trainable weights as built
    and after each G update, its buffers as built and at its last update, and the EMA at the end."""
    torch.manual_seed(0)
    with single_thread():
        trainer = tiny_trainer(tmp_path_factory.mktemp("ema"), "--g-every", str(G_EVERY), ema_decay=EMA_DECAY)
        batch = first_batch(trainer)
        initial, initial_buffers = trainable(trainer.generator), buffers(trainer.generator)
        after_updates, buffers_at_update = [], None
        for _ in range(ITERATIONS):
            logs = trainer.adversarial_iteration(batch)
            if "g_total" in logs:  # this iteration updated G
                after_updates.append(trainable(trainer.generator))
                buffers_at_update = buffers(trainer.generator)
    return {
        "initial": initial,
        "initial_buffers": initial_buffers,
        "after_updates": after_updates,
        "buffers_at_last_update": buffers_at_update,
        "generator": trainer.generator,
        "ema": trainer.generator_ema,
    }


def test_g_updates_every_g_every_th_iteration(history):
    assert len(history["after_updates"]) == len(DECAYS)


def test_ema_weights_follow_the_warm_up_recurrence(history):
    expected = history["initial"]
    for decay, weights in zip(DECAYS, history["after_updates"]):
        expected = {name: decay * expected[name] + (1 - decay) * weights[name] for name in expected}
    ema = trainable_names_of(history["ema"], expected)
    # float32 lerps against a float64 recurrence; one update's step is ~1e-3 (Adam, lr 1e-3)
    # and a wrong decay moves the average by >= 1e-2 of it.
    off = {name: (ema[name].double() - value).abs().max().item() for name, value in expected.items()}
    assert max(off.values()) < 1e-6, {name: error for name, error in off.items() if error >= 1e-6}
    moved = [name for name, value in expected.items() if not torch.equal(value, history["initial"][name])]
    assert moved, "no generator weight changed: the recurrence was not exercised"


def trainable_names_of(ema: nn.Module, expected: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The EMA's parameters under the names of the generator's trainable ones."""
    params = dict(ema.named_parameters())
    assert set(expected) <= set(params)
    return {name: params[name] for name in expected}


def test_ema_buffers_are_the_generators_at_its_last_update(history):
    ema = dict(history["ema"].named_buffers())
    at_update, initial = history["buffers_at_last_update"], history["initial_buffers"]
    assert set(ema) == set(at_update)
    for name, value in at_update.items():
        assert torch.equal(ema[name], value), name
    assert any(not torch.equal(at_update[name], initial[name]) for name in at_update), "no buffer moved"


def test_update_ema_copies_frozen_weights():
    model = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 1))
    model[1].requires_grad_(False)
    ema = make_ema(model)
    with torch.no_grad():
        model[1].weight.fill_(3.0)
    update_ema(ema, model, decay=0.9)
    assert torch.equal(ema[1].weight, model[1].weight)


def test_update_ema_with_decay_zero_copies_and_one_keeps():
    model = nn.Linear(3, 2)
    ema = make_ema(model)
    start = ema.weight.clone()
    with torch.no_grad():
        model.weight.add_(1.0)
    update_ema(ema, model, decay=1.0)
    assert torch.equal(ema.weight, start)
    update_ema(ema, model, decay=0.0)
    assert torch.equal(ema.weight, model.weight)
