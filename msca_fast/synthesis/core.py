"""Plain synthesis and the one manipulation the others build on: blending two exemplars'
aligned features before the SPADE decoder.

Why blending the aligned features is the paper's "manipulating the attention": MSCA's output
at scale i is F_x1 = (V o gate) beta (Eq. 6-8), linear in the masked region features
V~ = V o gate. So (1-t) F_x1(a) + t F_x1(b) = ((1-t) V~(a) + t V~(b)) beta: mixing the
aligned features *is* mixing the two exemplars' aggregated (spatial-attention) features, and
a per-pixel weight w(x) mixes them through the channel attention at each target pixel. It
works unchanged for the ablation aligners, which have no attention to manipulate.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from msca_fast.models.generator import AlignedFeatures, Generator

# An exemplar: (x (B,3,He,We) in [-1,1], c (B,C,He,We) one-hot), C the model's num_classes.
Exemplar = tuple[Tensor, Tensor]


def model_device(module: nn.Module) -> torch.device:
    """The device of the module's first parameter (the CPU for a parameterless module)."""
    return next(module.parameters(), torch.empty(0)).device


def align_exemplar(g: Generator, c1: Tensor, exemplar: Exemplar) -> AlignedFeatures:
    """``g.align`` without autograd, inputs moved to the generator's device.

    c1 (B,C,H,W) one-hot; returns F_x1^(i) and F_c1^(i) at scales i = 0..4 (H//2**i, W//2**i).
    """
    device = model_device(g)
    x2, c2 = exemplar
    with torch.no_grad():
        return g.align(c1.to(device), x2.to(device), c2.to(device))


def decode(g: Generator, aligned: AlignedFeatures) -> Tensor:
    """``g.decode`` without autograd -> image (B,3,H,W) in [-1,1]."""
    with torch.no_grad():
        return g.decode(aligned)


def synthesize(g: Generator, c1: Tensor, x2: Tensor, c2: Tensor) -> Tensor:
    """G(c1 (B,C,H,W) one-hot, x2 (B,3,He,We) in [-1,1], c2 (B,C,He,We) one-hot) -> (B,3,H,W) in [-1,1].

    The target layout c1 painted in the exemplar's style; no autograd, on the generator's device.
    """
    return decode(g, align_exemplar(g, c1, (x2, c2)))


def blend_aligned(a: AlignedFeatures, b: AlignedFeatures, weights_of_b: Sequence[Tensor | float]) -> AlignedFeatures:
    """Per scale i: (1 - w_i) F_x1^(i)(a) + w_i F_x1^(i)(b); the label features are a's.

    ``weights_of_b[i]`` is a float or a tensor broadcastable to (B,N_i,H_i,W_i), e.g. (1,1,H_i,W_i).
    Written as two products rather than ``torch.lerp`` so that w = 0 gives a's features and
    w = 1 gives b's bit for bit.
    """
    if not len(weights_of_b) == len(a.image) == len(b.image):
        raise ValueError(f"weights_of_b: expected one weight per scale ({len(a.image)}), got {len(weights_of_b)}")
    image = [(1 - w) * fa + w * fb for fa, fb, w in zip(a.image, b.image, weights_of_b)]
    return AlignedFeatures(image, a.labels)
