"""The subcommands of ``python -m msca_fast.synthesize``: files in, PNG files out.

Each takes the parsed options and a :class:`~msca_fast.synthesis.session.Session`, writes its
output and returns the paths written.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tqdm import tqdm

from msca_fast.synthesis.attention_figure import attention_figure
from msca_fast.synthesis.batch import exemplar_label_for, is_batch, plan_jobs
from msca_fast.synthesis.core import Exemplar, synthesize
from msca_fast.synthesis.errors import InputError
from msca_fast.synthesis.extrapolation import extrapolate
from msca_fast.synthesis.figures import fit, tile_grid
from msca_fast.synthesis.interpolation import interpolate_styles, spatial_interpolation
from msca_fast.synthesis.session import Session, write_image
from msca_fast.synthesis.swap_grid import style_swap_grid


def run_single(args: argparse.Namespace, session: Session) -> list[Path]:
    """One label map + one exemplar -> one image; folders -> one image per pair (see :mod:`.batch`)."""
    label, exemplar, output = Path(args.label), Path(args.exemplar), Path(args.output)
    exemplar_label = None if args.exemplar_label is None else Path(args.exemplar_label)
    g = session.model.generator
    if not is_batch(label, exemplar):
        target = output / f"{label.stem}.png" if output.is_dir() else output
        x2, c2 = session.exemplar(exemplar, exemplar_label_for(exemplar_label, exemplar))
        return [write_image(synthesize(g, session.labels(label), x2, c2)[0], target)]
    jobs, unmatched = plan_jobs(label, exemplar, exemplar_label, output)
    if unmatched:
        shown = ", ".join(unmatched[:10]) + (", ..." if len(unmatched) > 10 else "")
        print(f"warning: skipping {len(unmatched)} file(s) without a same-stem partner: {shown}", file=sys.stderr)
    cached: dict[Path, Exemplar] = {}  # one exemplar for every layout is loaded once
    written = []
    with tqdm(jobs, desc="synthesize", unit="image") as bar:  # closed (newline) before any error is printed
        for job in bar:
            if job.exemplar not in cached:
                cached = {job.exemplar: session.exemplar(job.exemplar, job.exemplar_label)}
            x2, c2 = cached[job.exemplar]
            written.append(write_image(synthesize(g, session.labels(job.label), x2, c2)[0], job.output))
    return written


def run_interpolate(args: argparse.Namespace, session: Session) -> list[Path]:
    """A strip: exemplar a | t = 0 ... t = 1 | exemplar b; optionally one PNG per step in --frames-dir."""
    if args.steps < 2:
        raise InputError(f"--steps: expected at least 2 (t = 0 and t = 1), got {args.steps}")
    c1 = session.labels(args.label)
    a, b = _two_exemplars(args, session)
    ts = [i / (args.steps - 1) for i in range(args.steps)]
    frames = [f.cpu()[0] for f in interpolate_styles(session.model.generator, c1, a, b, ts)]
    size = tuple(c1.shape[-2:])
    strip = tile_grid([fit(a[0], size)[0], *frames, fit(b[0], size)[0]], columns=len(frames) + 2)
    written = [write_image(strip, args.output)]
    if args.frames_dir is not None:
        folder = Path(args.frames_dir)
        written += [write_image(f, folder / f"frame_{i:03d}_t{t:.3f}.png") for i, (f, t) in enumerate(zip(frames, ts))]
    return written


def run_spatial(args: argparse.Namespace, session: Session) -> list[Path]:
    """The layout styled by exemplar a on the left, b on the right."""
    c1 = session.labels(args.label)
    a, b = _two_exemplars(args, session)
    return [write_image(spatial_interpolation(session.model.generator, c1, a, b)[0], args.output)]


def run_extrapolate(args: argparse.Namespace, session: Session) -> list[Path]:
    """A canvas layout (any size >= --patch) synthesized patch by patch in one exemplar's style."""
    canvas = session.labels(args.canvas_label)
    exemplar = session.exemplar(args.exemplar, args.exemplar_label)
    image = extrapolate(session.model.generator, canvas, exemplar, args.patch, args.stride, args.batch_size)
    return [write_image(image[0], args.output)]


def run_swap_grid(args: argparse.Namespace, session: Session) -> list[Path]:
    """Every layout (columns) in every exemplar's style (rows), with the inputs as headers."""
    exemplar_labels = args.exemplar_labels or [None] * len(args.exemplars)
    if len(exemplar_labels) != len(args.exemplars):
        raise InputError(
            f"--exemplar-labels: expected one per exemplar ({len(args.exemplars)}), got {len(exemplar_labels)}"
        )
    labels = [session.labels(path) for path in args.labels]
    exemplars = [session.exemplar(x, c) for x, c in zip(args.exemplars, exemplar_labels)]
    return [write_image(style_swap_grid(session.model.generator, labels, exemplars), args.output)]


def run_attention(args: argparse.Namespace, session: Session) -> list[Path]:
    """The spatial and channel attention maps of one scale over the exemplar and the output."""
    c1 = session.labels(args.label)
    x2, c2 = session.exemplar(args.exemplar, args.exemplar_label)
    return [write_image(attention_figure(session.model.generator, c1, x2, c2, args.scale), args.output)]


def _two_exemplars(args: argparse.Namespace, session: Session) -> tuple[Exemplar, Exemplar]:
    labels = args.exemplar_label or [None, None]
    return session.exemplar(args.exemplar[0], labels[0]), session.exemplar(args.exemplar[1], labels[1])


COMMANDS = {
    "single": run_single,
    "interpolate": run_interpolate,
    "spatial": run_spatial,
    "extrapolate": run_extrapolate,
    "swap-grid": run_swap_grid,
    "attention": run_attention,
}
