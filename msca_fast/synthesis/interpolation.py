"""Style interpolation between two exemplars (paper Fig. 5) and spatial style interpolation,
a horizontal gradient from one exemplar's style to the other's (paper Fig. 7).

Both blend the exemplars' aligned features at every scale (see :mod:`.core` for why that is
the paper's manipulation of the spatial and channel attention); no retraining is involved.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from msca_fast.models.generator import Generator
from msca_fast.synthesis.core import Exemplar, align_exemplar, blend_aligned, decode


def interpolate_styles(
    g: Generator, c1: Tensor, exemplar_a: Exemplar, exemplar_b: Exemplar, ts: Sequence[float] | Tensor
) -> list[Tensor]:
    """The layout c1 (B,C,H,W) in a mix of two exemplars' styles, one image (B,3,H,W) in [-1,1] per t.

    t = 0 is exemplar a's synthesis exactly, t = 1 exemplar b's; values outside [0, 1]
    extrapolate the features (no guarantee the decoder likes it). Each exemplar is aligned once.
    """
    ts = [float(t) for t in (ts.flatten().tolist() if isinstance(ts, Tensor) else ts)]
    if not ts or not all(math.isfinite(t) for t in ts):
        raise ValueError(f"ts: expected one or more finite blending weights, got {ts!r}")
    a = align_exemplar(g, c1, exemplar_a)
    b = align_exemplar(g, c1, exemplar_b)
    return [decode(g, blend_aligned(a, b, [t] * len(a.image))) for t in ts]


def horizontal_ramp(height: int, width: int, device: torch.device | str | None = None) -> Tensor:
    """(1,1,height,width): 0 in the leftmost column rising linearly to 1 in the rightmost."""
    ramp = torch.linspace(0.0, 1.0, width, device=device) if width > 1 else torch.zeros(1, device=device)
    return ramp.view(1, 1, 1, width).expand(1, 1, height, width)


def spatial_interpolation(
    g: Generator, c1: Tensor, exemplar_a: Exemplar, exemplar_b: Exemplar, weight_of_b: Tensor | None = None
) -> Tensor:
    """The layout c1 (B,C,H,W) styled by exemplar a on the left, fading into exemplar b on the right.

    At every scale each target pixel mixes the two exemplars' aligned features with weight
    w(x) for b: by default a ramp from exactly 0 (left column: a's features) to exactly 1
    (right column: b's), built at each scale's own size so the edges stay exact. A custom
    ``weight_of_b`` (H,W), (1,H,W) or (B|1,1,H,W) in [0,1] is area-averaged to each scale.
    Returns (B,3,H,W) in [-1,1].
    """
    a = align_exemplar(g, c1, exemplar_a)
    b = align_exemplar(g, c1, exemplar_b)
    sizes = [tuple(f.shape[-2:]) for f in a.image]
    device = a.image[0].device
    if weight_of_b is None:
        weights = [horizontal_ramp(h, w, device) for h, w in sizes]
    else:
        weights = _weight_pyramid(weight_of_b, tuple(c1.shape[-2:]), sizes, device)
    return decode(g, blend_aligned(a, b, weights))


def _weight_pyramid(
    weight: Tensor, full_size: tuple[int, int], sizes: list[tuple[int, int]], device: torch.device
) -> list[Tensor]:
    """A full-resolution weight map -> (B|1,1,H_i,W_i) at each scale's size."""
    if not isinstance(weight, Tensor) or weight.dim() not in (2, 3, 4):
        raise ValueError("weight_of_b: expected a weight map (H, W), (1, H, W) or (B, 1, H, W)")
    weight = weight.reshape(-1, 1, *weight.shape[-2:]).to(device=device, dtype=torch.float32)
    if tuple(weight.shape[-2:]) != full_size:
        raise ValueError(f"weight_of_b: expected the target size {full_size}, got {tuple(weight.shape[-2:])}")
    if not bool(((weight >= 0) & (weight <= 1)).all()):
        raise ValueError("weight_of_b: expected weights in [0, 1]")
    return [weight if size == full_size else F.adaptive_avg_pool2d(weight, size) for size in sizes]
