"""Fréchet Inception Distance (Heusel et al. 2017) accumulated over batches of real and generated images."""

from __future__ import annotations

import os
from collections.abc import Callable

import torch
from torch import Tensor, nn

from msca_fast.image_checks import check_image_batch
from msca_fast.metrics.frechet import activation_statistics, frechet_distance
from msca_fast.metrics.inception import FIDInceptionV3

SETS = ("real", "fake")


class FIDMetric:
    """FID between the images passed as "real" and those passed as "fake" (lower is better).

    feature_extractor: any callable mapping images (B,3,H,W) in [-1,1] to features (B, D),
        e.g. your own network or, in tests, a fixed random projection. None (the default)
        loads the standard FID Inception-v3 (:class:`FIDInceptionV3`, 2048-d pool3 features)
        from ``inception_weights`` / ``MSCA_FAST_FID_INCEPTION_WEIGHTS`` / the torch hub cache /
        a download if ``allow_download``; :class:`msca_fast.errors.WeightsUnavailable`
        when all fail.
    device: where to put that Inception (ignored for an injected extractor). Images are moved
        to the device of an ``nn.Module`` extractor's parameters.

    FID is a biased estimator: computed on few images it is much larger than on many, and
    values only compare at equal sample counts. The paper's numbers use its full test sets
    (thousands of images); tens of images give numbers that do not compare with them.
    Features are kept (on the CPU, float32) until :meth:`compute`, which needs >= 2 per set.
    """

    def __init__(
        self,
        feature_extractor: Callable[[Tensor], Tensor] | None = None,
        inception_weights: str | os.PathLike | None = None,
        allow_download: bool = True,
        device: torch.device | str | None = None,
    ) -> None:
        if feature_extractor is None:
            feature_extractor = FIDInceptionV3(inception_weights, allow_download)
            if device is not None:
                feature_extractor = feature_extractor.to(device)
        elif not callable(feature_extractor):
            raise TypeError(
                f"feature_extractor: expected a callable images (B,3,H,W) -> features (B,D), "
                f"got {type(feature_extractor).__name__}"
            )
        self.feature_extractor = feature_extractor
        self._features: dict[str, list[Tensor]] = {name: [] for name in SETS}

    def update(self, real_or_fake: str, images: Tensor) -> None:
        """Add a batch of images (B,3,H,W) in [-1,1] to the "real" or the "fake" set."""
        if real_or_fake not in SETS:
            raise ValueError(f"real_or_fake: expected 'real' or 'fake', got {real_or_fake!r}")
        images = check_image_batch("images", images)
        device = _parameter_device(self.feature_extractor)
        with torch.no_grad():
            features = self.feature_extractor(images if device is None else images.to(device))
        if not isinstance(features, Tensor) or features.dim() != 2 or features.shape[0] != images.shape[0]:
            shape = tuple(features.shape) if isinstance(features, Tensor) else type(features).__name__
            raise ValueError(f"feature_extractor: expected features (B, D) with B = {images.shape[0]}, got {shape}")
        self._features[real_or_fake].append(features.detach().float().cpu())

    def count(self, real_or_fake: str) -> int:
        """How many images the "real" or "fake" set holds."""
        if real_or_fake not in SETS:
            raise ValueError(f"real_or_fake: expected 'real' or 'fake', got {real_or_fake!r}")
        return sum(batch.shape[0] for batch in self._features[real_or_fake])

    def compute(self) -> float:
        """FID between the two sets so far (squared Fréchet distance of their feature Gaussians)."""
        statistics = []
        for name in SETS:
            if self.count(name) < 2:
                raise ValueError(f"FIDMetric: the {name!r} set needs at least 2 images, has {self.count(name)}")
            features = torch.cat(self._features[name])
            statistics.append(activation_statistics(features))
        (mu_real, sigma_real), (mu_fake, sigma_fake) = statistics
        if mu_real.shape != mu_fake.shape:
            raise ValueError(
                f"FIDMetric: real and fake features differ in size ({mu_real.shape[0]} and {mu_fake.shape[0]})"
            )
        return frechet_distance(mu_real, sigma_real, mu_fake, sigma_fake)

    def reset(self) -> None:
        """Forget every image seen."""
        self._features = {name: [] for name in SETS}


def _parameter_device(extractor: object) -> torch.device | None:
    if isinstance(extractor, nn.Module):
        parameter = next(extractor.parameters(), None)
        if parameter is not None:
            return parameter.device
    return None
