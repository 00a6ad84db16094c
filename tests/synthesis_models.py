"""Generators, checkpoint files and input files for the tests of the synthesis options.

A freshly initialised tiny generator paints near-grey images that barely depend on the
exemplar (a mean change of 3e-4 between two scenes' styles) and hardly at all on the
exemplar's label map (5e-6), too little to tell one input from another through an 8-bit PNG.
:func:`responsive_generator` scales three of its layers so that the exemplar photo, the
exemplar's labels and the layout each move the output by several grey levels; no training is
needed for tests that compare one synthesis path with another.
"""

from __future__ import annotations

import copy
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from msca_fast.data.synthetic import NUM_CLASSES, SyntheticScenes
from msca_fast.models.generator import Generator
from msca_fast.training import frozen_vgg
from msca_fast.training.checkpoint import save_checkpoint
from msca_fast.visuals import save_picture

from model_helpers import tiny_generator

SIZE = 32  # every scene and label map, square
GREY_LEVEL = 1 / 127.5  # one step of an 8-bit PNG, in [-1, 1] units


def responsive_generator(seed: int = 0) -> Generator:
    """A tiny generator for the synthetic scenes' 12 classes, in eval mode, with the CPU presets'
    attention logit scale (20), and its image features' 1x1 compressions 10x, its label
    features' 1x1 convolutions 3x and its output layer 5x their initial weights."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        g = tiny_generator(num_classes=NUM_CLASSES, attention_logit_scale=20.0)
    with torch.no_grad():
        for compress in g.image_pyramid.compress:
            compress.weight.mul_(10.0)
        for conv in g.label_pyramid.convs:
            conv.weight.mul_(3.0)
        g.to_image.weight.mul_(5.0)
    return g.eval()


def perturbed_copy(g: Generator, seed: int = 1, scale: float = 0.3) -> Generator:
    """A copy of ``g`` with every trainable weight (not the frozen VGG) moved by Gaussian noise
    of ``scale`` times that tensor's standard deviation (times |value| + 0.1 for one-element tensors)."""
    moved = copy.deepcopy(g)
    noise = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, weight in moved.named_parameters():
            if name.startswith(frozen_vgg.PREFIX):
                continue
            spread = weight.std() if weight.numel() > 1 else weight.abs() + 0.1
            weight.add_(torch.randn(weight.shape, generator=noise) * scale * spread)
    return moved.eval()


def write_checkpoint(directory: Path, raw: Generator, ema: Generator) -> Path:
    """A checkpoint file in ``directory`` with ``raw`` as the training generator and ``ema`` as
    its EMA copy, in the entries training writes (model config, both generators without the
    VGG, the VGG's source record), written by the project's own save_checkpoint."""
    state = {
        "model_config": ema.config.to_dict(),
        "generator": frozen_vgg.without_vgg(raw.state_dict()),
        "generator_ema": frozen_vgg.without_vgg(ema.state_dict()),
        **frozen_vgg.checkpoint_entry("random", ema, None),
    }
    return save_checkpoint(state, directory, step=1)


def scene_files(folder: Path, count: int, seed: int = 3) -> SimpleNamespace:
    """``count`` synthetic scenes written as ``folder/labels/scene<i>.png`` (class ids) and
    ``folder/photos/scene<i>.png``; returns (labels_dir, photos_dir, label(i), photo(i))."""
    scenes = SyntheticScenes(num_images=count, size=SIZE, seed=seed)
    labels_dir, photos_dir = folder / "labels", folder / "photos"
    labels_dir.mkdir(parents=True)
    photos_dir.mkdir(parents=True)
    for i in range(count):
        item = scenes[i]
        Image.fromarray(item["label"].numpy().astype(np.uint8)).save(labels_dir / f"scene{i}.png")
        save_picture(item["image"], photos_dir / f"scene{i}.png")
    return SimpleNamespace(
        labels_dir=labels_dir,
        photos_dir=photos_dir,
        label=lambda i: labels_dir / f"scene{i}.png",
        photo=lambda i: photos_dir / f"scene{i}.png",
    )


def read_labels(path: Path) -> Tensor:
    """A class-id PNG -> one-hot (1,12,H,W), read with PIL and numpy only."""
    ids = torch.from_numpy(np.array(Image.open(path)).astype(np.int64))
    return torch.nn.functional.one_hot(ids, NUM_CLASSES).permute(2, 0, 1)[None].float()


def read_photo(path: Path) -> Tensor:
    """An RGB PNG -> (1,3,H,W) in [-1,1], read with PIL and numpy only."""
    pixels = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 127.5 - 1.0
    return torch.from_numpy(pixels).permute(2, 0, 1)[None].contiguous()


def read_png(path: Path) -> Tensor:
    """An RGB PNG -> (3,H,W) int16 grey levels 0..255."""
    return torch.from_numpy(np.asarray(Image.open(path).convert("RGB")).astype(np.int16)).permute(2, 0, 1)


def grey_levels(image: Tensor) -> Tensor:
    """An image (3,H,W) or (1,3,H,W) in [-1,1] -> int16 grey levels 0..255, as a PNG stores it."""
    image = image[0] if image.dim() == 4 else image
    return ((image.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.int16)


def tile(grid: Tensor, row: int, column: int, size: tuple[int, int], padding: int = 2) -> Tensor:
    """The tile at (row, column) of a grid of ``size`` tiles with ``padding`` pixels around each
    (torchvision's make_grid layout): (C, *size)."""
    top, left = padding + row * (size[0] + padding), padding + column * (size[1] + padding)
    return grid[..., top : top + size[0], left : left + size[1]]


def synthesis_scenes(root: Path, count: int) -> SimpleNamespace:
    """What the synthesis-option tests start from: ``g`` (:func:`responsive_generator`), its
    checkpoint under ``root/run`` (raw and EMA both ``g``), ``count`` scenes as ``files``
    (:func:`scene_files`) and read back from them: ``labels[i]`` (1, C, H, W) one-hot and
    ``photos[i]`` (1, 3, H, W) in [-1, 1]."""
    g = responsive_generator()
    files = scene_files(root, count)
    return SimpleNamespace(
        root=root,
        g=g,
        checkpoint=write_checkpoint(root / "run", raw=g, ema=g),
        files=files,
        labels=[read_labels(files.label(i)) for i in range(count)],
        photos=[read_photo(files.photo(i)) for i in range(count)],
    )
