"""Texture, region by region, measured without any pretrained network.

Both measures look at the *high-pass luminance* of an image: its luminance (0-255) minus the
3x3 box blur of it, at the pixels inside a region of the target layout (pixels whose 5x5
neighbourhood lies in one class: an output blurred across a region edge must not count its
edge as texture).

*Texture energy ratio*: per class of the target, the standard deviation of the output's
high-pass luminance over that of the ground truth; averaged over the classes the truth has
texture in (a standard deviation of TEXTURED grey levels or more), weighted by their interior
area. 0 = flat fills, 1 = as much fine detail as the truth (of any phase).

*Texture distance*: per class, a sliced Wasserstein distance between the output's and the
truth's 5x5 high-pass patches centred on the class's interior pixels (64 fixed random
directions), in grey levels; averaged over classes weighted by their interior area. It
compares the distribution of local patterns, not their placement: the truth rendered with
another noise phase scores low, flat fills score the truth's own patch spread, and noise of the
right energy but no spatial structure scores in between (its patches spread evenly in every
direction, a texture's do not).

*Texture score*: (d_flat - d_model) / (d_flat - d_reference), where d_flat is the distance of
the flat class-copy painting and d_reference that of the truth rendered with another noise phase
(0 when no such rendering exists): 0 = flat, 1 = texture as good as the truth's own in another phase.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from msca_fast.image_checks import check_image_pair
from msca_fast.metrics.region import paint_class_means

LUMA = (0.299, 0.587, 0.114)
PATCH = 5
DIRECTIONS = 64
MIN_PIXELS = 16  # classes with fewer interior pixels are left out (their statistics are noise)
TEXTURED = 1.0  # grey levels: a truth region smoother than this has no texture to match (sky)


def high_pass_luminance(images: Tensor) -> Tensor:
    """(B,3,H,W) in [-1,1] -> (B,H,W) float64: luminance in 0-255 minus its 3x3 box blur (edges replicated)."""
    weights = torch.tensor(LUMA, dtype=torch.float64, device=images.device).view(1, 3, 1, 1)
    luma = ((images.double() + 1) * 127.5 * weights).sum(dim=1, keepdim=True)
    blurred = F.avg_pool2d(F.pad(luma, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    return (luma - blurred)[:, 0]


def interior(ids: Tensor, radius: int) -> Tensor:
    """(B,H,W) class ids -> (B,H,W) bool: the pixels whose (2 radius + 1)^2 window (inside the
    image) holds only their own class."""
    size = 2 * radius + 1
    ids = ids.double().unsqueeze(1)
    high = F.max_pool2d(F.pad(ids, (radius,) * 4, mode="replicate"), size, stride=1)
    low = -F.max_pool2d(F.pad(-ids, (radius,) * 4, mode="replicate"), size, stride=1)
    inside = torch.zeros_like(ids, dtype=torch.bool)
    inside[..., radius : ids.shape[-2] - radius, radius : ids.shape[-1] - radius] = True
    return ((high == low) & inside)[:, 0]


def _patches(high_pass: Tensor) -> Tensor:
    """(H,W) -> (H,W,PATCH*PATCH): the 5x5 window around every pixel (zeros beyond the image)."""
    pad = PATCH // 2
    windows = F.unfold(high_pass[None, None], PATCH, padding=pad)  # (1,25,H*W)
    return windows[0].T.reshape(*high_pass.shape, PATCH * PATCH)


def _directions(device: torch.device) -> Tensor:
    """(25, DIRECTIONS) unit vectors, the same on every call."""
    generator = torch.Generator().manual_seed(20201)
    d = torch.randn(PATCH * PATCH, DIRECTIONS, generator=generator, dtype=torch.float64)
    return (d / d.norm(dim=0, keepdim=True)).to(device)


def sliced_wasserstein(a: Tensor, b: Tensor, directions: Tensor) -> Tensor:
    """W1 between the projections of two equal-size point sets a, b (N,D) on each direction
    (D,K), averaged over directions -> scalar float64."""
    pa, _ = (a @ directions).sort(dim=0)
    pb, _ = (b @ directions).sort(dim=0)
    return (pa - pb).abs().mean()


def texture_statistics(images: Tensor, truths: Tensor, target_ids: Tensor) -> tuple[Tensor, Tensor]:
    """Per image, the area-weighted texture energy ratio and texture distance over the target's
    classes: images, truths (B,3,H,W) in [-1,1], target_ids (B,H,W) -> ((B,), (B,)) float64
    (NaN for an image without any class of MIN_PIXELS interior pixels)."""
    images, truths = check_image_pair("images", images, "truths", truths)
    if not isinstance(target_ids, Tensor) or target_ids.shape != (images.shape[0], *images.shape[-2:]):
        raise ValueError(f"target_ids: expected class ids of shape {(images.shape[0], *images.shape[-2:])}")
    target_ids = target_ids.long()
    hp_images, hp_truths = high_pass_luminance(images), high_pass_luminance(truths)
    inside = interior(target_ids, PATCH // 2)
    directions = _directions(images.device)
    ratios, distances = [], []
    for b in range(images.shape[0]):
        patches_image, patches_truth = _patches(hp_images[b]), _patches(hp_truths[b])
        ratio_sum = distance_sum = ratio_weight = distance_weight = 0.0
        for c in target_ids[b].unique().tolist():
            mask = inside[b] & (target_ids[b] == c)
            count = int(mask.sum())
            if count < MIN_PIXELS:
                continue
            truth_std = float(hp_truths[b][mask].std())
            if truth_std >= TEXTURED:
                ratio_sum += count * float(hp_images[b][mask].std()) / truth_std
                ratio_weight += count
            distance = sliced_wasserstein(patches_image[mask], patches_truth[mask], directions)
            distance_sum += count * float(distance)
            distance_weight += count
        ratios.append(ratio_sum / ratio_weight if ratio_weight else float("nan"))
        distances.append(distance_sum / distance_weight if distance_weight else float("nan"))
    return torch.tensor(ratios, dtype=torch.float64), torch.tensor(distances, dtype=torch.float64)


def texture_score(d_model: float, d_flat: float, d_reference: float) -> float:
    """(d_flat - d_model) / (d_flat - d_reference): 0 = flat fills, 1 = the reference's texture.
    NaN when the flat painting is no further than the reference (nothing to measure)."""
    span = d_flat - d_reference
    return (d_flat - d_model) / span if span > 0 else float("nan")


class TextureTransfer:
    """Accumulates the texture measures over batches of one task.

    update(outputs, truths, target_ids, exemplars, exemplar_ids, other_phase=None): outputs,
        truths, other_phase (B,3,H,W) and exemplars (B,3,He,We) in [-1,1]; target_ids (B,H,W),
        exemplar_ids (B,He,We) class ids; ``other_phase`` the truths rendered with another noise
        phase, where the data set can render them.
    compute() -> {"texture_ratio", "texture_distance", "texture_distance_flat", "texture_score"
        [, "texture_ratio_other_phase", "texture_distance_other_phase"]}: means over images (the
        score from the mean distances; its reference is the other phase's distance, else 0).
        Measures no image has a region large enough for (MIN_PIXELS interior pixels) are left out.
    """

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._values: dict[str, list[Tensor]] = {}

    def _add(self, key: str, values: Tensor) -> None:
        self._values.setdefault(key, []).append(values)

    @torch.no_grad()
    def update(
        self, outputs: Tensor, truths: Tensor, target_ids: Tensor, exemplars: Tensor, exemplar_ids: Tensor,
        other_phase: Tensor | None = None,
    ) -> None:  # fmt: skip
        ratio, distance = texture_statistics(outputs, truths, target_ids)
        self._add("ratio", ratio)
        self._add("distance", distance)
        self._add("distance_flat", texture_statistics(paint_class_means(exemplars, exemplar_ids, target_ids), truths,
                                                      target_ids)[1])  # fmt: skip
        if other_phase is not None:
            ratio, distance = texture_statistics(other_phase, truths, target_ids)
            self._add("ratio_other_phase", ratio)
            self._add("distance_other_phase", distance)

    def compute(self) -> dict[str, float]:
        if not self._values:
            raise ValueError("TextureTransfer: no images yet; call update(...) first")
        mean = {key: float(torch.cat(values).nanmean()) for key, values in self._values.items()}
        mean = {key: value for key, value in mean.items() if not math.isnan(value)}
        out = {f"texture_{key}": value for key, value in mean.items()}
        if "distance" in mean:
            out["texture_score"] = texture_score(mean["distance"], mean["distance_flat"],
                                                 mean.get("distance_other_phase", 0.0))  # fmt: skip
        return out
