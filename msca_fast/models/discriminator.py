"""The multi-scale PatchGAN discriminator D(x, c, x_ex, c~_ex) of the paper's Eq. 11.

As in NVlabs/SPADE: ``num_discriminators`` PatchGANs, each seeing the input at half the
resolution of the previous one, each returning every layer's output so the generator can be
trained with feature matching (:func:`msca_fast.losses.feature_matching_loss`). Unlike SPADE's
D(x, c), this one is also conditioned on the exemplar and its label map, which may have a
different size from the target (they are resized to the target's size first).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm

from msca_fast.image_checks import check_image_batch, check_label_map
from msca_fast.models.config import D_NORMS, ModelConfig
from msca_fast.number_checks import check_positive_int

KERNEL_SIZE = 4
PADDING = 2  # ceil((4 - 1) / 2) as in SPADE, so a stride-1 layer grows each side by one pixel
MAX_CHANNELS = 512
LEAKY_SLOPE = 0.2


def _normalized_conv(in_channels: int, out_channels: int, stride: int, norm: str) -> list[nn.Module]:
    """A 4x4 conv followed by ``norm``'s layers (spectral norm wraps the conv itself)."""
    subnorm = norm.removeprefix("spectral")
    # A bias before a normalisation that subtracts the mean is cancelled by it: leave it out.
    conv = nn.Conv2d(in_channels, out_channels, KERNEL_SIZE, stride=stride, padding=PADDING, bias=subnorm == "none")
    layers: list[nn.Module] = [spectral_norm(conv) if norm.startswith("spectral") else conv]
    if subnorm == "instance":
        layers.append(nn.InstanceNorm2d(out_channels, affine=False))
    elif subnorm == "batch":
        layers.append(nn.BatchNorm2d(out_channels, affine=True))
    return layers


class NLayerDiscriminator(nn.Module):
    """SPADE's PatchGAN: n_layers strided 4x4 convs, then a 4x4 conv to one logit per patch.

    Layers (all 4x4 convs with padding 2, each but the last followed by LeakyReLU(0.2)):
      0:             in_channels -> ndf, stride 2, no normalisation;
      1..n_layers-1: channels doubling (capped at 512), stride 2 except the last (stride 1),
                     each normalised by ``norm``;
      n_layers:      -> 1 channel, stride 1: the patch prediction (real > 0 > fake for hinge).
    ``norm``: "spectralinstance" (spectral norm on the conv + InstanceNorm2d(affine=False)),
    "spectralbatch" (spectral norm + BatchNorm2d), "instance", or "none".

    forward(x (B,in_channels,H,W)) -> n_layers + 1 tensors, layer l's output (B,C_l,H_l,W_l):
    a stride-2 layer maps a side s to s // 2 + 1, a stride-1 layer to s + 1.
    """

    def __init__(self, in_channels: int, ndf: int = 64, n_layers: int = 4, norm: str = "spectralinstance") -> None:
        super().__init__()
        for name, value in (("in_channels", in_channels), ("ndf", ndf), ("n_layers", n_layers)):
            check_positive_int(name, value)
        if norm not in D_NORMS:
            raise ValueError(f"norm: expected one of {list(D_NORMS)}, got {norm!r}")
        self.in_channels = in_channels
        self.norm = norm

        channels = ndf
        blocks = [
            nn.Sequential(
                nn.Conv2d(in_channels, channels, KERNEL_SIZE, stride=2, padding=PADDING),
                nn.LeakyReLU(LEAKY_SLOPE),
            )
        ]
        for layer in range(1, n_layers):
            previous, channels = channels, min(channels * 2, MAX_CHANNELS)
            stride = 1 if layer == n_layers - 1 else 2
            blocks.append(nn.Sequential(*_normalized_conv(previous, channels, stride, norm), nn.LeakyReLU(LEAKY_SLOPE)))
        blocks.append(nn.Sequential(nn.Conv2d(channels, 1, KERNEL_SIZE, stride=1, padding=PADDING)))
        self.blocks = nn.ModuleList(blocks)

    def forward(self, x: Tensor) -> list[Tensor]:
        if not isinstance(x, Tensor):
            raise TypeError(f"x: expected a tensor (B, {self.in_channels}, H, W), got {type(x).__name__}")
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"x: expected shape (B, {self.in_channels}, H, W), got {tuple(x.shape)}")
        outputs = []
        for block in self.blocks:
            x = block(x)
            outputs.append(x)
        return outputs


class MultiscaleDiscriminator(nn.Module):
    """``config.num_discriminators`` PatchGANs on [x, c, x_ex, c_ex], each at half the previous resolution.

    forward(x, c, x_ex, c_ex):
      x    (B,3,H,W)               image in [-1,1] (real or generated);
      c    (B,num_classes,H,W)     its one-hot label map;
      x_ex (B,3,He,We)             the exemplar image, any size: resized bilinearly to (H,W);
      c_ex (B,num_classes,He,We)   the exemplar's label map: resized (nearest) to (H,W).
    Returns one list per discriminator (finest first) of its n_layers + 1 layer outputs, the
    last being the patch prediction (B,1,h,w). Discriminator d sees the input average-pooled
    d times (kernel 3, stride 2, padding 1: a side s becomes ceil(s / 2)).

    Real and fake images are usually judged in one call by concatenating them along the batch
    (with the conditions repeated), which keeps batch-norm statistics shared between them.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        if not isinstance(config, ModelConfig):
            raise TypeError(f"config: expected a ModelConfig, got {type(config).__name__}")
        self.num_classes = config.num_classes
        self.in_channels = 2 * (3 + config.num_classes)
        self.discriminators = nn.ModuleList(
            NLayerDiscriminator(self.in_channels, config.ndf, config.discriminator_layers, config.discriminator_norm)
            for _ in range(config.num_discriminators)
        )

    def conditioned_input(self, x: Tensor, c: Tensor, x_ex: Tensor, c_ex: Tensor) -> Tensor:
        """The checked, exemplar-resized concatenation [x, c, x_ex, c_ex] (B, 6 + 2*num_classes, H, W)."""
        _check_pair("x", x, "c", c, self.num_classes)
        _check_pair("x_ex", x_ex, "c_ex", c_ex, self.num_classes)
        if x_ex.shape[0] != x.shape[0]:
            raise ValueError(
                f"x_ex: expected batch size {x.shape[0]} (as x), got shape {tuple(x_ex.shape)}"
            )
        size = tuple(x.shape[-2:])
        if tuple(x_ex.shape[-2:]) != size:
            x_ex = F.interpolate(x_ex, size=size, mode="bilinear", align_corners=False)
            c_ex = F.interpolate(c_ex, size=size, mode="nearest")  # stays one-hot
        return torch.cat([x, c, x_ex, c_ex], dim=1)

    def forward(self, x: Tensor, c: Tensor, x_ex: Tensor, c_ex: Tensor) -> list[list[Tensor]]:
        h = self.conditioned_input(x, c, x_ex, c_ex)
        outputs = []
        for index, discriminator in enumerate(self.discriminators):
            if index > 0:
                h = F.avg_pool2d(h, kernel_size=3, stride=2, padding=1, count_include_pad=False)
            outputs.append(discriminator(h))
        return outputs


def _check_pair(image_name: str, image: object, labels_name: str, labels: object, num_classes: int) -> None:
    """An image (B,3,H,W) and its one-hot label map (B,num_classes,H,W)."""
    image = check_image_batch(image_name, image)
    check_label_map(
        labels_name, labels, num_classes, batch=image.shape[0], size=tuple(image.shape[-2:]), like=image_name
    )
