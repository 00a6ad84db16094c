"""The evaluation pipeline (msca_fast.evaluation.run, python -m msca_fast.evaluate) with stand-in
generators whose scores are known: one that copies its exemplar is perfect on the duplicate
task; one that paints each class with the exemplar's mean colour of that class scores exactly
what the class-copy baseline scores; and on tests/region_scene.py's scene every number is
worked out by hand."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image
from torch import Tensor, nn

from msca_fast import evaluate as evaluate_cli
from msca_fast.data.catalog import DatasetOptions
from msca_fast.data.synthetic import NUM_CLASSES, SyntheticScenes
from msca_fast.evaluation.config import DEFAULT_SEED, EvalConfig
from msca_fast.evaluation.run import evaluate, run_task
from msca_fast.evaluation.tasks import TaskSample, build_task
from msca_fast.metrics import MetricSuite
from msca_fast.training import checkpoint as checkpoint_module
from msca_fast.visuals import class_palette

from region_scene import (
    ERR_CLASS_COPY,
    ERR_GLOBAL,
    EXEMPLAR,
    EXEMPLAR_IDS,
    PSNR_CLASS_COPY,
    PSNR_GLOBAL,
    RGB,
    TARGET_IDS,
    TRUTH,
)

# --- stand-in generators --------------------------------------------------------------------


def copy_exemplar(c1: Tensor, x2: Tensor, c2: Tensor) -> Tensor:
    return x2


def grey(c1: Tensor, x2: Tensor, c2: Tensor) -> Tensor:
    """Ignores the exemplar: 0 (mid grey) everywhere."""
    return x2.new_zeros(x2.shape[0], 3, *c1.shape[-2:])


def global_mean(c1: Tensor, x2: Tensor, c2: Tensor) -> Tensor:
    return x2.mean(dim=(2, 3), keepdim=True).expand(-1, -1, *c1.shape[-2:])


def class_copy(c1: Tensor, x2: Tensor, c2: Tensor) -> Tensor:
    """Each target pixel the exemplar's mean colour of its class (of the whole exemplar where it
    lacks the class), from the one-hot maps."""
    counts = c2.sum(dim=(2, 3))  # (B,C)
    sums = torch.einsum("bnhw,bchw->bcn", x2, c2)
    means = torch.where(counts[..., None] > 0, sums / counts.clamp_min(1)[..., None], x2.mean(dim=(2, 3))[:, None])
    return torch.einsum("bcn,bchw->bnhw", means, c1)


class StandIn(nn.Module):
    """What evaluation uses of a Generator: g(c1, x2, c2) -> (B,3,H,W), config.num_classes, its
    aligners (none with attention maps, as in the GAP ablation) and a parameter (its device)."""

    def __init__(self, num_classes: int, painting) -> None:
        super().__init__()
        self.config = SimpleNamespace(num_classes=num_classes)
        self.aligners = nn.ModuleList([nn.Identity()])
        self.anchor = nn.Parameter(torch.zeros(()))
        self.painting = painting

    def forward(self, c1: Tensor, x2: Tensor, c2: Tensor) -> Tensor:
        return self.painting(c1, x2, c2)


# --- run_task on the hand-worked scene -------------------------------------------------------


def scene_samples(count: int, shift: float = 0.0) -> list[TaskSample]:
    """``count`` copies of region_scene's scene, exemplar and truth shifted by ``shift``."""
    sample = (TARGET_IDS[0], EXEMPLAR[0] + shift, EXEMPLAR_IDS[0], TRUTH[0] + shift)
    return [TaskSample(f"s{i}", *sample) for i in range(count)]


def run_scene(painting, tmp_path, second_samples=None) -> dict:
    """run_task's results for a StandIn with ``painting`` on three copies of the scene, in
    batches of 2 and 1, PSNR the suite's only metric, no sample rows saved."""
    generator = StandIn(3, painting)
    suite = MetricSuite(("psnr",))
    palette = class_palette(3)
    results, rows = run_task(generator, scene_samples(3), suite, 2, torch.device("cpu"), tmp_path, 0, palette, "scene",
                             second_samples)  # fmt: skip
    assert rows == []
    return results


def test_run_task_scores_the_class_copy_painting_as_the_class_copy_baseline(tmp_path):
    results = run_scene(class_copy, tmp_path)
    # No attention maps (a StandIn has none) and no second exemplar: no purity, no sensitivity.
    expected = {"psnr": PSNR_CLASS_COPY, "region_error": ERR_CLASS_COPY, "region_error_global": ERR_GLOBAL,
                "region_error_class_copy": ERR_CLASS_COPY, "region_score": 1.0, "psnr_global": PSNR_GLOBAL,
                "psnr_class_copy": PSNR_CLASS_COPY}  # fmt: skip
    assert results == pytest.approx(expected, rel=1e-5)


def test_run_task_scores_the_global_painting_zero(tmp_path):
    results = run_scene(global_mean, tmp_path)
    assert results["psnr"] == pytest.approx(PSNR_GLOBAL, rel=1e-5)
    assert results["region_error"] == pytest.approx(ERR_GLOBAL, rel=1e-5)
    assert results["region_score"] == pytest.approx(0.0, abs=1e-5)


