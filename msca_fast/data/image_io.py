"""Reading images and label maps as tensors, and the one resize of each.

Images are RGB float32 tensors (3,H,W) in [-1, 1]; label maps are int64 tensors (H,W) of the
raw ids stored in the file (what the ids mean is the data set's business, see ``folders``).
Sizes are (height, width). Photos are resized as they are read (:func:`load_image`), label
ids by :func:`resize_label_ids`; pictures are written by :func:`msca_fast.visuals.save_picture`.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor

# PIL modes whose pixel values are the label ids themselves. A palette ("P") image stores
# ids as palette indices: reading the indices gives the ids, converting to RGB would not.
_ID_MODES = ("L", "P", "I", "I;16", "I;16B", "I;16L", "I;16N", "1")

# What PIL raises for a truncated, garbled or unsupported file.
_READ_ERRORS = (OSError, SyntaxError, ValueError, UnidentifiedImageError, Image.DecompressionBombError)

Size = tuple[int, int]  # (height, width)


class CorruptFileError(ValueError):
    """A file that exists in the data set but cannot be decoded (or cannot be opened)."""

    def __init__(self, path: str | os.PathLike, reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"cannot read {self.path}: {reason}")

    def __reduce__(self):  # keeps the (path, reason) signature when sent from a DataLoader worker
        return type(self), (self.path, self.reason)


def load_image(path: str | os.PathLike, size: Size | None = None) -> Tensor:
    """An image file -> (3,H,W) float32 RGB in [-1, 1]; (3,*size) when ``size`` (h, w) is given.

    The resize, the one for photos, is bicubic (with PIL's antialiasing when shrinking) and
    ignores the aspect ratio. Raises :class:`CorruptFileError` when the file cannot be opened
    or decoded.
    """
    if size is not None:
        height, width = _checked_size(size)
    try:
        with Image.open(path) as file:
            image = file.convert("RGB")  # decodes the whole file: truncation surfaces here
        if size is not None:
            image = image.resize((width, height), Image.Resampling.BICUBIC)  # PIL: (width, height)
    except _READ_ERRORS as error:
        raise CorruptFileError(path, _describe(error)) from error
    # numpy rather than torch: small element-wise ops stay single-threaded and fast
    pixels = np.asarray(image, dtype=np.float32).transpose(2, 0, 1) / np.float32(127.5) - np.float32(1.0)
    return torch.from_numpy(np.ascontiguousarray(pixels))


def load_label_ids(path: str | os.PathLike, size: Size | None = None) -> Tensor:
    """A single-channel or palette PNG -> (H,W) int64 raw ids; ``size`` (h, w) when given.

    The resize is :func:`resize_label_ids`'s.
    Raises :class:`CorruptFileError` when the file cannot be opened or decoded, and
    ``ValueError`` when it decodes to a colour image (ids must be stored one per pixel).
    """
    try:
        with Image.open(path) as file:
            mode = file.mode
            if mode not in _ID_MODES:
                raise _WrongLabelMode(mode)
            ids = np.array(file)  # palette images give their indices, not colours
    except _WrongLabelMode as wrong:
        raise ValueError(
            f"{path}: label maps must store one class id per pixel (a grayscale or palette PNG), "
            f"got PIL mode {wrong.mode!r}; colour-coded label maps must be converted to ids first"
        ) from None
    except _READ_ERRORS as error:
        raise CorruptFileError(path, _describe(error)) from error
    labels = torch.from_numpy(ids.astype(np.int64))
    return labels if size is None else resize_label_ids(labels, size)


def resize_label_ids(labels: Tensor, size: Size) -> Tensor:
    """Nearest-neighbour resize of ids (H,W) -> ``size`` (h, w): each output pixel takes the input
    pixel under its centre, so ids are never blended."""
    out_height, out_width = _checked_size(size)
    height, width = labels.shape
    if (height, width) == (out_height, out_width):
        return labels
    rows = np.minimum(((np.arange(out_height) + 0.5) * (height / out_height)).astype(np.int64), height - 1)
    cols = np.minimum(((np.arange(out_width) + 0.5) * (width / out_width)).astype(np.int64), width - 1)
    return torch.from_numpy(labels.numpy()[rows[:, None], cols[None, :]])


def _checked_size(size: Size) -> Size:
    if not (isinstance(size, (tuple, list)) and len(size) == 2
            and all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in size)):  # fmt: skip
        raise ValueError(f"size: expected (height, width), two positive ints, got {size!r}")
    return int(size[0]), int(size[1])


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


class _WrongLabelMode(Exception):
    def __init__(self, mode: str) -> None:
        self.mode = mode
