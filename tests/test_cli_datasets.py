"""One open_dataset for training and evaluation: the same names, options and checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from msca_fast.data.catalog import DATASETS, open_dataset
from msca_fast.data.folders import ADE20K, CocoStuff, LabelFolder
from msca_fast.data.synthetic import SyntheticScenes
from msca_fast.training.config import make_config
from msca_fast.training.data import build_image_dataset


def label_folder(root, dontcare: int = 255):
    """Two 20x24 images; label ids 0..2 with a don't-care block of value ``dontcare``."""
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    for i in range(2):
        Image.fromarray(np.full((20, 24, 3), 40 * i, np.uint8)).save(root / "images" / f"s{i}.png")
        ids = np.full((20, 24), i, np.uint8)
        ids[:4, :4] = dontcare
        Image.fromarray(ids).save(root / "labels" / f"s{i}.png")
    return root


def test_synthetic_scenes_follow_size_count_and_seed():
    scenes = open_dataset("synthetic", size=32, num_images=3, seed=7)
    assert isinstance(scenes, SyntheticScenes) and len(scenes) == 3
    assert scenes[0]["image"].shape == (3, 32, 32)
    other = open_dataset("synthetic", size=32, num_images=3, seed=8)
    assert not torch.equal(scenes[0]["image"], other[0]["image"])


def test_folder_dontcare_becomes_the_extra_class(tmp_path):
    images = open_dataset("folder", size=16, data_root=label_folder(tmp_path), label_nc=3, dontcare_label=255)
    assert isinstance(images, LabelFolder) and images.num_classes == 4
    assert images[0]["label"][0, 0].item() == 3


def test_training_opens_its_images_through_open_dataset(tmp_path):
    root = label_folder(tmp_path)
    cfg = make_config("cpu-demo", dataset="folder", data_root=str(root), label_nc=3, dontcare_label=255, load_size=16)
    training = build_image_dataset(cfg)
    direct = open_dataset("folder", size=16, data_root=root, label_nc=3, dontcare_label=255)
    assert training.num_classes == direct.num_classes == 4
    assert torch.equal(training[1]["label"], direct[1]["label"])


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (dict(dataset="imagenet"), "dataset: expected one of"),
        (dict(dataset="ade20k"), "data_root: the 'ade20k' data set needs --data-root"),
        (dict(dataset="folder", data_root="x"), "label_nc: the 'folder' data set needs --label-nc"),
        (dict(dataset="synthetic", on_corrupt="ignore"), "on_corrupt: expected one of"),
    ],
)
def test_bad_options_name_the_option(options, message):
    dataset = options.pop("dataset")
    with pytest.raises(ValueError, match=message):
        open_dataset(dataset, size=16, **options)


def test_every_name_opens_its_loader(tmp_path):
    assert set(DATASETS) == {"synthetic", "coco-stuff", "ade20k", "folder"}
    for name, loader in (("coco-stuff", CocoStuff), ("ade20k", ADE20K)):
        with pytest.raises(FileNotFoundError, match=loader.__name__):
            open_dataset(name, size=16, data_root=tmp_path / "missing")