def test_run_task_clamps_outputs_to_the_image_range(tmp_path):
    # Twice the truth: class 0's red 1.6 is clamped to 1, class 1's green 0.8 and class 2's
    # blue -1.2 -> -1; off by (0.2, 0, 0), (0, 0.4, 0) and (0, 0, -0.4).
    results = run_scene(lambda c1, x2, c2: 2 * TRUTH.expand(x2.shape[0], -1, -1, -1), tmp_path)
    assert results["region_error"] == pytest.approx(RGB * (0.2 + 0.4 + 0.4) / 3, rel=1e-5)
    assert results["psnr"] == pytest.approx(10 * math.log10(4 / ((8 * 0.04 + 4 * 0.16 + 4 * 0.16) / 48)), rel=1e-5)


@pytest.mark.parametrize("painting, sensitivity", [(class_copy, 1.0), (grey, 0.0)])
def test_run_task_sensitivity_to_a_shifted_exemplar(tmp_path, painting, sensitivity):
    # The second exemplar and its truth are the first ones + 0.1 everywhere: the class copy
    # follows exactly (its output moves by 0.1 everywhere, as the truth does); grey does not move.
    results = run_scene(painting, tmp_path, second_samples=scene_samples(3, shift=0.1))
    assert results["sensitivity"] == pytest.approx(sensitivity, abs=1e-5)


# --- run_task on synthetic scenes --------------------------------------------------------------


@pytest.fixture(scope="module")
def scenes():
    """Six 16x16 held-out scenes (evaluate's default seed) and their images, labels and names."""
    dataset = SyntheticScenes(num_images=6, size=16, seed=DEFAULT_SEED)
    items = [dataset[i] for i in range(len(dataset))]
    return dataset, ([it["image"] for it in items], [it["label"] for it in items], [it["name"] for it in items])


@pytest.mark.parametrize("painting, score", [(class_copy, 1.0), (global_mean, 0.0)])
def test_style_transfer_paintings_score_as_their_baselines(scenes, tmp_path, painting, score):
    dataset, task_images = scenes
    samples = build_task("style-transfer", *task_images, dataset.num_classes, dataset=dataset)
    second = build_task("style-transfer", *task_images, dataset.num_classes, dataset, 2)
    generator = StandIn(dataset.num_classes, painting)
    palette = class_palette(dataset.num_classes)
    results, _ = run_task(generator, samples, MetricSuite(("psnr",)), 4, torch.device("cpu"), tmp_path, 0, palette,
                          "style-transfer", second)  # fmt: skip
    baseline = "class_copy" if painting is class_copy else "global"
    assert results["region_score"] == pytest.approx(score, abs=1e-5)
    assert results["region_error"] == pytest.approx(results[f"region_error_{baseline}"], rel=1e-5)
    assert results["psnr"] == pytest.approx(results[f"psnr_{baseline}"], rel=1e-5)
    # Sensitivity: the paintings' total change between the two exemplars over the truths'.
    change = truth_change = 0.0
    for a, b in zip(samples, second):
        c1 = one_hot_ids(a.target_label, dataset.num_classes)
        out_a = painting(c1, a.exemplar_image[None], one_hot_ids(a.exemplar_label, dataset.num_classes))
        out_b = painting(c1, b.exemplar_image[None], one_hot_ids(b.exemplar_label, dataset.num_classes))
        change += (out_a - out_b).abs().mean().item()
        truth_change += (a.truth - b.truth).abs().mean().item()
    assert results["sensitivity"] == pytest.approx(change / truth_change, rel=1e-5)


def one_hot_ids(ids: Tensor, num_classes: int) -> Tensor:
    """(H,W) ids -> (1,C,H,W) float one-hot."""
    return (ids[None, None] == torch.arange(num_classes).view(1, -1, 1, 1)).float()


# --- evaluate() and its command line ---------------------------------------------------------


def psnr_by_hand(x: Tensor, y: Tensor) -> float:
    """10 log10(2^2 / MSE), capped at 100 dB (the module's documented cap)."""
    mse = (x.double() - y.double()).square().mean().item()
    return 100.0 if mse == 0 else min(100.0, 10 * math.log10(4 / mse))


def region_error_by_hand(image: Tensor, truth: Tensor, ids: Tensor) -> float:
    """Mean over the classes in ``ids`` of 127.5 * |mean colour of image - of truth| over the class."""
    distances = []
    for class_id in ids.unique().tolist():
        mask = ids == class_id
        difference = image.double()[:, mask].mean(dim=1) - truth.double()[:, mask].mean(dim=1)
        distances.append(RGB * difference.norm().item())
    return sum(distances) / len(distances)


@pytest.fixture
def stand_in_checkpoints(monkeypatch):
    """evaluate loads a StandIn: copy_exemplar as the EMA weights, grey as the raw ones."""
    loaded = []

    def load_generator(path, ema=True):
        loaded.append((path, ema))
        return StandIn(NUM_CLASSES, copy_exemplar if ema else grey)

    monkeypatch.setattr(checkpoint_module, "load_generator", load_generator)
    return loaded


