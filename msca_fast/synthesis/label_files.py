"""Label-map files (one class id per pixel) -> one-hot maps for a given model, checked."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import Tensor

from msca_fast.data.image_io import Size, load_label_ids
from msca_fast.image_checks import MIN_SIDE
from msca_fast.models.labels import one_hot
from msca_fast.synthesis.errors import InputError

_LISTED = 10  # bad ids named in a message


def ids_to_one_hot(ids: Tensor, num_classes: int, dontcare: int | None, source: str) -> Tensor:
    """Raw ids (H,W) -> one-hot (1,num_classes,H,W).

    With ``dontcare`` set (as in training), that raw id is class num_classes - 1 and the
    other ids must be below it. Raises :class:`InputError` naming ``source`` and the bad ids.
    """
    ids = ids.long()
    limit = num_classes if dontcare is None else num_classes - 1
    is_dontcare = torch.zeros_like(ids, dtype=torch.bool) if dontcare is None else ids == dontcare
    bad = ~is_dontcare & ((ids < 0) | (ids >= limit))
    if bool(bad.any()):
        found = sorted(ids[bad].unique().tolist())
        shown = ", ".join(map(str, found[:_LISTED])) + (f", ... ({len(found)} in all)" if len(found) > _LISTED else "")
        allowed = f"0..{limit - 1}" + ("" if dontcare is None else f" and the don't-care id {dontcare}")
        raise InputError(
            f"{source}: class ids {shown} are not classes of this model (num_classes={num_classes}: ids {allowed}); "
            "is the label map from the data set the model was trained on?"
            + ("" if dontcare is not None else " (a don't-care id can be made the last class with --dontcare-label)")
        )
    ids = torch.where(is_dontcare, torch.full_like(ids, num_classes - 1), ids)
    return one_hot(ids[None], num_classes)


def check_side(source: str, size: Size) -> None:
    """The generator's minimum size, as an :class:`InputError` naming ``source``."""
    if min(size) < MIN_SIDE:
        raise InputError(
            f"{source} is {size[0]}x{size[1]} pixels; the generator needs at least {MIN_SIDE} per side "
            "(resize it with --size / --exemplar-size)"
        )


def read_ids(path: str | os.PathLike, size: Size | None = None) -> Tensor:
    """A label PNG -> raw ids (H,W) int64, resized (nearest) to ``size`` if given."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"no such label map {str(path)!r}")
    try:
        return load_label_ids(path, size)
    except ValueError as error:  # CorruptFileError included; messages name the file
        raise InputError(str(error)) from error


def load_label_map(
    path: str | os.PathLike, num_classes: int, size: Size | None = None, dontcare: int | None = None
) -> Tensor:
    """A label PNG -> one-hot (1,num_classes,H,W) (or (1,num_classes,*size)), ids checked."""
    ids = read_ids(path, size)
    check_side(f"label map {str(path)!r}", tuple(ids.shape))
    return ids_to_one_hot(ids, num_classes, dontcare, f"label map {str(path)!r}")
