"""Style-structure swapping (paper Fig. 9): every layout in every exemplar's style."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor

from msca_fast.models.generator import Generator
from msca_fast.synthesis.core import Exemplar, synthesize
from msca_fast.synthesis.figures import blank, fit, tile_grid
from msca_fast.visuals import colorize


def style_swap_grid(
    g: Generator, labels: Sequence[Tensor], exemplars: Sequence[Exemplar], palette: Tensor | None = None
) -> Tensor:
    """A (len(exemplars)+1) x (len(labels)+1) grid (3,H',W') in [-1,1].

    Row 0: a blank corner, then each layout (1,C,H_j,W_j) coloured (``palette`` (C,3) uint8,
    default :func:`~msca_fast.visuals.class_palette`). Row i: exemplar i's image,
    then layout j synthesized in its style. Every tile is shown at the first layout's size.
    Exemplars are (x (1,3,He,We) in [-1,1], c (1,C,He,We) one-hot); with the same scenes as
    layouts, the diagonal is self-reconstruction.
    """
    if not labels or not exemplars:
        raise ValueError(f"expected at least one layout and one exemplar, got {len(labels)} and {len(exemplars)}")
    for j, c1 in enumerate(labels):
        if c1.dim() != 4 or c1.shape[0] != 1:
            raise ValueError(f"labels[{j}]: expected a one-hot label map (1, C, H, W), got {tuple(c1.shape)}")
    size = tuple(labels[0].shape[-2:])
    tiles = [blank(size)] + [fit(colorize(c1.cpu(), palette), size, "nearest")[0] for c1 in labels]
    for x2, c2 in exemplars:
        tiles.append(fit(x2.cpu(), size)[0])
        tiles += [fit(synthesize(g, c1, x2, c2).cpu(), size)[0] for c1 in labels]
    return tile_grid(tiles, columns=len(labels) + 1)
