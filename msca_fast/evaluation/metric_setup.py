"""The metric suite of an evaluation run: its networks from the config's weight files, and, for
each one that is missing, one line saying why and where to put its file with evaluate's flag."""

from __future__ import annotations

import torch

from msca_fast.evaluation.config import EvalConfig
from msca_fast.metrics.errors import MetricUnavailable
from msca_fast.metrics.inception import INCEPTION_SOURCE
from msca_fast.metrics.lpips_vgg import VGG16_SOURCE
from msca_fast.models.vgg import VGG19_SOURCE
from msca_fast.pretrained import WeightSource

# Each metric network's weight file (its source names evaluate's flag that takes a path).
WEIGHT_FILES: dict[str, WeightSource] = {"lpips": VGG16_SOURCE, "fid": INCEPTION_SOURCE, "style": VGG19_SOURCE}


def open_metric_suite(config: EvalConfig, device: torch.device):
    """(the :class:`msca_fast.metrics.MetricSuite` of ``config.metrics``, {missing metric: why}).

    With ``config.strict`` a missing metric raises :class:`MetricUnavailable` with the same
    reasons, one line per metric.
    """
    from msca_fast.metrics import MetricSuite

    suite = MetricSuite(
        metrics=config.metrics,
        lpips_backbone_weights=config.lpips_weights,
        fid_inception_weights=config.fid_weights,
        style_vgg_weights=config.vgg_weights,
        allow_missing=True,
        device=device,
    )
    missing = {name: missing_reason(name, message) for name, message in suite.missing_details.items()}
    if config.strict and missing:
        raise MetricUnavailable("\n".join(f"--strict: {name}: {why}" for name, why in missing.items()))
    return suite, missing


def missing_reason(metric: str, message: str) -> str:
    """One line from the message of a metric that cannot be computed.

    When the message is about the metric's weight file (it names the file), the line is its
    first line, the reason, and where to put the file or which evaluate flag takes its path
    (the message's list of ways is left out). Otherwise (a missing package, say) it is the
    whole message on one line.
    """
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    if not lines:
        return "unavailable"
    source = WEIGHT_FILES.get(metric)
    if source is None or not any(name in message for name in source.file_names()):
        return " ".join(lines)
    return f"{lines[0]} {source.where_to_put()}"
