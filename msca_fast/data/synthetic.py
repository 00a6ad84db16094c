"""Procedural outdoor scenes with exact label maps: the embedded default data set, no download.

A scene is a :class:`Layout` (resolution-independent geometry: what is where) drawn in a
:class:`Style` (time of day, season, palette, texture). Labels depend only on the layout, so
``render(layout_a, style_b, h, w)`` is the exact ground truth for "layout a in image b's style".
Coordinates are normalised: x, y in [0, 1], y pointing down, pixel centres at (i + 0.5) / size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from msca_fast.visuals import colorize, save_picture, to_uint8

CLASS_NAMES: tuple[str, ...] = (
    "sky", "cloud", "mountain", "snow", "hill", "water", "sand", "grass", "tree", "road", "rock", "flower",
)
NUM_CLASSES = len(CLASS_NAMES)
SKY, CLOUD, MOUNTAIN, SNOW, HILL, WATER, SAND, GRASS, TREE, ROAD, ROCK, FLOWER = range(NUM_CLASSES)

PALETTE: tuple[tuple[int, int, int], ...] = (
    (70, 130, 230), (200, 210, 255), (130, 90, 70), (250, 250, 250), (150, 190, 60), (30, 60, 200),
    (230, 200, 120), (60, 170, 50), (20, 90, 30), (90, 90, 90), (160, 110, 170), (240, 80, 180),
)

Wave = tuple[float, float, float]  # (cycles across the image width, phase in cycles, amplitude)
Ellipse = tuple[float, float, float, float]  # (centre x, centre y, radius x, radius y)
Tree = tuple[float, float, float, float, bool]  # (x, base y, height, width, is_conifer)
RGB = tuple[float, float, float]  # linear colour in [0, 1]


@dataclass(frozen=True)
class Layout:
    """Where everything is, in normalised coordinates; a height/size of 0 means "absent"."""

    horizon: float
    mountain_height: float
    mountain_waves: tuple[Wave, ...]
    snow_altitude: float  # height above the horizon where the snow caps start
    hill_height: float
    hill_waves: tuple[Wave, ...]
    forest_height: float  # a tree line along the horizon
    forest_waves: tuple[Wave, ...]
    ground_class: int  # GRASS or SAND (desert)
    water_top: float  # far shore (== horizon for a sea)
    water_bottom: float  # mean near shore
    shore_waves: tuple[Wave, ...]
    beach_width: float
    road_width: float  # at the bottom edge; the road narrows to nothing at road_top
    road_top: float  # where the road starts: the horizon or the near shore
    road_vanish_x: float  # x of the road at road_top
    road_bottom_x: float  # x of the road at the bottom edge
    road_curve: float
    clouds: tuple[Ellipse, ...]
    rocks: tuple[Ellipse, ...]
    flower_patches: tuple[Ellipse, ...]
    trees: tuple[Tree, ...]  # sorted far to near


@dataclass(frozen=True)
class Style:
    """How everything looks; shared by every region of an image."""

    time_of_day: str  # "day", "sunset", "night", "overcast"
    season: str  # "spring", "summer", "autumn", "winter"
    palette: tuple[RGB, ...]  # per-class base colour
    palette_alt: tuple[RGB, ...]  # per-class second colour, mixed in by the texture noise
    sky_top: RGB
    sky_horizon: RGB  # also the haze colour
    sun_x: float
    sun_y: float
    sun_radius: float  # 0: no sun or moon disc
    sun_colour: RGB
    sun_glow: float
    light_contrast: float
    haze: float
    reflectivity: float
    texture_scale: float
    texture_amplitude: float
    seed: int


SHORE_AMPLITUDE = 0.03  # of the ground height


def _profile(waves: tuple[Wave, ...], x: Tensor, shape: str) -> Tensor:
    """Normalised sum of periodic waves at x (W,) -> (W,) in [-1, 1]; shape: triangle, sine or scallop."""
    total = torch.zeros_like(x)
    for freq, phase, amp in waves:
        u = freq * x + phase
        if shape == "triangle":
            wave = 1 - 4 * (u - torch.floor(u) - 0.5).abs()
        elif shape == "scallop":
            wave = 2 * torch.sin(math.pi * u).abs() - 1
        else:
            wave = torch.sin(2 * math.pi * u)
        total = total + amp * wave
    return total / max(sum(w[2] for w in waves), 1e-6)


def _mountain_altitude(height: float, waves: tuple[Wave, ...], x: Tensor) -> Tensor:
    """Ridge height above the horizon at x (W,) -> (W,), between 0.3 and 1 times ``height``."""
    return height * (0.3 + 0.35 * (_profile(waves, x, "triangle") + 1))


def _shore(layout: Layout, x: Tensor) -> Tensor:
    amp = SHORE_AMPLITUDE * (1 - layout.horizon)
    return layout.water_bottom + amp * _profile(layout.shore_waves, x, "sine")


def _ground_fog(layout: Layout, y: Tensor | float) -> Tensor:
    """Haze amount of flat ground at height y (any shape): most at the horizon, fading toward the viewer."""
    distance = (torch.as_tensor(y, dtype=torch.float32) - layout.horizon) / (0.15 * (1 - layout.horizon))
    return 0.45 * torch.exp(-distance.clamp(min=0))


Value = Tensor | float | None  # a map's new values: broadcasting tensor, constant, or keep


class _Canvas:
    """Label ids (H,W), surface normal (2,H,W) as (x right, y up) and haze amount (H,W), painted back to front."""

    def __init__(self, height: int, width: int) -> None:
        self.ys = (torch.arange(height) + 0.5) / height
        self.xs = (torch.arange(width) + 0.5) / width
        self.label = torch.full((height, width), SKY, dtype=torch.int64)
        self.normal = torch.zeros(2, height, width)
        self.fog = torch.zeros(height, width)

    def fill(
        self, cls: int, mask: Tensor, nx: Value = None, ny: Value = None, fog: Value = None,
        rows: slice = slice(None), cols: slice = slice(None),
    ) -> None:
        """Paint class ``cls`` where ``mask`` (h,w) holds inside the window [rows, cols]; the maps given as
        floats or tensors broadcasting to (h,w) replace theirs there (None keeps them)."""
        self.label[rows, cols].masked_fill_(mask, cls)
        for target, value in ((self.normal[0], nx), (self.normal[1], ny), (self.fog, fog)):
            if isinstance(value, Tensor):
                target[rows, cols] = torch.where(mask, value, target[rows, cols])
            elif value is not None:
                target[rows, cols].masked_fill_(mask, value)

    def _window(self, x0: float, x1: float, y0: float, y1: float) -> tuple[slice, slice, Tensor, Tensor]:
        """Pixel slices covering [x0,x1]x[y0,y1] and their centre coordinates (h,1), (1,w)."""
        height, width = self.label.shape
        r0, r1 = max(0, int(y0 * height) - 1), min(height, int(y1 * height) + 2)
        c0, c1 = max(0, int(x0 * width) - 1), min(width, int(x1 * width) + 2)
        return slice(r0, r1), slice(c0, c1), self.ys[r0:r1, None], self.xs[None, c0:c1]

    def ellipse(self, cls: int, ellipse: Ellipse, fog: Value, cut: float = 1.0, dome: bool = True) -> None:
        """An ellipse, its bottom cut flat at v = cut (v = -1 top, +1 bottom); a dome is shaded, else flat."""
        cx, cy, rx, ry = ellipse
        rows, cols, y, x = self._window(cx - rx, cx + rx, cy - ry, cy + ry)
        u, v = (x - cx) / rx, (y - cy) / ry
        mask = (u * u + v * v < 1) & (v < cut)
        self.fill(cls, mask, 0.8 * u if dome else None, -v if dome else None, fog, rows, cols)

    def tree(self, tree: Tree, fog: Value) -> None:
        """A conifer (tiered triangle) or a broadleaf tree (lumpy round crown), both on a trunk."""
        x0, base, height, width, conifer = tree
        rows, cols, y, x = self._window(x0 - width / 2, x0 + width / 2, base - height, base)
        u = (x - x0) / (width / 2)
        trunk = (u.abs() < 0.12) & (y < base) & (y > base - 0.3 * height)
        if conifer:
            rel = (y - (base - height)) / (0.85 * height)  # 0 at the tip, 1 at the lowest branches
            tiers = 0.75 + 0.25 * (rel * 3.5 - torch.floor(rel * 3.5))
            crown = (u.abs() < rel * tiers) & (rel <= 1) & (rel >= 0)
            v = 2 * rel - 1
        else:
            v = (y - (base - 0.62 * height)) / (0.38 * height)
            lumps = 0.93 + 0.07 * torch.sin(7 * torch.atan2(v, u) + 40 * x0)
            crown = u * u + v * v < lumps * lumps
        self.fill(TREE, trunk & ~crown, -0.3, -0.9, fog, rows, cols)
        self.fill(TREE, crown, 0.7 * u, -v, fog, rows, cols)


def paint_layout(layout: Layout, height: int, width: int) -> tuple[Tensor, Tensor, Tensor]:
    """Layout -> label ids (H,W) int64, surface normals (2,H,W), haze amount (H,W) in [0,1]."""
    canvas = _Canvas(height, width)
    x, hz = canvas.xs, layout.horizon
    sky_rows = int((canvas.ys < hz).sum())
    up, down = slice(0, sky_rows), slice(sky_rows, height)
    y = canvas.ys[up, None]  # above the horizon
    for cloud in layout.clouds:
        canvas.ellipse(CLOUD, cloud, fog=0.0, cut=0.45)
    if layout.mountain_height > 0:
        eps = 1e-3
        ridge = lambda xs: _mountain_altitude(layout.mountain_height, layout.mountain_waves, xs)  # noqa: E731
        top = hz - ridge(x)
        slope = (ridge(x + eps) - ridge(x - eps)) / (2 * eps)
        depth = ((y - top) / layout.mountain_height).clamp(0, 1)  # 0 at the ridge
        mountain = y > top
        canvas.fill(MOUNTAIN, mountain, -torch.tanh(slope), 0.4 - depth, 0.4 + 0.5 * depth, up)
        if layout.snow_altitude > 0:
            streaks = 0.12 * layout.mountain_height * torch.sin(2 * math.pi * 23 * x) * torch.sin(2 * math.pi * 7 * x)
            canvas.fill(SNOW, mountain & (hz - y > layout.snow_altitude + streaks), rows=up)
    if layout.hill_height > 0:
        top = hz - layout.hill_height * (0.4 + 0.3 * (_profile(layout.hill_waves, x, "sine") + 1))
        depth = ((y - top) / layout.hill_height).clamp(0, 1)
        slope = torch.gradient(top, spacing=1 / width)[0] if width > 1 else torch.zeros_like(top)
        canvas.fill(HILL, y > top, torch.tanh(3 * slope), 0.5 - depth, 0.3 + 0.15 * depth, up)
    if layout.forest_height > 0:
        top = hz - layout.forest_height * (0.5 + 0.25 * (_profile(layout.forest_waves, x, "scallop") + 1))
        canvas.fill(TREE, y > top, 0.0, 0.2 - 0.8 * ((y - top) / layout.forest_height).clamp(0, 1), 0.4, up)
    y = canvas.ys[down, None]  # below the horizon: flat ground, normals stay 0
    canvas.label[down] = layout.ground_class
    canvas.fog[down] = _ground_fog(layout, y)
    if layout.water_bottom > 0:
        shore = _shore(layout, x)
        canvas.fill(WATER, (y >= layout.water_top) & (y < shore), rows=down)
        if layout.beach_width > 0:
            canvas.fill(SAND, (y >= shore) & (y < shore + layout.beach_width), rows=down)
    if layout.road_width > 0:
        t = ((y - layout.road_top) / (1 - layout.road_top)).clamp(min=0)  # 0 where the road starts
        centre = layout.road_vanish_x + (layout.road_bottom_x - layout.road_vanish_x) * t
        centre = centre + layout.road_curve * t * (1 - t)
        canvas.fill(ROAD, (x - centre).abs() < 0.5 * layout.road_width * t, rows=down)
    for patch in layout.flower_patches:
        canvas.ellipse(FLOWER, patch, fog=None, dome=False)
    for rock in layout.rocks:
        canvas.ellipse(ROCK, rock, fog=_ground_fog(layout, rock[1] + 0.5 * rock[3]), cut=0.5)
    for tree in layout.trees:
        canvas.tree(tree, fog=_ground_fog(layout, tree[1]))
    return canvas.label, canvas.normal, canvas.fog


def _waves(rng: np.random.Generator, count: int, low: float, high: float) -> tuple[Wave, ...]:
    freqs = rng.uniform(low, high, count)
    return tuple((float(f), float(rng.uniform()), float(rng.uniform(0.5, 1.0) / f)) for f in freqs)


def sample_layout(rng: np.random.Generator) -> Layout:
    """A random scene geometry; each class other than sky appears in some images only."""
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng: expected a numpy.random.Generator, got {type(rng).__name__}")
    hz = float(rng.uniform(0.33, 0.6))
    ground = 1 - hz
    mountain_height, mountain_waves, snow_altitude = 0.0, (), 0.0
    if rng.random() < 0.6:
        mountain_height, mountain_waves = float(rng.uniform(0.12, min(0.32, hz - 0.06))), _waves(rng, 4, 0.8, 6.0)
        if rng.random() < 0.55:
            altitude = _mountain_altitude(mountain_height, mountain_waves, torch.linspace(0, 1, 256)).numpy()
            snow_altitude = float(np.quantile(altitude, rng.uniform(0.6, 0.9)))
    hill_height, hill_waves = 0.0, ()
    if rng.random() < 0.5:
        hill_height, hill_waves = float(rng.uniform(0.03, 0.1)), _waves(rng, 3, 0.5, 3.0)
    has_trees = rng.random() < 0.6
    forest = has_trees and rng.random() < 0.5
    forest_height, forest_waves = (float(rng.uniform(0.02, 0.06)), _waves(rng, 3, 12, 30)) if forest else (0.0, ())
    ground_class = GRASS if rng.random() < 0.8 else SAND
    water_top = water_bottom = beach = 0.0
    ground_top = hz
    if rng.random() < 0.5:
        water_top = hz if rng.random() < 0.5 else hz + float(rng.uniform(0.02, 0.1)) * ground
        water_bottom = water_top + float(rng.uniform(0.12, 0.4)) * ground
        beach = float(rng.uniform(0.03, 0.1)) * ground if rng.random() < 0.6 else 0.0
        ground_top = water_bottom + SHORE_AMPLITUDE * ground + beach
    shore_waves = _waves(rng, 3, 1.0, 5.0)
    road = rng.random() < 0.4
    road_width = float(rng.uniform(0.3, 0.8)) if road else 0.0
    road_params = rng.uniform([0.3, 0.2, -0.25], [0.7, 0.8, 0.25])  # vanishing x, bottom x, curve
    clouds: list[Ellipse] = []
    for _ in range(rng.integers(1, 5) if rng.random() < 0.7 else 0):
        cx, cy, size = rng.uniform(0, 1), rng.uniform(0.05, max(0.06, hz - 0.15)), rng.uniform(0.08, 0.25)
        for _ in range(rng.integers(3, 6)):
            rx = size * rng.uniform(0.25, 0.45)
            px, py = cx + size * rng.uniform(-0.5, 0.5), cy + 0.4 * size * rng.uniform(-0.3, 0.1)
            clouds.append((float(px), float(py), float(rx), float(rx * rng.uniform(0.45, 0.7))))

    def ground_point(low: float) -> tuple[float, float, float]:
        """(x, y, perspective scale in (0, 1]) of a random point between y=low and the bottom."""
        gy = float(rng.uniform(min(low, 0.97), 1.0))
        return float(rng.uniform(0, 1)), gy, (gy - hz) / ground

    rocks, flowers, trees = [], [], []
    for _ in range(rng.integers(1, 4) if rng.random() < 0.35 else 0):
        rx, base, scale = ground_point(ground_top + 0.03)
        r = scale * rng.uniform(0.05, 0.14) + 0.01
        ry = r * rng.uniform(0.5, 0.8)
        rocks.append((rx, base - 0.5 * ry, float(r), float(ry)))
    for _ in range(rng.integers(1, 4) if ground_class == GRASS and rng.random() < 0.35 else 0):
        fx, fy, scale = ground_point(ground_top + 0.05)
        r = rng.uniform(0.1, 0.25) * (0.4 + scale)
        flowers.append((fx, fy, float(r), float(r * rng.uniform(0.2, 0.4))))
    for _ in range((rng.integers(0, 6) if forest else rng.integers(1, 8)) if has_trees else 0):
        tx, base, scale = ground_point(ground_top + 0.02)
        height = scale * rng.uniform(0.3, 0.8) + 0.03
        conifer = bool(rng.random() < 0.5)
        width = height * (rng.uniform(0.35, 0.55) if conifer else rng.uniform(0.55, 0.85))
        trees.append((tx, base, float(height), float(width), conifer))
    trees.sort(key=lambda t: t[1])
    return Layout(
        hz, mountain_height, mountain_waves, snow_altitude, hill_height, hill_waves, forest_height, forest_waves,
        ground_class, water_top, water_bottom, shore_waves, beach, road_width, ground_top,
        *(float(p) for p in road_params), tuple(clouds), tuple(rocks), tuple(flowers), tuple(trees),
    )


# Per time of day: sky top, sky at the horizon, light tint, cloud, cloud underside, sun colour,
# sun height range, sun disc radius, glow, shading contrast, haze range.
_TIMES: dict[str, tuple] = {
    "day": ((0.18, 0.40, 0.80), (0.68, 0.82, 0.95), (1.0, 1.0, 1.0), (0.97, 0.97, 1.0), (0.74, 0.77, 0.85),
            (1.0, 0.98, 0.9), (0.04, 0.2), 0.035, 0.3, 0.35, (0.3, 0.5)),
    "sunset": ((0.22, 0.22, 0.48), (1.0, 0.62, 0.32), (1.05, 0.75, 0.55), (0.98, 0.64, 0.52), (0.55, 0.35, 0.45),
               (1.0, 0.78, 0.42), (0.15, 0.42), 0.045, 0.6, 0.45, (0.35, 0.55)),
    "night": ((0.01, 0.02, 0.07), (0.08, 0.12, 0.25), (0.28, 0.32, 0.48), (0.24, 0.26, 0.34), (0.13, 0.14, 0.21),
              (0.92, 0.93, 0.85), (0.05, 0.25), 0.025, 0.15, 0.2, (0.25, 0.4)),
    "overcast": ((0.55, 0.58, 0.62), (0.78, 0.79, 0.81), (0.8, 0.82, 0.85), (0.83, 0.84, 0.87), (0.60, 0.62, 0.66),
                 (1.0, 1.0, 1.0), (0.1, 0.3), 0.0, 0.0, 0.12, (0.5, 0.7)),
}
_TIME_WEIGHTS = (0.4, 0.2, 0.15, 0.25)
_SUMMER: dict[int, tuple[RGB, RGB]] = {
    MOUNTAIN: ((0.45, 0.42, 0.42), (0.32, 0.30, 0.32)), SNOW: ((0.95, 0.96, 1.0), (0.80, 0.85, 0.95)),
    HILL: ((0.33, 0.52, 0.24), (0.24, 0.40, 0.18)), WATER: ((0.10, 0.25, 0.38), (0.05, 0.15, 0.25)),
    SAND: ((0.86, 0.76, 0.55), (0.74, 0.63, 0.44)), GRASS: ((0.30, 0.56, 0.18), (0.45, 0.66, 0.24)),
    TREE: ((0.12, 0.33, 0.11), (0.24, 0.48, 0.16)), ROAD: ((0.32, 0.32, 0.33), (0.42, 0.41, 0.40)),
    ROCK: ((0.52, 0.49, 0.45), (0.36, 0.34, 0.32)),
}
_SEASONS: dict[str, dict[int, tuple[RGB, RGB]]] = {
    "spring": {HILL: ((0.45, 0.65, 0.30), (0.35, 0.55, 0.22)), GRASS: ((0.45, 0.72, 0.28), (0.58, 0.80, 0.35)),
               TREE: ((0.30, 0.58, 0.22), (0.92, 0.72, 0.80))},
    "summer": {},
    "autumn": {HILL: ((0.55, 0.45, 0.22), (0.45, 0.32, 0.15)), GRASS: ((0.58, 0.54, 0.26), (0.46, 0.40, 0.18)),
               TREE: ((0.80, 0.40, 0.10), (0.90, 0.70, 0.15))},
    "winter": {HILL: ((0.86, 0.88, 0.93), (0.74, 0.78, 0.86)), GRASS: ((0.90, 0.92, 0.96), (0.78, 0.82, 0.90)),
               TREE: ((0.12, 0.22, 0.16), (0.85, 0.88, 0.92)), WATER: ((0.28, 0.36, 0.44), (0.50, 0.58, 0.64)),
               SAND: ((0.80, 0.79, 0.78), (0.70, 0.68, 0.66)), MOUNTAIN: ((0.50, 0.50, 0.55), (0.80, 0.82, 0.88)),
               ROAD: ((0.42, 0.42, 0.45), (0.60, 0.60, 0.62)), ROCK: ((0.45, 0.44, 0.46), (0.85, 0.87, 0.92))},
}
_BLOSSOMS = ((0.95, 0.85, 0.15), (0.95, 0.45, 0.65), (0.85, 0.15, 0.15), (0.6, 0.35, 0.85), (0.98, 0.98, 0.95))


def _hue_rotation(angle: float) -> np.ndarray:
    """3x3 rotation of RGB colours about the grey axis (a hue shift)."""
    k = np.full(3, 1 / math.sqrt(3))
    cross = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return math.cos(angle) * np.eye(3) + math.sin(angle) * cross + (1 - math.cos(angle)) * np.outer(k, k)


def sample_style(rng: np.random.Generator) -> Style:
    """A random look: time of day, season, jittered palette, texture parameters and noise seed."""
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng: expected a numpy.random.Generator, got {type(rng).__name__}")
    time_of_day = str(rng.choice(list(_TIMES), p=_TIME_WEIGHTS))
    season = str(rng.choice(list(_SEASONS)))
    top, horizon, light, cloud, cloud_alt, sun, sun_ys, radius, glow, contrast, hazes = _TIMES[time_of_day]
    shift, brightness = _hue_rotation(rng.normal(0, 0.1)), rng.uniform(0.85, 1.15)
    grey = {"overcast": 0.3, "night": 0.4}.get(time_of_day, 0.0)

    def finish(colour: RGB, tint: RGB = (1.0, 1.0, 1.0), jitter: float = 0.0) -> RGB:
        c = shift @ _hue_rotation(rng.normal(0, jitter)) @ (np.array(colour) * tint) * brightness
        c = c * rng.uniform(1 - jitter, 1 + jitter)
        return tuple(float(v) for v in np.clip(c + grey * (c.mean() - c), 0, 1))

    colours = {**_SUMMER, **_SEASONS[season]}
    blossom = (0.75, 0.1, 0.15) if season == "winter" else _BLOSSOMS[rng.integers(len(_BLOSSOMS))]
    colours[FLOWER] = (tuple((b + a) / 2 for b, a in zip(*colours[GRASS])), blossom)  # dots on average grass
    colours[SKY], colours[CLOUD] = (finish(top), finish(horizon)), (finish(cloud), finish(cloud_alt))
    lit = {c: (finish(b, light, 0.06), finish(a, light, 0.06)) for c, (b, a) in colours.items() if c > CLOUD}
    palette = [colours[SKY], colours[CLOUD]] + [lit[c] for c in range(CLOUD + 1, NUM_CLASSES)]
    return Style(
        time_of_day, season, tuple(p[0] for p in palette), tuple(p[1] for p in palette),
        sky_top=colours[SKY][0], sky_horizon=colours[SKY][1],
        sun_x=float(rng.uniform(0.1, 0.9)), sun_y=float(rng.uniform(*sun_ys)), sun_radius=radius,
        sun_colour=finish(sun), sun_glow=glow, light_contrast=contrast, haze=float(rng.uniform(*hazes)),
        reflectivity=float(rng.uniform(0.3, 0.6)), texture_scale=float(rng.uniform(0.7, 1.4)),
        texture_amplitude=float(rng.uniform(0.08, 0.18)), seed=int(rng.integers(2**31)),
    )


# Texture: four noise fields (low, mid, high frequency, horizontal ripples) mixed per class.
_NOISE_BANDS = ((1.5, 4.0), (5.0, 14.0), (18.0, 48.0), (30.0, 80.0))
_NOISE_TERMS = 16  # sinusoids per field; fewer look like cross-hatching
_MIX = torch.tensor([
    [0, 0, 0, 0], [0.12, 0.16, 0, 0], [0.12, 0.2, 0.08, 0], [0.08, 0.16, 0, 0], [0.24, 0.16, 0, 0],
    [0.08, 0, 0, 0.28], [0.24, 0.12, 0, 0.08], [0.28, 0.16, 0.04, 0], [0.18, 0.3, 0.18, 0], [0.12, 0.04, 0, 0],
    [0.18, 0.3, 0.12, 0], [0, 0, 1.6, 0],
])  # weight of each noise field in the base-to-alt colour mix, per class
_MIX_OFFSET = torch.tensor([0.5] * FLOWER + [-0.95])  # flowers: only the noise peaks show blossom colour
_GRAIN = torch.tensor([0.1, 0.2, 0.8, 0.3, 0.6, 0.4, 0.6, 1.0, 1.0, 0.6, 1.0, 0.6])  # brightness noise


def _noise_fields(style: Style, height: int, width: int) -> Tensor:
    """Deterministic band-limited sums of sinusoids seeded by ``style.seed`` -> (4,H,W), unit std."""
    rng = np.random.default_rng(style.seed)
    rows, cols = [], []
    for band, (low, high) in enumerate(_NOISE_BANDS):
        freq = rng.uniform(low, high, _NOISE_TERMS) * style.texture_scale
        if band < 3:
            angle = rng.uniform(0, math.pi, _NOISE_TERMS)
            fx, fy = freq * np.cos(angle), freq * np.sin(angle)
        else:
            fx, fy = rng.uniform(-4, 4, _NOISE_TERMS), freq
        amp, phase = rng.uniform(0.5, 1.0, _NOISE_TERMS), rng.uniform(0, 2 * math.pi, _NOISE_TERMS)
        amp = amp / math.sqrt((amp**2).sum() / 2)
        # fade components near the Nyquist limit so small renders do not alias
        amp = amp * np.clip((0.4 * min(height, width) - np.hypot(fx, fy)) / (0.15 * min(height, width)), 0, 1)
        a = 2 * math.pi * fx[:, None] * (np.arange(width) + 0.5) / width + phase[:, None]  # (K,W)
        b = 2 * math.pi * fy[:, None] * (np.arange(height) + 0.5) / height  # (K,H)
        # sin(a + b) = sin(a) cos(b) + cos(a) sin(b): a rank-2K product (H,2K) @ (2K,W)
        rows.append(np.concatenate([np.cos(b), np.sin(b)]).T)
        cols.append(np.concatenate([amp[:, None] * np.sin(a), amp[:, None] * np.cos(a)]))
    return torch.bmm(torch.from_numpy(np.stack(rows)).float(), torch.from_numpy(np.stack(cols)).float())


def _sky_gradient(style: Style, t: Tensor) -> Tensor:
    """Sky colour at t (H,W) = y / horizon (0 top, 1 horizon) -> (3,H,W)."""
    top, horizon = torch.tensor(style.sky_top)[:, None, None], torch.tensor(style.sky_horizon)[:, None, None]
    return top + (horizon - top) * t.clamp(0, 1) ** 1.5


def render(layout: Layout, style: Style, height: int, width: int) -> tuple[Tensor, Tensor]:
    """Draw ``layout`` in ``style`` -> image (3,H,W) float32 in [-1,1], labels (H,W) int64 (layout only)."""
    if not isinstance(layout, Layout):
        raise TypeError(f"layout: expected a Layout, got {type(layout).__name__}")
    if not isinstance(style, Style):
        raise TypeError(f"style: expected a Style, got {type(style).__name__}")
    _check_int("height", height, 1)
    _check_int("width", width, 1)
    if not 0 < layout.horizon < 1:
        raise ValueError(f"layout.horizon: expected a height in (0, 1), got {layout.horizon}")
    label, normal, fog = paint_layout(layout, height, width)
    noise = _noise_fields(style, height, width)  # (4,H,W)
    y, x = (torch.arange(height)[:, None] + 0.5) / height, (torch.arange(width)[None, :] + 0.5) / width
    base, alt = torch.tensor(style.palette), torch.tensor(style.palette_alt)
    per_class = torch.cat([base, alt - base, _MIX, _MIX_OFFSET[:, None], style.texture_amplitude * _GRAIN[:, None]], 1)
    # channels first throughout: elementwise ops vectorise along W
    pixel = per_class.T.contiguous().index_select(1, label.view(-1)).view(-1, height, width)  # (12,H,W)
    mix = ((pixel[6:10] * noise).sum(0) + pixel[10]).clamp(0, 1)
    light_x = max(-1.0, min(1.0, 2.5 * (style.sun_x - 0.5))) * (1.0 if style.sun_radius > 0 else 0.3)
    brightness = 1 + pixel[11] * (0.3 * noise[1] + 0.7 * noise[2])
    brightness *= 1 + style.light_contrast * (light_x * normal[0] + 0.7 * normal[1])
    image = torch.addcmul(pixel[0:3], pixel[3:6], mix) * brightness

    sun = torch.tensor(style.sun_colour)[:, None, None]
    sky_rows = int((y < layout.horizon).sum())  # sky and clouds lie above the horizon, water below
    up, yu = slice(0, sky_rows), y[:sky_rows]
    sun_distance = torch.hypot(x - style.sun_x, yu - style.sun_y)
    glow = style.sun_glow * torch.exp(-sun_distance / 0.15) * sun
    sky = _sky_gradient(style, yu / layout.horizon) * (1 + 0.03 * noise[0, up]) + glow
    if style.sun_radius > 0:
        sky = torch.lerp(sky, sun.expand_as(sky), ((style.sun_radius - sun_distance) / 0.004).clamp(0, 1))
    image[:, up] = torch.where(label[up] == SKY, sky, image[:, up])
    image[:, up] += 0.7 * (label[up] == CLOUD) * glow

    down, yd = slice(sky_rows, height), y[sky_rows:]
    mirrored = 2 * layout.horizon - yd  # the sky point that calm water reflects
    water = torch.lerp(image[:, down], _sky_gradient(style, mirrored / layout.horizon), style.reflectivity)
    glitter = torch.exp(-torch.hypot(x - style.sun_x, 0.25 * (mirrored - style.sun_y)) / 0.05)
    water += 1.5 * style.sun_glow * glitter * (noise[3, down] > 0.2) * sun
    image[:, down] = torch.where(label[down] == WATER, water, image[:, down])

    haze = torch.tensor(style.sky_horizon)[:, None, None].expand_as(image)
    image = torch.lerp(image, haze, fog * style.haze)
    return image.clamp_(0, 1).mul_(2).sub_(1), label


def _check_int(name: str, value: object, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name}: expected an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name}: expected an int >= {minimum}, got {value}")


def colorize_labels(label: Tensor) -> Tensor:
    """Label ids (H,W) int64 -> colour-coded (3,H,W) uint8 using :data:`PALETTE`."""
    if not isinstance(label, Tensor):
        raise TypeError(f"label: expected an integer (H, W) tensor, got {type(label).__name__}")
    if label.dim() != 2 or label.dtype.is_floating_point or label.dtype == torch.bool:
        raise ValueError(f"label: expected an integer (H, W) tensor, got {label.dtype} of shape {tuple(label.shape)}")
    return to_uint8(colorize(label.long().clamp(0, NUM_CLASSES - 1)[None], torch.tensor(PALETTE, dtype=torch.uint8))[0])


class SyntheticScenes(Dataset):
    """``num_images`` procedural scenes; item i is deterministic in (seed, i).

    Items: dict(image=(3,size,size) float32 in [-1,1], label=(size,size) int64, name=str).
    """

    def __init__(self, num_images: int = 2000, size: int = 512, seed: int = 0) -> None:
        _check_int("num_images", num_images, 1)
        _check_int("size", size, 16)
        _check_int("seed", seed, 0)
        self.num_images, self.size, self.seed = int(num_images), int(size), int(seed)
        self.num_classes, self.class_names = NUM_CLASSES, CLASS_NAMES
        self.palette = PALETTE  # label colours for sample grids

    def __len__(self) -> int:
        return self.num_images

    def _index(self, index: int) -> int:
        """``index`` in [-len, len) -> [0, len); IndexError outside, as sequences do."""
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
            raise TypeError(f"index: expected an int, got {type(index).__name__}")
        if not -self.num_images <= index < self.num_images:
            raise IndexError(f"index: expected an int in [0, {self.num_images}), got {index}")
        return int(index) % self.num_images

    def _rngs(self, index: int) -> list[np.random.Generator]:
        """Independent generators for image ``index``'s layout and style, fixed by (seed, index)."""
        return np.random.default_rng([self.seed, self._index(index)]).spawn(2)

    def layout(self, index: int) -> Layout:
        return sample_layout(self._rngs(index)[0])

    def style(self, index: int) -> Style:
        return sample_style(self._rngs(index)[1])

    def __getitem__(self, index: int) -> dict[str, Tensor | str]:
        image, label = render(self.layout(index), self.style(index), self.size, self.size)
        return {"image": image, "label": label, "name": f"synthetic_{self._index(index):06d}"}


