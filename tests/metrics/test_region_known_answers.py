"""Region metrics (msca_fast.metrics.region) against numbers worked out by hand on 4x4 scenes
(the definitions and the shared scene: tests/region_scene.py)."""

from __future__ import annotations

import math

import pytest
import torch

from msca_fast.metrics.region import (
    RegionTransfer,
    paint_class_means,
    paint_global_mean,
    region_colour_error,
)

from region_scene import (
    CLASS_COPY,
    ERR_CLASS_COPY,
    ERR_GLOBAL,
    EXEMPLAR,
    EXEMPLAR_IDS,
    EXEMPLAR_MEAN,
    PSNR_CLASS_COPY,
    PSNR_GLOBAL,
    RGB,
    TARGET_IDS,
    TRUTH,
    ids_from_rows,
    paint,
)

# --- the region colour error ------------------------------------------------------------------

# Classes 0 (4 pixels) and 2 (12 pixels); class 1 of the palette is absent from the layout.
GAP_LAYOUT = ids_from_rows([0, 0, 0, 0], [2, 2, 2, 2], [2, 2, 2, 2], [2, 2, 2, 2])
GAP_TRUTH_COLOURS = {0: (0.2, -0.4, 0.6), 2: (-0.8, 0.0, 0.4)}


def gap_scene_output() -> torch.Tensor:
    """The truth with class 0's pixels off by (0.6, 0, 0) twice and (0, 0.8, 0) twice.

    Their mean offset is (0.3, 0.4, 0): a distance of 0.5 = 63.75 RGB units. (A mean of the
    per-pixel distances would be 0.7, an L1 distance of the means 0.7 too.)
    """
    output = paint(GAP_LAYOUT, GAP_TRUTH_COLOURS)
    output[0, 0, 0, :2] += 0.6
    output[0, 1, 0, 2:] += 0.8
    return output


def test_a_palette_class_absent_from_the_layout_does_not_dilute_the_error():
    truth = paint(GAP_LAYOUT, GAP_TRUTH_COLOURS)
    error = region_colour_error(gap_scene_output(), truth, GAP_LAYOUT)
    class_0, class_2 = 0.5 * RGB, 0.0
    # Two classes present: (63.75 + 0) / 2. Dividing by the three ids 0..2 would give 21.25;
    # weighting classes by area (4 of 16 pixels) 15.94.
    assert error.dtype == torch.float64 and error.shape == (1,)
    assert error.item() == pytest.approx((class_0 + class_2) / 2, rel=1e-6)


def test_the_error_is_per_image_over_that_images_own_classes():
    # Image 1 has all three classes; its class 1 is off by (0, 0, 0.4) = 51 RGB units.
    layout_1 = ids_from_rows([0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 2, 2], [2, 2, 2, 2])
    colours_1 = {0: (0.5, 0.5, 0.5), 1: (-0.5, 0.0, -0.6), 2: (0.1, 0.9, -0.3)}
    truth_1 = paint(layout_1, colours_1)
    output_1 = paint(layout_1, {**colours_1, 1: (-0.5, 0.0, -0.2)})
    layout = torch.cat([GAP_LAYOUT, layout_1])
    truths = torch.cat([paint(GAP_LAYOUT, GAP_TRUTH_COLOURS), truth_1])
    outputs = torch.cat([gap_scene_output(), output_1])
    errors = region_colour_error(outputs, truths, layout)
    assert errors.tolist() == pytest.approx([(0.5 * RGB + 0) / 2, (0 + 0.4 * RGB + 0) / 3], rel=1e-6)


def test_the_error_is_symmetric_and_zero_for_the_truth():
    truth = paint(GAP_LAYOUT, GAP_TRUTH_COLOURS)
    assert region_colour_error(truth, truth, GAP_LAYOUT).item() == 0
    assert region_colour_error(truth, gap_scene_output(), GAP_LAYOUT).item() == pytest.approx(0.5 * RGB / 2, rel=1e-6)


# --- a target class the exemplar lacks (region_scene's scene) --------------------------------


def test_paintings_of_a_target_class_the_exemplar_lacks():
    copy = paint_class_means(EXEMPLAR, EXEMPLAR_IDS, TARGET_IDS)
    torch.testing.assert_close(copy, CLASS_COPY)
    flat = paint_global_mean(EXEMPLAR, (4, 4))
    torch.testing.assert_close(flat, paint(TARGET_IDS, dict.fromkeys((0, 1, 2), EXEMPLAR_MEAN)))


def test_region_transfer_when_the_exemplar_lacks_a_target_class():
    metric = RegionTransfer()
    metric.update(TRUTH, TRUTH, TARGET_IDS, EXEMPLAR, EXEMPLAR_IDS)
    result = metric.compute()
    assert result["region_error"] == 0
    assert result["region_error_global"] == pytest.approx(ERR_GLOBAL, rel=1e-6)
    assert result["region_error_class_copy"] == pytest.approx(ERR_CLASS_COPY, rel=1e-6)
    # The truth does better than the class copy here, which cannot know class 2's colour: > 1.
    assert result["region_score"] == pytest.approx(ERR_GLOBAL / (ERR_GLOBAL - ERR_CLASS_COPY), rel=1e-6)
    assert result["psnr_global"] == pytest.approx(PSNR_GLOBAL, rel=1e-6)
    assert result["psnr_class_copy"] == pytest.approx(PSNR_CLASS_COPY, rel=1e-6)
    assert "sensitivity" not in result


