"""Self-supervised pair sampling: patch placement, determinism, schedule, flips."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from msca_fast.data.pairs import PairSchedule, SelfSupervisedPairs, place_patches


class Gradient(torch.utils.data.Dataset):
    """Images whose pixel values encode their coordinates, so crops can be located."""

    def __init__(self, size: int = 64, count: int = 5) -> None:
        self.size, self.count = size, count

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> dict:
        ys, xs = torch.meshgrid(torch.arange(self.size), torch.arange(self.size), indexing="ij")
        image = torch.stack([ys, xs, torch.full_like(ys, index)]).float() / self.size
        return {"image": image, "label": (ys * self.size + xs).long(), "name": f"img{index}"}


def overlap(p, q, size):
    return max(0, size - abs(p[0] - q[0])) * max(0, size - abs(p[1] - q[1]))


def test_patches_never_overlap_when_two_fit():
    rng = np.random.default_rng(0)
    for _ in range(200):
        p, q = place_patches(rng, 512, 256)
        assert overlap(p, q, 256) == 0
        assert all(0 <= v <= 256 for v in (*p, *q))


def test_large_patches_take_opposite_corners():
    rng = np.random.default_rng(0)
    for _ in range(20):
        p, q = place_patches(rng, 512, 384)
        assert {p, q} in ({(0, 0), (128, 128)}, {(0, 128), (128, 0)})


def test_sample_crops_match_their_positions_and_sizes():
    schedule = PairSchedule(load_size=64, patch_sizes=(16, 24), patch_epochs=(2,), global_size=32, flip_probability=0)
    pairs = SelfSupervisedPairs(Gradient(), schedule, seed=3)
    item = pairs[1]
    assert item["target_image"].shape == (3, 16, 16) and item["exemplar_label"].shape == (16, 16)
    assert item["global_image"].shape == (3, 32, 32) and item["global_label"].shape == (32, 32)
    # The label encodes y * 64 + x: the crop is a contiguous window of the image.
    label = item["target_label"]
    y0, x0 = divmod(int(label[0, 0]), 64)
    assert torch.equal(label, Gradient()[1]["label"][y0 : y0 + 16, x0 : x0 + 16])
    ey, ex = divmod(int(item["exemplar_label"][0, 0]), 64)
    assert overlap((y0, x0), (ey, ex), 16) == 0
    pairs.set_epoch(2)
    assert pairs[1]["target_image"].shape == (3, 24, 24)


def test_samples_depend_only_on_seed_epoch_and_index():
    schedule = PairSchedule(load_size=64, patch_sizes=(16,), patch_epochs=(), global_size=32)
    a = SelfSupervisedPairs(Gradient(), schedule, seed=5)
    b = SelfSupervisedPairs(Gradient(), schedule, seed=5)
    _ = b[3], b[0]  # call order must not matter
    assert all(torch.equal(a[2][k], b[2][k]) for k in ("target_label", "exemplar_label", "exemplar_image"))
    a.set_epoch(1)
    assert not torch.equal(a[2]["target_label"], b[2]["target_label"])


def test_exemplar_is_flipped_with_probability_one():
    schedule = PairSchedule(load_size=64, patch_sizes=(16,), patch_epochs=(), global_size=32, flip_probability=1)
    label = SelfSupervisedPairs(Gradient(), schedule)[0]["exemplar_label"]
    assert torch.all(label[:, :-1] - label[:, 1:] == 1)  # x decreases left to right


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(patch_sizes=(256, 384), patch_epochs=()), r"patch_epochs: expected 1 epochs"),
        (dict(patch_sizes=(600,), patch_epochs=()), r"expected 16 <= size <= load_size=512, got 600"),
        (dict(flip_probability=2.0), r"flip_probability"),
    ],
)
def test_schedule_rejects_bad_values(kwargs, match):
    with pytest.raises(ValueError, match=match):
        PairSchedule(**kwargs)


def test_wrong_image_size_is_named():
    pairs = SelfSupervisedPairs(
        Gradient(size=48), PairSchedule(load_size=64, patch_sizes=(16,), patch_epochs=(), global_size=32)
    )
    with pytest.raises(ValueError, match=r"images\[0\]: expected image \(3, 64, 64\)"):
        pairs[0]
