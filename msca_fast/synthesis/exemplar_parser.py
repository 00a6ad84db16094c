"""A user-provided segmentation function for exemplars that come without a label map.

``--exemplar-parser MODULE:CALLABLE`` names it, MODULE either an importable module
(``my_pkg.segment:parse``) or a Python file (``tools/segment.py:parse``). The callable takes
an image (1,3,H,W) float32 in [-1,1] and returns the class ids (H,W) (or (1,H,W)) as an
integer tensor or numpy array, with the same id convention as label files.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from msca_fast.synthesis.errors import InputError

Parser = Callable[[Tensor], object]


def load_exemplar_parser(spec: str) -> Parser:
    """``MODULE:CALLABLE`` -> the callable; :class:`InputError` when it cannot be found."""
    module_name, _, attribute = spec.rpartition(":")
    if not module_name or not attribute:
        raise InputError(f"--exemplar-parser: expected MODULE:CALLABLE (e.g. my_pkg.segment:parse), got {spec!r}")
    try:
        module = _import(module_name)
    except InputError:
        raise
    except Exception as error:  # noqa: BLE001  (any failure of the user's module at import time)
        reason = f"{type(error).__name__}: {error}"
        raise InputError(f"--exemplar-parser: cannot import {module_name!r}: {reason}") from error
    parser = getattr(module, attribute, None)
    if not callable(parser):
        raise InputError(f"--exemplar-parser: {module_name!r} has no callable named {attribute!r}")
    return parser


def run_exemplar_parser(parser: Parser, image: Tensor, source: str) -> Tensor:
    """The parser's class ids for ``image`` (1,3,H,W) -> (H,W) int64 on the CPU, checked for shape and type."""
    try:
        ids = parser(image)
    except Exception as error:  # noqa: BLE001  (user code)
        raise InputError(f"--exemplar-parser failed on {source}: {type(error).__name__}: {error}") from error
    if isinstance(ids, np.ndarray):
        ids = torch.from_numpy(ids)
    if not isinstance(ids, Tensor) or ids.dtype.is_floating_point or ids.dtype == torch.bool:
        raise InputError(
            f"--exemplar-parser returned {type(ids).__name__} for {source}; expected integer class ids (H, W)"
        )
    ids = ids.detach().cpu().long()
    if ids.dim() == 3 and ids.shape[0] == 1:
        ids = ids[0]
    if tuple(ids.shape) != tuple(image.shape[-2:]):
        raise InputError(
            f"--exemplar-parser returned ids of shape {tuple(ids.shape)} for {source}; "
            f"expected the image's size {tuple(image.shape[-2:])}"
        )
    return ids


def _import(name: str):
    if name.endswith(".py"):
        path = Path(name)
        if not path.is_file():
            raise InputError(f"--exemplar-parser: no such file {name!r}")
        spec = importlib.util.spec_from_file_location(path.stem, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    return importlib.import_module(name)
