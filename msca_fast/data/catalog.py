"""The data sets by name: the one place a name and its options become a data set.

Training (``train.py``) and evaluation (``python -m msca_fast.evaluate``) both open their images
through :func:`open_dataset`, so they accept the same names and options and check them alike.
"""

from __future__ import annotations

import os

from torch.utils.data import Dataset

DATASETS = ("synthetic", "coco-stuff", "ade20k", "folder")
ON_CORRUPT = ("skip", "fail")


def check_dataset_options(
    dataset: str, data_root: str | os.PathLike | None = None, label_nc: int | None = None, on_corrupt: str = "skip"
) -> None:
    """Raise a ValueError naming the option when ``dataset`` cannot be opened with these options.

    Only what can be told without reading the disk; a missing folder is found when opening.
    """
    if dataset not in DATASETS:
        raise ValueError(f"dataset: expected one of {list(DATASETS)}, got {dataset!r}")
    if on_corrupt not in ON_CORRUPT:
        raise ValueError(f"on_corrupt: expected one of {list(ON_CORRUPT)}, got {on_corrupt!r}")
    if dataset != "synthetic" and not data_root:
        raise ValueError(f"data_root: the {dataset!r} data set needs --data-root (its root folder)")
    if dataset == "folder" and not label_nc:
        raise ValueError("label_nc: the 'folder' data set needs --label-nc (the number of classes)")


def open_dataset(
    dataset: str,
    *,
    size: int,
    split: str = "train",
    data_root: str | os.PathLike | None = None,
    label_nc: int | None = None,
    dontcare_label: int | None = None,
    filter_outdoor: bool = False,
    on_corrupt: str = "skip",
    num_images: int = 2000,
    seed: int = 0,
) -> Dataset:
    """The data set ``dataset`` (one of :data:`DATASETS`); items: image (3,size,size) in [-1,1],
    label (size,size) int64 class ids, name.

    synthetic: ``num_images`` scenes drawn from ``seed`` (another seed gives held-out scenes;
        ``split`` does not apply).
    coco-stuff: the ``split`` ("train" or "val") under ``data_root``; ``filter_outdoor`` keeps
        the paper's outdoor scenes.
    ade20k: the ``split`` under ``data_root``.
    folder: ``data_root/images`` + ``data_root/labels`` with ``label_nc`` classes; pixels of
        ``dontcare_label`` become the extra class ``label_nc``.
    ``on_corrupt``: unreadable files are skipped with a warning ("skip") or stop ("fail").
    Options a data set does not use are ignored.
    """
    check_dataset_options(dataset, data_root, label_nc, on_corrupt)
    if dataset == "synthetic":
        from msca_fast.data.synthetic import SyntheticScenes

        return SyntheticScenes(num_images=num_images, size=size, seed=seed)
    from msca_fast.data import folders

    if dataset == "coco-stuff":
        return folders.CocoStuff(
            data_root, split=split, size=size, filter_outdoor=filter_outdoor, on_corrupt=on_corrupt
        )
    if dataset == "ade20k":
        return folders.ADE20K(data_root, split=split, size=size, on_corrupt=on_corrupt)
    return folders.LabelFolder(
        data_root, label_nc=label_nc, size=size, dontcare_label=dontcare_label, on_corrupt=on_corrupt
    )