def save_preview(path: str, n: int = 16, size: int = 256, seed: int = 0, columns: int = 8, style_rows: int = 3) -> str:
    """Write a PNG grid: ``n`` scenes (image above its label map), ``columns`` a row; then ``style_rows``
    rows of one layout's label map followed by that layout in 4 other images' styles. Returns ``path``."""
    _check_int("n", n, 1)
    _check_int("columns", columns, 5)
    _check_int("style_rows", style_rows, 0)
    data = SyntheticScenes(num_images=n + 4 * style_rows, size=size, seed=seed)
    blank = torch.zeros(3, 2 * size, size, dtype=torch.uint8)
    cells = [torch.cat([to_uint8(data[i]["image"]), colorize_labels(data[i]["label"])], 1) for i in range(n)]
    cells += [blank] * (-n % columns)
    rows = [torch.cat(cells[r : r + columns], 2) for r in range(0, len(cells), columns)]
    for k in range(style_rows):
        layout = data.layout(k)
        strip = [colorize_labels(render(layout, data.style(k), size, size)[1])]
        strip += [to_uint8(render(layout, data.style(n + 4 * k + j), size, size)[0]) for j in range(4)]
        rows.append(torch.cat(strip + [blank[:, :size]] * (columns - 5), 2))
    save_picture(torch.cat(rows, 1), path)
    return path


if __name__ == "__main__":
    import sys

    print(save_preview(sys.argv[1] if len(sys.argv) > 1 else "synthetic_preview.png"))
