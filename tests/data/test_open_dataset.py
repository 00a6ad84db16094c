"""One open_dataset for training and evaluation: the same names, options (DatasetOptions, the
same command-line options) and checks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from msca_fast.data.catalog import DATASETS, DatasetOptions, open_dataset
from msca_fast.data.class_names import COCO_STUFF_DONTCARE
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
    scenes = open_dataset(DatasetOptions(num_images=3), size=32, seed=7)
    assert isinstance(scenes, SyntheticScenes) and len(scenes) == 3
    assert scenes[0]["image"].shape == (3, 32, 32)
    other = open_dataset(DatasetOptions(num_images=3), size=32, seed=8)
    assert not torch.equal(scenes[0]["image"], other[0]["image"])


def test_folder_dontcare_becomes_the_extra_class(tmp_path):
    options = DatasetOptions("folder", data_root=str(label_folder(tmp_path)), label_nc=3, dontcare_label=255)
    images = open_dataset(options, size=16)
    assert isinstance(images, LabelFolder) and images.num_classes == 4
    assert images[0]["label"][0, 0].item() == 3


def test_training_opens_its_images_through_open_dataset(tmp_path):
    root = label_folder(tmp_path)
    cfg = make_config("cpu-demo", dataset="folder", data_root=str(root), label_nc=3, dontcare_label=255, load_size=16)
    training = build_image_dataset(cfg)
    direct = open_dataset(DatasetOptions("folder", data_root=root, label_nc=3, dontcare_label=255), size=16)
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
    with pytest.raises(ValueError, match=message):
        DatasetOptions(**options)


def test_every_name_opens_its_loader(tmp_path):
    assert set(DATASETS) == {"synthetic", "coco-stuff", "ade20k", "folder"}
    for name, loader in (("coco-stuff", CocoStuff), ("ade20k", ADE20K)):
        with pytest.raises(FileNotFoundError, match=loader.__name__):
            open_dataset(DatasetOptions(name, data_root=tmp_path / "missing"), size=16)


DATA_ARGV = ["--dataset", "folder", "--data-root", "d", "--label-nc", "3", "--dontcare-label", "255",
             "--filter-outdoor", "--on-corrupt", "fail", "--num-images", "7"]  # fmt: skip


def test_train_and_evaluate_read_the_same_data_options():
    from msca_fast import evaluate, train

    trained = train.config_from_args(train.build_parser().parse_args(DATA_ARGV)).data
    evaluated = evaluate.config_from_args(evaluate.build_parser().parse_args(["--checkpoint", "c", *DATA_ARGV])).data
    expected = DatasetOptions("folder", "d", 3, 255, filter_outdoor=True, on_corrupt="fail", num_images=7)
    assert trained == evaluated == expected


def test_options_left_out_keep_each_configs_default():
    from msca_fast import evaluate, train
    from msca_fast.evaluation.config import EvalConfig
    from msca_fast.training.config import TrainConfig

    assert train.config_from_args(train.build_parser().parse_args([])).data == TrainConfig().data == DatasetOptions()
    evaluated = evaluate.config_from_args(evaluate.build_parser().parse_args(["--checkpoint", "c"])).data
    assert evaluated == EvalConfig(checkpoint="c").data == DatasetOptions(num_images=100)


def test_dataset_options_round_trip_and_name_unknown_fields():
    options = DatasetOptions("folder", data_root=Path("d"), label_nc=3, dontcare_label=255)
    assert options.data_root == "d"  # plain values, as checkpoints store them
    assert DatasetOptions.from_dict(options.to_dict()) == options
    with pytest.raises(ValueError, match=r"unknown DatasetOptions fields \['data_rot'\]"):
        DatasetOptions.from_dict({"data_rot": "d"})
    with pytest.raises(ValueError, match="num_images: expected a positive int, got 0"):
        DatasetOptions(num_images=0)


def test_checkpoints_record_the_data_options_old_ones_flat():
    cfg = make_config("cpu-demo", dataset="folder", data_root="d", label_nc=3, dontcare_label=255)
    saved = cfg.to_dict()
    assert DatasetOptions.from_train_config(saved) == cfg.data
    # train_config before DatasetOptions: the data options among the training options
    flat = {**{k: v for k, v in saved.items() if k != "data"}, **saved["data"]}
    assert DatasetOptions.from_train_config(flat) == cfg.data
    assert DatasetOptions.from_train_config({}) == DatasetOptions()


@pytest.mark.parametrize(
    ("options", "dontcare"),
    [
        (DatasetOptions("coco-stuff", data_root="d"), COCO_STUFF_DONTCARE),
        (DatasetOptions("folder", data_root="d", label_nc=3, dontcare_label=9), 9),
        (DatasetOptions("folder", data_root="d", label_nc=3), None),
        (DatasetOptions("ade20k", data_root="d"), None),
        (DatasetOptions(), None),
    ],
)
def test_the_data_set_names_its_dontcare_id(options, dontcare):
    assert options.dontcare_id == dontcare
