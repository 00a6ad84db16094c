"""The learned attention of one MSCA scale, drawn over its inputs (paper Fig. 6).

Layout (all tiles at the target's size; attention cells shown nearest-neighbour, at the
resolution the scale computes them)::

    exemplar | exemplar labels | exemplar regions | target labels | target regions | output
    alpha_0 .. alpha_7   spatial attention over the exemplar, each map scaled to its maximum
    beta_0  .. beta_7    channel attention over the output, in [0, 1] as computed
    alpha_8 .. alpha_15  (for K = 16, the next eight regions)
    beta_8  .. beta_15

Region k has one colour throughout: "exemplar regions" colours each exemplar pixel by the
region whose (max-normalised) alpha is strongest there, "target regions" each target pixel
by its argmax over beta; so a colour that appears in both shows where region k's features
are taken from and where they are put.
"""

from __future__ import annotations

import torch
from torch import Tensor

from msca_fast.models.alignment import MSCAAlignment
from msca_fast.models.config import NUM_SCALES
from msca_fast.models.generator import Generator
from msca_fast.ops import AttentionMaps
from msca_fast.synthesis.core import model_device, synthesize
from msca_fast.synthesis.figures import blank, fit, region_colours, region_overlay, tile_grid, tint
from msca_fast.visuals import colorize

COLUMNS = 8


def attention_at_scale(g: Generator, c1: Tensor, x2: Tensor, c2: Tensor, scale: int) -> AttentionMaps:
    """alpha (B,K,He_s,We_s) over the exemplar and beta (B,K,H_s,W_s) over the target at ``scale``.

    Raises ValueError for an ablation without attention ("gap", "no_attention").
    """
    if isinstance(scale, bool) or not isinstance(scale, int) or not 0 <= scale < NUM_SCALES:
        raise ValueError(f"scale: expected an int in [0, {NUM_SCALES - 1}], got {scale!r}")
    aligner = g.aligners[scale]
    if not isinstance(aligner, MSCAAlignment):
        raise ValueError(
            f"this model's alignment is the {g.config.alignment!r} ablation, which has no attention maps to show; "
            "only 'msca' and 'no_masking' models have them"
        )
    device = model_device(g)
    c1, x2, c2 = c1.to(device), x2.to(device), c2.to(device)
    g.check_inputs(c1, x2, c2)
    with torch.no_grad():
        fx2 = g.image_pyramid(x2)[scale]
        fc2 = g.label_pyramid(c2)[scale]
        fc1 = g.label_pyramid(c1)[scale]
        return aligner.msca.attention_maps(fx2, fc2, fc1)


def attention_figure(
    g: Generator, c1: Tensor, x2: Tensor, c2: Tensor, scale: int = 0, palette: Tensor | None = None
) -> Tensor:
    """The figure described in the module docstring for the first sample of the batch -> (3,H',W') in [-1,1].

    c1 (B,C,H,W) one-hot target layout, x2 (B,3,He,We) in [-1,1] and c2 (B,C,He,We) one-hot
    the exemplar; ``palette`` (C,3) uint8 colours the label maps.
    """
    alpha, beta = (m[0].float().cpu() for m in attention_at_scale(g, c1, x2, c2, scale))
    size = tuple(c1.shape[-2:])
    output = synthesize(g, c1[:1], x2[:1], c2[:1]).cpu()[0]
    exemplar = fit(x2[:1].cpu(), size)[0]
    alpha = fit(alpha[None], size, "nearest")[0]  # (K,H,W)
    beta = fit(beta[None], size, "nearest")[0]
    alpha = alpha / alpha.amax(dim=(1, 2), keepdim=True).clamp_min(1e-12)
    colours = region_colours(alpha.shape[0])
    header = [
        exemplar,
        fit(colorize(c2[:1].cpu(), palette), size, "nearest")[0],
        region_overlay(exemplar, alpha.argmax(0), colours),
        fit(colorize(c1[:1].cpu(), palette), size, "nearest")[0],
        region_overlay(output, beta.argmax(0), colours),
        output,
    ]
    tiles = _padded(header)
    for first in range(0, alpha.shape[0], COLUMNS):
        regions = range(first, min(first + COLUMNS, alpha.shape[0]))
        tiles += _padded([tint(exemplar, alpha[k], colours[k]) for k in regions])
        tiles += _padded([tint(output, beta[k], colours[k]) for k in regions])
    return tile_grid(tiles, columns=COLUMNS)


def _padded(row: list[Tensor]) -> list[Tensor]:
    """``row`` filled up with blank tiles to a multiple of :data:`COLUMNS`."""
    return row + [blank(tuple(row[0].shape[-2:]))] * (-len(row) % COLUMNS)