@pytest.mark.parametrize(
    "painting, score", [("class copy", 1.0), ("global", 0.0), ("halfway", None)]
)  # fmt: skip
def test_the_score_places_an_output_between_the_two_paintings(painting, score):
    copy = paint_class_means(EXEMPLAR, EXEMPLAR_IDS, TARGET_IDS)
    flat = paint_global_mean(EXEMPLAR, (4, 4))
    output = {"class copy": copy, "global": flat, "halfway": 0.5 * (copy + flat)}[painting]
    metric = RegionTransfer()
    metric.update(output, TRUTH, TARGET_IDS, EXEMPLAR, EXEMPLAR_IDS)
    result = metric.compute()
    if painting == "halfway":
        # Per class the halfway mean sits midway: class 0 sqrt(0.45) / 2, class 1 sqrt(0.05) / 2,
        # class 2 (both paint the exemplar's mean) 0.7.
        error = RGB * (math.sqrt(0.45) / 2 + math.sqrt(0.05) / 2 + 0.7) / 3
        assert result["region_error"] == pytest.approx(error, rel=1e-6)
        score = (ERR_GLOBAL - error) / (ERR_GLOBAL - ERR_CLASS_COPY)
        assert score == pytest.approx(0.5)  # the shared class 2 cancels out of the score
    assert result["region_score"] == pytest.approx(score, abs=1e-6)


def test_the_score_comes_from_errors_averaged_over_images():
    # A second scene whose exemplar is its truth: class copy exact, global painting of the
    # mean of (0.5, 0, 0) on 4 pixels and (-0.5, 0, 0) on 12 -> (-0.25, 0, 0): distances
    # 0.75 (class 0) and 0.25 (class 1) -> error 127.5 * 0.5 = 63.75.
    ids = ids_from_rows([0, 0, 0, 0], [1, 1, 1, 1], [1, 1, 1, 1], [1, 1, 1, 1])
    truth = paint(ids, {0: (0.5, 0.0, 0.0), 1: (-0.5, 0.0, 0.0)})
    output = truth.clone()
    output[0, 2, 0] += 0.2  # class 0's blue off by 0.2: error 127.5 * 0.2 / 2 = 12.75
    metric = RegionTransfer()
    # A batch of both scenes (the first exemplar's 16 pixels laid out 4x4 to batch it: the same means).
    exemplars = torch.cat([EXEMPLAR.view(1, 3, 4, 4), truth])
    exemplar_ids = torch.cat([EXEMPLAR_IDS.view(1, 4, 4), ids])
    outputs, truths, target_ids = torch.cat([TRUTH, output]), torch.cat([TRUTH, truth]), torch.cat([TARGET_IDS, ids])
    metric.update(outputs, truths, target_ids, exemplars, exemplar_ids)
    metric.update(TRUTH, TRUTH, TARGET_IDS, EXEMPLAR, EXEMPLAR_IDS)  # a second batch, of one image
    result = metric.compute()
    err_model = (0 + 12.75 + 0) / 3
    err_global = (ERR_GLOBAL + 63.75 + ERR_GLOBAL) / 3
    err_copy = (ERR_CLASS_COPY + 0 + ERR_CLASS_COPY) / 3
    assert result["region_error"] == pytest.approx(err_model, rel=1e-6)
    assert result["region_error_global"] == pytest.approx(err_global, rel=1e-6)
    assert result["region_error_class_copy"] == pytest.approx(err_copy, rel=1e-6)
    assert result["region_score"] == pytest.approx((err_global - err_model) / (err_global - err_copy), rel=1e-6)


def test_sensitivity_is_the_ratio_of_total_changes():
    # Constant images: out_a - out_b = 0.2 on image 1, 0.1 on image 2; the truths change by
    # 0.5 and 0.3: (0.2 + 0.1) / (0.5 + 0.3).
    ids = torch.zeros(1, 4, 4, dtype=torch.int64)
    grey = paint(ids, {0: (0.0, 0.0, 0.0)})
    metric = RegionTransfer()
    metric.update(grey, grey, ids, grey, ids)
    metric.update_sensitivity(grey, grey + 0.2, grey, grey - 0.5)
    metric.update_sensitivity(grey - 0.1, grey, grey + 0.3, grey)
    assert metric.compute()["sensitivity"] == pytest.approx(0.3 / 0.8)


def test_region_inputs_are_checked():
    image = paint(GAP_LAYOUT, GAP_TRUTH_COLOURS)
    with pytest.raises(ValueError, match="target_ids: expected non-negative class ids"):
        region_colour_error(image, image, GAP_LAYOUT - 1)
    with pytest.raises(ValueError, match="exemplar_ids: expected class ids of shape"):
        paint_class_means(EXEMPLAR, TARGET_IDS, TARGET_IDS)
    with pytest.raises(ValueError, match="target_ids: expected class ids"):
        paint_class_means(EXEMPLAR, EXEMPLAR_IDS, TARGET_IDS[0])
