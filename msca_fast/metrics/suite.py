"""The paper's four metrics (PSNR, LPIPS, FID, style loss) over an evaluation set, with missing ones reported."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from functools import partial

import torch
from torch import Tensor, nn

from msca_fast.errors import WeightsUnavailable
from msca_fast.image_checks import check_image_pair
from msca_fast.losses import StyleLoss
from msca_fast.metrics.errors import MetricUnavailable
from msca_fast.metrics.fid import FIDMetric
from msca_fast.metrics.lpips_vgg import LPIPSMetric
from msca_fast.metrics.psnr import psnr
from msca_fast.metrics.style import style_distance

METRIC_NAMES = ("psnr", "lpips", "fid", "style")
# PSNR: higher is better; the others: lower is better.
HIGHER_IS_BETTER = {"psnr": True, "lpips": False, "fid": False, "style": False}


class MetricSuite:
    """Accumulates the requested metrics over batches of (generated, ground-truth) images.

    metrics: names from :data:`METRIC_NAMES`. PSNR, LPIPS and style are means over images of
        the per-image values; FID compares the set of outputs with the set of ground truths.
    lpips_backbone_weights, fid_inception_weights, style_vgg_weights: where each pretrained
        network's weights are (see :class:`LPIPSMetric`, :class:`FIDMetric`,
        :class:`msca_fast.losses.StyleLoss`; style_vgg_weights="random" is for tests only).
    fid_feature_extractor: replaces the FID Inception (tests, custom networks).
    allow_missing: when a metric's pretrained network or package is unavailable, leave it out:
        ``compute()`` gives None for it and ``missing[name]`` a one-line reason
        (``missing_details[name]``: the full message, with how to fix it). When False, raise.
    allow_download: let the LPIPS and FID loaders download weights into the torch hub cache
        (the style loss's VGG-19 loader, :mod:`msca_fast.models.vgg`, always tries its download).
    device: where the metric networks run; batches are moved there.

    update(outputs (B,3,H,W), truths (B,3,H,W), both in [-1,1]); compute() -> {name: value or None}.
    """

    def __init__(
        self,
        metrics: Sequence[str] = METRIC_NAMES,
        *,
        lpips_backbone_weights: str | os.PathLike | None = None,
        fid_inception_weights: str | os.PathLike | None = None,
        style_vgg_weights: str | os.PathLike = "imagenet",
        fid_feature_extractor: Callable[[Tensor], Tensor] | None = None,
        allow_missing: bool = True,
        allow_download: bool = True,
        device: torch.device | str | None = None,
    ) -> None:
        if isinstance(metrics, str) or not isinstance(metrics, Sequence) or not metrics:
            raise TypeError(f"metrics: expected a non-empty sequence of names from {METRIC_NAMES}, got {metrics!r}")
        unknown = [name for name in metrics if name not in METRIC_NAMES]
        if unknown or len(set(metrics)) != len(metrics):
            raise ValueError(f"metrics: expected distinct names from {METRIC_NAMES}, got {list(metrics)}")
        self.names = tuple(metrics)
        self.device = torch.device(device) if device is not None else None
        self.missing: dict[str, str] = {}
        self.missing_details: dict[str, str] = {}
        # Per-image metrics, each (outputs, truths) -> (B,), averaged over images; FID apart.
        self._per_image: dict[str, Callable[[Tensor, Tensor], Tensor]] = {}
        self._fid: FIDMetric | None = None
        for name in self.names:
            try:
                if name == "psnr":
                    self._per_image[name] = psnr
                elif name == "lpips":
                    self._per_image[name] = self._placed(LPIPSMetric(lpips_backbone_weights, allow_download))
                elif name == "style":
                    style_loss = self._placed(StyleLoss(weights=style_vgg_weights))
                    self._per_image[name] = partial(style_distance, style_loss=style_loss)
                else:
                    self._fid = FIDMetric(fid_feature_extractor, fid_inception_weights, allow_download, self.device)
            except (MetricUnavailable, WeightsUnavailable) as error:
                if not allow_missing:
                    raise
                message = str(error)
                self.missing[name] = message.splitlines()[0] if message else type(error).__name__
                self.missing_details[name] = message
        self.reset()

    def _placed(self, module: nn.Module) -> nn.Module:
        return module if self.device is None else module.to(self.device)

    @property
    def available(self) -> tuple[str, ...]:
        """The requested metrics that can be computed."""
        return tuple(name for name in self.names if name not in self.missing)

    def reset(self) -> None:
        """Forget every batch seen."""
        self._sums = {name: 0.0 for name in self._per_image}
        self._count = 0
        if self._fid is not None:
            self._fid.reset()

    @torch.no_grad()
    def update(self, outputs: Tensor, truths: Tensor) -> None:
        """Add a batch of generated images and their ground truths, (B,3,H,W) each, in [-1,1]."""
        outputs, truths = check_image_pair("outputs", outputs, "truths", truths)
        if self.device is not None:
            outputs, truths = outputs.to(self.device), truths.to(self.device)
        for name, metric in self._per_image.items():
            self._sums[name] += metric(outputs, truths).double().sum().item()
        if self._fid is not None:
            self._fid.update("fake", outputs)
            self._fid.update("real", truths)
        self._count += outputs.shape[0]

    def compute(self) -> dict[str, float | None]:
        """Each requested metric's value over the batches so far; None for the missing ones."""
        if self._count == 0:
            raise ValueError("MetricSuite: no images yet; call update(outputs, truths) first")
        results: dict[str, float | None] = {}
        for name in self.names:
            if name in self.missing:
                results[name] = None
            elif name == "fid":
                results[name] = self._fid.compute()
            else:
                results[name] = self._sums[name] / self._count
        return results
