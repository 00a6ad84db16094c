"""``train(config)``: one training run, single process or one process of ``torchrun``."""

from __future__ import annotations

from pathlib import Path

import torch

from msca_fast.training import checkpoint as ckpt
from msca_fast.training.config import TrainConfig
from msca_fast.training.data import build_image_dataset
from msca_fast.training.distributed import cleanup, init_distributed


def train(config: TrainConfig) -> Path | None:
    """Train as ``config`` says (resuming when ``config.resume`` is set) and return the final
    checkpoint (None on processes other than the main one).

    Bad options or files raise ValueError / OSError; Ctrl-C saves a checkpoint at the next
    iteration boundary and raises KeyboardInterrupt.
    """
    from msca_fast.training.trainer import Trainer

    info, device = init_distributed(config.device)
    try:
        torch.manual_seed(config.seed + info.rank)
        images = build_image_dataset(config)
        state = resume_state(config)
        trainer = Trainer(config, info, device, images, resume=state)
        if info.is_main:
            where = "from scratch" if state is None else f"from iteration {trainer.iteration}"
            print(
                f"training {where} on {config.data.dataset} ({len(images)} images, {trainer.num_classes} classes), "
                f"device {device}, {info.world_size} process(es), output {config.output_dir}"
            )
        trainer.run()
        return ckpt.latest_checkpoint(config.output_dir) if info.is_main else None
    finally:
        cleanup(info)


def resume_state(config: TrainConfig) -> dict | None:
    """The checkpoint ``config.resume`` names ("latest": the newest in ``output_dir``, if any), or None."""
    if config.resume is None:
        return None
    where = Path(config.output_dir) if config.resume == "latest" else Path(config.resume)
    if config.resume == "latest" and ckpt.latest_checkpoint(where) is None:
        print(f"--resume latest: no checkpoint in {where}, starting from scratch")
        return None
    return ckpt.load_checkpoint(where)
