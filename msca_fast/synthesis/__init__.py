"""Synthesis and content manipulation with a trained generator (paper section 4, Figs. 5-9).

    from msca_fast.training.checkpoint import load_generator
    from msca_fast import synthesis

    g = load_generator("runs/demo")                      # EMA weights, eval mode
    image = synthesis.synthesize(g, c1, x2, c2)          # (B,3,H,W) in [-1,1]
    frames = synthesis.interpolate_styles(g, c1, (xa, ca), (xb, cb), [0, 0.25, 0.5, 0.75, 1])
    gradient = synthesis.spatial_interpolation(g, c1, (xa, ca), (xb, cb))
    panorama = synthesis.extrapolate(g, canvas_c, (x2, c2), patch=256, stride=128)
    grid = synthesis.style_swap_grid(g, [c_1, c_2, c_3], [(x_1, c_1), (x_2, c_2), (x_3, c_3)])
    figure = synthesis.attention_figure(g, c1, x2, c2, scale=0)

Label maps are one-hot (B,C,H,W) float with C = g.config.num_classes; images are in [-1,1].
The command line is ``python -m msca_fast.synthesize``.
"""

from __future__ import annotations

from msca_fast.synthesis.attention_figure import attention_at_scale, attention_figure
from msca_fast.synthesis.core import Exemplar, align_exemplar, blend_aligned, synthesize
from msca_fast.synthesis.extrapolation import extrapolate, hann_window, patch_starts
from msca_fast.synthesis.interpolation import horizontal_ramp, interpolate_styles, spatial_interpolation
from msca_fast.synthesis.swap_grid import style_swap_grid

__all__ = [
    "Exemplar",
    "align_exemplar",
    "attention_at_scale",
    "attention_figure",
    "blend_aligned",
    "extrapolate",
    "hann_window",
    "horizontal_ramp",
    "interpolate_styles",
    "patch_starts",
    "spatial_interpolation",
    "style_swap_grid",
    "synthesize",
]
