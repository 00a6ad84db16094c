"""The benchmarked shapes and their seeded random inputs.

Five cases are the generator's MSCA scales at a 256x256 output (paper: five scales,
K = 8,16,16,16,16); one is the finest scale at 512x512. Exemplar and target have the same
size and the same label channels (M1 == M2 == M); everything is float32.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

PASSES = ("forward", "backward", "forward+backward")


@dataclass(frozen=True)
class Case:
    """One benchmark shape: B batch, N image channels, M label channels, K regions, H x W pixels."""

    id: str
    height: int
    width: int
    image_channels: int  # N
    label_channels: int  # M = M1 = M2
    num_regions: int  # K
    batch: int  # B

    @property
    def pixels(self) -> int:
        """P1 = P2 = H * W."""
        return self.height * self.width

    def describe(self) -> str:
        return (
            f"B={self.batch} N={self.image_channels} M={self.label_channels} "
            f"K={self.num_regions} {self.height}x{self.width}"
        )


CASES = (
    Case("s0_256", 256, 256, image_channels=64, label_channels=32, num_regions=8, batch=2),
    Case("s1_256", 128, 128, image_channels=128, label_channels=32, num_regions=16, batch=2),
    Case("s2_256", 64, 64, image_channels=128, label_channels=64, num_regions=16, batch=2),
    Case("s3_256", 32, 32, image_channels=256, label_channels=64, num_regions=16, batch=2),
    Case("s4_256", 16, 16, image_channels=256, label_channels=64, num_regions=16, batch=2),
    Case("s0_512", 512, 512, image_channels=64, label_channels=32, num_regions=8, batch=1),
)

ARG_NAMES = ("fx2", "fc2", "fc1", "phi_weight", "phi_bias", "psi_weight", "psi_bias", "gate")


def make_inputs(case: Case, device: str | torch.device = "cpu", seed: int = 0) -> tuple[Tensor, ...]:
    """The op's eight arguments, in :data:`ARG_NAMES` order, float32:

    fx2 (B,N,H,W), fc2 (B,M,H,W), fc1 (B,M,H,W) standard normal; phi_weight (K,N+M) and
    psi_weight (K,M) normal scaled by 1/sqrt(fan-in) as a 1x1 conv would be; phi_bias,
    psi_bias (K,) normal * 0.1; gate (B,K) = sigmoid(normal), in (0,1) like the
    module's MLP gate.
    """
    gen = torch.Generator().manual_seed(seed)
    b, n, m, k = case.batch, case.image_channels, case.label_channels, case.num_regions
    h, w = case.height, case.width

    def normal(*shape: int, scale: float = 1.0) -> Tensor:
        return torch.randn(*shape, generator=gen) * scale

    args = (
        normal(b, n, h, w),
        normal(b, m, h, w),
        normal(b, m, h, w),
        normal(k, n + m, scale=(n + m) ** -0.5),
        normal(k, scale=0.1),
        normal(k, m, scale=m**-0.5),
        normal(k, scale=0.1),
        torch.sigmoid(normal(b, k)),
    )
    return tuple(t.to(device) for t in args)


def make_grad_out(case: Case, device: str | torch.device = "cpu", seed: int = 1) -> Tensor:
    """A random upstream gradient for the output: (B,N,H,W) standard normal."""
    gen = torch.Generator().manual_seed(seed)
    shape = (case.batch, case.image_channels, case.height, case.width)
    return torch.randn(*shape, generator=gen).to(device)
