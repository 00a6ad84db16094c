"""COCO-Stuff outdoor-scene filter: per-image class fractions, computed once and cached.

The paper says "We remove images with indoor scenes and large objects" (34,698 training
images remain) but gives no rule.
We decide from the label map alone: an image is kept when things (ids 0..90) cover less
than ``max_thing_fraction`` of it and indoor stuff classes (``COCO_STUFF_INDOOR_STUFF_IDS``)
less than ``max_indoor_fraction``.

Reading 118K label maps takes minutes, so the per-image class fractions (not the decision)
are cached under ``~/.cache/msca_fast/`` (``$XDG_CACHE_HOME/msca_fast`` when set), one
compressed ``.npz`` per data-set root and split: changing the thresholds or the indoor list
needs no new pass. Label maps added later are read on the next use; delete the cache file
when existing label maps change.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from tqdm import tqdm

from msca_fast.data.class_names import COCO_STUFF_DONTCARE, COCO_STUFF_INDOOR_STUFF_IDS, COCO_STUFF_THING_IDS
from msca_fast.data.image_io import CorruptFileError, load_label_ids

COCO_STUFF_BINS = 183  # PNG values 0..181, then COCO_STUFF_DONTCARE (unlabeled) in bin 182
_QUANT = 65535  # fractions are stored as uint16 multiples of 1/65535
_CACHE_VERSION = 1
_SAVE_EVERY = 4096  # label maps read between cache writes, so an interrupted pass keeps its work


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/msca_fast`` or ``~/.cache/msca_fast``."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "msca_fast"


def cache_file_for(cache_dir: str | os.PathLike, root: str | os.PathLike, split_dir: str) -> Path:
    """The cache file of one data-set root and split (keyed by the resolved root path)."""
    key = hashlib.sha1(f"{Path(root).resolve()}\n{split_dir}".encode()).hexdigest()[:16]
    return Path(cache_dir) / f"cocostuff_{split_dir}_{key}.npz"


def class_fractions(
    label_paths: Mapping[str, Path], cache_file: Path, desc: str = "COCO-Stuff label statistics"
) -> tuple[dict[str, np.ndarray], dict[str, CorruptFileError]]:
    """Per-image class fractions {name: (183,) float32} for every name in ``label_paths``.

    Bin i < 182 is the share of pixels with PNG value i, bin 182 that of value
    :data:`~msca_fast.data.class_names.COCO_STUFF_DONTCARE`. Names
    missing from ``cache_file`` are read (with a progress bar) and added to it. Unreadable
    label maps are returned in the second dict, not cached, and read again next time.
    """
    cached = _load_cache(cache_file)
    missing = [name for name in label_paths if name not in cached]
    unreadable: dict[str, CorruptFileError] = {}
    if missing:
        workers = min(8, os.cpu_count() or 1)  # PIL decodes PNGs with the GIL released
        with ThreadPoolExecutor(workers) as pool, tqdm(total=len(missing), desc=desc, unit="map") as bar:
            for start in range(0, len(missing), _SAVE_EVERY):
                chunk = missing[start : start + _SAVE_EVERY]
                for name, result in zip(chunk, pool.map(_quantised_fractions, (label_paths[n] for n in chunk))):
                    if isinstance(result, CorruptFileError):
                        unreadable[name] = result
                    else:
                        cached[name] = result
                    bar.update(1)
                _save_cache(cache_file, cached)
    fractions = {
        name: cached[name].astype(np.float32) / _QUANT for name in label_paths if name in cached
    }
    return fractions, unreadable


def is_outdoor_scene(
    fractions: np.ndarray,
    max_thing_fraction: float = 0.4,
    max_indoor_fraction: float = 0.1,
    indoor_ids: Sequence[int] = COCO_STUFF_INDOOR_STUFF_IDS,
) -> bool:
    """The keep rule on one image's (183,) class fractions (see the module docstring)."""
    things = float(fractions[list(COCO_STUFF_THING_IDS)].sum())
    indoor = float(fractions[list(indoor_ids)].sum())
    return things < max_thing_fraction and indoor < max_indoor_fraction


def _quantised_fractions(path: Path) -> np.ndarray | CorruptFileError:
    try:
        ids = load_label_ids(path).numpy().ravel()
    except CorruptFileError as error:
        return error
    counts = np.bincount(ids, minlength=256)
    bins = np.concatenate([counts[: COCO_STUFF_BINS - 1], counts[COCO_STUFF_DONTCARE : COCO_STUFF_DONTCARE + 1]])
    # Values 182..254 are invalid in COCO-Stuff; they only count in the denominator here
    # (loading such an item raises).
    fractions = bins / max(ids.size, 1)
    return np.round(fractions * _QUANT).astype(np.uint16)


def _load_cache(cache_file: Path) -> dict[str, np.ndarray]:
    if not cache_file.is_file():
        return {}
    try:
        with np.load(cache_file, allow_pickle=False) as data:
            if int(data["version"]) != _CACHE_VERSION:
                return {}
            return dict(zip(data["names"].tolist(), data["fractions"]))
    except (OSError, ValueError, KeyError):
        return {}  # an unreadable cache is rebuilt, never trusted


def _save_cache(cache_file: Path, fractions: dict[str, np.ndarray]) -> None:
    cache_file.parent.mkdir(parents=True, exist_ok=True)
    names = sorted(fractions)
    table = np.stack([fractions[n] for n in names]) if names else np.zeros((0, COCO_STUFF_BINS), np.uint16)
    partial = cache_file.with_name(cache_file.name + f".{os.getpid()}.tmp.npz")
    np.savez_compressed(partial, version=_CACHE_VERSION, names=np.array(names, dtype=str), fractions=table)
    os.replace(partial, cache_file)  # atomic: a concurrent reader sees the old or the new file
