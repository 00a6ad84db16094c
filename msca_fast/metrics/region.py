"""Region-by-region style transfer, measured without any pretrained network.

The paper's claim is that each region of the output takes its appearance from the region of
the exemplar with the same meaning. Two paintings bracket what an aligner can do:

  global painting   every pixel gets the exemplar's mean colour (what GAP alignment can carry);
  class copy        each target class gets the exemplar's mean colour of that class (the
                    exemplar's mean where it lacks the class): a perfect per-class colour copy.

The *region colour error* of an image is the distance (RGB, 0-255) between its mean colour and
the ground truth's over each class of the target layout, averaged over those classes. The
*region transfer score* rescales the model's error so that 0 = global painting and 1 = class
copy: (err_global - err_model) / (err_global - err_class_copy).

*Exemplar sensitivity* compares two outputs for one layout and two exemplars with their ground
truths: mean |out_a - out_b| / mean |truth_a - truth_b| (0: the exemplar is ignored, 1: the
output changes as much as it should).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from msca_fast.image_checks import check_image_batch, check_image_pair
from msca_fast.metrics.psnr import psnr

RGB_SCALE = 127.5  # [-1, 1] -> 0-255 units


def _check_ids(name: str, ids: object, image: Tensor) -> Tensor:
    if not isinstance(ids, Tensor) or ids.dim() != 3 or ids.dtype.is_floating_point or ids.dtype == torch.bool:
        got = f"{ids.dtype} of shape {tuple(ids.shape)}" if isinstance(ids, Tensor) else type(ids).__name__
        raise ValueError(f"{name}: expected integer class ids (B, H, W), got {got}")
    if ids.shape[0] != image.shape[0] or ids.shape[-2:] != image.shape[-2:]:
        raise ValueError(
            f"{name}: expected class ids of shape {(image.shape[0], *image.shape[-2:])} (its image's), "
            f"got {tuple(ids.shape)}"
        )
    if bool((ids < 0).any()):
        raise ValueError(f"{name}: expected non-negative class ids")
    return ids.long()


def class_means(images: Tensor, ids: Tensor, num_classes: int) -> tuple[Tensor, Tensor]:
    """Mean colour of every class: images (B,3,H,W), ids (B,H,W) -> means (B,C,3), pixel counts (B,C).

    A class absent from an image has mean 0 and count 0.
    """
    one_hot = F.one_hot(ids.flatten(1), num_classes).to(torch.float64)  # (B,P,C)
    counts = one_hot.sum(dim=1)  # (B,C)
    sums = one_hot.transpose(1, 2) @ images.flatten(2).transpose(1, 2).to(torch.float64)  # (B,C,3)
    return sums / counts.clamp_min(1).unsqueeze(-1), counts


def region_colour_error(images: Tensor, truths: Tensor, target_ids: Tensor) -> Tensor:
    """Per image: the mean over the target's classes of |mean colour of images - of truths| (RGB, 0-255).

    images, truths (B,3,H,W) in [-1,1]; target_ids (B,H,W) the layout both share -> (B,) float64.
    """
    images, truths = check_image_pair("images", images, "truths", truths)
    target_ids = _check_ids("target_ids", target_ids, images)
    num_classes = int(target_ids.max()) + 1
    means, counts = class_means(images, target_ids, num_classes)
    true_means, _ = class_means(truths, target_ids, num_classes)
    present = (counts > 0).to(torch.float64)
    distance = (means - true_means).norm(dim=-1) * RGB_SCALE  # (B,C)
    return (distance * present).sum(dim=1) / present.sum(dim=1)


def paint_global_mean(exemplars: Tensor, size: tuple[int, int]) -> Tensor:
    """Every pixel the exemplar's mean colour: exemplars (B,3,He,We) -> (B,3,*size)."""
    exemplars = check_image_batch("exemplars", exemplars)
    return exemplars.mean(dim=(2, 3), keepdim=True).expand(-1, -1, *size).contiguous()


