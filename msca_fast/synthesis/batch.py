"""Folder mode of ``synthesize single``: which label map goes with which exemplar.

--label and --exemplar are each a file or a folder; a folder means "every file in it":

* two folders: the files with the same stem are paired (``a.png`` with ``a.jpg``);
* a label folder and one exemplar: every layout in that exemplar's style;
* one label and an exemplar folder: that layout in every exemplar's style.

--exemplar-label is a folder when --exemplar is (``<exemplar stem>.png`` is looked up in
it when the exemplar is loaded), else a file. Outputs are ``<stem>.png`` in the output
folder, the stem being the label's, or the exemplar's when only the exemplars vary.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from msca_fast.data.folders import IMAGE_EXTENSIONS
from msca_fast.synthesis.errors import InputError


class Job(NamedTuple):
    label: Path
    exemplar: Path
    exemplar_label: Path | None
    output: Path


def is_batch(label: Path, exemplar: Path) -> bool:
    return label.is_dir() or exemplar.is_dir()


def files_by_stem(folder: Path, extensions: tuple[str, ...]) -> dict[str, Path]:
    """{stem: path} of the (non-hidden) files of ``folder`` with one of ``extensions``, any case."""
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.is_file() and not path.name.startswith(".") and path.suffix.lower() in extensions:
            if path.stem in found:
                raise InputError(f"{found[path.stem].name} and {path.name} in {folder} share a stem; keep one")
            found[path.stem] = path
    if not found:
        raise InputError(f"no {'/'.join(extensions)} files in the folder {str(folder)!r}")
    return found


def plan_jobs(label: Path, exemplar: Path, exemplar_label: Path | None, output: Path) -> tuple[list[Job], list[str]]:
    """The (label, exemplar, exemplar label, output) of every image to make, and the stems
    of one folder that the other folder lacks (to warn about)."""
    if output.exists() and not output.is_dir():
        raise InputError(f"--output {str(output)!r} is a file; with a folder of inputs it must be a folder")
    if exemplar.is_dir() and exemplar_label is not None and not exemplar_label.is_dir():
        raise InputError("--exemplar-label must be a folder (of <exemplar stem>.png files) when --exemplar is a folder")
    labels = files_by_stem(label, (".png",)) if label.is_dir() else None
    exemplars = files_by_stem(exemplar, IMAGE_EXTENSIONS) if exemplar.is_dir() else None
    unmatched: list[str] = []
    if labels is not None and exemplars is not None:
        stems = sorted(labels.keys() & exemplars.keys())
        unmatched = sorted(labels.keys() ^ exemplars.keys())
        if not stems:
            raise InputError(f"no file of {str(label)!r} has an exemplar with the same stem in {str(exemplar)!r}")
        pairs = [(stem, labels[stem], exemplars[stem]) for stem in stems]
    elif labels is not None:
        pairs = [(stem, path, exemplar) for stem, path in labels.items()]
    else:
        pairs = [(stem, label, path) for stem, path in exemplars.items()]
    jobs = [
        Job(label_path, exemplar_path, exemplar_label_for(exemplar_label, exemplar_path), output / f"{stem}.png")
        for stem, label_path, exemplar_path in pairs
    ]
    return jobs, unmatched


def exemplar_label_for(given: Path | None, exemplar: Path) -> Path | None:
    """The exemplar's label file: ``given`` itself, ``given/<stem>.png``, or None (none given)."""
    if given is None or not given.is_dir():
        return given
    return given / f"{exemplar.stem}.png"
