"""Colour correction of a retrieved ground truth toward the exemplar (Reinhard et al. 2001).

The retrieving task compares the output with the target's own photo, whose colours follow
the target's scene, not the exemplar's; the paper corrects the ground truth's colours first.
We use Reinhard's transfer: per channel of CIELAB, shift and scale the ground truth to the
exemplar's mean and standard deviation.
"""

from __future__ import annotations

import torch
from torch import Tensor

_RGB_TO_XYZ = torch.tensor(
    [[0.412453, 0.357580, 0.180423], [0.212671, 0.715160, 0.072169], [0.019334, 0.119193, 0.950227]]
)
_WHITE = torch.tensor([0.950456, 1.0, 1.088754])


def _srgb_to_linear(c: Tensor) -> Tensor:
    return torch.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def _linear_to_srgb(c: Tensor) -> Tensor:
    c = c.clamp_min(0)
    return torch.where(c <= 0.0031308, c * 12.92, 1.055 * c ** (1 / 2.4) - 0.055)


def rgb_to_lab(image: Tensor) -> Tensor:
    """(B,3,H,W) sRGB in [-1,1] -> CIELAB (B,3,H,W) (L in [0,100])."""
    linear = _srgb_to_linear(((image.double() + 1) / 2).clamp(0, 1))
    xyz = torch.einsum("ij,bjhw->bihw", _RGB_TO_XYZ.double(), linear) / _WHITE.double().view(1, 3, 1, 1)
    f = torch.where(xyz > 0.008856, xyz.clamp_min(1e-12) ** (1 / 3), 7.787 * xyz + 16 / 116)
    return torch.stack([116 * f[:, 1] - 16, 500 * (f[:, 0] - f[:, 1]), 200 * (f[:, 1] - f[:, 2])], dim=1)


def lab_to_rgb(lab: Tensor) -> Tensor:
    """Inverse of :func:`rgb_to_lab`: CIELAB (B,3,H,W) -> sRGB in [-1,1] (clamped), float32."""
    fy = (lab[:, 0] + 16) / 116
    f = torch.stack([fy + lab[:, 1] / 500, fy, fy - lab[:, 2] / 200], dim=1)
    xyz = torch.where(f > 0.206893, f**3, (f - 16 / 116) / 7.787) * _WHITE.double().view(1, 3, 1, 1)
    linear = torch.einsum("ij,bjhw->bihw", torch.linalg.inv(_RGB_TO_XYZ.double()), xyz)
    return (_linear_to_srgb(linear).clamp(0, 1) * 2 - 1).float()


def reinhard_transfer(source: Tensor, reference: Tensor) -> Tensor:
    """``source`` (B,3,H,W) with the per-channel Lab mean and std of ``reference`` (B,3,H',W'); [-1,1]."""
    src, ref = rgb_to_lab(source), rgb_to_lab(reference)
    src_mean, src_std = src.mean((2, 3), keepdim=True), src.std((2, 3), keepdim=True)
    ref_mean, ref_std = ref.mean((2, 3), keepdim=True), ref.std((2, 3), keepdim=True)
    return lab_to_rgb((src - src_mean) / src_std.clamp_min(1e-6) * ref_std + ref_mean)
