"""The subcommands of ``python -m msca_fast.synthesize``: files in, PNG files out.

:func:`synthesize_files` opens the session of a :class:`SynthesisConfig` and runs one command;
each command is a plain function of a :class:`~msca_fast.synthesis.session.Session` and its
own file options, writes its output and returns the paths written.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

from tqdm import tqdm

from msca_fast.synthesis.attention_figure import attention_figure
from msca_fast.synthesis.batch import exemplar_label_for, is_batch, plan_jobs
from msca_fast.synthesis.core import Exemplar, synthesize
from msca_fast.synthesis.errors import InputError
from msca_fast.synthesis.extrapolation import extrapolate
from msca_fast.synthesis.figures import fit, tile_grid
from msca_fast.synthesis.interpolation import interpolate_styles, spatial_interpolation
from msca_fast.synthesis.session import Session, SynthesisConfig, open_session, write_image
from msca_fast.synthesis.swap_grid import style_swap_grid

PathLike = str | os.PathLike


def synthesize_files(command: str, config: SynthesisConfig, **options) -> list[Path]:
    """Run ``command`` (a key of :data:`COMMANDS`) with its ``options`` on the model of ``config``."""
    if command not in COMMANDS:
        raise InputError(f"command: expected one of {list(COMMANDS)}, got {command!r}")
    return COMMANDS[command](open_session(config), **options)


def run_single(
    session: Session, label: PathLike, exemplar: PathLike, output: PathLike, exemplar_label: PathLike | None = None
) -> list[Path]:
    """One label map + one exemplar -> one image; folders -> one image per pair (see :mod:`.batch`)."""
    label, exemplar, output = Path(label), Path(exemplar), Path(output)
    exemplar_label = None if exemplar_label is None else Path(exemplar_label)
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


def run_interpolate(
    session: Session, label: PathLike, exemplar: Sequence[PathLike], output: PathLike,
    exemplar_label: Sequence[PathLike] | None = None, steps: int = 5, frames_dir: PathLike | None = None,
) -> list[Path]:  # fmt: skip
    """A strip: exemplar a | t = 0 ... t = 1 | exemplar b, ``steps`` images; optionally one PNG
    per step in ``frames_dir``."""
    if steps < 2:
        raise InputError(f"--steps: expected at least 2 (t = 0 and t = 1), got {steps}")
    c1 = session.labels(label)
    a, b = _two_exemplars(session, exemplar, exemplar_label)
    ts = [i / (steps - 1) for i in range(steps)]
    frames = [f.cpu()[0] for f in interpolate_styles(session.model.generator, c1, a, b, ts)]
    size = tuple(c1.shape[-2:])
    strip = tile_grid([fit(a[0], size)[0], *frames, fit(b[0], size)[0]], columns=len(frames) + 2)
    written = [write_image(strip, output)]
    if frames_dir is not None:
        folder = Path(frames_dir)
        written += [write_image(f, folder / f"frame_{i:03d}_t{t:.3f}.png") for i, (f, t) in enumerate(zip(frames, ts))]
    return written


def run_spatial(
    session: Session, label: PathLike, exemplar: Sequence[PathLike], output: PathLike,
    exemplar_label: Sequence[PathLike] | None = None,
) -> list[Path]:  # fmt: skip
    """The layout styled by exemplar a on the left, b on the right."""
    c1 = session.labels(label)
    a, b = _two_exemplars(session, exemplar, exemplar_label)
    return [write_image(spatial_interpolation(session.model.generator, c1, a, b)[0], output)]


def run_extrapolate(
    session: Session, canvas_label: PathLike, exemplar: PathLike, output: PathLike,
    exemplar_label: PathLike | None = None, patch: int = 256, stride: int = 128, batch_size: int = 4,
) -> list[Path]:  # fmt: skip
    """A canvas layout (any size >= ``patch``) synthesized patch by patch in one exemplar's
    style, ``batch_size`` patches at once, ``stride`` pixels apart."""
    canvas = session.labels(canvas_label)
    style = session.exemplar(exemplar, exemplar_label)
    image = extrapolate(session.model.generator, canvas, style, patch, stride, batch_size)
    return [write_image(image[0], output)]


def run_swap_grid(
    session: Session, labels: Sequence[PathLike], exemplars: Sequence[PathLike], output: PathLike,
    exemplar_labels: Sequence[PathLike] | None = None,
) -> list[Path]:  # fmt: skip
    """Every layout (columns) in every exemplar's style (rows), with the inputs as headers."""
    exemplar_labels = exemplar_labels or [None] * len(exemplars)
    if len(exemplar_labels) != len(exemplars):
        raise InputError(
            f"--exemplar-labels: expected one per exemplar ({len(exemplars)}), got {len(exemplar_labels)}"
        )
    layouts = [session.labels(path) for path in labels]
    styles = [session.exemplar(x, c) for x, c in zip(exemplars, exemplar_labels)]
    return [write_image(style_swap_grid(session.model.generator, layouts, styles), output)]


def run_attention(
    session: Session, label: PathLike, exemplar: PathLike, output: PathLike,
    exemplar_label: PathLike | None = None, scale: int = 0,
) -> list[Path]:  # fmt: skip
    """The spatial and channel attention maps of one scale over the exemplar and the output."""
    c1 = session.labels(label)
    x2, c2 = session.exemplar(exemplar, exemplar_label)
    return [write_image(attention_figure(session.model.generator, c1, x2, c2, scale), output)]


def _two_exemplars(
    session: Session, exemplars: Sequence[PathLike], labels: Sequence[PathLike] | None
) -> tuple[Exemplar, Exemplar]:
    if len(exemplars) != 2 or (labels is not None and len(labels) != 2):
        raise InputError(f"--exemplar / --exemplar-label: expected two of each (A B), got {len(exemplars)}")
    labels = labels or [None, None]
    return session.exemplar(exemplars[0], labels[0]), session.exemplar(exemplars[1], labels[1])


COMMANDS = {
    "single": run_single,
    "interpolate": run_interpolate,
    "spatial": run_spatial,
    "extrapolate": run_extrapolate,
    "swap-grid": run_swap_grid,
    "attention": run_attention,
}
