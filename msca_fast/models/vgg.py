"""The frozen VGG-19 shared by the feature pyramid (Eq. 1), the perceptual loss and the style loss.

Pretrained weights (:data:`VGG19_SOURCE`) come, in the order :mod:`msca_fast.pretrained` gives,
from: a file path given as ``weights``; the ``MSCA_FAST_VGG19_WEIGHTS`` environment variable
(for ``weights="imagenet"``); the torch hub cache
(``<torch.hub.get_dir()>/checkpoints/vgg19-dcbb9e9d.pth``, where torchvision keeps it too);
a download into that cache. When none works :class:`msca_fast.errors.WeightsUnavailable`
says how to provide them. ``weights="random"`` is an explicit opt-in to random initialisation
(tests, offline demos; always drawn from :data:`RANDOM_SEED`) and warns, because features from
a random VGG mean nothing perceptually.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence

import torch
import torchvision
from torch import Tensor, nn

from msca_fast.pretrained import WeightSource, find_weights_file, load_state_dict_file

# Index of each ReLU in torchvision's vgg19().features.
LAYER_INDEX = {
    "relu1_1": 1, "relu1_2": 3,
    "relu2_1": 6, "relu2_2": 8,
    "relu3_1": 11, "relu3_2": 13, "relu3_3": 15, "relu3_4": 17,
    "relu4_1": 20, "relu4_2": 22, "relu4_3": 24, "relu4_4": 26,
    "relu5_1": 29, "relu5_2": 31, "relu5_3": 33, "relu5_4": 35,
}  # fmt: skip
LAYER_CHANNELS = {name: 64 * 2 ** min(int(name[4]) - 1, 3) for name in LAYER_INDEX}
# One map per scale i = 0..4 at 1/2**i resolution: the last ReLU before each pooling.
PYRAMID_LAYERS = ("relu1_2", "relu2_2", "relu3_4", "relu4_4", "relu5_4")
# NVlabs/SPADE's perceptual loss layers and their weights 1/32 .. 1.
PERCEPTUAL_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
PERCEPTUAL_WEIGHTS = (1 / 32, 1 / 16, 1 / 8, 1 / 4, 1.0)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# weights="random" draws the VGG from this seed, so a checkpoint can record the seed instead
# of 80 MB of random weights.
RANDOM_SEED = 0
VGG19_SOURCE = WeightSource(
    name="ImageNet VGG-19 weights",
    detail="torchvision's VGG19_Weights.IMAGENET1K_V1: a full vgg19() state_dict or that of its .features",
    urls=(torchvision.models.VGG19_Weights.IMAGENET1K_V1.url,),
    env_var="MSCA_FAST_VGG19_WEIGHTS",
    argument="vgg_weights",
    flag="--vgg-weights",
    fallback=(
        "for tests and offline demos only, vgg_weights='random' (--vgg-weights random): a random VGG, "
        "whose perceptual features, losses and metrics are meaningless"
    ),
)


def _pretrained_state_dict(weights: str | os.PathLike) -> dict[str, Tensor]:
    """The state_dict of "imagenet" (looked for as :mod:`msca_fast.pretrained` says) or of a file path."""
    path = find_weights_file(
        VGG19_SOURCE, None if weights == "imagenet" else weights, allow_download=True, progress=True
    )
    return load_state_dict_file(path, VGG19_SOURCE.argument)


def _features_only(state: dict[str, Tensor], keep: int) -> dict[str, Tensor]:
    """Keys of vgg19().features[:keep] from a full-model or features-only state_dict."""
    if any(key.startswith("features.") for key in state):
        state = {key[len("features.") :]: value for key, value in state.items() if key.startswith("features.")}
    return {key: value for key, value in state.items() if int(key.split(".")[0]) < keep}


def vgg19_feature_layers(seed: int | None = None) -> nn.Sequential:
    """Layers laid out (and indexed) as torchvision's vgg19().features, with its initialisation,
    built without the 120M-parameter classifier. With a ``seed`` the initialisation is drawn
    from that seed alone (the global RNG is left as it was), so the same seed gives the same
    weights, and the first n layers do not depend on how many are kept."""
    if seed is not None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return vgg19_feature_layers()
    layers: list[nn.Module] = []
    in_channels = 3
    for block, convs in enumerate((2, 2, 4, 4, 4)):
        out_channels = 64 * 2 ** min(block, 3)
        for _ in range(convs):
            conv = nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1)
            nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(conv.bias)
            layers += [conv, nn.ReLU()]
            in_channels = out_channels
        layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
    return nn.Sequential(*layers)


def load_vgg19_features(weights: str | os.PathLike, last_layer: str = "relu5_4") -> nn.Sequential:
    """torchvision's vgg19().features up to ``last_layer``, frozen (requires_grad False).

    weights: "imagenet" (pretrained; see the module docstring for where from), "random"
    (random initialisation, with a warning), "none" (random, silently: the caller loads a
    state_dict next, e.g. when rebuilding a model from a checkpoint), or a file path.
    """
    if last_layer not in LAYER_INDEX:
        raise ValueError(f"last_layer: expected one of {list(LAYER_INDEX)}, got {last_layer!r}")
    keep = LAYER_INDEX[last_layer] + 1
    if weights == "random":
        warnings.warn(
            "vgg_weights='random': the VGG-19 is randomly initialised; perceptual features, losses and "
            "metrics computed with it are meaningless (fine for tests and offline demos)",
            stacklevel=2,
        )
    features = vgg19_feature_layers(RANDOM_SEED if weights == "random" else None)[:keep]
    if weights not in ("random", "none"):
        features.load_state_dict(vgg19_weights(weights, keep))
    features.requires_grad_(False)
    return features.eval()


def vgg19_weights(weights: str | os.PathLike, num_layers: int, seed: int = RANDOM_SEED) -> dict[str, Tensor]:
    """The state_dict of vgg19().features[:num_layers] that ``weights`` names: "imagenet" or a
    file path (see the module docstring), or "random" (drawn from ``seed``, as
    :func:`load_vgg19_features` draws it)."""
    if weights == "random":
        return vgg19_feature_layers(seed)[:num_layers].state_dict()
    return _features_only(_pretrained_state_dict(weights), num_layers)


class VGG19(nn.Module):
    """Frozen VGG-19 returning the activations of ``layers``.

    forward(x (B,3,H,W) in [-1,1]) -> [activation (B,C_l,H/2**s,W/2**s) for each layer l],
    where s is the number of poolings before l and C_l is :data:`LAYER_CHANNELS` [l].
    Always in eval mode; its parameters never require gradients (gradients still flow to x).
    """

    def __init__(self, layers: Sequence[str] = PYRAMID_LAYERS, weights: str | os.PathLike = "imagenet") -> None:
        super().__init__()
        unknown = [name for name in layers if name not in LAYER_INDEX]
        if unknown or not layers:
            raise ValueError(f"layers: expected names from {list(LAYER_INDEX)}, got {list(layers)}")
        self.layers = tuple(layers)
        self.indices = tuple(LAYER_INDEX[name] for name in self.layers)
        last = max(self.layers, key=LAYER_INDEX.__getitem__)
        self.features = load_vgg19_features(weights, last)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    @property
    def channels(self) -> tuple[int, ...]:
        return tuple(LAYER_CHANNELS[name] for name in self.layers)

    def train(self, mode: bool = True) -> VGG19:
        return super().train(False)  # frozen: never in training mode

    def forward(self, x: Tensor) -> list[Tensor]:
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"x: expected an image batch (B, 3, H, W) in [-1, 1], got shape {tuple(x.shape)}")
        h = ((x + 1) / 2 - self.mean.to(x.dtype)) / self.std.to(x.dtype)
        taps = dict.fromkeys(self.indices)
        for index, module in enumerate(self.features):
            h = module(h)
            if index in taps:
                taps[index] = h
        return [taps[index] for index in self.indices]
