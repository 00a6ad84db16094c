"""How well the learned attention has formed, from the exemplar's label map alone.

Spatial attention (alpha, one map per region k over the exemplar): its *purity* is the largest
share of the map's mass that falls on one exemplar class. A class-blind map (uniform, or any map
that ignores the classes) has about the area share of the largest class: the *area baseline*.
Each region's purity is weighted by how much the target uses it (its mean channel attention
beta_k over the target), so regions the output never reads do not count.

Channel attention (beta, a distribution over the K regions at each target pixel): its entropy,
divided by log K (1 = uniform, 0 = one region per pixel).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from msca_fast.models.alignment import MSCAAlignment
from msca_fast.models.generator import Generator


def region_purity(alpha: Tensor, exemplar_labels: Tensor, usage: Tensor) -> tuple[Tensor, Tensor]:
    """alpha (B,K,h,w) summing to 1 over (h,w); exemplar_labels (B,C,H,W) one-hot at any size;
    usage (B,K) weights of the regions -> (purity (B,), area baseline (B,)).

    purity = sum_k usage_k * max_c (mass of alpha_k on class c) / sum_k usage_k, with the labels
    area-resized to alpha's size (a boundary pixel counts for each class by its share).
    """
    labels = F.adaptive_avg_pool2d(exemplar_labels.to(alpha.dtype), alpha.shape[-2:]).flatten(2)  # (B,C,P)
    mass = alpha.flatten(2) @ labels.transpose(1, 2)  # (B,K,C)
    best = mass.amax(dim=2)  # (B,K)
    purity = (best * usage).sum(dim=1) / usage.sum(dim=1).clamp_min(1e-12)
    area = labels.mean(dim=2)  # (B,C)
    return purity, area.amax(dim=1)


def channel_entropy(beta: Tensor) -> Tensor:
    """beta (B,K,h,w), a distribution over K at each pixel -> (B,) mean entropy / log K (K = 1: 0)."""
    k = beta.shape[1]
    if k == 1:
        return beta.new_zeros(beta.shape[0])
    entropy = -(beta * beta.clamp_min(1e-12).log()).sum(dim=1)  # (B,h,w)
    return entropy.mean(dim=(1, 2)) / math.log(k)


@torch.no_grad()
def attention_quality(g: Generator, c1: Tensor, x2: Tensor, c2: Tensor) -> dict[int, dict[str, Tensor]] | None:
    """Per MSCA scale i: {"purity", "area", "entropy"}, each (B,), for one batch.

    c1 (B,C,H,W) and c2 (B,C,He,We) one-hot, x2 (B,3,He,We) in [-1,1]. None for the ablations
    without attention maps ("gap", "no_attention").
    """
    if not all(isinstance(a, MSCAAlignment) for a in g.aligners):
        return None
    fx2 = g.image_pyramid(x2)
    fc2 = g.label_pyramid(c2)
    fc1 = g.label_pyramid(c1)
    out: dict[int, dict[str, Tensor]] = {}
    for i, aligner in enumerate(g.aligners):
        alpha, beta = aligner.msca.attention_maps(fx2[i], fc2[i], fc1[i])
        alpha, beta = alpha.double(), beta.double()
        purity, area = region_purity(alpha, c2, beta.mean(dim=(2, 3)))
        out[i] = {"purity": purity, "area": area, "entropy": channel_entropy(beta)}
    return out


class AttentionQuality:
    """Accumulates :func:`attention_quality` over batches.

    compute() -> {"purity", "purity_area", "channel_entropy"} (means over images and scales) and
    per scale "purity_s<i>", "purity_area_s<i>", "channel_entropy_s<i>"; {} for models without attention.
    """

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._sums: dict[str, float] = {}
        self._count = 0

    def update(self, g: Generator, c1: Tensor, x2: Tensor, c2: Tensor) -> None:
        per_scale = attention_quality(g, c1, x2, c2)
        if per_scale is None:
            return
        names = {"purity": "purity", "area": "purity_area", "entropy": "channel_entropy"}
        for i, values in per_scale.items():
            for key, name in names.items():
                total = values[key].sum().item()
                self._sums[f"{name}_s{i}"] = self._sums.get(f"{name}_s{i}", 0.0) + total
                self._sums[name] = self._sums.get(name, 0.0) + total / len(per_scale)
        self._count += c1.shape[0]

    def compute(self) -> dict[str, float]:
        if self._count == 0:
            return {}
        return {k: v / self._count for k, v in self._sums.items()}
