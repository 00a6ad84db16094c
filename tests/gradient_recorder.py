"""Run train.py's real training code and record, after each iteration, the gradients it left
on the models and their weights; runnable as a process of a torchrun-style group.

``python tests/gradient_recorder.py RESULT.pt OUTPUT_DIR TRAIN_ARGS...`` trains into
OUTPUT_DIR with TRAIN_ARGS (a process group when RANK / WORLD_SIZE / MASTER_ADDR / MASTER_PORT
are set, as torchrun sets them) and saves the records to RESULT.pt: a list with one dict per
iteration, ``{"stage": "pretrain" | "adversarial", "grads": {name: tensor}, "weights": {name: tensor}}``,
with the parameter names prefixed by their model ("generator.", "head.", "discriminator.").
"""

from __future__ import annotations

import sys
import warnings
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch

from msca_fast.train import main as train_main
from msca_fast.training import trainer as trainer_module

MODELS = ("generator", "head", "discriminator")  # the Trainer attributes recorded


def model_tensors(trainer: trainer_module.Trainer) -> tuple[dict, dict]:
    """(gradients, weights) of the trainable parameters of :data:`MODELS`, cloned."""
    grads, weights = {}, {}
    for model in MODELS:
        for name, p in getattr(trainer, model).named_parameters():
            if not p.requires_grad:
                continue
            weights[f"{model}.{name}"] = p.detach().clone()
            if p.grad is not None:
                grads[f"{model}.{name}"] = p.grad.detach().clone()
    return grads, weights


@contextmanager
def recording_iterations():
    """While active, every training iteration appends its record to the yielded list (and
    the sample grids, which nothing here looks at, are not drawn)."""
    records: list[dict] = []
    with pytest.MonkeyPatch.context() as patch:
        for stage in ("pretrain", "adversarial"):
            original = getattr(trainer_module.Trainer, f"{stage}_iteration")

            def recorded(self, batch, original=original, stage=stage):
                values = original(self, batch)
                grads, weights = model_tensors(self)
                records.append({"stage": stage, "grads": grads, "weights": weights})
                return values

            patch.setattr(trainer_module.Trainer, f"{stage}_iteration", recorded)
        patch.setattr(trainer_module.Trainer, "write_samples", lambda self: None)
        yield records


def train_and_record(out: Path, *args: str) -> list[dict]:
    """train.py's main into ``out`` with ``args``; the per-iteration records."""
    with warnings.catch_warnings(), recording_iterations() as records:
        warnings.simplefilter("ignore")  # the random-VGG warning
        code = train_main(["--output-dir", str(out), *args])
    if code != 0:
        raise RuntimeError(f"training failed with exit code {code}")
    return records


if __name__ == "__main__":
    result, output_dir, *train_args = sys.argv[1:]
    torch.save(train_and_record(Path(output_dir), *train_args), result)
