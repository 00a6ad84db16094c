"""The metric suite of an evaluation run: its networks from the config's weight files, and, for
each one that is missing, one line saying why and where to put its file with evaluate's flag."""

from __future__ import annotations

import torch
import torchvision

from msca_fast.evaluation.config import EvalConfig
from msca_fast.metrics.errors import MetricUnavailable
from msca_fast.metrics.inception import INCEPTION_SOURCE
from msca_fast.metrics.lpips_vgg import VGG16_SOURCE
from msca_fast.metrics.weight_files import WeightSource
from msca_fast.models.vgg import ENV_WEIGHTS

# The style loss's VGG-19, described like the other metric networks' files (torchvision keeps
# it in the torch hub cache under the URL's name, where msca_fast.models.vgg looks).
STYLE_VGG19_SOURCE = WeightSource(
    name="style-loss VGG-19 weights",
    detail="torchvision's ImageNet VGG-19, VGG19_Weights.IMAGENET1K_V1",
    urls=(torchvision.models.VGG19_Weights.IMAGENET1K_V1.url,),
    env_var=ENV_WEIGHTS,
    argument="vgg_weights",
)

# Each metric network's weight file and the evaluate flag that takes its path.
WEIGHT_FILES: dict[str, tuple[WeightSource, str]] = {
    "lpips": (VGG16_SOURCE, "--lpips-weights"),
    "fid": (INCEPTION_SOURCE, "--fid-weights"),
    "style": (STYLE_VGG19_SOURCE, "--vgg-weights"),
}


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
    reason and where to put the file, with evaluate's flag (the library's message names the
    Python argument). Otherwise (a missing package, say) it is the whole message on one line.
    """
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    if not lines:
        return "unavailable"
    source, option = WEIGHT_FILES.get(metric, (None, ""))
    if source is None or not any(name in message for name in source.file_names()):
        return " ".join(lines)
    reason = lines[0]
    if reason.endswith(":"):  # the heading of a list of ways the following lines give: not shown
        reason = reason[: reason.rfind(". ") + 1] if ". " in reason else ""
    return f"{reason} {source.where_to_put(option)}".strip()
