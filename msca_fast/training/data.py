"""The training data stream: the chosen data set, self-supervised pairs, resumable batches."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from msca_fast.data.catalog import open_dataset
from msca_fast.data.pairs import PairSchedule, SelfSupervisedPairs
from msca_fast.training.config import TrainConfig
from msca_fast.training.distributed import DistInfo


def build_image_dataset(cfg: TrainConfig) -> Dataset:
    """The training images of ``cfg`` (:func:`msca_fast.data.catalog.open_dataset`, split "train");
    items: image (3,S,S) in [-1,1], label (S,S) int64, name; S = cfg.load_size."""
    return open_dataset(cfg.data, size=cfg.load_size, split="train", seed=cfg.seed)


def build_pairs(cfg: TrainConfig, images: Dataset, seed_offset: int = 0) -> SelfSupervisedPairs:
    schedule = PairSchedule(
        load_size=cfg.load_size,
        patch_sizes=tuple(cfg.patch_sizes),
        patch_epochs=tuple(cfg.patch_epochs),
        global_size=cfg.global_size,
        flip_probability=cfg.flip_probability,
    )
    return SelfSupervisedPairs(images, schedule, seed=cfg.seed + seed_offset)


class ResumableSampler(Sampler[int]):
    """This process's share of one epoch: a permutation seeded by (seed, epoch), cut into
    world_size interleaved shards of whole batches, starting at batch ``start_batch``."""

    def __init__(
        self, length: int, batch_size: int, info: DistInfo, seed: int, epoch: int, start_batch: int = 0
    ) -> None:
        self.batches_per_epoch = batches_per_epoch(length, batch_size, info)
        gen = torch.Generator().manual_seed(seed * 100_003 + epoch)
        order = torch.randperm(length, generator=gen)
        used = self.batches_per_epoch * batch_size * info.world_size
        mine = order[:used][info.rank :: info.world_size]
        self.indices = mine[start_batch * batch_size :].tolist()

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


def batches_per_epoch(length: int, batch_size: int, info: DistInfo) -> int:
    count = length // (batch_size * info.world_size)
    if count == 0:
        raise ValueError(
            f"batch_size: the data set has {length} images, fewer than one batch of {batch_size} "
            f"per process x {info.world_size} processes"
        )
    return count


def epoch_loader(
    pairs: SelfSupervisedPairs, cfg: TrainConfig, info: DistInfo, epoch: int, start_batch: int
) -> DataLoader:
    """Batches of epoch ``epoch`` from batch ``start_batch`` on (the pairs' randomness follows the epoch)."""
    pairs.set_epoch(epoch)
    sampler = ResumableSampler(len(pairs), cfg.batch_size, info, cfg.seed, epoch, start_batch)
    return DataLoader(
        pairs,
        batch_size=cfg.batch_size,
        sampler=sampler,
        num_workers=cfg.workers,
        drop_last=True,
        pin_memory=torch.cuda.is_available(),
    )


def fixed_batch(pairs: SelfSupervisedPairs, count: int) -> dict:
    """The first ``count`` samples of epoch 0, collated: the rows of every sample grid."""
    pairs.set_epoch(0)
    items = [pairs[i] for i in range(min(count, len(pairs)))]
    return torch.utils.data.default_collate(items)
