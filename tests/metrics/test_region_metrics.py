"""Region transfer, exemplar sensitivity and attention quality on hand-made cases."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from msca_fast.evaluation.attention_quality import channel_entropy, region_purity
from msca_fast.metrics.region import (
    RegionTransfer,
    class_means,
    paint_class_means,
    paint_global_mean,
    region_colour_error,
    transfer_score,
)


def two_region_scene(colours: tuple[tuple[float, float, float], tuple[float, float, float]], split: int):
    """A 1x3x8x8 image whose top ``split`` rows are class 0 in colours[0], the rest class 1 in colours[1]."""
    ids = torch.ones(1, 8, 8, dtype=torch.int64)
    ids[:, :split] = 0
    image = torch.empty(1, 3, 8, 8)
    image[0, :, :split] = torch.tensor(colours[0]).view(3, 1, 1)
    image[0, :, split:] = torch.tensor(colours[1]).view(3, 1, 1)
    return image, ids


SKY, GROUND = (-0.5, 0.0, 0.8), (0.4, -0.2, -0.6)


def test_class_means_and_paintings():
    image, ids = two_region_scene((SKY, GROUND), split=2)
    means, counts = class_means(image, ids, 3)
    assert counts.tolist() == [[16, 48, 0]]
    torch.testing.assert_close(means[0, :2].float(), torch.tensor([SKY, GROUND]))
    target_ids = ids.flip(1)  # ground on top now
    painted = paint_class_means(image, ids, target_ids)
    assert painted.shape == (1, 3, 8, 8)
    torch.testing.assert_close(painted[0, :, 0, 0], torch.tensor(GROUND))
    torch.testing.assert_close(painted[0, :, 7, 0], torch.tensor(SKY))
    global_paint = paint_global_mean(image, (4, 5))
    assert global_paint.shape == (1, 3, 4, 5)
    torch.testing.assert_close(global_paint[0, :, 0, 0], image[0].mean(dim=(1, 2)))


def test_a_class_the_exemplar_lacks_gets_its_mean_colour():
    image, ids = two_region_scene((SKY, GROUND), split=2)
    target_ids = torch.full((1, 8, 8), 2, dtype=torch.int64)
    painted = paint_class_means(image, ids, target_ids)
    torch.testing.assert_close(painted[0, :, 3, 3], image[0].mean(dim=(1, 2)))


def test_region_colour_error_in_rgb_units():
    truth, ids = two_region_scene((SKY, GROUND), split=4)
    assert region_colour_error(truth, truth, ids).item() == 0
    shifted = truth.clone()
    shifted[0, 0, :4] += 0.2  # sky's red off by 0.2 * 127.5 = 25.5; ground exact
    assert region_colour_error(shifted, truth, ids).item() == pytest.approx(25.5 / 2)


def test_perfect_copy_scores_one_and_global_mean_scores_zero():
    exemplar, exemplar_ids = two_region_scene((SKY, GROUND), split=3)
    truth, target_ids = two_region_scene((SKY, GROUND), split=6)  # the same style, another layout
    metric = RegionTransfer()
    metric.update(truth, truth, target_ids, exemplar, exemplar_ids)
    perfect = metric.compute()
    assert perfect["region_score"] == pytest.approx(1.0)
    assert perfect["region_error"] == 0 and perfect["region_error_class_copy"] == pytest.approx(0, abs=1e-9)
    assert perfect["region_error_global"] > 50

    metric.reset()
    metric.update(paint_global_mean(exemplar, (8, 8)), truth, target_ids, exemplar, exemplar_ids)
    assert metric.compute()["region_score"] == pytest.approx(0.0, abs=1e-12)

    half = 0.5 * (truth + paint_global_mean(exemplar, (8, 8)))
    metric.reset()
    metric.update(half, truth, target_ids, exemplar, exemplar_ids)
    assert metric.compute()["region_score"] == pytest.approx(0.5)


def test_transfer_score_is_undefined_when_the_paintings_tie():
    assert math.isnan(transfer_score(3.0, 5.0, 5.0))
    assert transfer_score(4.0, 6.0, 2.0) == pytest.approx(0.5)


def test_sensitivity_compares_output_change_with_truth_change():
    truth_a, ids = two_region_scene((SKY, GROUND), split=4)
    truth_b, _ = two_region_scene((GROUND, SKY), split=4)
    metric = RegionTransfer()
    metric.update(truth_a, truth_a, ids, truth_a, ids)
    assert "sensitivity" not in metric.compute()
    metric.update_sensitivity(truth_a, truth_a, truth_a, truth_b)  # the exemplar is ignored
    assert metric.compute()["sensitivity"] == 0
    metric.update_sensitivity(truth_a, truth_b, truth_a, truth_b)
    assert metric.compute()["sensitivity"] == pytest.approx(0.5)  # one of two pairs follows


def test_region_metrics_reject_bad_input():
    image, ids = two_region_scene((SKY, GROUND), split=4)
    with pytest.raises(ValueError, match="target_ids"):
        region_colour_error(image, image, ids.float())
    with pytest.raises(ValueError, match="target_ids"):
        region_colour_error(image, image, ids[:, :4])
    with pytest.raises(ValueError, match="RegionTransfer: no images"):
        RegionTransfer().compute()


def test_purity_of_class_pure_and_class_blind_maps():
    ids = torch.zeros(1, 4, 4, dtype=torch.int64)
    ids[:, 3:] = 1  # class 0: 12 pixels, class 1: 4
    labels = F.one_hot(ids, 2).permute(0, 3, 1, 2).float()
    pure = torch.stack([labels[0, 0] / 12, labels[0, 1] / 4])[None]  # (1,2,4,4)
    uniform = torch.full((1, 2, 4, 4), 1 / 16)
    usage = torch.ones(1, 2)
    purity, area = region_purity(pure, labels, usage)
    assert purity.item() == pytest.approx(1.0) and area.item() == pytest.approx(0.75)
    purity, _ = region_purity(uniform, labels, usage)
    assert purity.item() == pytest.approx(0.75)  # the baseline
    purity, _ = region_purity(torch.stack([pure[0, 0], uniform[0, 1]])[None], labels, torch.tensor([[1.0, 0.0]]))
    assert purity.item() == pytest.approx(1.0)  # an unused region does not count


def test_channel_entropy_bounds():
    assert channel_entropy(torch.full((2, 4, 3, 3), 0.25)).tolist() == pytest.approx([1.0, 1.0])
    one = torch.zeros(1, 4, 3, 3)
    one[:, 2] = 1
    assert channel_entropy(one).item() == pytest.approx(0.0, abs=1e-9)
    assert channel_entropy(torch.ones(1, 1, 2, 2)).item() == 0
