"""The style-swap grid (msca_fast.synthesis.swap_grid and ``synthesize swap-grid``): row i + 1
is exemplar i, column j + 1 layout j, and each cell is that one pair through plain synthesis;
the header row shows the layouts and the header column the exemplars, in the order given."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

import msca_fast.synthesize as synthesize_cli
from msca_fast import synthesis
from msca_fast.visuals import class_palette

from synthesis_models import GREY_LEVEL, SIZE, grey_levels, read_png, synthesis_scenes, tile

LAYOUTS = (0, 1)  # scenes used as the columns' layouts
EXEMPLARS = (2, 3, 4)  # and as the rows' exemplars: a 4 x 3 grid, not square, so a transposed grid shows


@pytest.fixture(scope="module")
def scenes(tmp_path_factory) -> SimpleNamespace:
    """A generator, its checkpoint, five scenes as files and as tensors read back from them."""
    return synthesis_scenes(tmp_path_factory.mktemp("swap_grid"), 5)


def _painted(labels: torch.Tensor, palette: torch.Tensor) -> torch.Tensor:
    """One-hot (1,C,H,W) -> (3,H,W) in [-1,1]: each pixel its class's palette colour."""
    return palette[labels[0].argmax(0)].permute(2, 0, 1).float() / 127.5 - 1


@pytest.fixture(scope="module")
def grid(scenes) -> torch.Tensor:
    """The grid of :data:`LAYOUTS` x :data:`EXEMPLARS` in the default palette."""
    layouts = [scenes.labels[j] for j in LAYOUTS]
    exemplars = [(scenes.photos[i], scenes.labels[i]) for i in EXEMPLARS]
    return synthesis.style_swap_grid(scenes.g, layouts, exemplars)


def test_each_cell_is_its_layout_in_its_exemplars_style(scenes, grid):
    cells = {}
    for row, i in enumerate(EXEMPLARS, start=1):
        for column, j in enumerate(LAYOUTS, start=1):
            alone = synthesis.synthesize(scenes.g, scenes.labels[j], scenes.photos[i], scenes.labels[i])[0]
            cells[row, column] = tile(grid, row, column, (SIZE, SIZE))
            torch.testing.assert_close(cells[row, column], alone, atol=1e-6, rtol=0)
    # Every cell differs from the others, so a cell built from another pair could not pass.
    pairs = list(cells.values())
    assert min((a - b).abs().mean() for k, a in enumerate(pairs) for b in pairs[k + 1 :]) > 2 * GREY_LEVEL


def test_headers_show_the_layouts_and_exemplars_in_order(scenes, grid):
    assert grid.shape == (3, 4 * (SIZE + 2) + 2, 3 * (SIZE + 2) + 2)
    torch.testing.assert_close(tile(grid, 0, 0, (SIZE, SIZE)), torch.ones(3, SIZE, SIZE))  # blank corner
    for column, j in enumerate(LAYOUTS, start=1):
        torch.testing.assert_close(tile(grid, 0, column, (SIZE, SIZE)), _painted(scenes.labels[j], class_palette(12)))
    for row, i in enumerate(EXEMPLARS, start=1):
        torch.testing.assert_close(tile(grid, row, 0, (SIZE, SIZE)), scenes.photos[i][0])


def test_the_layouts_are_painted_in_the_palette_given(scenes):
    palette = torch.randint(0, 256, (12, 3), dtype=torch.uint8)
    grid = synthesis.style_swap_grid(scenes.g, [scenes.labels[0]], [(scenes.photos[1], scenes.labels[1])], palette)
    torch.testing.assert_close(tile(grid, 0, 1, (SIZE, SIZE)), _painted(scenes.labels[0], palette))


def test_every_tile_is_shown_at_the_first_layouts_size(scenes):
    big = F.interpolate(scenes.labels[1], size=(48, 40), mode="nearest")
    exemplar = (scenes.photos[2], scenes.labels[2])
    grid = synthesis.style_swap_grid(scenes.g, [scenes.labels[0], big], [exemplar])
    assert grid.shape == (3, 2 * (SIZE + 2) + 2, 3 * (SIZE + 2) + 2)
    alone = synthesis.synthesize(scenes.g, big, *exemplar)
    shrunk = F.interpolate(alone, size=(SIZE, SIZE), mode="bilinear", align_corners=False).clamp(-1, 1)[0]
    torch.testing.assert_close(tile(grid, 1, 2, (SIZE, SIZE)), shrunk, atol=1e-6, rtol=0)


def test_the_command_draws_the_grid_of_the_files_it_is_given(scenes, grid, capsys):
    files, out = scenes.files, scenes.root / "grid.png"
    argv = ["swap-grid", "--checkpoint", scenes.checkpoint, "--device", "cpu",
            "--labels", *map(files.label, LAYOUTS), "--exemplars", *map(files.photo, EXEMPLARS),
            "--exemplar-labels", *map(files.label, EXEMPLARS), "--output", out]  # fmt: skip
    assert synthesize_cli.main([str(a) for a in argv]) == 0, capsys.readouterr().err
    assert (read_png(out) - grey_levels(grid)).abs().max() <= 1
