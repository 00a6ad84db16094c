"""The embedded synthetic scenes: determinism, shapes, layout-only labels, resolution independence, variety."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from msca_fast.data.synthetic import (
    CLASS_NAMES,
    NUM_CLASSES,
    PALETTE,
    SKY,
    Layout,
    Style,
    SyntheticScenes,
    colorize_labels,
    paint_layout,
    render,
    sample_layout,
    sample_style,
)


@pytest.fixture(autouse=True)
def one_thread():
    """Rendering is many small elementwise ops: with 2 OpenMP threads on a CPU that other processes
    also load, each op waits for a descheduled thread (10x slower); one thread is immune."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _present(label: torch.Tensor) -> np.ndarray:
    """(H,W) ids -> (NUM_CLASSES,) bool: which classes have at least one pixel."""
    return np.bincount(label.view(-1).numpy(), minlength=NUM_CLASSES) > 0


def test_class_list_and_palette():
    assert len(CLASS_NAMES) == NUM_CLASSES == len(PALETTE) == len(set(CLASS_NAMES))
    assert CLASS_NAMES[SKY] == "sky"
    data = SyntheticScenes(num_images=3, size=16)
    assert data.num_classes == NUM_CLASSES and data.class_names == CLASS_NAMES


def test_deterministic_in_seed_and_index():
    a, b = SyntheticScenes(num_images=5, size=32, seed=3), SyntheticScenes(num_images=5, size=32, seed=3)
    later = b[4]  # call order must not matter
    first, again = a[4], b[4]
    for item in (again, later):
        assert torch.equal(first["image"], item["image"]) and torch.equal(first["label"], item["label"])
    assert first["name"] == "synthetic_000004" and a[-1]["name"] == "synthetic_000004"
    other = SyntheticScenes(num_images=5, size=32, seed=4)[4]
    assert not torch.equal(first["image"], other["image"])
    assert not torch.equal(a[0]["image"], a[1]["image"])


@pytest.mark.parametrize("size", [16, 64, 256])
def test_shapes_dtypes_ranges(size):
    item = SyntheticScenes(num_images=2, size=size, seed=1)[1]
    image, label = item["image"], item["label"]
    assert image.shape == (3, size, size) and image.dtype == torch.float32
    assert label.shape == (size, size) and label.dtype == torch.int64
    assert image.min() >= -1 and image.max() <= 1 and torch.isfinite(image).all()
    assert label.min() >= 0 and label.max() < NUM_CLASSES
    assert image.std() > 0.02  # not a flat image
    colours = colorize_labels(label)
    assert colours.shape == (3, size, size) and colours.dtype == torch.uint8


def test_labels_depend_only_on_layout():
    data = SyntheticScenes(num_images=4, size=64)
    layout = data.layout(0)
    image_a, label_a = render(layout, data.style(1), 64, 64)
    image_b, label_b = render(layout, data.style(2), 64, 64)
    assert torch.equal(label_a, label_b)
    assert (image_a - image_b).abs().mean() > 0.05
    image_c, _ = render(data.layout(3), data.style(1), 64, 64)
    assert not torch.equal(image_a, image_c)


def test_render_labels_are_the_painted_layout():
    data = SyntheticScenes(num_images=1, size=16)
    assert torch.equal(render(data.layout(0), data.style(0), 48, 48)[1], paint_layout(data.layout(0), 48, 48)[0])


def test_item_is_its_layout_in_its_style():
    data = SyntheticScenes(num_images=3, size=32, seed=7)
    image, label = render(data.layout(2), data.style(2), 32, 32)
    assert torch.equal(image, data[2]["image"]) and torch.equal(label, data[2]["label"])


def test_resolution_independent_labels():
    for seed in range(6):
        rng = np.random.default_rng(seed)
        layout, style = sample_layout(rng), sample_style(rng)
        _, small = render(layout, style, 64, 64)
        _, large = render(layout, style, 256, 256)
        nearest = torch.nn.functional.interpolate(large[None, None].float(), size=(64, 64), mode="nearest")
        assert (nearest[0, 0].long() == small).float().mean() > 0.9


def test_class_presence_varies_across_layouts():
    present = np.stack([_present(paint_layout(sample_layout(np.random.default_rng([1, i])), 32, 32)[0])
                        for i in range(50)])
    for cls, name in enumerate(CLASS_NAMES):
        if cls != SKY:
            assert 0 < present[:, cls].sum() < 50, name
    assert len({tuple(row) for row in present}) > 10  # label histograms differ between images


def test_every_class_appears_in_200_images():
    data = SyntheticScenes(num_images=200, size=32)
    seen = np.zeros(NUM_CLASSES, dtype=bool)
    for i in range(200):
        seen |= _present(paint_layout(data.layout(i), 32, 32)[0])  # the labels render returns
    assert seen.all(), [name for name, s in zip(CLASS_NAMES, seen) if not s]


def test_styles_vary():
    styles = [sample_style(np.random.default_rng(i)) for i in range(40)]
    assert isinstance(styles[0], Style) and isinstance(sample_layout(np.random.default_rng(0)), Layout)
    assert len({s.time_of_day for s in styles}) == 4 and len({s.season for s in styles}) == 4


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"num_images": 0}, ValueError, "num_images"),
        ({"size": 8}, ValueError, "size"),
        ({"size": 64.0}, TypeError, "size"),
        ({"seed": -1}, ValueError, "seed"),
    ],
)
def test_bad_dataset_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        SyntheticScenes(**kwargs)


def test_bad_index_and_render_arguments():
    data = SyntheticScenes(num_images=2, size=16)
    with pytest.raises(IndexError, match="index"):
        data[2]
    with pytest.raises(TypeError, match="index"):
        data[0.5]
    layout, style = data.layout(0), data.style(0)
    with pytest.raises(TypeError, match="layout"):
        render(style, style, 16, 16)
    with pytest.raises(TypeError, match="style"):
        render(layout, layout, 16, 16)
    with pytest.raises(ValueError, match="height"):
        render(layout, style, 0, 16)
    with pytest.raises(TypeError, match="rng"):
        sample_layout(0)
    with pytest.raises(TypeError, match="rng"):
        sample_style(None)
    with pytest.raises(ValueError, match="label"):
        colorize_labels(torch.zeros(3, 4, 4, dtype=torch.int64))
