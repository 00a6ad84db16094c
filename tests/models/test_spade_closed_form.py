"""SPADE against its closed form: norm(x) * (1 + gamma) + beta, with the parameter-free
normalisation, the nearest resize of the condition and the hidden ReLU layer written out by hand.

Only the layers' weights are taken from the module; every operation is re-derived here.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.testing import assert_close

from msca_fast.models.spade import SPADE, SPADEResBlock

EPS = 1e-5  # the parameter-free norms' epsilon (BatchNorm2d and InstanceNorm2d default)
CHANNELS, CONDITION_CHANNELS, HIDDEN = 3, 2, 4


def hand_norm(x: torch.Tensor, kind: str) -> torch.Tensor:
    """(x - mean) / sqrt(var + eps), biased variance, over (H, W) per image and channel
    ("instance") or over (B, H, W) per channel ("batch", training mode)."""
    dims = (2, 3) if kind == "instance" else (0, 2, 3)
    mean = x.mean(dim=dims, keepdim=True)
    var = ((x - mean) ** 2).mean(dim=dims, keepdim=True)
    return (x - mean) / torch.sqrt(var + EPS)


def hand_nearest(condition: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Nearest-neighbour resize: output pixel i reads input pixel floor(i * in / out)."""
    rows = [i * condition.shape[2] // height for i in range(height)]
    cols = [j * condition.shape[3] // width for j in range(width)]
    return condition[:, :, rows][:, :, :, cols]


def hand_conv3x3(x: torch.Tensor, conv: torch.nn.Conv2d, padding_mode: str) -> torch.Tensor:
    """The 3x3 conv of ``conv``'s weights, padded by one pixel of zeros or of the border."""
    padded = F.pad(x, (1, 1, 1, 1), mode="constant" if padding_mode == "zeros" else "replicate")
    return F.conv2d(padded, conv.weight, conv.bias)


def hand_spade(spade: SPADE, x: torch.Tensor, condition: torch.Tensor, kind: str, padding_mode: str) -> torch.Tensor:
    condition = hand_nearest(condition, *x.shape[-2:])
    hidden = hand_conv3x3(condition, spade.shared[0], padding_mode).clamp(min=0)
    gamma = hand_conv3x3(hidden, spade.gamma, padding_mode)
    beta = hand_conv3x3(hidden, spade.beta, padding_mode)
    return hand_norm(x, kind) * (1 + gamma) + beta


def spade_inputs(height=4, width=7, condition_size=(3, 5)):
    """x (2,3,H,W) whose channel 0 varies by ~1e-3 only (its variance is below eps, so eps
    shows), with per-image and per-channel offsets and scales (so each normalisation axis
    shows); a condition (2,2,*condition_size) of distinct values (so the resize shows)."""
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2, CHANNELS, height, width, generator=g, dtype=torch.float64)
    x = x * torch.tensor([1e-3, 2.0, 0.5], dtype=torch.float64).view(1, 3, 1, 1)
    x = x + torch.tensor([[1.0], [-3.0]], dtype=torch.float64).view(2, 1, 1, 1)
    condition = torch.randn(2, CONDITION_CHANNELS, *condition_size, generator=g, dtype=torch.float64)
    return x, condition


def make_spade(kind: str, padding_mode: str) -> SPADE:
    torch.manual_seed(1)
    spade = SPADE(CHANNELS, CONDITION_CHANNELS, hidden=HIDDEN, norm=kind, padding_mode=padding_mode).double()
    # Larger than the default initialisation, so (1 + gamma) and beta are far from 1 and 0.
    with torch.no_grad():
        for conv in (spade.gamma, spade.beta):
            conv.weight.mul_(4.0)
            conv.bias.uniform_(-1.0, 1.0)
    return spade


@pytest.mark.parametrize("padding_mode", ["zeros", "replicate"])
@pytest.mark.parametrize("kind", ["instance", "batch"])
def test_spade_matches_its_closed_form(kind, padding_mode):
    spade = make_spade(kind, padding_mode)
    x, condition = spade_inputs()
    assert_close(spade(x, condition), hand_spade(spade, x, condition, kind, padding_mode))


@pytest.mark.parametrize("condition_size", [(2, 7), (8, 14), (4, 7)], ids=["upsampled", "downsampled", "same"])
def test_spade_resizes_the_condition_by_nearest_neighbour(condition_size):
    spade = make_spade("instance", "zeros")
    x, condition = spade_inputs(condition_size=condition_size)
    assert_close(spade(x, condition), hand_spade(spade, x, condition, "instance", "zeros"))


def test_spade_with_zero_gamma_and_beta_is_the_plain_norm():
    spade = make_spade("instance", "zeros")
    with torch.no_grad():
        for conv in (spade.gamma, spade.beta):
            conv.weight.zero_()
            conv.bias.zero_()
    x, condition = spade_inputs()
    assert_close(spade(x, condition), hand_norm(x, "instance"))


def test_spade_norm_has_no_parameters():
    for kind in ("instance", "batch"):
        assert list(make_spade(kind, "zeros").norm.parameters()) == []


@pytest.mark.parametrize("out_channels", [CHANNELS, 5], ids=["identity_shortcut", "learned_shortcut"])
def test_spade_res_block_is_shortcut_plus_two_spade_lrelu_conv_stages(out_channels):
    """shortcut + conv_1(lrelu(norm_1(conv_0(lrelu(norm_0(x)))))), slope 0.2; the shortcut is x,
    or conv_s(norm_s(x)) when the channel count changes. Eval mode: spectral norm then does no
    power iteration, so each conv is the same function in both evaluations."""
    torch.manual_seed(2)
    block = SPADEResBlock(CHANNELS, out_channels, CONDITION_CHANNELS, hidden=HIDDEN, norm="instance").double().eval()
    x, condition = spade_inputs()

    def lrelu(t):
        return torch.where(t > 0, t, 0.2 * t)

    dx = block.conv_0(lrelu(block.norm_0(x, condition)))
    dx = block.conv_1(lrelu(block.norm_1(dx, condition)))
    shortcut = block.conv_s(block.norm_s(x, condition)) if out_channels != CHANNELS else x
    assert_close(block(x, condition), shortcut + dx)
