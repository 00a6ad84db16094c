"""Feature extraction (paper section 3.1): the image pyramid (Eq. 1) and the label pyramid (Eq. 2-3)."""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from msca_fast.models.labels import resize_labels, scale_sizes
from msca_fast.models.vgg import PYRAMID_LAYERS, VGG19


class ImagePyramid(nn.Module):
    """Eq. 1: F_x^(i) = W_x^(i) * F_vgg^(i)(x) for i = 0..4.

    The frozen VGG-19 gives relu1_2, relu2_2, relu3_4, relu4_4, relu5_4 (the last activation
    before each pooling, so scale i sits at 1/2**i resolution); trainable 1x1 convs compress
    them to ``channels[i]``.

    forward(x (B,3,H,W) in [-1,1]) -> [F_x^(i) (B,channels[i],H//2**i,W//2**i) for i = 0..4].
    """

    def __init__(self, channels: Sequence[int], vgg_weights: str | os.PathLike = "imagenet") -> None:
        super().__init__()
        if len(channels) != len(PYRAMID_LAYERS):
            raise ValueError(f"channels: expected {len(PYRAMID_LAYERS)} ints, got {list(channels)}")
        self.vgg = VGG19(PYRAMID_LAYERS, vgg_weights)
        self.compress = nn.ModuleList(
            nn.Conv2d(vgg_channels, out, kernel_size=1) for vgg_channels, out in zip(self.vgg.channels, channels)
        )

    def vgg_features(self, x: Tensor) -> list[Tensor]:
        """The uncompressed VGG maps F_vgg^(i)(x) (B,C_i,H//2**i,W//2**i): the pretraining targets."""
        return self.vgg(x)

    def forward(self, x: Tensor) -> list[Tensor]:
        return [conv(f) for conv, f in zip(self.compress, self.vgg(x))]


class LabelPyramid(nn.Module):
    """Eq. 2-3: the label encoder, coarse to fine, one set of weights for c1 and c~2.

    F^(L) = LReLU(W^(L) * c^(L)),  F^(i) = LReLU(W^(i) * [up(F^(i+1)), c^(i)]) for i < L,
    with c^(i) the label map resized (nearest) to scale i and up() bilinear to scale i's size.

    forward(c (B,C,H,W) one-hot) -> [F_c^(i) (B,channels[i],H//2**i,W//2**i) for i = 0..L].
    """

    def __init__(self, num_classes: int, channels: Sequence[int], negative_slope: float = 0.2) -> None:
        super().__init__()
        self.channels = tuple(channels)
        self.negative_slope = negative_slope
        coarsest = len(self.channels) - 1
        self.convs = nn.ModuleList(
            nn.Conv2d(num_classes + (self.channels[i + 1] if i < coarsest else 0), self.channels[i], kernel_size=1)
            for i in range(len(self.channels))
        )

    def forward(self, labels: Tensor) -> list[Tensor]:
        sizes = scale_sizes(labels.shape[-2], labels.shape[-1], len(self.channels))
        out: list[Tensor] = [labels] * len(self.channels)
        previous: Tensor | None = None
        for i in reversed(range(len(self.channels))):
            x = resize_labels(labels, sizes[i])
            if previous is not None:
                up = F.interpolate(previous, size=sizes[i], mode="bilinear", align_corners=False)
                x = torch.cat([up, x], dim=1)
            previous = F.leaky_relu(self.convs[i](x), self.negative_slope)
            out[i] = previous
        return out
