"""The paper's evaluation metrics: PSNR, LPIPS (calibrated VGG), FID and the style loss of Gatys et al.

Pretrained metric networks are loaded from a given path, an environment variable, the torch
hub cache, or a download; when none works the error says which file to fetch from where.
Nothing falls back to random weights. The ``eval`` extra installs the metric packages::

    pip install 'msca-fast[eval]'      # lpips, torch-fidelity

    suite = MetricSuite()              # metrics whose weights are missing are reported, not faked
    for outputs, truths in batches:
        suite.update(outputs, truths)
    suite.compute()                    # {"psnr": ..., "lpips": ..., "fid": ..., "style": ...}
    suite.missing                      # {name: reason} for the metrics computed as None
"""

from __future__ import annotations

from msca_fast.losses import StyleLoss
from msca_fast.metrics.errors import MetricPackageMissing, MetricUnavailable
from msca_fast.metrics.fid import FIDMetric
from msca_fast.metrics.frechet import activation_statistics, frechet_distance
from msca_fast.metrics.inception import INCEPTION_SOURCE, FIDInceptionV3
from msca_fast.metrics.lpips_vgg import VGG16_SOURCE, LPIPSMetric
from msca_fast.metrics.psnr import mean_psnr, psnr
from msca_fast.metrics.style import style_distance
from msca_fast.metrics.suite import HIGHER_IS_BETTER, METRIC_NAMES, MetricSuite

__all__ = [
    "FIDInceptionV3",
    "FIDMetric",
    "HIGHER_IS_BETTER",
    "INCEPTION_SOURCE",
    "LPIPSMetric",
    "METRIC_NAMES",
    "MetricPackageMissing",
    "MetricSuite",
    "MetricUnavailable",
    "StyleLoss",
    "VGG16_SOURCE",
    "activation_statistics",
    "frechet_distance",
    "mean_psnr",
    "psnr",
    "style_distance",
]
