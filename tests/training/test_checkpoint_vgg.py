"""Checkpoints keep the frozen VGG-19 out: a record of its source and checksum instead of 80 MB
of weights; load_generator and --resume read the weights back from that source, and say in
one line when they are missing or differ."""

from __future__ import annotations

import hashlib
import os
import warnings
from pathlib import Path

import pytest
import torch

from msca_fast.models.vgg import VGG19_SOURCE, vgg19_feature_layers
from msca_fast.train import main as train_main
from msca_fast.training import checkpoint as ckpt
from msca_fast.training import frozen_vgg

from tiny_run import TINY_ARGS, train_tiny

NUM_VGG_LAYERS = 36  # vgg19().features up to relu5_4: the generator's VGG


def tensors(value):
    """Every tensor inside a checkpoint value (dicts, lists, optimizer states)."""
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from tensors(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from tensors(item)


def fingerprint(tensor: torch.Tensor) -> tuple:
    return tuple(tensor.shape), hashlib.sha256(tensor.contiguous().reshape(-1).view(torch.uint8).numpy()).hexdigest()


def write_vgg_file(path: Path, seed: int) -> dict[str, torch.Tensor]:
    """VGG-19 weights laid out as torchvision's full model ("features.N.weight"); returns them."""
    state = vgg19_feature_layers(seed).state_dict()
    torch.save({f"features.{k}": v for k, v in state.items()}, path)
    return state


def quiet_load(source, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ckpt.load_generator(source, **kwargs)


def assert_one_line(message: str, *parts: str) -> None:
    assert "\n" not in message, message
    for part in parts:
        assert part in message, f"{part!r} not in {message!r}"


@pytest.fixture(scope="module")
def random_vgg_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("random_vgg")
    assert train_tiny(out, "--pretrain-steps", "1", "--steps", "1") == 0
    return ckpt.latest_checkpoint(out)


def test_checkpoint_holds_a_record_not_the_vgg(random_vgg_run):
    state = ckpt.load_checkpoint(random_vgg_run)
    assert "vgg19" not in state
    record = state[frozen_vgg.RECORD_KEY]
    assert record["kind"] == "random" and record["seed"] == 0 and len(record["sha256"]) == 64
    for key in ("generator", "generator_ema"):
        assert not [name for name in state[key] if name.startswith(frozen_vgg.PREFIX)]
    vgg = {fingerprint(t) for t in vgg19_feature_layers(0)[:NUM_VGG_LAYERS].state_dict().values()}
    assert not [t.shape for t in tensors(state) if fingerprint(t) in vgg], "a VGG tensor is in the checkpoint"
    stored = sum(t.numel() * t.element_size() for t in tensors(state))
    vgg_bytes = 20_024_384 * 4  # the 80 MB that every checkpoint used to repeat
    size = os.path.getsize(random_vgg_run)
    assert size < 1.02 * stored + 256_000, "the file holds more than the state's tensors"
    assert size < vgg_bytes / 3


def test_load_generator_rebuilds_the_random_vgg(random_vgg_run):
    state = ckpt.load_checkpoint(random_vgg_run)
    g = quiet_load(random_vgg_run)
    assert not g.training
    expected_vgg = vgg19_feature_layers(0)[:NUM_VGG_LAYERS].state_dict()
    loaded = g.state_dict()
    for name, value in expected_vgg.items():
        assert torch.equal(loaded[frozen_vgg.PREFIX + "features." + name], value), name
    for name, value in state["generator_ema"].items():
        assert torch.equal(loaded[name], value), name


def test_older_checkpoints_with_the_vgg_tensors_still_load(random_vgg_run):
    state = ckpt.load_checkpoint(random_vgg_run)
    record = state.pop(frozen_vgg.RECORD_KEY)
    state["vgg19"] = {k: v + 1 for k, v in vgg19_feature_layers(0)[:NUM_VGG_LAYERS].state_dict().items()}
    g = quiet_load(state)
    assert torch.equal(g.image_pyramid.vgg.features[0].weight, state["vgg19"]["0.weight"])
    assert frozen_vgg.weights_digest(g.image_pyramid.vgg.features.state_dict()) != record["sha256"]


def test_a_run_resumed_from_an_older_checkpoint_keeps_its_vgg_tensors(random_vgg_run, tmp_path):
    state = ckpt.load_checkpoint(random_vgg_run)
    del state[frozen_vgg.RECORD_KEY]
    older = {k: v + 1 for k, v in vgg19_feature_layers(0)[:NUM_VGG_LAYERS].state_dict().items()}
    state["vgg19"] = older  # not what seed 0 gives: a record could not bring these back
    torch.save(state, tmp_path / random_vgg_run.name)
    assert train_tiny(tmp_path, "--pretrain-steps", "1", "--steps", "2", "--resume") == 0
    resumed = ckpt.load_checkpoint(tmp_path)
    assert resumed["step"] == 2 and frozen_vgg.RECORD_KEY not in resumed
    for name, value in older.items():
        assert torch.equal(resumed["vgg19"][name], value), name


def test_a_changed_random_vgg_is_refused(random_vgg_run):
    state = ckpt.load_checkpoint(random_vgg_run)
    state[frozen_vgg.RECORD_KEY]["seed"] = 1  # as if this torch drew other weights from the seed
    with pytest.raises(ValueError) as raised:
        quiet_load(state, name="checkpoint 'x.pt'")
    assert_one_line(str(raised.value), "checkpoint 'x.pt' was trained with VGG-19 weights of sha256", "seed 1")


def test_a_weights_file_is_recorded_by_path_and_checksum(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv(VGG19_SOURCE.env_var, raising=False)
    weights = tmp_path / "vgg19.pth"
    vgg_state = write_vgg_file(weights, seed=7)
    run = tmp_path / "run"
    schedule = ("--vgg-weights", str(weights), "--pretrain-steps", "1")
    assert train_tiny(run, *schedule, "--steps", "0") == 0
    saved = ckpt.latest_checkpoint(run)
    state = ckpt.load_checkpoint(saved)
    assert state[frozen_vgg.RECORD_KEY]["kind"] == "file"
    assert state[frozen_vgg.RECORD_KEY]["path"] == str(weights.resolve())

    # load_generator round trip: the file's VGG and the checkpoint's trained weights, exactly.
    loaded = quiet_load(run).state_dict()
    for name, value in vgg_state.items():
        assert torch.equal(loaded[frozen_vgg.PREFIX + "features." + name], value), name
    for name, value in state["generator_ema"].items():
        assert torch.equal(loaded[name], value), name
    assert train_tiny(run, *schedule, "--steps", "1", "--resume") == 0  # resuming reads the file too

    moved = tmp_path / "elsewhere.pth"
    weights.rename(moved)
    newest = ckpt.latest_checkpoint(run)
    with pytest.raises(ValueError) as raised:
        quiet_load(run)
    assert_one_line(
        str(raised.value), repr(str(newest)), repr(str(weights.resolve())), "not on this machine", VGG19_SOURCE.env_var
    )
    capsys.readouterr()
    assert train_main(["--output-dir", str(run), *TINY_ARGS, *schedule, "--steps", "2", "--resume"]) == 2
    err = capsys.readouterr().err.strip()
    assert_one_line(err, "train.py: error: ", str(run), "not on this machine")

    monkeypatch.setenv(VGG19_SOURCE.env_var, str(moved))  # the same weights, found elsewhere
    assert torch.equal(quiet_load(run).image_pyramid.vgg.features[0].weight, vgg_state["0.weight"])

    vgg_state["0.weight"][0, 0, 0, 0] += 1e-3  # other weights under the same name
    torch.save(vgg_state, moved)
    with pytest.raises(ValueError) as raised:
        quiet_load(run)
    assert_one_line(str(raised.value), repr(str(newest)), "sha256", repr(str(moved)))


def test_imagenet_weights_are_read_from_the_hub_cache(tmp_path, monkeypatch):
    monkeypatch.delenv(VGG19_SOURCE.env_var, raising=False)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    cached = VGG19_SOURCE.cache_path()
    cached.parent.mkdir(parents=True)
    vgg_state = write_vgg_file(cached, seed=3)  # stands in for torchvision's ImageNet file
    run = tmp_path / "run"
    assert train_tiny(run, "--vgg-weights", "imagenet", "--pretrain-steps", "1", "--steps", "0") == 0
    assert ckpt.load_checkpoint(run)[frozen_vgg.RECORD_KEY]["kind"] == "imagenet"
    assert torch.equal(quiet_load(run).image_pyramid.vgg.features[2].weight, vgg_state["2.weight"])

    def offline(url, *args, **kwargs):
        raise OSError(f"test blocked a download of {url}")

    cached.unlink()
    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(ValueError) as raised:
        quiet_load(run)
    assert_one_line(str(raised.value), "trained with the ImageNet VGG-19, which is not on this machine", str(cached))
