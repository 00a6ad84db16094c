"""Data-set loaders on tiny data sets written into tmp_path in the real layouts."""

from __future__ import annotations

import io
import pickle
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from msca_fast.data import scene_filter
from msca_fast.data.class_names import COCO_STUFF_CLASS_NAMES
from msca_fast.data.folders import ADE20K, CocoStuff, LabelFolder
from msca_fast.data.image_io import CorruptFileError, load_image, load_label_ids, resize_label_ids
from msca_fast.visuals import save_picture, to_uint8

HEIGHT, WIDTH = 20, 24
SIZE = 32
SKY, GRASS, WALL, CEILING, PERSON = (
    COCO_STUFF_CLASS_NAMES.index(name) for name in ("sky-other", "grass", "wall-other", "ceiling-other", "person")
)


def quadrants(a: int, b: int, c: int, d: int) -> np.ndarray:
    """A (20,24) uint8 label map with four constant quadrants."""
    ids = np.empty((HEIGHT, WIDTH), dtype=np.uint8)
    ids[: HEIGHT // 2, : WIDTH // 2] = a
    ids[: HEIGHT // 2, WIDTH // 2 :] = b
    ids[HEIGHT // 2 :, : WIDTH // 2] = c
    ids[HEIGHT // 2 :, WIDTH // 2 :] = d
    return ids


def write_image(path: Path, seed: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)


def write_label(path: Path, ids: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(ids).save(path)  # uint8 (H,W) -> single-channel "L" PNG


def write_pairs(image_dir: Path, label_dir: Path, labels: dict[str, np.ndarray], suffix: str = ".jpg") -> None:
    for seed, (stem, ids) in enumerate(labels.items()):
        write_image(image_dir / f"{stem}{suffix}", seed)
        write_label(label_dir / f"{stem}.png", ids)


def coco(root: Path, labels: dict[str, np.ndarray], layout: str = "official", split: str = "train2017") -> Path:
    if layout == "official":
        write_pairs(root / "images" / split, root / "annotations" / split, labels)
    else:
        write_pairs(root / split, root / "stuffthingmaps_trainval2017" / split, labels)
    return root


def ade(root: Path, labels: dict[str, np.ndarray], split: str = "training") -> Path:
    write_pairs(root / "images" / split, root / "annotations" / split, labels)
    return root


def folder(root: Path, labels: dict[str, np.ndarray], suffix: str = ".jpg") -> Path:
    write_pairs(root / "images", root / "labels", labels, suffix)
    return root


def check_item(item: dict, num_classes: int, name: str) -> None:
    assert item["name"] == name
    image, label = item["image"], item["label"]
    assert image.shape == (3, SIZE, SIZE) and image.dtype == torch.float32
    assert image.min() >= -1.0 and image.max() <= 1.0 and image.std() > 0.1
    assert label.shape == (SIZE, SIZE) and label.dtype == torch.int64
    assert label.min() >= 0 and label.max() < num_classes


# --- COCO-Stuff ---------------------------------------------------------------------------


@pytest.mark.parametrize("layout", ["official", "side-by-side"])
def test_coco_items_and_unlabeled_mapping(tmp_path, layout):
    root = coco(tmp_path, {"a": quadrants(0, 5, 181, 255), "b": quadrants(SKY, SKY, GRASS, GRASS)}, layout)
    data = CocoStuff(root, size=SIZE)
    assert len(data) == 2 and data.num_classes == 183 and len(data.class_names) == 183
    assert data.class_names[0] == "person" and data.class_names[182] == "unlabeled" and data.root == root
    item = data[0]
    check_item(item, 183, "a")
    assert set(item["label"].unique().tolist()) == {0, 5, 181, 182}
    assert item["label"][0, 0] == 0 and item["label"][-1, -1] == 182


def test_coco_val_split(tmp_path):
    root = coco(tmp_path, {"v": quadrants(SKY, SKY, SKY, SKY)}, split="val2017")
    assert [s.name for s in CocoStuff(root, split="val", size=SIZE).samples] == ["v"]


def test_coco_errors_for_root_split_layout_and_size(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"root .*nowhere does not exist"):
        CocoStuff(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match=r"accepted layouts: images/train2017/ \+ annotations/train2017/ or "
                       r"train2017/ \+ stuffthingmaps_trainval2017/train2017/"):  # fmt: skip
        CocoStuff(tmp_path)
    (tmp_path / "images" / "train2017").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match=r"missing: .*annotations/train2017"):
        CocoStuff(tmp_path)
    with pytest.raises(ValueError, match="unknown split 'test'; choose one of 'train', 'val'"):
        CocoStuff(tmp_path, split="test")
    with pytest.raises(ValueError, match="size must be an integer >= 16, got 8"):
        CocoStuff(tmp_path, size=8)


def test_no_images_found(tmp_path):
    (tmp_path / "images" / "train2017").mkdir(parents=True)
    (tmp_path / "annotations" / "train2017").mkdir(parents=True)
    with pytest.raises(ValueError, match=r"no images \(.jpg.*\) found in .*train2017"):
        CocoStuff(tmp_path)


def test_images_and_labels_without_partner(tmp_path):
    root = coco(tmp_path, {"a": quadrants(0, 0, 0, 0)})
    for stem in ("b", "c", "d", "e", "f", "g"):
        write_image(root / "images" / "train2017" / f"{stem}.jpg")
    listed = r"b, c, d, e, f, \.\.\. \(6 in all\)"
    with pytest.raises(ValueError, match=r"6 image\(s\) in .* have no label map .*: " + listed):
        CocoStuff(root)
    orphan_root = coco(tmp_path / "orphans", {"a": quadrants(0, 0, 0, 0)})
    write_label(orphan_root / "annotations" / "train2017" / "z.png", quadrants(0, 0, 0, 0))
    with pytest.raises(ValueError, match=r"1 label map\(s\) in .* have no image in .*: z$"):
        CocoStuff(orphan_root)


def test_coco_invalid_id_names_the_file(tmp_path):
    root = coco(tmp_path, {"a": quadrants(0, 0, 0, 0), "bad": quadrants(0, 200, 0, 0)})
    data = CocoStuff(root, size=SIZE)
    data[0]
    with pytest.raises(ValueError, match=r"bad\.png: label id 200 .*num_classes=183.*0\.\.181 and 255"):
        data[1]


def test_coco_one_pixel_of_invalid_id_is_found_before_the_resize(tmp_path):
    ids = quadrants(0, 0, 0, 0)
    ids[3, 7] = 190  # a downscale to 16x16 would likely drop this pixel
    data = CocoStuff(coco(tmp_path, {"a": ids}), size=16)
    with pytest.raises(ValueError, match="label id 190"):
        data[0]


# --- COCO-Stuff outdoor filter ------------------------------------------------------------


def outdoor_fixture(root: Path) -> Path:
    return coco(
        root,
        {
            "indoor": quadrants(WALL, WALL, CEILING, SKY),
            "outdoor": quadrants(SKY, SKY, GRASS, GRASS),
            "thing": quadrants(PERSON, PERSON, PERSON, GRASS),
        },
    )


def test_filter_outdoor_keeps_outdoor_scenes_and_caches(tmp_path, monkeypatch):
    root, cache = outdoor_fixture(tmp_path / "coco"), tmp_path / "cache"
    assert len(CocoStuff(root, size=SIZE)) == 3
    data = CocoStuff(root, size=SIZE, filter_outdoor=True, cache_dir=cache)
    assert [s.name for s in data.samples] == ["outdoor"]
    check_item(data[0], 183, "outdoor")
    assert len(list(cache.glob("cocostuff_train2017_*.npz"))) == 1

    def no_reads(*args, **kwargs):
        raise AssertionError("label maps were read again instead of the cache")

    monkeypatch.setattr(scene_filter, "load_label_ids", no_reads)
    laxer = CocoStuff(root, size=SIZE, filter_outdoor=True, cache_dir=cache, max_thing_fraction=0.8)
    assert [s.name for s in laxer.samples] == ["outdoor", "thing"]
    everything = CocoStuff(root, filter_outdoor=True, cache_dir=cache, max_thing_fraction=1.0, max_indoor_fraction=1.0)
    assert len(everything) == 3


def test_filter_outdoor_reads_only_new_label_maps(tmp_path, monkeypatch):
    root, cache = outdoor_fixture(tmp_path / "coco"), tmp_path / "cache"
    CocoStuff(root, filter_outdoor=True, cache_dir=cache)
    coco(root, {"later": quadrants(SKY, GRASS, SKY, GRASS)})
    read = []
    original = scene_filter.load_label_ids

    def counting_reads(path, *args):
        read.append(Path(path).stem)
        return original(path, *args)

    monkeypatch.setattr(scene_filter, "load_label_ids", counting_reads)
    data = CocoStuff(root, filter_outdoor=True, cache_dir=cache)
    assert read == ["later"] and [s.name for s in data.samples] == ["later", "outdoor"]


def test_filter_outdoor_that_keeps_nothing(tmp_path):
    root = coco(tmp_path / "coco", {"indoor": quadrants(WALL, WALL, WALL, WALL)})
    with pytest.raises(ValueError, match="filter_outdoor kept none of the 1 images"):
        CocoStuff(root, filter_outdoor=True, cache_dir=tmp_path / "cache")


def test_filter_outdoor_skips_or_fails_on_a_corrupt_label_map(tmp_path):
    root = outdoor_fixture(tmp_path / "coco")
    (root / "annotations" / "train2017" / "thing.png").write_bytes(b"\x89PNG garbage")
    with pytest.warns(UserWarning, match=r"thing\.png"):
        data = CocoStuff(root, filter_outdoor=True, cache_dir=tmp_path / "cache", max_thing_fraction=1.0)
    assert [s.name for s in data.samples] == ["outdoor"] and data.skipped == {"thing"}
    with pytest.raises(CorruptFileError, match=r"thing\.png"):
        CocoStuff(root, filter_outdoor=True, cache_dir=tmp_path / "cache", on_corrupt="fail")


# --- ADE20K -------------------------------------------------------------------------------


def test_ade20k_mapping(tmp_path):
    root = ade(tmp_path, {"ADE_train_1": quadrants(0, 5, 150, 1)})
    data = ADE20K(root, size=SIZE)
    assert data.num_classes == 151 and data.class_names[0] == "wall" and data.class_names[150] == "other"
    item = data[0]
    check_item(item, 151, "ADE_train_1")
    assert item["label"][0, 0] == 150 and item["label"][0, -1] == 4
    assert item["label"][-1, 0] == 149 and item["label"][-1, -1] == 0


def test_ade20k_validation_split_parent_folder_and_errors(tmp_path):
    ade(tmp_path / "ADEChallengeData2016", {"v": quadrants(1, 1, 1, 151)}, split="validation")
    data = ADE20K(tmp_path, split="val", size=SIZE)
    with pytest.raises(ValueError, match=r"v\.png: label id 151 .*num_classes=151"):
        data[0]
    with pytest.raises(ValueError, match="unknown split 'test'"):
        ADE20K(tmp_path, split="test")
    with pytest.raises(FileNotFoundError, match="accepted layouts: images/training/ "):
        ADE20K(tmp_path, split="train")


# --- LabelFolder --------------------------------------------------------------------------


def test_label_folder_items_and_image_formats(tmp_path):
    root = folder(tmp_path, {"a": quadrants(0, 1, 2, 0)})
    for stem, suffix in (("b", ".png"), ("c", ".webp"), ("d", ".bmp"), ("e", ".JPEG")):
        write_image(root / "images" / f"{stem}{suffix}")
        write_label(root / "labels" / f"{stem}.png", quadrants(2, 2, 1, 1))
    data = LabelFolder(root, label_nc=3, size=SIZE)
    assert len(data) == 5 and data.num_classes == 3 and data.class_names == ["class_0", "class_1", "class_2"]
    for index, name in enumerate("abcde"):
        check_item(data[index], 3, name)


def test_label_folder_dontcare(tmp_path):
    data = LabelFolder(folder(tmp_path, {"a": quadrants(0, 2, 255, 1)}), label_nc=3, size=SIZE, dontcare_label=255)
    assert data.num_classes == 4 and data.class_names[-1] == "dontcare"
    label = data[0]["label"]
    assert label[0, 0] == 0 and label[0, -1] == 2 and label[-1, 0] == 3 and label[-1, -1] == 1


def test_label_folder_id_beyond_label_nc(tmp_path):
    data = LabelFolder(folder(tmp_path, {"scene": quadrants(0, 1, 7, 9)}), label_nc=3, size=SIZE, dontcare_label=255)
    with pytest.raises(ValueError, match=r"scene\.png: label id 7 \(found: 7, 9\).*--label-nc \(3\)"):
        data[0]


def test_label_folder_layout_and_argument_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"accepted layouts: images/ \+ labels/"):
        LabelFolder(tmp_path, label_nc=3)
    root = folder(tmp_path, {"a": quadrants(0, 0, 0, 0)})
    with pytest.raises(ValueError, match=r"^LabelFolder: label_nc \(--label-nc\): expected a positive int, got 0$"):
        LabelFolder(root, label_nc=0)
    with pytest.raises(ValueError, match="size must be an integer >= 16"):
        LabelFolder(root, label_nc=3, size=15)
    with pytest.raises(ValueError, match="on_corrupt must be 'skip' or 'fail'"):
        LabelFolder(root, label_nc=3, on_corrupt="ignore")
    write_image(root / "images" / "a.png")
    with pytest.raises(ValueError, match=r"several files share a stem .*a\.(jpg|png) / a\.(jpg|png)"):
        LabelFolder(root, label_nc=3)


# --- corrupt files ------------------------------------------------------------------------


def truncated_jpeg() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((HEIGHT, WIDTH, 3), 128, np.uint8)).save(buffer, format="JPEG")
    return buffer.getvalue()[: len(buffer.getvalue()) // 2]


@pytest.mark.parametrize("content", [b"this is not a jpeg", truncated_jpeg()], ids=["garbage", "truncated"])
def test_corrupt_image_is_skipped_with_a_warning(tmp_path, content):
    root = folder(tmp_path, {"a": quadrants(0, 0, 0, 0), "b": quadrants(1, 1, 1, 1), "c": quadrants(2, 2, 2, 2)})
    (root / "images" / "b.jpg").write_bytes(content)
    data = LabelFolder(root, label_nc=3, size=SIZE)
    with pytest.warns(UserWarning, match=r"skipping item 'b'.*b\.jpg"):
        item = data[1]
    check_item(item, 3, "c")
    assert data.skipped == {"b"}


def test_corrupt_last_item_wraps_to_the_first(tmp_path):
    root = folder(tmp_path, {"a": quadrants(0, 0, 0, 0), "b": quadrants(1, 1, 1, 1)})
    (root / "labels" / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    data = LabelFolder(root, label_nc=3, size=SIZE)
    with pytest.warns(UserWarning, match=r"b\.png"):
        assert data[-1]["name"] == "a"
    assert data.skipped == {"b"}


def test_corrupt_image_fails_when_asked(tmp_path):
    root = folder(tmp_path, {"a": quadrants(0, 0, 0, 0), "b": quadrants(1, 1, 1, 1)})
    (root / "images" / "b.jpg").write_bytes(b"garbage")
    data = LabelFolder(root, label_nc=3, size=SIZE, on_corrupt="fail")
    with pytest.raises(CorruptFileError, match=r"cannot read .*b\.jpg"):
        data[1]


def test_every_file_corrupt(tmp_path):
    root = folder(tmp_path, {"a": quadrants(0, 0, 0, 0)})
    (root / "images" / "a.jpg").write_bytes(b"garbage")
    with pytest.warns(UserWarning), pytest.raises(RuntimeError, match="none of the 1 items"):
        LabelFolder(root, label_nc=3, size=SIZE)[0]


def test_corrupt_file_error_survives_pickling(tmp_path):
    error = pickle.loads(pickle.dumps(CorruptFileError(tmp_path / "x.jpg", "OSError: truncated")))
    assert isinstance(error, ValueError) and error.path == tmp_path / "x.jpg" and "x.jpg" in str(error)


# --- image_io and batching ----------------------------------------------------------------


def test_image_round_trip_and_resize(tmp_path):
    image = torch.rand(3, HEIGHT, WIDTH) * 2 - 1
    save_picture(image, tmp_path / "out" / "x.png")
    loaded = load_image(tmp_path / "out" / "x.png", None)
    assert loaded.shape == (3, HEIGHT, WIDTH) and (loaded - image).abs().max() <= 1 / 127.5
    assert load_image(tmp_path / "out" / "x.png", (SIZE, SIZE)).shape == (3, SIZE, SIZE)
    assert load_image(tmp_path / "out" / "x.png", (16, 40)).shape == (3, 16, 40)  # (height, width)
    with pytest.raises(ValueError, match=r"size: expected \(height, width\), two positive ints, got 32"):
        load_image(tmp_path / "out" / "x.png", SIZE)


def test_label_ids_resize_samples_the_pixel_under_each_centre():
    ids = torch.arange(12).reshape(3, 4)
    assert torch.equal(resize_label_ids(ids, (3, 4)), ids)
    # rows: centres 0.25, 0.75, ... of 3 rows -> 0, 0, 1, 1, 2, 2; columns: centres 1 and 3 of 4
    assert torch.equal(resize_label_ids(ids, (6, 2)), torch.tensor([[1, 3], [1, 3], [5, 7], [5, 7], [9, 11], [9, 11]]))
    assert torch.equal(resize_label_ids(ids, (1, 1)), torch.tensor([[6]]))  # the centre (1.5, 2) is in row 1, column 2


def test_one_picture_writer_for_images_grids_and_uint8(tmp_path):
    image = torch.tensor([-1.0, 0.0, 1.0]).view(3, 1, 1).expand(3, 2, 5)
    written = [
        save_picture(image, tmp_path / "signed.png"),
        save_picture((image + 1) / 2, tmp_path / "grid.png", value_range=(0.0, 1.0)),
        save_picture(to_uint8(image)[None], tmp_path / "sub" / "bytes.png"),
    ]
    for path in written:
        assert np.asarray(Image.open(path)).tolist() == [[[0, 128, 255]] * 5] * 2
    with pytest.raises(ValueError, match="save_picture: expected an RGB image"):
        save_picture(torch.zeros(2, 2), tmp_path / "x.png")


def test_palette_label_maps_give_raw_ids_and_colour_maps_are_refused(tmp_path):
    ids = quadrants(3, 7, 0, 200)
    palette = Image.frombytes("P", (WIDTH, HEIGHT), ids.tobytes())
    palette.putpalette(np.random.default_rng(0).integers(0, 256, 768, dtype=np.uint8).tolist())
    palette.save(tmp_path / "p.png")
    assert torch.equal(load_label_ids(tmp_path / "p.png", None), torch.from_numpy(ids).long())
    assert load_label_ids(tmp_path / "p.png", (SIZE, SIZE)).shape == (SIZE, SIZE)
    Image.fromarray(np.zeros((HEIGHT, WIDTH, 3), np.uint8)).save(tmp_path / "rgb.png")
    with pytest.raises(ValueError, match=re.escape(str(tmp_path / "rgb.png")) + ".*PIL mode 'RGB'"):
        load_label_ids(tmp_path / "rgb.png", None)


def test_default_collate_batches_items(tmp_path):
    data = LabelFolder(folder(tmp_path, {"a": quadrants(0, 1, 2, 0), "b": quadrants(1, 1, 1, 1)}), 3, size=SIZE)
    batch = next(iter(DataLoader(data, batch_size=2)))
    assert batch["image"].shape == (2, 3, SIZE, SIZE) and batch["label"].shape == (2, SIZE, SIZE)
    assert batch["name"] == ["a", "b"]


def test_sixteen_bit_label_maps_hold_ids_above_255(tmp_path):
    root = folder(tmp_path, {"a": quadrants(0, 0, 0, 0)})
    ids = np.zeros((HEIGHT, WIDTH), np.uint16)
    ids[:, WIDTH // 2 :] = 299
    Image.fromarray(ids).save(root / "labels" / "a.png")
    label = LabelFolder(root, label_nc=300, size=SIZE)[0]["label"]
    assert label[0, 0] == 0 and label[0, -1] == 299
