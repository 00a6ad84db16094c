"""The attention-pretraining decoder (paper section 4, "Implementation details").

Before adversarial training, the alignment is pretrained with a light decoder: at each scale a
1x1 conv maps [F_x1^(i), F_c1^(i)] to the ground-truth VGG feature F_vgg^(i)(x1) of the target
image, so the attention learns to put the exemplar's features where the target needs them.

Optionally (``rgb=True``, not in the paper) a second 1x1 conv per scale also predicts the target
image's colours at that scale (area-downsampled): a direct colour signal for the attention when
the VGG is not pretrained and its features say little about appearance.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from msca_fast.models.config import NUM_SCALES, ModelConfig
from msca_fast.models.generator import AlignedFeatures
from msca_fast.models.vgg import LAYER_CHANNELS, PYRAMID_LAYERS


class AttentionPretrainHead(nn.Module):
    """forward(aligned: AlignedFeatures) -> [prediction (B,C_vgg_i,H//2**i,W//2**i) for i = 0..4],
    where C_vgg_i is the channel count of VGG-19's relu1_2, relu2_2, relu3_4, relu4_4, relu5_4;
    with ``rgb``, each prediction has 3 more channels: the colours (B,3,H//2**i,W//2**i)."""

    def __init__(self, config: ModelConfig, rgb: bool = False) -> None:
        super().__init__()
        self.rgb = rgb
        self.convs = nn.ModuleList(
            nn.Conv2d(
                config.image_feature_channels[i] + config.label_feature_channels[i],
                LAYER_CHANNELS[PYRAMID_LAYERS[i]] + (3 if rgb else 0),
                kernel_size=1,
            )
            for i in range(NUM_SCALES)
        )

    def forward(self, aligned: AlignedFeatures) -> list[Tensor]:
        return [
            conv(torch.cat([fx, fc], dim=1)) for conv, fx, fc in zip(self.convs, aligned.image, aligned.labels)
        ]

    def targets(self, vgg_features: list[Tensor], image: Tensor) -> list[Tensor]:
        """What :meth:`forward` predicts for a target image (B,3,H,W): its VGG maps F_vgg^(i),
        with ``rgb`` each followed by the image area-resized to that scale."""
        if not self.rgb:
            return vgg_features
        return [torch.cat([f, F.adaptive_avg_pool2d(image, f.shape[-2:])], dim=1) for f in vgg_features]

    @staticmethod
    def loss(predictions: list[Tensor], targets: list[Tensor]) -> Tensor:
        """Mean over scales of the L1 distance to the (detached) VGG targets F_vgg^(i)(x1)."""
        if len(predictions) != len(targets):
            raise ValueError(f"targets: expected {len(predictions)} maps (one per scale), got {len(targets)}")
        for i, (p, t) in enumerate(zip(predictions, targets)):
            if p.shape != t.shape:
                raise ValueError(f"targets[{i}]: expected shape {tuple(p.shape)}, got {tuple(t.shape)}")
        return torch.stack([F.l1_loss(p, t.detach()) for p, t in zip(predictions, targets)]).mean()
