"""Pretrained networks' weight files (the VGG-19, LPIPS's VGG-16, FID's Inception-v3): find, load, describe.

A file is looked for in this order, for every network:
  1. the path the caller passed (it must exist: a wrong path is an error, never skipped);
  2. the path in the network's environment variable (likewise);
  3. a known file name in the torch hub cache, ``<torch.hub.get_dir()>/checkpoints/``;
  4. a download of the primary file into that cache (only when downloads are allowed).
When all of them fail, :class:`msca_fast.errors.WeightsUnavailable` says which file to fetch
from where. Files are read with ``torch.load(weights_only=True)``: no code in them runs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from msca_fast.errors import WeightsUnavailable


@dataclass(frozen=True)
class WeightSource:
    """Where one pretrained network's weights can come from.

    name: short name for messages ("LPIPS VGG-16 backbone weights").
    detail: what exactly the file is ("torchvision's ImageNet VGG16_Weights.IMAGENET1K_V1").
    urls: download addresses, the first one being downloaded; the others are known copies whose
        file names are also looked for in the cache. Each file is cached under its URL's base name.
    env_var: environment variable that may hold a path to the file.
    argument: the Python argument that takes a path ("backbone_weights").
    flag: the command-line option that takes a path ("--lpips-weights").
    fallback: one more way to go on without the file, offered last (e.g. random weights), or "".
    """

    name: str
    detail: str
    urls: tuple[str, ...]
    env_var: str
    argument: str
    flag: str
    fallback: str = ""

    def cache_path(self, url: str | None = None) -> Path:
        """Where the torch hub cache keeps the file of ``url`` (default: the primary one)."""
        return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url or self.urls[0])

    def cache_paths(self) -> list[Path]:
        return [self.cache_path(url) for url in self.urls]

    def file_names(self) -> tuple[str, ...]:
        """The names the file has in the torch hub cache, one per URL."""
        return tuple(path.name for path in self.cache_paths())

    def where_to_put(self, with_flag: bool = True) -> str:
        """One sentence: where to save the file so it is found, or how to give its path (with
        the command-line :attr:`flag` too if ``with_flag``)."""
        primary = self.urls[0]
        give = (
            f"pass its path as {self.flag} PATH or in ${self.env_var}"
            if with_flag
            else f"set ${self.env_var} to its path"
        )
        return f"Save {primary} as {self.cache_path(primary)} (the torch hub cache, searched automatically), or {give}."

    def instructions(self, reason: str, searched: bool = True) -> str:
        """A one-line reason, then (if ``searched``) where the file was looked for, and how to provide it."""
        primary, *copies = self.urls
        cached = ", ".join(str(path) for path in self.cache_paths())
        lines = [f"{self.name} are unavailable: {reason}."]
        if searched:
            lines.append(f"Searched: the {self.argument} argument, ${self.env_var}, the torch hub cache ({cached}).")
        lines += [
            f"Provide them ({self.detail}) in one of these ways:",
            f"  1. download {primary}",
            f"     and save it as {self.cache_path(primary)} (the torch hub cache, searched automatically);",
            f"  2. save that file anywhere and pass its path as {self.argument}=PATH ({self.flag} PATH on the "
            f"command line), or set {self.env_var}=PATH" + (";" if self.fallback else "."),
        ]
        if self.fallback:
            lines.append(f"  3. {self.fallback}.")
        lines += [f"  (The same weights from {url} work too, saved as {self.cache_path(url)}.)" for url in copies]
        return "\n".join(lines)

    def location_in_words(self) -> str:
        """Where :func:`find_weights_file` without a path reads the file from on this machine."""
        if os.environ.get(self.env_var):
            return f"{self.env_var}={os.environ[self.env_var]!r}"
        for cached in self.cache_paths():
            if cached.is_file():
                return repr(str(cached))
        return f"a download of {self.urls[0]}"


def find_weights_file(
    source: WeightSource, path: str | os.PathLike | None, allow_download: bool, progress: bool = False
) -> Path:
    """The weight file for ``source``, found or downloaded (with a progress bar on stderr if
    ``progress``) in the order of the module docstring.

    Raises FileNotFoundError for a given path (argument or environment variable) that does not
    exist, and :class:`WeightsUnavailable` when nothing was given, cached or downloaded.
    """
    if path is not None:
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"{source.argument}: expected a file path or None, got {type(path).__name__}")
        return _existing_file(Path(path), source.argument, source)
    if os.environ.get(source.env_var):
        return _existing_file(Path(os.environ[source.env_var]), f"the {source.env_var} environment variable", source)
    for cached in source.cache_paths():
        if cached.is_file():
            return cached
    if not allow_download:
        raise WeightsUnavailable(source.instructions("none given or cached, and downloads are off"))
    destination = source.cache_path()
    try:
        destination.parent.mkdir(parents=True, exist_ok=True)
        # No hash check, as in torchvision, torch-fidelity and pytorch-fid, which download these files.
        torch.hub.download_url_to_file(source.urls[0], str(destination), progress=progress)
    except Exception as error:  # noqa: BLE001  (every download failure gets the same advice)
        raise WeightsUnavailable(
            source.instructions(f"none given or cached, and the download failed ({error})")
        ) from error
    return destination


def load_state_dict_file(path: Path, argument: str) -> dict[str, Tensor]:
    """The state_dict in ``path``, loaded with ``weights_only=True`` (no code from the file runs).

    ``argument`` names the file's source in errors, which are ValueErrors: a file torch cannot
    read, or one that does not hold a dict of tensors.
    """
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001
        raise ValueError(f"{argument}: could not read {str(path)!r} as a PyTorch state_dict ({error})") from error
    if not isinstance(state, dict) or not all(isinstance(value, Tensor) for value in state.values()):
        raise ValueError(
            f"{argument}: {str(path)!r} does not hold a state_dict of tensors (got {type(state).__name__})"
        )
    return state


def _existing_file(path: Path, given_by: str, source: WeightSource) -> Path:
    if not path.is_file():
        raise FileNotFoundError(
            f"{given_by}: no such file {str(path)!r}\n"
            + source.instructions(f"{str(path)!r} does not exist", searched=False)
        )
    return path
