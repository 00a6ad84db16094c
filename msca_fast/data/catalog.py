"""The data sets by name: the one place a name and its options become a data set.

:class:`DatasetOptions` holds which images to use; training (``train.py``) and evaluation
(``python -m msca_fast.evaluate``) both nest it in their configs (``cfg.data``), add its
command-line options with :func:`add_dataset_arguments` and open the images with
:func:`open_dataset`, so they accept the same names and options and check them alike.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from dataclasses import dataclass
from typing import Any

from torch.utils.data import Dataset

from msca_fast.data.class_names import COCO_STUFF_DONTCARE

DATASETS = ("synthetic", "coco-stuff", "ade20k", "folder")
ON_CORRUPT = ("skip", "fail")


@dataclass(frozen=True)
class DatasetOptions:
    """Which images, by data set name, and what opening them needs.

    dataset: one of :data:`DATASETS`.
    data_root: the root folder of every data set but "synthetic".
    label_nc: the class count of a "folder" data set.
    dontcare_label: "folder": pixels of this raw id become the extra class ``label_nc``.
    filter_outdoor: "coco-stuff": keep the paper's outdoor scenes only.
    on_corrupt: unreadable files are skipped with a warning ("skip") or stop ("fail").
    num_images: the synthetic data set's size (evaluation also stops after this many images
        of a real data set).

    Only what can be told without reading the disk is checked here; a missing folder is found
    when opening.
    """

    dataset: str = "synthetic"
    data_root: str | None = None
    label_nc: int | None = None
    dontcare_label: int | None = None
    filter_outdoor: bool = False
    on_corrupt: str = "skip"
    num_images: int = 2000

    def __post_init__(self) -> None:
        if isinstance(self.data_root, os.PathLike):  # saved in checkpoints: plain values only
            object.__setattr__(self, "data_root", os.fspath(self.data_root))
        if self.dataset not in DATASETS:
            raise ValueError(f"dataset: expected one of {list(DATASETS)}, got {self.dataset!r}")
        if self.on_corrupt not in ON_CORRUPT:
            raise ValueError(f"on_corrupt: expected one of {list(ON_CORRUPT)}, got {self.on_corrupt!r}")
        if self.dataset != "synthetic" and not self.data_root:
            raise ValueError(f"data_root: the {self.dataset!r} data set needs --data-root (its root folder)")
        if self.dataset == "folder" and not self.label_nc:
            raise ValueError("label_nc: the 'folder' data set needs --label-nc (the number of classes)")
        if isinstance(self.num_images, bool) or not isinstance(self.num_images, int) or self.num_images < 1:
            raise ValueError(f"num_images: expected a positive int, got {self.num_images!r}")

    @property
    def dontcare_id(self) -> int | None:
        """The raw label id that this data set makes its last class (COCO-Stuff's
        :data:`~msca_fast.data.class_names.COCO_STUFF_DONTCARE`, a folder's ``dontcare_label``);
        None when label files hold class ids as they are."""
        if self.dataset == "coco-stuff":
            return COCO_STUFF_DONTCARE
        return self.dontcare_label if self.dataset == "folder" else None

    def replace(self, **changes: Any) -> DatasetOptions:
        """A copy with some fields changed (checked again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain Python values only: safe for weights_only loading."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> DatasetOptions:
        """Inverse of :meth:`to_dict`; unknown keys are an error that names them."""
        if not isinstance(values, dict):
            raise TypeError(f"values: expected a dict saved by DatasetOptions.to_dict, got {type(values).__name__}")
        unknown = sorted(set(values) - set(DATA_OPTIONS))
        if unknown:
            raise ValueError(
                f"values: unknown DatasetOptions fields {unknown}; known fields are {sorted(DATA_OPTIONS)}"
            )
        return cls(**values)

    @classmethod
    def from_train_config(cls, saved: dict[str, Any]) -> DatasetOptions:
        """The options a checkpoint's ``train_config`` recorded: under "data", or, in checkpoints
        written before DatasetOptions existed, among the training options."""
        values = saved.get("data", saved)
        return cls(**{name: values[name] for name in DATA_OPTIONS if name in values})


DATA_OPTIONS = tuple(f.name for f in dataclasses.fields(DatasetOptions))


def add_dataset_arguments(parser: argparse.ArgumentParser | argparse._ArgumentGroup, defaults: DatasetOptions) -> None:
    """``--dataset``, ``--data-root``, ``--label-nc``, ``--dontcare-label``, ``--filter-outdoor``,
    ``--on-corrupt`` and ``--num-images`` (one per :class:`DatasetOptions` field), with
    ``defaults`` named in the help. An option left out takes the parser's ``argument_default``
    (None, or absent from the namespace with ``argparse.SUPPRESS``), so the config's own
    default applies: :func:`dataset_options_from` turns the parsed values into the options."""
    add = parser.add_argument
    add("--dataset", choices=DATASETS, help=f"the data set (default {defaults.dataset})")
    add("--data-root", help="root folder of coco-stuff / ade20k / folder data")
    add("--label-nc", type=int, help="folder data set: number of classes")
    add("--dontcare-label", type=int, help="folder data set: this id becomes an extra class")
    # store_const rather than store_true: left out, it is the parser's default like every other option
    add("--filter-outdoor", action="store_const", const=True, help="COCO-Stuff: the paper's outdoor filter")
    add("--on-corrupt", choices=ON_CORRUPT,
        help=f"unreadable files: skip with a warning, or fail (default {defaults.on_corrupt})")  # fmt: skip
    add("--num-images", type=int,
        help=f"synthetic data set size; evaluation: images evaluated (default {defaults.num_images})")  # fmt: skip


def dataset_options_from(values: dict[str, Any], defaults: DatasetOptions) -> DatasetOptions:
    """``defaults`` with the data-set options found in ``values`` (flat options, as parsed or
    given to a config maker) applied; those keys are removed from ``values``. None values
    (options not given) are ignored."""
    given = {name: values.pop(name) for name in DATA_OPTIONS if name in values}
    return defaults.replace(**{name: value for name, value in given.items() if value is not None})


def open_dataset(options: DatasetOptions, *, size: int, split: str = "train", seed: int = 0) -> Dataset:
    """The data set ``options`` name; items: image (3,size,size) in [-1,1], label (size,size)
    int64 class ids, name.

    synthetic: ``options.num_images`` scenes drawn from ``seed`` (another seed gives held-out
        scenes; ``split`` does not apply).
    coco-stuff: the ``split`` ("train" or "val") under ``data_root``; ``filter_outdoor`` keeps
        the paper's outdoor scenes.
    ade20k: the ``split`` under ``data_root``.
    folder: ``data_root/images`` + ``data_root/labels`` with ``label_nc`` classes; pixels of
        ``dontcare_label`` become the extra class ``label_nc``.
    Options a data set does not use are ignored.
    """
    if not isinstance(options, DatasetOptions):
        raise TypeError(f"options: expected DatasetOptions, got {type(options).__name__}")
    if options.dataset == "synthetic":
        from msca_fast.data.synthetic import SyntheticScenes

        return SyntheticScenes(num_images=options.num_images, size=size, seed=seed)
    from msca_fast.data import folders

    root, on_corrupt = options.data_root, options.on_corrupt
    if options.dataset == "coco-stuff":
        return folders.CocoStuff(
            root, split=split, size=size, filter_outdoor=options.filter_outdoor, on_corrupt=on_corrupt
        )
    if options.dataset == "ade20k":
        return folders.ADE20K(root, split=split, size=size, on_corrupt=on_corrupt)
    return folders.LabelFolder(
        root, label_nc=options.label_nc, size=size, dontcare_label=options.dontcare_label, on_corrupt=on_corrupt
    )
