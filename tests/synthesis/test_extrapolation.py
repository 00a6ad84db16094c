"""Scene extrapolation (msca_fast.synthesis.extrapolation and the ``extrapolate`` command): the
canvas is every patch x patch window synthesized alone in the exemplar's style, blended with
the pixel-centred Hann window sin^2(pi (n + 1/2) / patch) in each direction."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

import msca_fast.synthesize as synthesize_cli
from msca_fast import synthesis

from synthesis_models import GREY_LEVEL, SIZE, grey_levels, read_png, synthesis_scenes


@pytest.fixture(scope="module")
def scenes(tmp_path_factory) -> SimpleNamespace:
    """A generator and its checkpoint, four scenes as files and as tensors read back from them;
    ``exemplars[i]``: scene i's (photo, labels)."""
    scenes = synthesis_scenes(tmp_path_factory.mktemp("extrapolation"), 4)
    scenes.exemplars = list(zip(scenes.photos, scenes.labels))
    return scenes


def _blended_by_hand(g, canvas, exemplar, patch, rows, columns) -> torch.Tensor:
    """Each window at (rows[r], columns[c]) synthesized on its own, weighted by the Hann window
    and normalised by the summed weights."""
    n = torch.arange(patch, dtype=torch.float64)
    line = torch.sin(math.pi * (n + 0.5) / patch) ** 2
    window = line[:, None] * line[None, :]
    total = torch.zeros(3, *canvas.shape[-2:], dtype=torch.float64)
    weights = torch.zeros(canvas.shape[-2:], dtype=torch.float64)
    for top in rows:
        for left in columns:
            image = synthesis.synthesize(g, canvas[..., top : top + patch, left : left + patch], *exemplar)[0]
            total[:, top : top + patch, left : left + patch] += window * image.double()
            weights[top : top + patch, left : left + patch] += window
    return (total / weights)[None].float()


def test_side_by_side_patches_are_each_their_layouts_synthesis(scenes):
    canvas = torch.cat([scenes.labels[0], scenes.labels[1]], dim=3)  # 32 x 64: two layouts side by side
    exemplar = scenes.exemplars[2]
    out = synthesis.extrapolate(scenes.g, canvas, exemplar, patch=SIZE, stride=SIZE)
    assert out.shape == (1, 3, SIZE, 2 * SIZE)
    left, right = (synthesis.synthesize(scenes.g, scenes.labels[k], *exemplar) for k in (0, 1))
    torch.testing.assert_close(out[..., :SIZE], left, atol=1e-5, rtol=0)  # batched: float rounding apart
    torch.testing.assert_close(out[..., SIZE:], right, atol=1e-5, rtol=0)
    other_style = synthesis.synthesize(scenes.g, scenes.labels[0], *scenes.exemplars[3])
    assert (other_style - left).abs().mean() > 5 * GREY_LEVEL  # the exemplar given is the one used


def test_overlapping_patches_are_blended_with_hann_weights(scenes):
    # 48 x 56 pieced from four layouts; windows start at rows 0 and 16, columns 0, 16 and 24.
    top = torch.cat([scenes.labels[0], scenes.labels[1][..., :24]], dim=3)
    bottom = torch.cat([scenes.labels[3], scenes.labels[2][..., :24]], dim=3)[..., :16, :]
    canvas = torch.cat([top, bottom], dim=2)
    exemplar = scenes.exemplars[2]
    out = synthesis.extrapolate(scenes.g, canvas, exemplar, patch=SIZE, stride=16, batch_size=4)  # 4 + 2 windows
    expected = _blended_by_hand(scenes.g, canvas, exemplar, SIZE, rows=(0, 16), columns=(0, 16, 24))
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=0)


def test_the_extrapolate_command_paints_its_canvas_in_its_exemplars_style(scenes, capsys):
    files, out = scenes.files, scenes.root / "wide.png"
    argv = ["extrapolate", "--checkpoint", scenes.checkpoint, "--device", "cpu", "--canvas-label", files.label(0),
            "--size", SIZE, 2 * SIZE, "--exemplar", files.photo(2), "--exemplar-label", files.label(2),
            "--patch", SIZE, "--stride", SIZE, "--output", out]  # fmt: skip
    assert synthesize_cli.main([str(a) for a in argv]) == 0, capsys.readouterr().err
    canvas = scenes.labels[0].repeat_interleave(2, dim=3)  # --size 32 64: each column twice (nearest)
    halves = [synthesis.synthesize(scenes.g, half, *scenes.exemplars[2]) for half in canvas.split(SIZE, dim=3)]
    assert (read_png(out) - grey_levels(torch.cat(halves, dim=3))).abs().max() <= 1
