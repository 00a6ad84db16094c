"""Training losses of Eq. 11 (hinge GAN, SPADE's feature matching and VGG losses) and the style metric.

Discriminator outputs are what :class:`msca_fast.models.discriminator.MultiscaleDiscriminator`
returns: one list per discriminator of its layer outputs, the last being the patch prediction.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from msca_fast.image_checks import check_image_pair
from msca_fast.models.vgg import PERCEPTUAL_LAYERS, PERCEPTUAL_WEIGHTS, VGG19

DOutputs = Sequence[Sequence[Tensor]]


# --- adversarial --------------------------------------------------------------------------


def hinge_d_loss(real_outputs: DOutputs, fake_outputs: DOutputs) -> Tensor:
    """Discriminator hinge loss, averaged over the discriminators (scalar).

    mean_d [ mean(relu(1 - real_pred_d)) + mean(relu(1 + fake_pred_d)) ], with pred_d the
    last output of discriminator d; real and fake predictions must have the same shapes. The
    fake images should be detached from the generator.
    """
    real = _predictions("real_outputs", real_outputs)
    fake = _predictions("fake_outputs", fake_outputs)
    _check_same_count("real_outputs", real, "fake_outputs", fake)
    for d, (r, f) in enumerate(zip(real, fake)):
        if r.shape != f.shape:
            raise ValueError(
                f"real_outputs[{d}][-1] and fake_outputs[{d}][-1]: expected predictions of the same shape, "
                f"got {tuple(r.shape)} and {tuple(f.shape)}"
            )
    losses = [F.relu(1 - r).mean() + F.relu(1 + f).mean() for r, f in zip(real, fake)]
    return torch.stack(losses).mean()


def hinge_g_loss(fake_outputs: DOutputs) -> Tensor:
    """Generator hinge loss: mean_d [ -mean(fake_pred_d) ] (scalar)."""
    fake = _predictions("fake_outputs", fake_outputs)
    return torch.stack([-f.mean() for f in fake]).mean()


def feature_matching_loss(real_outputs: DOutputs, fake_outputs: DOutputs, weight: float = 10.0) -> Tensor:
    """SPADE's GAN feature-matching loss (scalar).

    weight / num_D * sum_d sum_l L1(fake_d[l], real_d[l].detach()) over every layer l but the
    last (the prediction); L1 is the mean absolute difference. No gradient reaches the real
    features, so this term trains the generator only.
    """
    real = _outputs("real_outputs", real_outputs)
    fake = _outputs("fake_outputs", fake_outputs)
    _check_same_shapes("real_outputs", real, "fake_outputs", fake)
    total = sum(
        F.l1_loss(f, r.detach()) for real_d, fake_d in zip(real, fake) for r, f in zip(real_d[:-1], fake_d[:-1])
    )
    if not isinstance(total, Tensor):  # outputs holding only predictions
        total = fake[0][-1].new_zeros(())
    return total * (weight / len(fake))


# --- perceptual ---------------------------------------------------------------------------


def _check_vgg(vgg: VGG19 | None, weights: str | os.PathLike, layers: Sequence[str]) -> VGG19:
    """``vgg`` if it taps every one of ``layers`` (so one VGG can be shared), else a new VGG19(layers)."""
    if vgg is None:
        return VGG19(layers, weights)
    if not isinstance(vgg, VGG19):
        raise TypeError(f"vgg: expected a msca_fast.models.vgg.VGG19 or None, got {type(vgg).__name__}")
    missing = [name for name in layers if name not in vgg.layers]
    if missing:
        raise ValueError(f"vgg: its layers {list(vgg.layers)} lack {missing}, which this loss needs")
    return vgg


class VGGLoss(nn.Module):
    """SPADE's perceptual loss: weight * sum_l w_l * L1(VGG_l(fake), VGG_l(real)) (scalar).

    Layers relu1_1 .. relu5_1 with w_l = 1/32, 1/16, 1/8, 1/4, 1 (:data:`PERCEPTUAL_LAYERS`,
    :data:`PERCEPTUAL_WEIGHTS`); L1 is the mean absolute difference. No gradient reaches
    ``real``. ``vgg`` may be a VGG19 shared with another module, as long as it taps these
    layers (it may tap others too); ``weights`` is used only when ``vgg`` is None.

    forward(fake (B,3,H,W), real (B,3,H,W), both in [-1,1]) -> scalar.
    """

    def __init__(self, vgg: VGG19 | None = None, weights: str | os.PathLike = "imagenet", weight: float = 10.0) -> None:
        super().__init__()
        self.vgg = _check_vgg(vgg, weights, PERCEPTUAL_LAYERS)
        self.positions = tuple(self.vgg.layers.index(name) for name in PERCEPTUAL_LAYERS)
        self.layer_weights = PERCEPTUAL_WEIGHTS
        self.weight = weight

    def forward(self, fake: Tensor, real: Tensor) -> Tensor:
        check_image_pair("fake", fake, "real", real)
        fake_features = self.vgg(fake)
        with torch.no_grad():
            real_features = self.vgg(real)
        total = sum(
            w * F.l1_loss(fake_features[p], real_features[p]) for w, p in zip(self.layer_weights, self.positions)
        )
        return self.weight * total


# --- style metric -------------------------------------------------------------------------


def gram_matrix(features: Tensor) -> Tensor:
    """Gram matrices (B,C,C) of feature maps (B,C,H,W): G[b,i,j] = sum_p F[b,i,p] F[b,j,p] / (C*H*W).

    Half-precision inputs are computed in float32: sums over H*W products overflow or lose
    most of their precision in 16 bits.
    """
    if not isinstance(features, Tensor):
        raise TypeError(f"features: expected a tensor (B, C, H, W), got {type(features).__name__}")
    if features.dim() != 4:
        raise ValueError(f"features: expected a 4-D tensor (B, C, H, W), got shape {tuple(features.shape)}")
    if features.dtype in (torch.float16, torch.bfloat16):
        features = features.float()
    batch, channels, height, width = features.shape
    flat = features.reshape(batch, channels, height * width)
    return torch.bmm(flat, flat.transpose(1, 2)) / (channels * height * width)


class StyleLoss(nn.Module):
    """The style loss of Gatys et al. (the paper's L_style metric), per image.

    L_style(x, y)[b] = sum_l mean_{i,j} (G_l(x)[b,i,j] - G_l(y)[b,i,j])**2, where G_l is
    :func:`gram_matrix` of VGG-19 layer l (normalised by C_l*H_l*W_l) and l runs over
    ``layers`` (default relu1_1 .. relu5_1, equally weighted). The paper does not give its
    normalisation, so values compare across runs of this implementation, not with its Table 1.
    Symmetric in x and y, zero when they are equal; gradients reach both.

    forward(x (B,3,H,W), y (B,3,H,W), both in [-1,1]) -> (B,).
    """

    def __init__(
        self,
        vgg: VGG19 | None = None,
        weights: str | os.PathLike = "imagenet",
        layers: Sequence[str] = PERCEPTUAL_LAYERS,
    ) -> None:
        super().__init__()
        self.layers = tuple(layers)
        if not self.layers:
            raise ValueError("layers: expected at least one VGG-19 layer name, got none")
        self.vgg = _check_vgg(vgg, weights, self.layers)
        self.positions = tuple(self.vgg.layers.index(name) for name in self.layers)

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        check_image_pair("x", x, "y", y)
        x_features, y_features = self.vgg(x), self.vgg(y)
        per_layer = [
            (gram_matrix(x_features[p]) - gram_matrix(y_features[p])).square().mean(dim=(1, 2)) for p in self.positions
        ]
        return torch.stack(per_layer).sum(dim=0)


# --- input checks -------------------------------------------------------------------------


def _outputs(name: str, outputs: object) -> list[list[Tensor]]:
    """Discriminator outputs as lists: a non-empty list per discriminator of tensors."""
    expected = "one list of layer outputs (tensors) per discriminator"
    if isinstance(outputs, Tensor) or not isinstance(outputs, Sequence) or len(outputs) == 0:
        raise TypeError(f"{name}: expected {expected}, got {type(outputs).__name__}")
    result = []
    for d, features in enumerate(outputs):
        if isinstance(features, Tensor) or not isinstance(features, Sequence) or len(features) == 0:
            raise TypeError(f"{name}[{d}]: expected {expected}, got {type(features).__name__}")
        for layer, feature in enumerate(features):
            if not isinstance(feature, Tensor):
                raise TypeError(f"{name}[{d}][{layer}]: expected a tensor, got {type(feature).__name__}")
        result.append(list(features))
    return result


def _predictions(name: str, outputs: object) -> list[Tensor]:
    """The last output (the patch prediction) of each discriminator."""
    return [features[-1] for features in _outputs(name, outputs)]


def _check_same_count(real_name: str, real: list, fake_name: str, fake: list) -> None:
    if len(real) != len(fake):
        raise ValueError(
            f"{real_name} and {fake_name}: expected outputs of the same discriminators, "
            f"got {len(real)} and {len(fake)} lists"
        )


def _check_same_shapes(real_name: str, real: list[list[Tensor]], fake_name: str, fake: list[list[Tensor]]) -> None:
    _check_same_count(real_name, real, fake_name, fake)
    for d, (real_d, fake_d) in enumerate(zip(real, fake)):
        if len(real_d) != len(fake_d):
            raise ValueError(
                f"{real_name}[{d}] and {fake_name}[{d}]: expected as many layer outputs, "
                f"got {len(real_d)} and {len(fake_d)}"
            )
        for layer, (r, f) in enumerate(zip(real_d, fake_d)):
            if r.shape != f.shape:
                raise ValueError(
                    f"{real_name}[{d}][{layer}] and {fake_name}[{d}][{layer}]: expected the same shape, "
                    f"got {tuple(r.shape)} and {tuple(f.shape)}"
                )
