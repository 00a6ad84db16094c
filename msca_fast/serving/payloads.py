"""The studio's request bodies checked and turned into tensors; every failure is a
:class:`BadRequest` with an HTTP status and one line that names the field and what was expected.

A layout is ``{"height": H, "width": W, "ids": [H*W class ids, row by row]}``; an exemplar is
``{"gallery": i}`` or ``{"image": PNG/JPEG data URL, "label": PNG data URL of class ids}``.
"""

from __future__ import annotations

import base64
import binascii
import io
import math
import re
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor

from msca_fast.models.labels import one_hot
from msca_fast.serving.engine import MODES, Exemplar, StudioEngine

MAX_UPLOAD_SIDE = 1024
MAX_WIDTH_FACTOR = 4  # extrapolation canvases: at most this many times the model's width
DATA_URL = re.compile(r"data:(image/(?:png|jpeg));base64,(.*)", re.DOTALL)
NUM_SCALES = 5


class BadRequest(ValueError):
    """status: 400 (malformed), 404 (no such item), 413 (too large), 415 (not an image) or 422."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def field(body: Any, name: str, kind: type | tuple[type, ...], required: bool = True) -> Any:
    if not isinstance(body, dict):
        raise BadRequest(400, f"body: expected a JSON object, got {type(body).__name__}")
    if name not in body:
        if required:
            raise BadRequest(422, f"{name}: missing")
        return None
    value = body[name]
    if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
        raise BadRequest(422, f"{name}: expected {_kind_name(kind)}, got a boolean")
    if not isinstance(value, kind):
        raise BadRequest(422, f"{name}: expected {_kind_name(kind)}, got {type(value).__name__}")
    return value


def _kind_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    names = {int: "an integer", float: "a number", str: "a string", dict: "an object", list: "a list"}
    return " or ".join(names.get(k, k.__name__) for k in kinds)


def parse_layout(body: dict, engine: StudioEngine, name: str = "layout", wide: bool = False) -> Tensor:
    """The layout field -> class ids (H,W) int64. Its size is the model's; ``wide`` (extrapolation)
    allows widths from the model's up to MAX_WIDTH_FACTOR times it."""
    layout = field(body, name, dict)
    height, width = field(layout, "height", int), field(layout, "width", int)
    ids = field(layout, "ids", list)
    model_h, model_w = engine.size
    if wide:
        if height != model_h or not model_w <= width <= MAX_WIDTH_FACTOR * model_w:
            raise BadRequest(
                422, f"{name}: expected height {model_h} and a width from {model_w} to {MAX_WIDTH_FACTOR * model_w}, "
                f"got {height}x{width}",
            )  # fmt: skip
    elif (height, width) != (model_h, model_w):
        raise BadRequest(422, f"{name}: expected the model's size {model_h}x{model_w}, got {height}x{width}")
    if len(ids) != height * width:
        raise BadRequest(422, f"{name}.ids: expected {height * width} class ids ({height}x{width}), got {len(ids)}")
    if not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
        raise BadRequest(422, f"{name}.ids: expected integers only")
    grid = torch.tensor(ids, dtype=torch.long).view(height, width)
    check_class_ids(f"{name}.ids", grid, engine.num_classes)
    return grid


def check_class_ids(name: str, ids: Tensor, num_classes: int) -> None:
    bad = (ids < 0) | (ids >= num_classes)
    if bad.any():
        y, x = (int(v) for v in bad.nonzero()[0])
        raise BadRequest(
            422, f"{name}: class id {int(ids[y, x])} at row {y}, column {x} is not one of the model's "
            f"{num_classes} classes (0-{num_classes - 1})",
        )  # fmt: skip


def decode_picture(name: str, value: Any) -> Image.Image:
    """A PNG or JPEG data URL -> a PIL image (415 when it is not one, 413 when it is too large)."""
    if not isinstance(value, str):
        raise BadRequest(422, f"{name}: expected a data URL string, got {type(value).__name__}")
    match = DATA_URL.fullmatch(value.strip())
    if match is None:
        raise BadRequest(415, f"{name}: expected a PNG or JPEG data URL (data:image/png;base64,...)")
    try:
        picture = Image.open(io.BytesIO(base64.b64decode(match.group(2), validate=True)))
        if max(picture.size) > MAX_UPLOAD_SIDE:
            width, height = picture.size
            raise BadRequest(413, f"{name}: at most {MAX_UPLOAD_SIDE} pixels a side, got {width}x{height}")
        picture.load()
    except (binascii.Error, UnidentifiedImageError, OSError, Image.DecompressionBombError) as error:
        raise BadRequest(415, f"{name}: not a readable PNG or JPEG image ({type(error).__name__})") from error
    if picture.format not in ("PNG", "JPEG"):
        raise BadRequest(415, f"{name}: expected a PNG or JPEG image, got {picture.format}")
    return picture


def label_ids(name: str, picture: Image.Image, num_classes: int) -> Tensor:
    """A label PNG of class ids (grey levels or a palette's indices) -> (H,W) int64."""
    if picture.mode not in ("L", "P", "I", "I;16"):
        raise BadRequest(
            422, f"{name}: expected a label map of class ids (a grey or palette PNG), got mode {picture.mode}"
        )
    ids = torch.from_numpy(np.asarray(picture, dtype=np.int64).copy())
    check_class_ids(name, ids, num_classes)
    return ids


def parse_exemplar(body: dict, engine: StudioEngine, name: str = "exemplar", required: bool = True) -> Exemplar | None:
    """The exemplar field (a gallery index or an uploaded image + label pair) at the model's size."""
    value = field(body, name, (int, dict), required=required)
    if value is None:
        return None
    if isinstance(value, int):
        return engine.gallery_exemplar(value, name)
    photo = decode_picture(f"{name}.image", value.get("image"))
    labels = label_ids(f"{name}.label", decode_picture(f"{name}.label", value.get("label")), engine.num_classes)
    if tuple(labels.shape) != (photo.size[1], photo.size[0]):
        raise BadRequest(
            422, f"{name}.label: expected the image's size {photo.size[1]}x{photo.size[0]}, "
            f"got {labels.shape[0]}x{labels.shape[1]}",
        )  # fmt: skip
    height, width = engine.size
    rgb = np.asarray(photo.convert("RGB").resize((width, height), Image.Resampling.BILINEAR), dtype=np.float32)
    image = torch.from_numpy(rgb).permute(2, 0, 1)[None] / 127.5 - 1
    small = torch.nn.functional.interpolate(labels[None, None].float(), size=(height, width), mode="nearest")
    return Exemplar(image, one_hot(small[:, 0].long(), engine.num_classes))


def parse_mode(body: dict) -> str:
    mode = field(body, "mode", str, required=False) or "style"
    if mode not in MODES:
        raise BadRequest(422, f"mode: expected one of {', '.join(MODES)}, got {mode!r}")
    return mode


def parse_unit(body: dict, name: str) -> float:
    value = field(body, name, (int, float), required=False)
    value = 0.0 if value is None else float(value)
    if not (math.isfinite(value) and 0.0 <= value <= 1.0):
        raise BadRequest(422, f"{name}: expected a number from 0 to 1, got {value}")
    return value


def parse_index(body: dict, name: str, limit: int) -> int:
    value = field(body, name, int)
    if not 0 <= value < limit:
        raise BadRequest(422, f"{name}: expected an integer from 0 to {limit - 1}, got {value}")
    return value
