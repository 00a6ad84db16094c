"""Feature alignment at one scale (paper section 3.2) and the ablations of Table 1.

Every aligner has the same call: forward(fx2 (B,N,H2,W2), fc2 (B,M,H2,W2), fc1 (B,M,H1,W1),
c2 (B,C,He,We), c1 (B,C,H,W)) -> F_x1 (B,N,H1,W1): the exemplar's image features placed in
the target's layout. fx2/fc2/fc1 are this scale's features; c2/c1 are the full-resolution
one-hot label maps, which only the label-based ablation reads.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from msca_fast.ops import MSCA


class MSCAAlignment(nn.Module):
    """The paper's module: masked spatial-channel attention (Eq. 4-8); ``masking=False`` is the
    "w/o masking" ablation (no Eq. 6 gate)."""

    def __init__(
        self, image_channels: int, label_channels: int, num_regions: int, masking: bool = True, backend: str = "auto",
        logit_scale: float = 1.0,
    ) -> None:
        super().__init__()
        self.msca = MSCA(
            image_channels, label_channels, label_channels, num_regions, masking=masking, backend=backend,
            logit_scale=logit_scale,
        )

    def forward(self, fx2: Tensor, fc2: Tensor, fc1: Tensor, c2: Tensor, c1: Tensor) -> Tensor:
        return self.msca(fx2, fc2, fc1)


class GAPAlignment(nn.Module):
    """Ablation "GAP": the exemplar's globally averaged features at every target pixel (MSCA
    with K = 1 and constant attention)."""

    def forward(self, fx2: Tensor, fc2: Tensor, fc1: Tensor, c2: Tensor, c1: Tensor) -> Tensor:
        return fx2.mean(dim=(2, 3), keepdim=True).expand(-1, -1, *fc1.shape[-2:])


class ClassMeanAlignment(nn.Module):
    """Ablation "w/o attention": alignment by the label maps alone.

    The exemplar's features are averaged per class (V (B,N,C)), then each target pixel takes
    the mean of its class; classes the exemplar lacks give zero features. Label maps are
    area-resized to the scale, so a pixel on a class boundary gets the fraction-weighted mix.
    """

    def forward(self, fx2: Tensor, fc2: Tensor, fc1: Tensor, c2: Tensor, c1: Tensor) -> Tensor:
        ex_labels = F.adaptive_avg_pool2d(c2.to(fx2.dtype), fx2.shape[-2:]).flatten(2)  # (B,C,P2)
        target_labels = F.adaptive_avg_pool2d(c1.to(fx2.dtype), fc1.shape[-2:]).flatten(2)  # (B,C,P1)
        area = ex_labels.sum(dim=2)  # (B,C)
        sums = fx2.flatten(2) @ ex_labels.transpose(1, 2)  # (B,N,C)
        means = sums / area.clamp_min(1e-6).unsqueeze(1)
        out = means @ target_labels  # (B,N,P1)
        return out.view(*out.shape[:2], *fc1.shape[-2:])


def build_aligner(
    variant: str, image_channels: int, label_channels: int, num_regions: int, backend: str = "auto",
    logit_scale: float = 1.0,
) -> nn.Module:
    """The aligner for ``variant`` in ("msca", "no_masking", "gap", "no_attention")."""
    if variant in ("msca", "no_masking"):
        return MSCAAlignment(
            image_channels, label_channels, num_regions, masking=variant == "msca", backend=backend,
            logit_scale=logit_scale,
        )
    if variant == "gap":
        return GAPAlignment()
    if variant == "no_attention":
        return ClassMeanAlignment()
    raise ValueError(f"variant: expected 'msca', 'no_masking', 'gap' or 'no_attention', got {variant!r}")
