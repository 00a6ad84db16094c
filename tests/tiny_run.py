"""A tiny training run on the synthetic scenes, for tests that need a real checkpoint."""

from __future__ import annotations

import warnings
from pathlib import Path

from msca_fast.train import main

# 64x64 loads, 32x32 patches and global images, a narrow model, a random VGG.
TINY_ARGS = [
    "--num-images", "8", "--load-size", "64", "--patch-sizes", "32", "--global-size", "32",
    "--batch-size", "2", "--ngf", "4", "--ndf", "4", "--vgg-weights", "random",
    "--log-every", "1", "--sample-every", "100", "--checkpoint-every", "100",
]  # fmt: skip


def train_tiny(out: Path, *extra: str) -> int:
    """Run train.py's main into ``out`` with :data:`TINY_ARGS` (+ ``extra``); returns its exit code."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the random-VGG warning
        return main(["--output-dir", str(out), *TINY_ARGS, *extra])


def tiny_checkpoint(out: Path) -> Path:
    """A finished 2-iteration run in ``out``; returns its checkpoint path."""
    code = train_tiny(out, "--pretrain-steps", "1", "--steps", "1")
    assert code == 0, f"the tiny training run failed with exit code {code}"
    return sorted(out.glob("checkpoint_*.pt"))[-1]
