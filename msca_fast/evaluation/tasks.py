"""The evaluation tasks: which exemplar each target gets, and what the ground truth is.

  duplicate       the exemplar is the target image itself;
  mirror          the exemplar is the target flipped left-right;
  retrieve        the exemplar is another image retrieved by layout (:mod:`.retrieval`); the
                  ground truth is the target's photo colour-corrected toward it (:mod:`.color`);
  style-transfer  synthetic scenes only: the exemplar is scene j, the ground truth is the target
                  layout i rendered in scene j's style (exact).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from torch import Tensor

from msca_fast.evaluation.color import reinhard_transfer
from msca_fast.evaluation.retrieval import retrieve_exemplars

TASKS = ("duplicate", "mirror", "retrieve", "style-transfer")


@dataclass
class TaskSample:
    """One row of a task: ids (H,W) int64 label maps, images (3,H,W) in [-1,1];
    ``other_phase``: the truth rendered with another noise phase (synthetic scenes only), the
    texture measures' reference for "right texture, other phase"."""

    name: str
    target_label: Tensor
    exemplar_image: Tensor
    exemplar_label: Tensor
    truth: Tensor
    other_phase: Tensor | None = None


def build_task(
    task: str, images: list[Tensor], labels: list[Tensor], names: list[str], num_classes: int, dataset=None,
    exemplar_offset: int = 1,
) -> list[TaskSample]:
    """The samples of ``task`` over the evaluation images (each (3,S,S)) and labels (each (S,S)).

    ``dataset`` must be a :class:`msca_fast.data.synthetic.SyntheticScenes` for "style-transfer",
    where target i takes the style of scene i + ``exemplar_offset`` (modulo the count).
    """
    if task not in TASKS:
        raise ValueError(f"task: expected one of {list(TASKS)}, got {task!r}")
    n = len(images)
    size = images[0].shape[-1] if n else 0
    if task == "duplicate":
        return [TaskSample(names[i], labels[i], images[i], labels[i], images[i], _other_phase(dataset, i, i, size))
                for i in range(n)]  # fmt: skip
    if task == "mirror":
        return [TaskSample(names[i], labels[i], images[i].flip(-1), labels[i].flip(-1), images[i],
                           _other_phase(dataset, i, i, size)) for i in range(n)]  # fmt: skip
    if task == "retrieve":
        chosen = retrieve_exemplars(torch.stack(labels), num_classes)
        out = []
        for i, j in enumerate(chosen):
            truth = reinhard_transfer(images[i][None], images[j][None])[0]
            out.append(TaskSample(f"{names[i]}<-{names[j]}", labels[i], images[j], labels[j], truth))
        return out
    from msca_fast.data.synthetic import SyntheticScenes, render

    if not isinstance(dataset, SyntheticScenes):
        raise ValueError(
            "task: 'style-transfer' needs the synthetic data set (its renderer gives the exact ground truth)"
        )
    out = []
    for i in range(n):
        j = (i + exemplar_offset) % n
        truth, truth_label = render(dataset.layout(i), dataset.style(j), size, size)
        out.append(TaskSample(f"{names[i]}<-{names[j]}", truth_label, images[j], labels[j], truth,
                              _other_phase(dataset, i, j, size)))  # fmt: skip
    return out


def _other_phase(dataset, layout_index: int, style_index: int, size: int) -> Tensor | None:
    """Scene ``layout_index`` in the style of ``style_index`` with another noise seed (3,S,S),
    for the synthetic data set; None for others."""
    from msca_fast.data.synthetic import SyntheticScenes, render

    if not isinstance(dataset, SyntheticScenes):
        return None
    style = dataset.style(style_index)
    image, _ = render(dataset.layout(layout_index), dataclasses.replace(style, seed=(style.seed + 1) % 2**31), size,
                      size)  # fmt: skip
    return image


def task_is_available(task: str, dataset) -> str | None:
    """None when ``task`` can run on ``dataset``, else the reason."""
    if task == "style-transfer":
        from msca_fast.data.synthetic import SyntheticScenes

        if not isinstance(dataset, SyntheticScenes):
            return "needs the synthetic data set"
    return None
