"""The example-guided generator G(c1, x2, c~2) -> x^ (paper Fig. 2 and sections 3.1-3.3).

Feature extraction (VGG-19 image pyramid, label pyramid) -> alignment at five scales (MSCA or
an ablation) -> SPADE synthesis conditioned on [F_x1^(i), F_c1^(i)] at each block's scale.
"""

from __future__ import annotations

import os
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from msca_fast.backends import check_backend_name
from msca_fast.image_checks import MIN_SIDE, check_image_batch, check_label_map
from msca_fast.models.alignment import MSCAAlignment, build_aligner
from msca_fast.models.config import NUM_SCALES, ModelConfig
from msca_fast.models.features import ImagePyramid, LabelPyramid
from msca_fast.models.noise import PositionalNoise
from msca_fast.models.spade import SPADEResBlock, conv3x3

# (in, out) channels as multiples of ngf, and the scale each SPADE block runs at (coarse to fine).
BLOCK_WIDTHS = ((16, 16), (16, 16), (16, 16), (16, 8), (8, 4), (4, 2), (2, 1))
BLOCK_SCALES = (4, 4, 4, 3, 2, 1, 0)


class AlignedFeatures(NamedTuple):
    """Per scale i = 0..4: image (B,N_i,H//2**i,W//2**i) = F_x1^(i), the exemplar's features in
    the target's layout; labels (B,M_i,H//2**i,W//2**i) = F_c1^(i), the target's label features."""

    image: list[Tensor]
    labels: list[Tensor]


class Generator(nn.Module):
    """G(c1 (B,C,H,W) one-hot, x2 (B,3,He,We) in [-1,1], c2 (B,C,He,We) one-hot) -> x^ (B,3,H,W) in [-1,1].

    C is ``config.num_classes``. Any H, W, He, We of at least 16 work (scale i is at
    (H // 2**i, W // 2**i)); exemplar and target sizes may differ. ``vgg_weights`` overrides
    ``config.vgg_weights`` (e.g. "none" before loading a checkpoint's state_dict).
    """

    def __init__(self, config: ModelConfig, vgg_weights: str | os.PathLike | None = None) -> None:
        super().__init__()
        if not isinstance(config, ModelConfig):
            raise TypeError(f"config: expected a ModelConfig, got {type(config).__name__}")
        self.config = config
        image_ch, label_ch = config.image_feature_channels, config.label_feature_channels
        self.image_pyramid = ImagePyramid(image_ch, config.vgg_weights if vgg_weights is None else vgg_weights)
        self.label_pyramid = LabelPyramid(config.num_classes, label_ch, config.label_slope)
        self.aligners = nn.ModuleList(
            build_aligner(
                config.alignment, image_ch[i], label_ch[i], config.num_regions[i], config.msca_backend,
                config.attention_logit_scale,
            )
            for i in range(NUM_SCALES)
        )
        self.noise = PositionalNoise(config.noise_channels) if config.noise_channels else None
        condition_ch = [image_ch[i] + label_ch[i] + config.noise_channels for i in range(NUM_SCALES)]
        nf = config.ngf
        padding = config.padding_mode
        self.stem = conv3x3(condition_ch[-1], BLOCK_WIDTHS[0][0] * nf, padding)
        self.blocks = nn.ModuleList(
            SPADEResBlock(w_in * nf, w_out * nf, condition_ch[s], config.spade_hidden, config.param_free_norm, padding)
            for (w_in, w_out), s in zip(BLOCK_WIDTHS, BLOCK_SCALES)
        )
        self.to_image = conv3x3(BLOCK_WIDTHS[-1][1] * nf, 3, padding)

    @classmethod
    def rebuild(cls, config: ModelConfig | dict[str, Any], state_dict: dict[str, Tensor]) -> Generator:
        """The generator saved as (config.to_dict(), state_dict()), with no weights loaded twice."""
        if isinstance(config, dict):
            config = ModelConfig.from_dict(config)
        model = cls(config, vgg_weights="none")
        model.load_state_dict(state_dict)
        return model

    def set_msca_backend(self, backend: str) -> None:
        """Run every MSCA of this generator on ``backend`` ("auto" or a registered backend name)."""
        check_backend_name(backend)
        for aligner in self.aligners:
            if isinstance(aligner, MSCAAlignment):
                aligner.msca.backend = backend

    def check_inputs(self, c1: Tensor, x2: Tensor, c2: Tensor) -> None:
        """Raise a ValueError/TypeError naming the bad argument."""
        check_label_map("c1", c1, self.config.num_classes, min_side=MIN_SIDE)
        check_image_batch("x2", x2, batch=c1.shape[0], min_side=MIN_SIDE, like="c1")
        check_label_map("c2", c2, self.config.num_classes, batch=c1.shape[0], size=tuple(x2.shape[-2:]), like="x2")
        if c2.shape[-2:] != x2.shape[-2:]:
            raise ValueError(
                f"c2: expected the exemplar label map to have x2's size {tuple(x2.shape[-2:])}, "
                f"got {tuple(c2.shape[-2:])}"
            )

    def align(self, c1: Tensor, x2: Tensor, c2: Tensor) -> AlignedFeatures:
        """Feature extraction and alignment: the SPADE conditions at every scale."""
        self.check_inputs(c1, x2, c2)
        fx2 = self.image_pyramid(x2)
        fc2 = self.label_pyramid(c2)
        fc1 = self.label_pyramid(c1)
        fx1 = [align(fx2[i], fc2[i], fc1[i], c2, c1) for i, align in enumerate(self.aligners)]
        return AlignedFeatures(fx1, fc1)

    def decode(self, aligned: AlignedFeatures) -> Tensor:
        """SPADE synthesis from the aligned features (and the fixed noise channels, where the
        config has them) -> image (B,3,H,W) in [-1,1]."""
        pairs = zip(aligned.image, aligned.labels)
        conditions = [torch.cat([fx, fc, *self._noise_like(fc)], dim=1) for fx, fc in pairs]
        sizes = [tuple(c.shape[-2:]) for c in conditions]
        x = self.stem(conditions[-1])
        for block, scale in zip(self.blocks, BLOCK_SCALES):
            if tuple(x.shape[-2:]) != sizes[scale]:
                x = F.interpolate(x, size=sizes[scale], mode="nearest")
            x = block(x, conditions[scale])
        return torch.tanh(self.to_image(F.leaky_relu(x, 0.2)))

    def _noise_like(self, features: Tensor) -> list[Tensor]:
        """[] without noise channels; else [(B, noise_channels, h, w)] for features (B, M, h, w)."""
        if self.noise is None:
            return []
        noise = self.noise(*features.shape[-2:]).to(features.dtype)
        return [noise.expand(features.shape[0], -1, -1, -1)]

    def forward(self, c1: Tensor, x2: Tensor, c2: Tensor) -> Tensor:
        return self.decode(self.align(c1, x2, c2))

