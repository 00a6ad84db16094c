"""Semantic-segmentation data sets on disk: image + label-map pairs for the example-guided generator.

Every item is a dict::

    image  (3, size, size) float32 in [-1, 1]
    label  (size, size)    int64 class ids in [0, num_classes)
    name   str, the file stem

Data sets and the layouts they accept (``root`` is the argument):

* :class:`CocoStuff` (COCO 2017 images + stuffthingmaps_trainval2017), either as set up by
  the cocostuff repository's instructions::

      root/images/{train2017,val2017}/*.jpg
      root/annotations/{train2017,val2017}/*.png

  or with the images and the unpacked annotation zip side by side::

      root/{train2017,val2017}/*.jpg
      root/stuffthingmaps_trainval2017/{train2017,val2017}/*.png

* :class:`ADE20K` (ADEChallengeData2016; ``root`` may also be its parent folder)::

      root/images/{training,validation}/*.jpg
      root/annotations/{training,validation}/*.png

* :class:`LabelFolder`, any other data set::

      root/images/*.{jpg,jpeg,png,webp,bmp}
      root/labels/*.png              (same stems, one class id per pixel)

Label ids are checked when an item is loaded; nothing is read up front except the label
maps of COCO-Stuff's outdoor filter (once, then cached: see :mod:`msca_fast.data.scene_filter`).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Literal, NamedTuple

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from msca_fast.data.class_names import (
    ADE20K_CLASS_NAMES,
    COCO_STUFF_CLASS_NAMES,
    COCO_STUFF_DONTCARE,
    COCO_STUFF_INDOOR_STUFF_IDS,
    generic_class_names,
)
from msca_fast.data.image_io import CorruptFileError, load_image, load_label_ids, resize_label_ids
from msca_fast.data.scene_filter import cache_file_for, class_fractions, default_cache_dir, is_outdoor_scene
from msca_fast.image_checks import MIN_SIDE
from msca_fast.number_checks import check_non_negative_int, check_positive_int

OnCorrupt = Literal["skip", "fail"]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp")
LABEL_EXTENSIONS = (".png",)
_LISTED = 5  # stems quoted in a "files without a partner" error


class Sample(NamedTuple):
    name: str
    image: Path
    label: Path


class LabeledImageFolder(Dataset):
    """Pairs of image and label-map files, read, resized to ``size`` x ``size`` and checked on access.

    Subclasses fill ``samples``, ``num_classes``, ``class_names`` and ``raw_to_class``: a
    lookup table (R,) int64 from the raw value stored in a label map to a class id, -1 for
    values that must not occur.

    Unreadable files: with ``on_corrupt="skip"`` the item is replaced by the next readable one
    (index+1, wrapping), a warning names the file and its stem is added to ``skipped``; with
    ``on_corrupt="fail"`` :class:`CorruptFileError` is raised. With DataLoader workers,
    ``skipped`` fills in the worker processes, not in the main one.
    """

    num_classes: int
    class_names: list[str]
    raw_to_class: Tensor

    def __init__(self, root: str | os.PathLike, size: int = 512, on_corrupt: OnCorrupt = "skip") -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            what = "is not a folder" if self.root.exists() else "does not exist"
            raise FileNotFoundError(f"{type(self).__name__}: data set root {self.root} {what}")
        if isinstance(size, bool) or not isinstance(size, int) or size < MIN_SIDE:
            raise ValueError(f"{type(self).__name__}: size must be an integer >= {MIN_SIDE}, got {size!r}")
        if on_corrupt not in ("skip", "fail"):
            raise ValueError(f"{type(self).__name__}: on_corrupt must be 'skip' or 'fail', got {on_corrupt!r}")
        self.size = size
        self.on_corrupt = on_corrupt
        self.samples: list[Sample] = []
        self.skipped: set[str] = set()

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict[str, Tensor | str]:
        count = len(self.samples)
        if not -count <= index < count:
            raise IndexError(f"{type(self).__name__}: index {index} out of range for {count} items")
        for step in range(count):
            sample = self.samples[(index + step) % count]
            try:
                return self._load(sample)
            except CorruptFileError as error:
                if self.on_corrupt == "fail":
                    raise
                self._skip(sample.name, error)
        raise RuntimeError(f"{type(self).__name__}: none of the {count} items under {self.root} can be read")

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(root={str(self.root)!r}, items={len(self)}, size={self.size}, "
            f"num_classes={self.num_classes})"
        )

    def to_class_ids(self, raw: Tensor, path: Path) -> Tensor:
        """Raw label-map values (H,W) -> class ids (H,W) int64; ``ValueError`` naming ``path`` on a bad value."""
        table, values = self.raw_to_class.numpy(), raw.numpy()  # numpy: several times faster here
        known = (values >= 0) & (values < len(table))  # 32-bit "I" PNGs can hold negative values
        ids = np.where(known, table[np.clip(values, 0, len(table) - 1)], -1)
        bad = (ids < 0) | (ids >= self.num_classes)
        if bad.any():
            found = np.unique(values[bad]).tolist()
            shown = ", ".join(map(str, found[:_LISTED])) + (", ..." if len(found) > _LISTED else "")
            raise ValueError(
                f"{path}: label id {found[0]} (found: {shown}) is not a class of {type(self).__name__} "
                f"with num_classes={self.num_classes}; {self._label_hint()}"
            )
        return torch.from_numpy(ids)

    def _label_hint(self) -> str:
        return f"class ids must be < num_classes (--label-nc {self.num_classes})"

    def _load(self, sample: Sample) -> dict[str, Tensor | str]:
        size = (self.size, self.size)
        image = load_image(sample.image, size)
        raw = load_label_ids(sample.label)  # full resolution: a resize could hide a bad pixel
        label = resize_label_ids(self.to_class_ids(raw, sample.label), size)
        return {"image": image, "label": label, "name": sample.name}

    def _skip(self, name: str, error: CorruptFileError) -> None:
        self.skipped.add(name)
        warnings.warn(f"{type(self).__name__}: skipping item {name!r}: {error}", stacklevel=3)


class CocoStuff(LabeledImageFolder):
    """COCO-Stuff 164K (stuff+thing maps): 182 classes + don't-care 182 (PNG value
    :data:`COCO_STUFF_DONTCARE`); num_classes 183.

    ``filter_outdoor=True`` keeps the images whose things cover < ``max_thing_fraction`` and
    whose indoor stuff classes (``class_names.COCO_STUFF_INDOOR_STUFF_NAMES``) cover
    < ``max_indoor_fraction`` of the label map, our reading of the paper's "remove images with
    indoor scenes and large objects". The first use reads every label map of the split once;
    the statistics are cached in ``cache_dir`` (default ``~/.cache/msca_fast``).
    """

    SPLITS = {"train": "train2017", "val": "val2017"}
    LAYOUTS = (("images/{split}", "annotations/{split}"), ("{split}", "stuffthingmaps_trainval2017/{split}"))

    def __init__(
        self,
        root: str | os.PathLike,
        split: str = "train",
        size: int = 512,
        filter_outdoor: bool = False,
        on_corrupt: OnCorrupt = "skip",
        *,
        max_thing_fraction: float = 0.4,
        max_indoor_fraction: float = 0.1,
        indoor_ids: Sequence[int] = COCO_STUFF_INDOOR_STUFF_IDS,
        cache_dir: str | os.PathLike | None = None,
    ) -> None:
        super().__init__(root, size, on_corrupt)
        self.split = _split_folder(self, split, self.SPLITS)
        image_dir, label_dir = _find_layout(self, self.split, self.LAYOUTS)
        self.num_classes = len(COCO_STUFF_CLASS_NAMES)
        self.class_names = list(COCO_STUFF_CLASS_NAMES)
        self.raw_to_class = torch.full((COCO_STUFF_DONTCARE + 1,), -1, dtype=torch.long)
        self.raw_to_class[:182] = torch.arange(182)
        self.raw_to_class[COCO_STUFF_DONTCARE] = 182
        self.samples = _pair_by_stem(self, image_dir, label_dir)
        if filter_outdoor:
            cache = cache_file_for(cache_dir or default_cache_dir(), self.root, self.split)
            self.samples = self._outdoor_samples(cache, max_thing_fraction, max_indoor_fraction, indoor_ids)

    def _label_hint(self) -> str:
        return (
            f"COCO-Stuff stuffthingmaps hold ids 0..181 and {COCO_STUFF_DONTCARE} (unlabeled); "
            "is this the right annotation folder?"
        )

    def _outdoor_samples(
        self, cache: Path, max_thing: float, max_indoor: float, indoor_ids: Sequence[int]
    ) -> list[Sample]:
        label_paths = {s.name: s.label for s in self.samples}
        fractions, unreadable = class_fractions(label_paths, cache, desc=f"COCO-Stuff {self.split} scene statistics")
        for name, error in unreadable.items():
            if self.on_corrupt == "fail":
                raise error
            self._skip(name, error)
        kept = [
            s for s in self.samples
            if s.name in fractions and is_outdoor_scene(fractions[s.name], max_thing, max_indoor, indoor_ids)
        ]  # fmt: skip
        if not kept:
            raise ValueError(
                f"CocoStuff: filter_outdoor kept none of the {len(self.samples)} images of {self.root} "
                f"({self.split}) with max_thing_fraction={max_thing}, max_indoor_fraction={max_indoor}"
            )
        return kept


class ADE20K(LabeledImageFolder):
    """ADE20K SceneParsing (ADEChallengeData2016): PNG values 1..150 -> ids 0..149, 0 ("other") -> 150."""

    SPLITS = {"train": "training", "val": "validation"}
    LAYOUTS = (
        ("images/{split}", "annotations/{split}"),
        ("ADEChallengeData2016/images/{split}", "ADEChallengeData2016/annotations/{split}"),
    )

    def __init__(
        self, root: str | os.PathLike, split: str = "train", size: int = 512, on_corrupt: OnCorrupt = "skip"
    ) -> None:
        super().__init__(root, size, on_corrupt)
        self.split = _split_folder(self, split, self.SPLITS)
        image_dir, label_dir = _find_layout(self, self.split, self.LAYOUTS)
        self.num_classes = len(ADE20K_CLASS_NAMES)
        self.class_names = list(ADE20K_CLASS_NAMES)
        self.raw_to_class = torch.cat([torch.tensor([150]), torch.arange(150)])
        self.samples = _pair_by_stem(self, image_dir, label_dir)

    def _label_hint(self) -> str:
        return "ADE20K SceneParsing label maps hold ids 0..150; is this the right annotation folder?"


class LabelFolder(LabeledImageFolder):
    """Any data set as ``root/images/*`` + ``root/labels/*.png``: ids 0..label_nc-1 as stored.

    With ``dontcare_label`` set, pixels of that value become the extra class ``label_nc``
    (num_classes = label_nc + 1); any other value >= label_nc is an error.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        label_nc: int,
        size: int = 512,
        on_corrupt: OnCorrupt = "skip",
        dontcare_label: int | None = None,
    ) -> None:
        super().__init__(root, size, on_corrupt)
        check_positive_int("LabelFolder: label_nc (--label-nc)", label_nc)
        check_non_negative_int("LabelFolder: dontcare_label (--dontcare-label)", dontcare_label, allow_none=True)
        image_dir, label_dir = _find_layout(self, "", (("images", "labels"),))
        self.label_nc = label_nc
        self.dontcare_label = dontcare_label
        self.num_classes = label_nc + (dontcare_label is not None)
        self.class_names = generic_class_names(label_nc) + (["dontcare"] if dontcare_label is not None else [])
        table_size = label_nc if dontcare_label is None else max(label_nc, dontcare_label + 1)
        self.raw_to_class = torch.full((table_size,), -1, dtype=torch.long)
        self.raw_to_class[:label_nc] = torch.arange(label_nc)
        if dontcare_label is not None:
            self.raw_to_class[dontcare_label] = label_nc
        self.samples = _pair_by_stem(self, image_dir, label_dir)

    def _label_hint(self) -> str:
        hint = f"ids must be < --label-nc ({self.label_nc})"
        if self.dontcare_label is not None:
            hint += f" or equal to the don't-care label {self.dontcare_label}"
        return hint + "; raise --label-nc or set --dontcare-label"


def _split_folder(dataset: LabeledImageFolder, split: str, splits: dict[str, str]) -> str:
    """'train' / 'val' (or the folder name itself) -> the split's folder name."""
    if split in splits:
        return splits[split]
    if split in splits.values():
        return split
    choices = ", ".join(repr(s) for s in splits)
    raise ValueError(f"{type(dataset).__name__}: unknown split {split!r}; choose one of {choices}")


def _find_layout(
    dataset: LabeledImageFolder, split: str, layouts: Sequence[tuple[str, str]]
) -> tuple[Path, Path]:
    """The first (image folder, label folder) pair of ``layouts`` that exists under the root."""
    root = dataset.root
    candidates = [(root / images.format(split=split), root / labels.format(split=split)) for images, labels in layouts]
    for image_dir, label_dir in candidates:
        if image_dir.is_dir() and label_dir.is_dir():
            return image_dir, label_dir
    accepted = " or ".join(f"{i.relative_to(root)}/ + {j.relative_to(root)}/" for i, j in candidates)
    missing = sorted({str(d) for pair in candidates for d in pair if not d.is_dir()})
    raise FileNotFoundError(
        f"{type(dataset).__name__}: expected sub-folders not found under {root}; accepted layouts: "
        f"{accepted}; missing: {', '.join(missing)}"
    )


def _pair_by_stem(dataset: LabeledImageFolder, image_dir: Path, label_dir: Path) -> list[Sample]:
    """Images and label maps matched by file stem, sorted by stem; every file must have a partner."""
    name = type(dataset).__name__
    images = _files_by_stem(dataset, image_dir, IMAGE_EXTENSIONS)
    labels = _files_by_stem(dataset, label_dir, LABEL_EXTENSIONS)
    if not images:
        raise ValueError(f"{name}: no images ({', '.join(IMAGE_EXTENSIONS)}) found in {image_dir}")
    unlabeled = sorted(images.keys() - labels.keys())
    if unlabeled:
        raise ValueError(
            f"{name}: {len(unlabeled)} image(s) in {image_dir} have no label map (<stem>.png) in "
            f"{label_dir}: {_quote(unlabeled)}"
        )
    orphans = sorted(labels.keys() - images.keys())
    if orphans:
        raise ValueError(
            f"{name}: {len(orphans)} label map(s) in {label_dir} have no image in {image_dir}: {_quote(orphans)}"
        )
    return [Sample(stem, images[stem], labels[stem]) for stem in sorted(images)]


def _files_by_stem(dataset: LabeledImageFolder, folder: Path, extensions: Sequence[str]) -> dict[str, Path]:
    """{stem: path} of the files in ``folder`` with one of ``extensions`` (any case); hidden files ignored."""
    found: dict[str, Path] = {}
    clashes: list[str] = []
    with os.scandir(folder) as entries:
        for entry in entries:
            path = Path(entry.path)
            if entry.name.startswith(".") or path.suffix.lower() not in extensions or not entry.is_file():
                continue
            if path.stem in found:
                clashes.append(f"{found[path.stem].name} / {path.name}")
            found[path.stem] = path
    if clashes:
        raise ValueError(f"{type(dataset).__name__}: several files share a stem in {folder}: {_quote(sorted(clashes))}")
    return found


def _quote(items: Iterable[str]) -> str:
    items = list(items)
    shown = ", ".join(items[:_LISTED])
    return shown + (f", ... ({len(items)} in all)" if len(items) > _LISTED else "")
