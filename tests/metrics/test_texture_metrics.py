"""The texture measures on hand-made scenes: flat fills, the true texture, the same texture in
another phase, and noise of the right energy but no structure."""

from __future__ import annotations

import math

import pytest
import torch

from msca_fast.metrics.texture import (
    high_pass_luminance,
    interior,
    sliced_wasserstein,
    texture_score,
    texture_statistics,
)

SIZE = 48


def scene(phase: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Left half class 0, vertical stripes of period 6; right half class 1, diagonal waves of
    period 8; ``phase`` shifts both patterns. -> image (1,3,H,W) in [-1,1], ids (1,H,W)."""
    y, x = torch.meshgrid(torch.arange(SIZE, dtype=torch.float64), torch.arange(SIZE, dtype=torch.float64),
                          indexing="ij")  # fmt: skip
    ids = (x >= SIZE // 2).long()
    stripes = torch.sin(2 * math.pi * (x + phase) / 6)
    waves = torch.sin(2 * math.pi * (x + y + phase) / 8)
    grey = torch.where(ids == 0, -0.2 + 0.3 * stripes, 0.3 + 0.2 * waves)
    return grey.expand(1, 3, SIZE, SIZE).float(), ids[None]


def flat(image: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """Each class its mean colour."""
    out = image.clone()
    for c in ids.unique():
        mask = (ids == c).unsqueeze(1).expand_as(image)
        out[mask] = image[mask].mean()
    return out


def test_high_pass_of_a_constant_or_linear_ramp_is_zero():
    assert high_pass_luminance(torch.full((1, 3, 8, 8), 0.3)).abs().max() < 1e-9
    ramp = torch.linspace(-1, 1, 8).expand(1, 3, 8, 8)
    assert high_pass_luminance(ramp)[..., 1:-1].abs().max() < 1e-4  # float32 input; edges: replicated borders bend it


def test_interior_keeps_the_pixels_whose_window_lies_in_their_class():
    ids = torch.zeros(1, 7, 7, dtype=torch.long)
    ids[0, :, 4:] = 1
    inside = interior(ids, 1)[0]
    assert inside[1:6][:, [1, 2, 5]].all() and not inside[:, [0, 3, 4, 6]].any()
    assert not inside[[0, 6]].any()  # the window would leave the image


def test_the_truth_scores_a_ratio_of_one_and_no_distance():
    image, ids = scene()
    ratio, distance = texture_statistics(image, image, ids)
    assert ratio.item() == pytest.approx(1.0) and distance.item() == pytest.approx(0.0, abs=1e-9)


def test_flat_fills_score_a_ratio_of_zero_and_the_truths_spread():
    image, ids = scene()
    ratio, distance = texture_statistics(flat(image, ids), image, ids)
    assert ratio.item() == pytest.approx(0.0, abs=1e-6)
    assert distance.item() > 5  # grey levels: the stripes' high-pass spread


def test_another_phase_is_close_and_noise_of_the_same_energy_is_not():
    truth, ids = scene()
    other, _ = scene(phase=3)
    _, d_flat = texture_statistics(flat(truth, ids), truth, ids)
    ratio_other, d_other = texture_statistics(other, truth, ids)
    assert ratio_other.item() == pytest.approx(1.0, abs=0.05)
    assert d_other.item() < 0.2 * d_flat.item()

    # white noise on the flat fills, scaled per class to the truth's high-pass energy
    generator = torch.Generator().manual_seed(0)
    hp, inside = high_pass_luminance(truth)[0], interior(ids, 2)[0]
    noisy = flat(truth, ids)
    for c in (0, 1):
        target_std = hp[inside & (ids[0] == c)].std()
        noise = torch.randn(SIZE, SIZE, generator=generator, dtype=torch.float64)
        measured = high_pass_luminance(noise.expand(1, 3, SIZE, SIZE).float() / 127.5 - 1)[0]
        scale = target_std / measured[inside & (ids[0] == c)].std()
        noisy[0, :, ids[0] == c] += (noise * scale / 127.5).float()[ids[0] == c]
    ratio_noise, d_noise = texture_statistics(noisy, truth, ids)
    assert ratio_noise.item() == pytest.approx(1.0, abs=0.1)  # the energy is right...
    score_noise = texture_score(d_noise.item(), d_flat.item(), d_other.item())
    assert score_noise < 0.6  # ...the texture is not
    assert texture_score(d_other.item(), d_flat.item(), d_other.item()) == 1.0


def test_sliced_wasserstein_of_a_shift_is_the_shift_along_each_direction():
    a = torch.randn(100, 3, dtype=torch.float64)
    directions = torch.eye(3, dtype=torch.float64)
    assert sliced_wasserstein(a, a + torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64), directions).item() == (
        pytest.approx(2.0)
    )


def test_texture_score_bounds():
    assert texture_score(10.0, 10.0, 2.0) == 0.0
    assert texture_score(6.0, 10.0, 2.0) == 0.5
    assert math.isnan(texture_score(1.0, 2.0, 2.0))
