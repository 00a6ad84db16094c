"""Peak signal-to-noise ratio, the paper's low-level metric."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from msca_fast.image_checks import check_image_pair


def psnr(x: Tensor, y: Tensor, data_range: float = 2.0, cap: float = 100.0) -> Tensor:
    """Per-image PSNR in dB: 10 * log10(data_range**2 / MSE), MSE over all channels and pixels.

    x, y: (B, 3, H, W) images; with values in [-1, 1] the data range is 2 (the default).
    Returns (B,) float64. The PSNR of identical images is infinite; every value is capped at
    ``cap`` (100 dB by default) so that averages stay finite and identical images score ``cap``.
    The MSE is computed in float64.
    """
    x, y = check_image_pair("x", x, "y", y)
    if isinstance(data_range, bool) or not isinstance(data_range, (int, float)) or not data_range > 0:
        raise ValueError(f"data_range: expected a positive number, got {data_range!r}")
    if isinstance(cap, bool) or not isinstance(cap, (int, float)) or not math.isfinite(cap):
        raise ValueError(f"cap: expected a finite number of dB, got {cap!r}")
    mse = (x.double() - y.double()).square().mean(dim=(1, 2, 3))
    # log10 of 0 is -inf, so identical images give +inf before the cap.
    values = 10.0 * torch.log10(data_range**2 / mse)
    return values.clamp(max=cap)


def mean_psnr(x: Tensor, y: Tensor, data_range: float = 2.0, cap: float = 100.0) -> float:
    """Mean over the batch of the per-image :func:`psnr` (each image capped first)."""
    return psnr(x, y, data_range=data_range, cap=cap).mean().item()
