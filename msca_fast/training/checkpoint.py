"""Checkpoint files: atomic writes, the last N kept, read back with ``weights_only=True``.

A checkpoint is written to ``<name>.tmp``, flushed to disk, then renamed over ``<name>``:
a crash or Ctrl-C mid-write leaves the previous checkpoints intact and at most a stray
``.tmp`` file, which the next save removes.
"""

from __future__ import annotations

import os
import pickle
import re
import warnings
from pathlib import Path
from typing import Any

import torch

from msca_fast.training import frozen_vgg
from msca_fast.training.disk_full import reporting_full_disk
from msca_fast.training.divergence import TrainingDiverged, non_finite_tensors
from msca_fast.training.state_tensors import state_bytes

PATTERN = re.compile(r"^checkpoint_(\d{8,})\.pt$")  # 8 digits or more: checkpoint_name pads to 8


def checkpoint_name(step: int) -> str:
    return f"checkpoint_{step:08d}.pt"


def list_checkpoints(directory: str | os.PathLike) -> list[Path]:
    """Completed checkpoints in ``directory``, oldest first."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = [p for p in directory.iterdir() if PATTERN.match(p.name)]
    return sorted(found, key=lambda p: int(PATTERN.match(p.name).group(1)))


def latest_checkpoint(directory: str | os.PathLike) -> Path | None:
    checkpoints = list_checkpoints(directory)
    return checkpoints[-1] if checkpoints else None


def save_checkpoint(state: dict[str, Any], directory: str | os.PathLike, step: int, keep: int = 3) -> Path:
    """Write ``state`` as ``directory/checkpoint_<step>.pt`` atomically; keep the newest ``keep``.

    A state holding NaN or infinity is not written (TrainingDiverged), so the checkpoints that
    rotation keeps are always finite ones."""
    directory = Path(directory)
    bad = non_finite_tensors(state)
    previous = latest_checkpoint(directory)
    if bad:
        raise TrainingDiverged(
            f"checkpoint at iteration {step} not written: {len(bad)} tensors hold NaN or infinity "
            f"({', '.join(bad[:3])}{', ...' if len(bad) > 3 else ''}); "
            + (f"the newest checkpoint is {previous}" if previous else "there is no checkpoint yet")
        )
    directory.mkdir(parents=True, exist_ok=True)
    for stray in directory.glob("checkpoint_*.pt.tmp"):
        stray.unlink()
    final = directory / checkpoint_name(step)
    temporary = final.with_name(final.name + ".tmp")
    kept = f"the previous checkpoint {previous} is intact; " if previous else "there is no checkpoint yet; "
    with reporting_full_disk("checkpoint", final, state_bytes(state), kept):
        try:
            with open(temporary, "wb") as handle:
                torch.save(state, handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, final)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
    for old in list_checkpoints(directory)[:-keep]:
        old.unlink()
    return final


def resolve_checkpoint(path: str | os.PathLike) -> Path:
    """``path`` itself, or the newest checkpoint when it is a run folder; FileNotFoundError if none."""
    path = Path(path)
    if path.is_dir():
        found = latest_checkpoint(path)
        if found is None:
            raise FileNotFoundError(f"checkpoint: no checkpoint_*.pt in {str(path)!r}")
        path = found
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint: no such checkpoint {str(path)!r}")
    return path


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """The state saved by :func:`save_checkpoint` (``path`` may be a run folder: its newest), on
    the CPU, loaded with ``weights_only=True``. A bad file raises a ValueError of one line."""
    path = resolve_checkpoint(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch warns about the pickle protocol of foreign files
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001  (torch raises many types for a bad file)
        raise ValueError(f"checkpoint: {str(path)!r} {why_unreadable(error)}") from error
    if not isinstance(state, dict) or "model_config" not in state:
        raise ValueError(f"checkpoint: {str(path)!r} is not an msca-fast training checkpoint")
    return state


def why_unreadable(error: Exception) -> str:
    """One line saying why ``torch.load(weights_only=True)`` refused a file.

    torch's own text runs to several paragraphs and suggests ``weights_only=False``, which
    would execute whatever the file holds; an msca-fast checkpoint never needs that.
    """
    text = str(error)
    refused = re.search(r"Unsupported global: GLOBAL ([\w.]+)", text)
    if refused:
        return (
            f"is not a checkpoint file torch can read safely: it holds a pickled Python object "
            f"({refused.group(1)}), which is refused (msca-fast checkpoints hold only tensors and plain values)"
        )
    if isinstance(error, pickle.UnpicklingError):
        return "is not a checkpoint file torch can read safely: it holds pickled code or objects, which are refused"
    if "zip archive" in text or "PytorchStreamReader" in text:
        return "is not a complete checkpoint file: it is truncated or corrupted (its torch zip archive does not read)"
    if isinstance(error, EOFError):
        return "is not a checkpoint file: it is empty or ends early"
    return f"is not a checkpoint file torch can read ({type(error).__name__})"


def load_generator(source: str | os.PathLike | dict[str, Any], ema: bool = True, name: str | None = None):
    """The generator of a training checkpoint (path, run folder or loaded state), in eval mode:
    the EMA copy by default, the raw training weights with ``ema=False``.

    Its frozen VGG-19 is read from the source the checkpoint records (see
    :mod:`msca_fast.training.frozen_vgg`). Every failure is a ValueError (FileNotFoundError
    for a missing path) of one line naming the checkpoint, or ``name`` for a loaded state.
    """
    from msca_fast.models.config import ModelConfig
    from msca_fast.models.generator import Generator

    if isinstance(source, dict):
        state, where = source, name or "the checkpoint"
    else:
        path = resolve_checkpoint(source)
        state, where = load_checkpoint(path), f"checkpoint {str(path)!r}"
    key = "generator_ema" if ema else "generator"
    if key not in state:
        raise ValueError(f"{where} has no {key!r} weights; is it an msca-fast training checkpoint?")
    try:
        generator = Generator(ModelConfig.from_dict(state["model_config"]), vgg_weights="none")
    except (TypeError, ValueError) as error:
        raise ValueError(f"{where} describes a model this version cannot build: {error}") from error
    frozen_vgg.restore_vgg(generator, state, where)
    frozen_vgg.load_trained(generator, state[key], where)
    return generator.eval()
