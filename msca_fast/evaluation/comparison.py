"""Figures that compare trained models on the same evaluation rows (the ablation's pictures)."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from msca_fast.evaluation.tasks import TaskSample
from msca_fast.models.generator import Generator
from msca_fast.models.labels import one_hot
from msca_fast.synthesis.attention_figure import attention_figure
from msca_fast.visuals import sample_grid, save_picture


@torch.no_grad()
def comparison_grid(generators: dict[str, Generator], samples: list[TaskSample], palette: Tensor) -> Tensor:
    """One row per sample: target label | exemplar | each generator's output (in ``generators``'
    order) | ground truth -> (3,H',W') in [0,1]."""
    num_classes = next(iter(generators.values())).config.num_classes
    c1 = one_hot(torch.stack([s.target_label for s in samples]), num_classes)
    x2 = torch.stack([s.exemplar_image for s in samples])
    c2 = one_hot(torch.stack([s.exemplar_label for s in samples]), num_classes)
    outputs = []
    for g in generators.values():
        device = next(g.parameters()).device
        outputs.append(g(c1.to(device), x2.to(device), c2.to(device)).float().clamp(-1, 1).cpu())
    return sample_grid(c1, x2, outputs, torch.stack([s.truth for s in samples]), palette)


def save_attention_figures(g: Generator, sample: TaskSample, palette: Tensor, folder: Path,
                           scales: tuple[int, ...] = (0, 1, 2)) -> list[Path]:  # fmt: skip
    """attention_s<i>.png in ``folder`` for each scale: the figure of
    :func:`msca_fast.synthesis.attention_figure.attention_figure` for one sample."""
    num_classes = g.config.num_classes
    c1 = one_hot(sample.target_label[None], num_classes)
    c2 = one_hot(sample.exemplar_label[None], num_classes)
    paths = []
    for scale in scales:
        figure = attention_figure(g, c1, sample.exemplar_image[None], c2, scale, palette)
        paths.append(save_picture(figure, folder / f"attention_s{scale}.png"))
    return paths