def paint_class_means(exemplars: Tensor, exemplar_ids: Tensor, target_ids: Tensor) -> Tensor:
    """Each target pixel the exemplar's mean colour of its class (the exemplar's mean colour for
    classes the exemplar lacks): exemplars (B,3,He,We), exemplar_ids (B,He,We), target_ids (B,H,W)
    -> (B,3,H,W)."""
    exemplars = check_image_batch("exemplars", exemplars)
    exemplar_ids = _check_ids("exemplar_ids", exemplar_ids, exemplars)
    if not isinstance(target_ids, Tensor) or target_ids.dim() != 3 or target_ids.shape[0] != exemplars.shape[0]:
        raise ValueError(f"target_ids: expected class ids (B, H, W) with B = {exemplars.shape[0]}")
    target_ids = target_ids.long()
    num_classes = int(max(exemplar_ids.max(), target_ids.max())) + 1
    means, counts = class_means(exemplars, exemplar_ids, num_classes)  # (B,C,3)
    fallback = exemplars.to(torch.float64).mean(dim=(2, 3)).unsqueeze(1)  # (B,1,3)
    means = torch.where(counts.unsqueeze(-1) > 0, means, fallback)
    painted = torch.gather(means, 1, target_ids.flatten(1).unsqueeze(-1).expand(-1, -1, 3))  # (B,P,3)
    return painted.transpose(1, 2).reshape(-1, 3, *target_ids.shape[-2:]).to(exemplars.dtype)


def transfer_score(err_model: float, err_global: float, err_class_copy: float) -> float:
    """(err_global - err_model) / (err_global - err_class_copy): 0 = global painting, 1 = class copy.

    NaN when the two paintings are equally good (the score is undefined: nothing to transfer).
    """
    span = err_global - err_class_copy
    return (err_global - err_model) / span if span > 0 else float("nan")


def exemplar_change(outputs_a: Tensor, outputs_b: Tensor) -> Tensor:
    """Per image mean |outputs_a - outputs_b| over channels and pixels, (B,) float64."""
    outputs_a, outputs_b = check_image_pair("outputs_a", outputs_a, "outputs_b", outputs_b)
    return (outputs_a.double() - outputs_b.double()).abs().mean(dim=(1, 2, 3))


class RegionTransfer:
    """Accumulates the region metrics over batches of one task.

    update(outputs, truths, target_ids, exemplars, exemplar_ids): outputs, truths (B,3,H,W) and
        exemplars (B,3,He,We) in [-1,1]; target_ids (B,H,W) and exemplar_ids (B,He,We) class ids.
    update_sensitivity(outputs_a, outputs_b, truths_a, truths_b): one layout, two exemplars.
    compute() -> {"region_error", "region_error_global", "region_error_class_copy",
        "region_score", "psnr_global", "psnr_class_copy"[, "sensitivity"]}: means over images
        (the score from the mean errors).
    """

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._sums = {k: 0.0 for k in ("model", "global", "class_copy", "psnr_global", "psnr_class_copy")}
        self._count = 0
        self._change_out = 0.0
        self._change_truth = 0.0

    @torch.no_grad()
    def update(
        self, outputs: Tensor, truths: Tensor, target_ids: Tensor, exemplars: Tensor, exemplar_ids: Tensor
    ) -> None:
        outputs, truths = check_image_pair("outputs", outputs, "truths", truths)
        size = tuple(outputs.shape[-2:])
        global_paint = paint_global_mean(exemplars, size)
        copy_paint = paint_class_means(exemplars, exemplar_ids, target_ids)
        for key, images in (("model", outputs), ("global", global_paint), ("class_copy", copy_paint)):
            self._sums[key] += region_colour_error(images, truths, target_ids).sum().item()
        self._sums["psnr_global"] += psnr(global_paint, truths).sum().item()
        self._sums["psnr_class_copy"] += psnr(copy_paint, truths).sum().item()
        self._count += outputs.shape[0]

    @torch.no_grad()
    def update_sensitivity(self, outputs_a: Tensor, outputs_b: Tensor, truths_a: Tensor, truths_b: Tensor) -> None:
        self._change_out += exemplar_change(outputs_a, outputs_b).sum().item()
        self._change_truth += exemplar_change(truths_a, truths_b).sum().item()

    def compute(self) -> dict[str, float]:
        if self._count == 0:
            raise ValueError("RegionTransfer: no images yet; call update(...) first")
        mean = {k: v / self._count for k, v in self._sums.items()}
        out = {
            "region_error": mean["model"],
            "region_error_global": mean["global"],
            "region_error_class_copy": mean["class_copy"],
            "region_score": transfer_score(mean["model"], mean["global"], mean["class_copy"]),
            "psnr_global": mean["psnr_global"],
            "psnr_class_copy": mean["psnr_class_copy"],
        }
        if self._change_truth > 0:
            out["sensitivity"] = self._change_out / self._change_truth
        return out
