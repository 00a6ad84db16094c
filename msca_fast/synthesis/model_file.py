"""A trained generator read from a checkpoint, with the facts the command line needs about it."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch

from msca_fast.data.catalog import DatasetOptions
from msca_fast.models.generator import Generator
from msca_fast.synthesis.errors import InputError
from msca_fast.training.checkpoint import load_checkpoint, load_generator, resolve_checkpoint


@dataclass(frozen=True)
class LoadedModel:
    """generator: in eval mode on ``device``; dontcare: the raw id that means class
    num_classes - 1 in label files, as the training data set made it (None: ids are classes
    as they are); dataset: the training data set's name; size: its global (whole-image) size."""

    generator: Generator
    path: Path
    num_classes: int
    dontcare: int | None
    dataset: str = "synthetic"
    size: int = 64


def load_model(source: str | os.PathLike, ema: bool = True, device: str = "cpu") -> LoadedModel:
    """The (EMA, unless ``ema=False``) generator of a checkpoint file or run folder.

    Raises :class:`InputError` for a missing path, a file that is no msca-fast training
    checkpoint, a checkpoint whose weights do not fit its own model configuration, and one
    whose frozen VGG-19 weights are not on this machine.
    """
    path = Path(source)
    try:  # their errors are one line naming the file
        file = resolve_checkpoint(path)
        state = load_checkpoint(file)
        generator = load_generator(state, ema=ema, name=f"checkpoint {str(file)!r}")
    except (FileNotFoundError, ValueError) as error:
        raise InputError(str(error)) from error
    try:
        generator = generator.to(torch.device(device))
    except (RuntimeError, ValueError, AssertionError) as error:  # no such device, no CUDA build
        raise InputError(f"device: cannot use {device!r}: {_short(error)}") from error
    saved = state.get("train_config") or {}
    data = DatasetOptions.from_train_config(saved)
    size = int(saved.get("global_size", LoadedModel.size))
    return LoadedModel(generator, path, generator.config.num_classes, data.dontcare_id, data.dataset, size)


def _short(error: BaseException, limit: int = 300) -> str:
    """The first two lines of an error message, at most ``limit`` characters (torch's can be paragraphs)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    text = " ".join(lines[:2]) if lines else type(error).__name__
    return text if len(text) <= limit else text[: limit - 3].rstrip() + "..."
