"""The generator's frozen VGG-19 in checkpoints: recorded by its source and checksum, not stored.

The VGG is 80 MB of weights that training never changes. A checkpoint keeps a record instead
(``vgg19_source``): where the weights came from ("imagenet", a file, or a random VGG and its
seed) and the SHA-256 of the weights as loaded. Loading a checkpoint reads the weights from
that source on this machine and refuses them, in one line, when they are missing or differ.
Checkpoints written before this record existed hold the weights themselves (``vgg19``): they
still load, and a run resumed from one keeps storing them.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from msca_fast.errors import WeightsUnavailable
from msca_fast.models.vgg import RANDOM_SEED, VGG19_SOURCE, vgg19_weights

PREFIX = "image_pyramid.vgg."  # the generator's state_dict keys of its VGG
RECORD_KEY = "vgg19_source"
TENSORS_KEY = "vgg19"  # older checkpoints: the weights themselves


def vgg_features(generator: nn.Module) -> nn.Sequential:
    """The generator's frozen VGG layers (torchvision's vgg19().features, cut after relu5_4)."""
    return generator.image_pyramid.vgg.features


def weights_digest(state: dict[str, Tensor]) -> str:
    """SHA-256 over the names, dtypes, shapes and bytes of ``state``'s tensors."""
    digest = hashlib.sha256()
    for name in sorted(state):
        tensor = state[name].detach().to("cpu").contiguous()
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)};".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy())
    return digest.hexdigest()


def source_record(vgg_weights: str | os.PathLike, generator: nn.Module) -> dict[str, Any]:
    """What a checkpoint keeps of the VGG ``generator`` was built with from ``vgg_weights``
    ("imagenet", "random" or a file path): plain values only."""
    weights = str(vgg_weights)
    if weights in ("auto", "none"):
        raise ValueError(
            f"vgg_weights: {weights!r} does not say where the VGG-19 came from; record the resolved "
            "source ('imagenet', 'random' or a file path)"
        )
    record: dict[str, Any] = {"sha256": weights_digest(vgg_features(generator).state_dict())}
    if weights == "imagenet":
        record["kind"] = "imagenet"
    elif weights == "random":
        record.update(kind="random", seed=RANDOM_SEED)
    else:
        record.update(kind="file", path=str(Path(weights).resolve()))
    return record


def checkpoint_entry(vgg_weights: str | os.PathLike, generator: nn.Module, resumed: dict | None) -> dict[str, Any]:
    """What every checkpoint of a run stores for its VGG: the source record, or the tensors
    themselves for a run resumed from an older checkpoint that held them (its VGG need not be
    what its vgg_weights gives today: random VGGs were not drawn from a fixed seed then)."""
    if resumed is not None and TENSORS_KEY in resumed:
        return {TENSORS_KEY: vgg_features(generator).state_dict()}
    return {RECORD_KEY: source_record(vgg_weights, generator)}


def without_vgg(generator_state: dict[str, Any]) -> dict[str, Any]:
    """A generator state_dict minus the frozen VGG weights."""
    return {k: v for k, v in generator_state.items() if not k.startswith(PREFIX)}


def restore_vgg(generator: nn.Module, checkpoint: dict[str, Any], where: str) -> None:
    """Load the VGG weights ``checkpoint`` was trained with into ``generator`` (built with
    vgg_weights="none"). ``where`` names the checkpoint in errors, which are one-line ValueErrors."""
    features = vgg_features(generator)
    if TENSORS_KEY in checkpoint:
        features.load_state_dict(checkpoint[TENSORS_KEY])
        return
    record = checkpoint.get(RECORD_KEY)
    if not isinstance(record, dict) or record.get("kind") not in ("imagenet", "random", "file"):
        raise ValueError(f"{where} does not record its VGG-19 weights ({RECORD_KEY!r}); is it an msca-fast checkpoint?")
    state, found_at = _read_recorded(record, len(features), where)
    try:
        features.load_state_dict(state)
    except RuntimeError as error:
        raise ValueError(f"{where}: {found_at} does not hold VGG-19 weights (its names or shapes differ)") from error
    actual = weights_digest(features.state_dict())  # as the model holds them, whatever dtype the file has
    if actual != record.get("sha256"):
        raise ValueError(
            f"{where} was trained with VGG-19 weights of sha256 {str(record.get('sha256'))[:16]}..., but "
            f"{found_at} holds weights of sha256 {actual[:16]}...; provide the same weights. {_how_to_give(record)}"
        )


def load_trained(generator: nn.Module, saved: dict[str, Tensor], where: str) -> None:
    """Load a checkpoint's generator weights (everything but the VGG) into ``generator``, or
    raise a one-line ValueError saying how they do not fit."""
    expected = without_vgg(generator.state_dict())
    missing = sorted(set(expected) - set(saved))
    unexpected = sorted(set(saved) - set(expected))
    reshaped = sorted(k for k in set(expected) & set(saved) if tuple(saved[k].shape) != tuple(expected[k].shape))
    if missing or unexpected or reshaped:
        example = (missing or unexpected or reshaped)[0]
        raise ValueError(
            f"{where} does not fit the generator its model_config describes (written by another version or "
            f"configuration?): {len(missing)} weights missing, {len(unexpected)} unexpected, {len(reshaped)} of "
            f"another shape, e.g. {example!r}"
        )
    generator.load_state_dict(saved, strict=False)


def _read_recorded(record: dict[str, Any], num_layers: int, where: str) -> tuple[dict[str, Tensor], str]:
    """The recorded weights as found on this machine, and a description of where."""
    kind = record["kind"]
    if kind == "random":
        seed = record.get("seed", RANDOM_SEED)
        return vgg19_weights("random", num_layers, seed), f"a random VGG-19 drawn here from seed {seed}"
    if kind == "file":
        path = Path(record.get("path", ""))
        if not path.is_file() and os.environ.get(VGG19_SOURCE.env_var):
            path = Path(os.environ[VGG19_SOURCE.env_var])
        if not path.is_file():
            raise ValueError(
                f"{where} was trained with the VGG-19 weights file {record.get('path')!r}, which is not on this "
                f"machine. {_how_to_give(record)}"
            )
        return _read_file(path, num_layers, where), repr(str(path))
    found_at = VGG19_SOURCE.location_in_words()
    try:
        return vgg19_weights("imagenet", num_layers), found_at
    except WeightsUnavailable as error:
        raise ValueError(
            f"{where} was trained with the ImageNet VGG-19, which is not on this machine and could not be "
            f"downloaded. {_how_to_give(record)}"
        ) from error
    except (OSError, ValueError, RuntimeError) as error:
        raise ValueError(
            f"{where}: the ImageNet VGG-19 at {found_at} cannot be read ({type(error).__name__})"
        ) from error


def _read_file(path: Path, num_layers: int, where: str) -> dict[str, Tensor]:
    try:
        return vgg19_weights(path, num_layers)
    except Exception as error:  # noqa: BLE001  (torch raises many types for a bad file)
        raise ValueError(
            f"{where}: its VGG-19 weights file {str(path)!r} cannot be read ({type(error).__name__})"
        ) from error


def _how_to_give(record: dict[str, Any]) -> str:
    """One sentence: how to give this machine the VGG-19 weights ``record`` describes."""
    if record["kind"] == "random":
        return "The random VGG depends on the torch version that drew it; use the torch version of the training run."
    if record["kind"] == "file":
        return f"Put the file back at {record.get('path')!r}, or set {VGG19_SOURCE.env_var}=PATH to a copy."
    return VGG19_SOURCE.where_to_put(with_flag=False)
