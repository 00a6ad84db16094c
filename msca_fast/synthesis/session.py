"""What the command line's options mean for loading inputs: one model plus the reading rules
(sizes, don't-care id, exemplar parser) applied to every file."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from torch import Tensor

from msca_fast.data.image_io import save_image
from msca_fast.synthesis.core import Exemplar
from msca_fast.synthesis.errors import InputError
from msca_fast.synthesis.exemplar_files import load_exemplar
from msca_fast.synthesis.exemplar_parser import Parser
from msca_fast.synthesis.label_files import Size, load_label_map
from msca_fast.synthesis.model_file import LoadedModel


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


def write_image(image: Tensor, path: str | os.PathLike) -> Path:
    """Save (3,H,W) or (1,3,H,W) in [-1,1]; the format follows the suffix. Returns the path."""
    path = Path(path)
    try:
        save_image(image.cpu(), path)
    except (ValueError, OSError) as error:  # unknown suffix, unwritable folder, ...
        raise InputError(f"cannot write {str(path)!r}: {error}") from error
    return path