def test_evaluate_gives_the_perfect_generators_scores(scenes, tmp_path, stand_in_checkpoints):
    tasks = ("duplicate", "mirror", "style-transfer")
    config = EvalConfig(checkpoint="stand-in", data=DatasetOptions(num_images=6), size=16, tasks=tasks,
                        metrics=("psnr",), batch_size=4, rows=1, output_dir=str(tmp_path / "eval"),
                        device="cpu")  # fmt: skip
    results = evaluate(config).results
    dataset, (images, labels, names) = scenes
    duplicate, mirror = results["duplicate"], results["mirror"]
    assert duplicate["psnr"] == 100.0 and duplicate["region_error"] == 0
    assert duplicate["region_score"] == pytest.approx(1.0, abs=1e-6)  # the class copy's error: float32 rounding
    assert duplicate["region_error_class_copy"] == pytest.approx(0.0, abs=1e-4)
    flat = [x.mean(dim=(1, 2), keepdim=True).expand_as(x) for x in images]
    assert duplicate["region_error_global"] == pytest.approx(
        sum(region_error_by_hand(f, x, ids) for f, x, ids in zip(flat, images, labels)) / 6, rel=1e-5)  # fmt: skip
    assert duplicate["psnr_global"] == pytest.approx(sum(map(psnr_by_hand, flat, images)) / 6, rel=1e-5)
    # Mirror: the output is the flipped target; the class copy loses nothing by the flip.
    flipped = [x.flip(-1) for x in images]
    assert mirror["psnr"] == pytest.approx(sum(map(psnr_by_hand, flipped, images)) / 6, rel=1e-9)
    assert mirror["region_error"] == pytest.approx(
        sum(region_error_by_hand(f, x, ids) for f, x, ids in zip(flipped, images, labels)) / 6, rel=1e-5)  # fmt: skip
    assert mirror["region_error_class_copy"] == pytest.approx(0.0, abs=1e-4)
    assert mirror["region_score"] == pytest.approx(1 - mirror["region_error"] / mirror["region_error_global"], rel=1e-5)
    # Style transfer: exemplars i + 1 and i + 2 for target i; the output is the exemplar itself.
    truths_a, truths_b = ([s.truth for s in build_task("style-transfer", images, labels, names, dataset.num_classes,
                                                       dataset, offset)] for offset in (1, 2))  # fmt: skip
    change = sum((images[(i + 1) % 6] - images[(i + 2) % 6]).abs().mean().item() for i in range(6))
    truth_change = sum((a - b).abs().mean().item() for a, b in zip(truths_a, truths_b))
    assert results["style-transfer"]["sensitivity"] == pytest.approx(change / truth_change, rel=1e-5)
    assert "sensitivity" not in duplicate and "sensitivity" not in mirror
    assert stand_in_checkpoints == [("stand-in", True)]


def test_zoomed_sample_rows_repeat_each_pixel(tmp_path, stand_in_checkpoints):
    """--zoom 3: each sample row is the unzoomed row with every pixel a 3x3 block."""
    rows = {}
    for zoom in (1, 3):
        config = EvalConfig(checkpoint="stand-in", data=DatasetOptions(num_images=2), size=16, tasks=("duplicate",),
                            metrics=("psnr",), rows=1, zoom=zoom, output_dir=str(tmp_path / f"zoom{zoom}"),
                            device="cpu")  # fmt: skip
        evaluate(config)
        rows[zoom] = np.asarray(Image.open(tmp_path / f"zoom{zoom}" / "samples" / "duplicate" / "0000.png"))
    assert rows[3].shape == (rows[1].shape[0] * 3, rows[1].shape[1] * 3, 3)
    assert np.array_equal(rows[3], rows[1].repeat(3, axis=0).repeat(3, axis=1))
    with pytest.raises(ValueError, match="zoom"):
        EvalConfig(checkpoint="stand-in", zoom=0)


def test_the_command_line_evaluates_the_raw_weights_when_asked(scenes, tmp_path, stand_in_checkpoints):
    out = tmp_path / "eval"
    argv = ["--checkpoint", "stand-in", "--num-images", "6", "--size", "16", "--tasks", "duplicate",
            "--metrics", "psnr", "--device", "cpu", "--rows", "0", "--output-dir", str(out)]  # fmt: skip
    assert evaluate_cli.main(argv) == 0
    assert json.loads((out / "results.json").read_text())["results"]["stand-in"]["duplicate"]["psnr"] == 100.0
    assert evaluate_cli.main([*argv, "--raw-weights"]) == 0
    _, (images, labels, _) = scenes
    results = json.loads((out / "results.json").read_text())["results"]["stand-in"]["duplicate"]
    greys = [torch.zeros_like(x) for x in images]
    assert results["psnr"] == pytest.approx(sum(map(psnr_by_hand, greys, images)) / 6, rel=1e-9)
    error = sum(region_error_by_hand(g, x, ids) for g, x, ids in zip(greys, images, labels)) / 6
    assert results["region_error"] == pytest.approx(error, rel=1e-5)
    assert stand_in_checkpoints == [("stand-in", True), ("stand-in", False)]
