"""The metric suite of an evaluation run: its networks from the config's weight files, and why
any of them is missing."""

from __future__ import annotations

import torch

from msca_fast.evaluation.config import EvalConfig


def open_metric_suite(config: EvalConfig, device: torch.device):
    """(the :class:`msca_fast.metrics.MetricSuite` of ``config.metrics``, {missing metric: why}).

    With ``config.strict`` a missing metric network raises instead.
    """
    from msca_fast.metrics import MetricSuite

    suite = MetricSuite(
        metrics=config.metrics,
        lpips_backbone_weights=config.lpips_weights,
        fid_inception_weights=config.fid_weights,
        style_vgg_weights=config.vgg_weights,
        allow_missing=not config.strict,
        device=device,
    )
    return suite, dict(suite.missing)
