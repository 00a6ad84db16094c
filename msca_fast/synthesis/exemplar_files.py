"""Exemplar photos and their label maps from files -> (x, c) for a given model.

Sizes: with ``size`` (h, w) both the photo and its label map are resized to it, as the data
sets resize theirs (:mod:`msca_fast.data.image_io`: bicubic for the photo, nearest for the
ids). Without it they must already agree: resizing only one of them would silently misalign
the regions, so a mismatch is an error that suggests ``--exemplar-size``.
"""

from __future__ import annotations

import os
from pathlib import Path

from torch import Tensor

from msca_fast.data.image_io import Size, load_image
from msca_fast.synthesis.core import Exemplar
from msca_fast.synthesis.errors import InputError
from msca_fast.synthesis.exemplar_parser import Parser, run_exemplar_parser
from msca_fast.synthesis.label_files import check_side, ids_to_one_hot, read_ids


def load_photo(path: str | os.PathLike, size: Size | None = None) -> Tensor:
    """An image file -> (1,3,H,W) in [-1,1], resized to ``size`` if given."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"no such exemplar image {str(path)!r}")
    try:
        return load_image(path, size)[None]
    except ValueError as error:  # CorruptFileError: names the file
        raise InputError(str(error)) from error


def load_exemplar(
    image_path: str | os.PathLike,
    label_path: str | os.PathLike | None,
    num_classes: int,
    size: Size | None = None,
    dontcare: int | None = None,
    parser: Parser | None = None,
    parser_name: str = "",
) -> Exemplar:
    """(x (1,3,H,W) in [-1,1], c (1,num_classes,H,W) one-hot) from a photo and its label PNG,
    or from the photo and ``parser``'s segmentation of it when ``label_path`` is None."""
    image = load_photo(image_path, size)
    source = f"exemplar {str(image_path)!r}"
    check_side(source, tuple(image.shape[-2:]))
    if label_path is not None:
        ids = read_ids(label_path, size)
        label_source = f"exemplar label map {str(label_path)!r}"
        if tuple(ids.shape) != tuple(image.shape[-2:]):
            raise InputError(
                f"{label_source} is {ids.shape[0]}x{ids.shape[1]} but {source} is "
                f"{image.shape[-2]}x{image.shape[-1]}; they must match pixel for pixel, "
                "or pass --exemplar-size to resize both"
            )
    elif parser is not None:
        ids = run_exemplar_parser(parser, image, source)
        label_source = f"the labels --exemplar-parser {parser_name} gave {source}"
    else:
        raise InputError(
            f"{source} has no label map: the model needs the exemplar's semantic labels. Pass "
            "--exemplar-label (a PNG with one class id per pixel, the exemplar's size) or "
            "--exemplar-parser MODULE:CALLABLE (a function image (1,3,H,W) in [-1,1] -> class ids (H,W))"
        )
    return image, ids_to_one_hot(ids, num_classes, dontcare, label_source)
