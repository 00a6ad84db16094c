"""--raw-weights picks the checkpoint's raw training generator, and its absence the EMA copy,
in ``python -m msca_fast.synthesize`` and ``python -m msca_fast.evaluate``: each command's output
is the chosen generator's own output, computed here by running the module that was saved."""

from __future__ import annotations

import json
import math
import warnings
from types import SimpleNamespace

import pytest
import torch

import msca_fast.synthesize as synthesize_cli
from msca_fast import evaluate as evaluate_cli
from msca_fast.data.synthetic import NUM_CLASSES, SyntheticScenes

from synthesis_models import (
    GREY_LEVEL,
    SIZE,
    grey_levels,
    perturbed_copy,
    read_labels,
    read_photo,
    read_png,
    responsive_generator,
    scene_files,
    tile,
    write_checkpoint,
)  # fmt: skip

EVAL_SEED = 5  # the evaluation's synthetic scenes
EVAL_IMAGES = 1


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> SimpleNamespace:
    """A checkpoint whose raw generator is the EMA one with every weight perturbed, both
    generators as saved, and three scenes as files."""
    root = tmp_path_factory.mktemp("raw_weights")
    ema = responsive_generator()
    raw = perturbed_copy(ema)
    checkpoint = write_checkpoint(root / "run", raw=raw, ema=ema)
    return SimpleNamespace(root=root, checkpoint=checkpoint, raw=raw, ema=ema, files=scene_files(root, 3))


def _outputs(run, c1, x2, c2) -> tuple[torch.Tensor, torch.Tensor]:
    """(raw, EMA) generator outputs for one input, and a check that they differ visibly."""
    with torch.no_grad():
        raw, ema = run.raw(c1, x2, c2), run.ema(c1, x2, c2)
    assert (raw - ema).abs().mean() > 5 * GREY_LEVEL  # the two generators are told apart in a PNG
    return raw, ema


@pytest.mark.parametrize("raw_weights", [False, True], ids=["ema", "raw"])
def test_synthesize_uses_the_generator_raw_weights_selects(run, tmp_path, capsys, raw_weights):
    files, out = run.files, tmp_path / "out.png"
    argv = ["single", "--checkpoint", run.checkpoint, "--label", files.label(0), "--exemplar", files.photo(1),
            "--exemplar-label", files.label(1), "--output", out, "--device", "cpu"]  # fmt: skip
    if raw_weights:
        argv.append("--raw-weights")
    assert synthesize_cli.main([str(a) for a in argv]) == 0, capsys.readouterr().err
    raw, ema = _outputs(run, read_labels(files.label(0)), read_photo(files.photo(1)), read_labels(files.label(1)))
    expected, other = (raw, ema) if raw_weights else (ema, raw)
    written = read_png(out)
    assert (written - grey_levels(expected)).abs().max() <= 1  # float rounding may tip a pixel by one level
    assert (written - grey_levels(other)).abs().float().mean() > 5


def _evaluation_inputs():
    """The duplicate task's batch on the evaluation scenes: c1 = c2 one-hot, x2 = truth."""
    scenes = SyntheticScenes(num_images=EVAL_IMAGES, size=SIZE, seed=EVAL_SEED)
    items = [scenes[i] for i in range(EVAL_IMAGES)]
    labels = torch.stack([it["label"] for it in items])
    c = torch.nn.functional.one_hot(labels, NUM_CLASSES).permute(0, 3, 1, 2).float()
    return c, torch.stack([it["image"] for it in items])


def _psnr_by_hand(output: torch.Tensor, truth: torch.Tensor) -> float:
    """Mean over images of 10 log10(2^2 / MSE), images in [-1,1]."""
    mse = (output.double() - truth.double()).square().mean(dim=(1, 2, 3))
    return sum(10 * math.log10(4 / m) for m in mse.tolist()) / len(mse)


@pytest.mark.parametrize("raw_weights", [False, True], ids=["ema", "raw"])
def test_evaluate_uses_the_generator_raw_weights_selects(run, tmp_path, raw_weights):
    out = tmp_path / "eval"
    argv = ["--checkpoint", str(run.checkpoint), "--num-images", str(EVAL_IMAGES), "--seed", str(EVAL_SEED),
            "--size", str(SIZE), "--tasks", "duplicate", "--metrics", "psnr", "--rows", str(EVAL_IMAGES),
            "--output-dir", str(out), "--device", "cpu"]  # fmt: skip
    if raw_weights:
        argv.append("--raw-weights")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert evaluate_cli.main(argv) == 0
    c, images = _evaluation_inputs()
    raw, ema = _outputs(run, c, images, c)
    expected, other = (raw, ema) if raw_weights else (ema, raw)
    expected, other = expected.clamp(-1, 1), other.clamp(-1, 1)
    for k in range(EVAL_IMAGES):  # sample row k: target label | exemplar | output | ground truth
        row = read_png(out / "samples" / "duplicate" / f"{k:04d}.png")
        assert (tile(row, 0, 3, (SIZE, SIZE)) - grey_levels(images[k])).abs().max() <= 1  # the scene read here
        shown = tile(row, 0, 2, (SIZE, SIZE))
        assert (shown - grey_levels(expected[k])).abs().max() <= 1
        assert (shown - grey_levels(other[k])).abs().float().mean() > 5
    psnr = json.loads((out / "results.json").read_text())["results"][run.checkpoint.name]["duplicate"]["psnr"]
    assert psnr == pytest.approx(_psnr_by_hand(expected, images), abs=1e-3)
    assert abs(_psnr_by_hand(expected, images) - _psnr_by_hand(other, images)) > 0.1
