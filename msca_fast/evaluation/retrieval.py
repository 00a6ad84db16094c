"""Exemplar retrieval for the retrieving task (paper section 4 and its user study).

Candidates are the 20 images whose label histograms intersect the target's most; among them
the matcher picks the one whose label map agrees with the target's on the most pixels (the
layouts are compared at the same size, pixel by pixel), i.e. the candidate most likely to hold
the same classes in the same places.
"""

from __future__ import annotations

import torch
from torch import Tensor


def label_histograms(labels: Tensor, num_classes: int) -> Tensor:
    """Label ids (N,H,W) -> normalised class histograms (N,num_classes), each summing to 1."""
    counts = torch.stack(
        [torch.bincount(ids.flatten(), minlength=num_classes)[:num_classes] for ids in labels]
    ).double()
    return counts / counts.sum(1, keepdim=True).clamp_min(1)


def histogram_intersection(histograms: Tensor) -> Tensor:
    """(N,C) -> (N,N): sum_c min(h_i[c], h_j[c]), 1 for identical histograms."""
    return torch.minimum(histograms[:, None, :], histograms[None, :, :]).sum(-1)


def retrieve_exemplars(labels: Tensor, num_classes: int, top: int = 20) -> list[int]:
    """For each target i of ``labels`` (N,H,W), the index j != i of its retrieved exemplar."""
    if labels.shape[0] < 2:
        raise ValueError(f"labels: retrieval needs at least 2 images, got {labels.shape[0]}")
    scores = histogram_intersection(label_histograms(labels, num_classes))
    scores.fill_diagonal_(-1)
    chosen = []
    for i in range(labels.shape[0]):
        candidates = scores[i].topk(min(top, labels.shape[0] - 1)).indices
        agreement = (labels[candidates] == labels[i]).flatten(1).double().mean(1)
        chosen.append(int(candidates[agreement.argmax()]))
    return chosen
