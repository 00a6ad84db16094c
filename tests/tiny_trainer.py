"""A Trainer built in-process at tiny_run's sizes, for tests that drive single training iterations."""

from __future__ import annotations

import contextlib
import dataclasses
import warnings
from pathlib import Path

import torch

from msca_fast.train import build_parser, config_from_args
from msca_fast.training.data import build_image_dataset, fixed_batch
from msca_fast.training.distributed import DistInfo
from msca_fast.training.losses_step import Batch
from msca_fast.training.trainer import Trainer

from tiny_run import TINY_ARGS


def tiny_trainer(out: Path, *extra: str, **options) -> Trainer:
    """A single-process CPU Trainer on :data:`tiny_run.TINY_ARGS` (+ ``extra`` command-line options,
    then ``options``: TrainConfig fields train.py has no flag for), writing into ``out``."""
    cfg = config_from_args(build_parser().parse_args(["--output-dir", str(out), "--device", "cpu", *TINY_ARGS, *extra]))
    cfg = dataclasses.replace(cfg, **options)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the random-VGG warning
        return Trainer(cfg, DistInfo(), torch.device("cpu"), build_image_dataset(cfg))


def first_batch(trainer: Trainer) -> Batch:
    """The first batch_size pairs of the trainer's data as device tensors (labels one-hot)."""
    return trainer.to_batch(fixed_batch(trainer.pairs, trainer.cfg.batch_size))


@contextlib.contextmanager
def single_thread():
    """torch on one intra-op thread inside the block: a tiny model gains nothing from more, and
    two threads on a busy two-core machine spin-wait for each other (iterations 20x slower)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
