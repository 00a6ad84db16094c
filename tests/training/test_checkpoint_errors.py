"""A bad checkpoint given to train.py --resume or to evaluate: one line naming the file, no
traceback, and never torch's advice to load it with weights_only=False."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import pytest
import torch

from msca_fast import evaluate
from msca_fast.train import main as train_main
from msca_fast.training import checkpoint as ckpt

from tiny_run import TINY_ARGS


class Payload:
    """Unpickling this would create a file: what a malicious checkpoint would do instead."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return open, (str(self.marker), "w")


def truncated(folder: Path) -> Path:
    buffer = io.BytesIO()
    torch.save({"model_config": {"num_classes": 12}, "generator": {"w": torch.zeros(1000)}}, buffer)
    path = folder / "checkpoint_00000007.pt"
    path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    return path


def not_a_checkpoint(folder: Path) -> Path:
    path = folder / "notes.pt"
    path.write_text("iteration 300: looks good\n")
    return path


def disallowed_global(folder: Path) -> Path:
    path = folder / "evil.pt"
    torch.save({"model_config": {"num_classes": 12}, "payload": Payload(folder / "PWNED")}, path)
    return path


BAD_FILES = {
    "truncated": (truncated, "truncated or corrupted"),
    "not a checkpoint": (not_a_checkpoint, "is not a checkpoint file torch can read"),
    "disallowed global": (disallowed_global, "holds a pickled Python object (io.open), which is refused"),
}


def assert_one_line(err: str, path: Path, reason: str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert repr(str(path)) in lines[0] and reason in lines[0], lines[0]
    assert "weights_only" not in err and "Traceback" not in err


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_load_checkpoint_says_what_is_wrong(tmp_path, case):
    make, reason = BAD_FILES[case]
    path = make(tmp_path)
    with pytest.raises(ValueError) as raised:
        ckpt.load_checkpoint(path)
    assert_one_line(str(raised.value), path, reason)
    assert not (tmp_path / "PWNED").exists()


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_train_resume_gives_one_line(tmp_path, capsys, case):
    make, reason = BAD_FILES[case]
    path = make(tmp_path)
    assert train_main(["--output-dir", str(tmp_path / "run"), *TINY_ARGS, "--resume", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("train.py: error: ")
    assert_one_line(err, path, reason)
    assert not (tmp_path / "PWNED").exists()


def test_train_resume_latest_names_the_newest_file(tmp_path, capsys):
    path = truncated(tmp_path)  # checkpoint_00000007.pt: the newest in the folder
    assert train_main(["--output-dir", str(tmp_path), *TINY_ARGS, "--resume", "latest"]) == 2
    assert_one_line(capsys.readouterr().err, path, "truncated or corrupted")


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_evaluate_gives_one_line(tmp_path, capsys, case):
    make, reason = BAD_FILES[case]
    path = make(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        code = evaluate.main(["--checkpoint", str(path), "--output-dir", str(tmp_path / "eval"), "--device", "cpu"])
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("evaluate: error: ")
    assert_one_line(err, path, reason)
    assert not (tmp_path / "PWNED").exists()


def test_load_checkpoint_refuses_pickles_where_torch_would_run_them(tmp_path, monkeypatch):
    """torch before 2.6 (which this project supports) unpickles anything unless told
    ``weights_only=True``; TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1 brings that default back."""
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    path, marker = disallowed_global(tmp_path), tmp_path / "PWNED"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.load(path)["payload"].close()  # torch's default here: the payload runs
    if not marker.exists():
        pytest.skip("this torch's torch.load refuses pickled objects by default whatever the environment")
    marker.unlink()
    with pytest.raises(ValueError) as raised:
        ckpt.load_checkpoint(path)
    assert_one_line(str(raised.value), path, BAD_FILES["disallowed global"][1])
    assert not marker.exists()
