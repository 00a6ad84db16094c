"""The generator's fixed noise channels (ModelConfig.noise_channels): without them a region of
one class comes out as one flat colour whatever the weights; with them it can vary. The noise is
a function of the pixel position only, so outputs stay deterministic and per-item."""

from __future__ import annotations

import torch

from msca_fast.models.generator import Generator
from msca_fast.models.labels import one_hot
from msca_fast.models.noise import BANK_SIDE, PositionalNoise

from model_helpers import NUM_CLASSES, generator_inputs, tiny_config, tiny_generator


def one_class_layout(batch: int, size: int, cls: int = 1) -> torch.Tensor:
    return one_hot(torch.full((batch, size, size), cls), NUM_CLASSES)


def test_a_region_of_one_class_is_flat_without_noise_and_varies_with_it():
    torch.manual_seed(0)
    _, x2, c2 = generator_inputs(batch=1, size=(32, 32), exemplar_size=(32, 32))
    c1 = one_class_layout(1, 32)
    for channels in (0, 4):
        generator = tiny_generator(padding_mode="replicate", noise_channels=channels).eval()  # batch norm: eval stats
        with torch.no_grad():
            spread = generator(c1, x2, c2).std(dim=(-2, -1)).max().item()
        if channels:
            assert spread > 1e-3, "the noise channels did not reach the output"
        else:
            assert spread < 1e-5, f"a one-class layout gave a non-flat output ({spread}) without noise"


def test_noise_makes_outputs_deterministic_and_per_item():
    torch.manual_seed(0)
    generator = tiny_generator(noise_channels=3).eval()
    c1, x2, c2 = generator_inputs(batch=2)
    with torch.no_grad():
        both = generator(c1, x2, c2)
        assert torch.equal(both, generator(c1, x2, c2))
        assert torch.allclose(both[1:], generator(c1[1:], x2[1:], c2[1:]), atol=1e-6)


def test_the_field_is_rebuilt_not_saved(tmp_path):
    torch.manual_seed(0)
    config = tiny_config(noise_channels=2)
    generator = tiny_generator(noise_channels=2).eval()
    assert not any(key.startswith("noise") for key in generator.state_dict())
    rebuilt = Generator.rebuild(config.to_dict(), generator.state_dict()).eval()
    c1, x2, c2 = generator_inputs(batch=1)
    with torch.no_grad():
        assert torch.equal(generator(c1, x2, c2), rebuilt(c1, x2, c2))


def test_the_field_is_fixed_normal_noise_that_tiles_past_the_bank():
    noise = PositionalNoise(2)
    small = noise(5, 7)
    assert small.shape == (1, 2, 5, 7) and torch.equal(small, PositionalNoise(2)(5, 7))
    assert abs(noise.bank.mean().item()) < 0.01 and abs(noise.bank.std().item() - 1) < 0.01
    large = noise(BANK_SIDE + 3, 2)
    assert large.shape == (1, 2, BANK_SIDE + 3, 2)
    assert torch.equal(large[:, :, BANK_SIDE:], noise.bank[None, :, :3, :2])
