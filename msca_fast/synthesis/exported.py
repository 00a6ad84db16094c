"""A trained generator as a ``torch.export`` program in a ``.pt2`` file, and that file loaded back.

The program is the generator's forward at one size and batch (static shapes: the five pyramid
scales, the noise field and the attention's region count are all fixed by them), with every
MSCA as one call of the registered custom op ``msca_fast::msca_forward`` (the C++ kernel), not
traced through. The file also carries the model's configuration and the input sizes
(``msca_fast.json``), so a process that knows nothing of the checkpoint can check its inputs
and run it after ``import msca_fast.ops`` (which registers the op).
"""

from __future__ import annotations

import copy
import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from msca_fast.models.generator import Generator
from msca_fast.models.labels import one_hot

META_FILE = "msca_fast.json"
FORMAT = 1
MSCA_OP = "msca_fast.msca_forward"


@dataclass(frozen=True)
class ExportedGenerator:
    """A loaded ``.pt2`` generator: ``module(c1, x2, c2) -> (B, 3, H, W)`` in [-1, 1] for
    one-hot labels c1 (B, num_classes, H, W), exemplar x2 (B, 3, H, W), its labels c2
    (B, num_classes, H, W), with B = ``batch`` and (H, W) = ``size`` exactly. dataset: the
    training data set's name, where the export recorded it."""

    module: torch.nn.Module
    num_classes: int
    size: tuple[int, int]
    batch: int
    model_config: dict
    dataset: str | None = None

    def __call__(self, c1: Tensor, x2: Tensor, c2: Tensor) -> Tensor:
        expected = {"c1": self.num_classes, "x2": 3, "c2": self.num_classes}
        for name, value in zip(expected, (c1, x2, c2)):
            shape = (self.batch, expected[name], *self.size)
            if not isinstance(value, Tensor) or tuple(value.shape) != shape:
                got = tuple(value.shape) if isinstance(value, Tensor) else type(value).__name__
                raise ValueError(f"{name}: the exported generator takes shape {shape} exactly, got {got}")
        return self.module(c1, x2, c2)


def example_inputs(num_classes: int, size: tuple[int, int], batch: int = 1) -> tuple[Tensor, Tensor, Tensor]:
    """Inputs of the right shapes (two classes split left/right, a grey exemplar) to trace with."""
    ids = torch.zeros(batch, *size, dtype=torch.long)
    ids[..., size[1] // 2 :] = min(1, num_classes - 1)
    labels = one_hot(ids, num_classes)
    return labels, torch.zeros(batch, 3, *size), labels.clone()


def export_generator(
    generator: Generator, path: str | os.PathLike, size: tuple[int, int] = (64, 64), batch: int = 1,
    dataset: str | None = None,
) -> Path:
    """Export ``generator`` (eval mode, CPU) at ``size`` (H, W) and ``batch`` to ``path`` (.pt2);
    ``dataset`` (the training data set's name) is recorded for the studio's class names.

    Raises ValueError for a size the generator cannot take or when the program does not hold the
    MSCA custom op (an alignment without MSCA, e.g. GAP, has none, and that is fine)."""
    import msca_fast.ops  # noqa: F401  (registers msca_fast::msca_forward and its fake kernel)

    height, width = size
    if min(height, width, batch) < 1:
        raise ValueError(f"size and batch: expected positive values, got size {size}, batch {batch}")
    generator = copy.deepcopy(generator).eval().cpu()  # the caller's keeps its device and backend
    generator.set_msca_backend("cpu")
    inputs = example_inputs(generator.config.num_classes, (height, width), batch)
    with torch.no_grad():
        program = torch.export.export(generator, inputs, strict=False)
    uses_msca = generator.config.alignment in ("msca", "no_masking")
    if uses_msca and not any(MSCA_OP in str(node.target) for node in program.graph.nodes):
        raise ValueError("the exported program does not call msca_fast::msca_forward; MSCA was traced through")
    meta = {
        "format": FORMAT, "num_classes": generator.config.num_classes, "size": [height, width], "batch": batch,
        "model_config": generator.config.to_dict(), "dataset": dataset,
    }  # fmt: skip
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    torch.export.save(program, temporary, extra_files={META_FILE: json.dumps(meta)})
    os.replace(temporary, path)
    return path


def load_exported(path: str | os.PathLike) -> ExportedGenerator:
    """The generator saved by :func:`export_generator`; a ValueError of one line for a missing
    file or one that is no msca-fast export."""
    import msca_fast.ops  # noqa: F401  (the program calls msca_fast::msca_forward)

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such exported generator (.pt2) file")
    extra = {META_FILE: ""}
    try:
        program = torch.export.load(path, extra_files=extra)
    except Exception as error:  # torch's loader raises many kinds for a foreign file
        raise ValueError(f"{path}: not a torch.export program ({type(error).__name__}: {error})") from error
    try:
        meta = json.loads(extra[META_FILE])
    except json.JSONDecodeError:
        meta = None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError(f"{path}: a torch.export program, but not an msca-fast generator export")
    return ExportedGenerator(
        module=program.module(), num_classes=meta["num_classes"], size=tuple(meta["size"]), batch=meta["batch"],
        model_config=meta["model_config"], dataset=meta.get("dataset"),
    )  # fmt: skip
