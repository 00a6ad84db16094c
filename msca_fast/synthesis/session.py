"""What the synthesis options mean for loading inputs: :class:`SynthesisConfig` opens a
:class:`Session`, one model plus the reading rules (sizes, don't-care id, exemplar parser)
applied to every file."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from msca_fast.data.image_io import Size
from msca_fast.synthesis.core import Exemplar
from msca_fast.synthesis.errors import InputError
from msca_fast.synthesis.exemplar_files import load_exemplar
from msca_fast.synthesis.exemplar_parser import Parser, load_exemplar_parser
from msca_fast.synthesis.label_files import load_label_map
from msca_fast.synthesis.model_file import LoadedModel, load_model
from msca_fast.visuals import save_picture


@dataclass(frozen=True)
class Session:
    """model: the loaded generator; target_size / exemplar_size: resize targets (None: as
    stored); dontcare: raw id of the last class in label files; parser: segments exemplars
    that come without a label map."""

    model: LoadedModel
    target_size: Size | None = None
    exemplar_size: Size | None = None
    dontcare: int | None = None
    parser: Parser | None = None
    parser_name: str = ""

    def labels(self, path: str | os.PathLike) -> Tensor:
        """A target label PNG -> one-hot (1,C,H,W) at ``target_size``."""
        return load_label_map(path, self.model.num_classes, self.target_size, self.dontcare)

    def exemplar(self, image: str | os.PathLike, label: str | os.PathLike | None) -> Exemplar:
        """An exemplar photo (+ label PNG, or the parser's labels) -> (x, c) at ``exemplar_size``.

        A ``label`` that does not exist is left to the parser when there is one.
        """
        if label is not None and self.parser is not None and not Path(label).exists():
            label = None
        return load_exemplar(
            image, label, self.model.num_classes, self.exemplar_size, self.dontcare, self.parser, self.parser_name
        )


@dataclass(frozen=True)
class SynthesisConfig:
    """checkpoint: a checkpoint_*.pt or a run folder (its newest checkpoint).
    raw_weights: the raw training generator instead of the EMA one.
    device: "auto" (CUDA when available), "cpu", "cuda:1", ...
    dontcare_label: the raw label id meaning the model's last class; "auto": as in training
        (255 for COCO-Stuff), None: no such id.
    size, exemplar_size: (H, W) to resize label maps / exemplars to; None: as stored (exemplar
        and label map must then agree).
    exemplar_parser: ``MODULE:CALLABLE`` segmenting exemplars without a label map.
    """

    checkpoint: str
    raw_weights: bool = False
    device: str = "auto"
    dontcare_label: int | None | str = "auto"
    size: Size | None = None
    exemplar_size: Size | None = None
    exemplar_parser: str | None = None

    def __post_init__(self) -> None:
        for name in ("size", "exemplar_size"):
            value = getattr(self, name)
            if value is not None and (len(value) != 2 or min(value) < 1):
                raise InputError(f"{name}: expected (H, W), positive, or None, got {value!r}")
        dontcare = self.dontcare_label
        if dontcare != "auto" and dontcare is not None and (not isinstance(dontcare, int) or dontcare < 0):
            raise InputError(f"dontcare_label: expected a non-negative id, 'auto' or None, got {dontcare!r}")


def open_session(config: SynthesisConfig) -> Session:
    """Load the model of ``config`` (and its exemplar parser): the session every command reads files with."""
    device = config.device if config.device != "auto" else "cuda" if torch.cuda.is_available() else "cpu"
    model = load_model(config.checkpoint, ema=not config.raw_weights, device=device)
    parser = None if config.exemplar_parser is None else load_exemplar_parser(config.exemplar_parser)
    return Session(
        model,
        target_size=config.size,
        exemplar_size=config.exemplar_size,
        dontcare=model.dontcare if config.dontcare_label == "auto" else config.dontcare_label,
        parser=parser,
        parser_name=config.exemplar_parser or "",
    )


def write_image(image: Tensor, path: str | os.PathLike) -> Path:
    """Save (3,H,W) or (1,3,H,W) in [-1,1]; the format follows the suffix. Returns the path."""
    path = Path(path)
    try:
        save_picture(image, path)
    except (ValueError, OSError) as error:  # unknown suffix, unwritable folder, ...
        raise InputError(f"cannot write {str(path)!r}: {error}") from error
    return path
