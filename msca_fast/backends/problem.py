"""The description of one op call that every backend judges: can it serve this call?"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Problem:
    """What a backend needs to know to say whether it can serve a call.

    stage is "msca" (both passes), "aggregate" (Eq. 4-5) or "distribute" (Eq. 6-8);
    sizes a stage does not use are 0. :mod:`msca_fast.op_arguments` builds it from checked
    arguments.
    """

    stage: str
    device: torch.device
    dtype: torch.dtype
    batch: int
    image_channels: int  # N
    exemplar_label_channels: int  # M2
    target_label_channels: int  # M1
    num_regions: int  # K
    exemplar_pixels: int  # P2 = H2 * W2
    target_pixels: int  # P1 = H1 * W1
    requires_grad: bool
