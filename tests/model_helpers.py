"""Small model configurations and inputs shared by the model tests (random VGG, CPU-fast)."""

from __future__ import annotations

import warnings

import torch
from torch import Tensor

from msca_fast.models.config import ModelConfig
from msca_fast.models.generator import Generator
from msca_fast.models.labels import one_hot

NUM_CLASSES = 5


def tiny_config(**changes) -> ModelConfig:
    """A generator a few hundred kB large: every architectural path, none of the cost."""
    base = ModelConfig(
        num_classes=NUM_CLASSES,
        image_feature_channels=(8, 8, 8, 8, 8),
        label_feature_channels=(4, 4, 6, 6, 6),
        num_regions=(2, 3, 3, 3, 3),
        ngf=4,
        spade_hidden=8,
        vgg_weights="random",
        ndf=8,
    )
    return base.replace(**changes)


def tiny_generator(**changes) -> Generator:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the random-VGG warning
        return Generator(tiny_config(**changes))


def label_map(batch: int, height: int, width: int, seed: int = 0, num_classes: int = NUM_CLASSES) -> Tensor:
    """A blocky one-hot map (B,C,H,W): random class ids on an 8x8 grid, upsampled."""
    gen = torch.Generator().manual_seed(seed)
    coarse = torch.randint(0, num_classes, (batch, 1, 8, 8), generator=gen).float()
    ids = torch.nn.functional.interpolate(coarse, size=(height, width), mode="nearest")[:, 0].long()
    return one_hot(ids, num_classes)


def generator_inputs(batch: int = 2, size=(64, 64), exemplar_size=(48, 80), seed: int = 0):
    """(c1 (B,C,*size), x2 (B,3,*exemplar_size) in [-1,1], c2 (B,C,*exemplar_size))."""
    gen = torch.Generator().manual_seed(seed + 1)
    c1 = label_map(batch, *size, seed=seed)
    c2 = label_map(batch, *exemplar_size, seed=seed + 2)
    x2 = torch.rand(batch, 3, *exemplar_size, generator=gen) * 2 - 1
    return c1, x2, c2
