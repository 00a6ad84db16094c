"""GPU-check steps "train-<backend>": a few adversarial training iterations with one MSCA backend.

    python -m benchmarks.gpu_check.train --backend triton --out train.json
        [--preset 256] [--device cuda] [--warmup 2] [--iterations 5]

Builds the preset's trainer (random VGG: the speed does not depend on the weights) on the
synthetic scenes, runs ``warmup`` untimed iterations and then ``iterations`` timed ones on one
fixed batch. The 256 preset updates G every 5th iteration (g_every), so each iteration is
recorded with whether it updated G; 5 timed iterations hold one G update whatever the warm-up.
The JSON is rewritten after every iteration, so a run killed at its deadline keeps its times.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
import warnings

import torch

from msca_fast.data.synthetic import SyntheticScenes
from msca_fast.training.config import make_config
from msca_fast.training.data import build_pairs, fixed_batch
from msca_fast.training.distributed import DistInfo
from msca_fast.training.trainer import Trainer


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def summarize(record: dict) -> dict:
    """Adds the means over the timed iterations: all, those with a G update, D-only ones."""
    timed = [it for it in record["iterations"] if it["timed"]]

    def mean(values: list[float]) -> float | None:
        return statistics.fmean(values) if values else None

    seconds = mean([it["seconds"] for it in timed])
    record.update(
        timed_iterations=len(timed),
        mean_s=seconds,
        g_update_s=mean([it["seconds"] for it in timed if it["g_update"]]),
        d_only_s=mean([it["seconds"] for it in timed if not it["g_update"]]),
        images_per_s=(2 * record["batch_size"] / seconds) if seconds else None,
    )
    return record


def run(backend: str, preset: str, device: torch.device, warmup: int, iterations: int, num_images: int, save) -> dict:
    """Builds the trainer and times its iterations; ``save(record)`` is called after each one."""
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as out_dir, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the random-VGG warning
        cfg = make_config(preset, output_dir=out_dir, msca_backend=backend, vgg_weights="random",
                          num_images=num_images, workers=0, num_samples=1)  # fmt: skip
        torch.manual_seed(cfg.seed)
        images = SyntheticScenes(num_images=cfg.data.num_images, size=cfg.load_size, seed=0)
        trainer = Trainer(cfg, DistInfo(), device, images)
        batch = trainer.to_batch(fixed_batch(build_pairs(cfg, images), cfg.batch_size))
        _sync(device)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        record = dict(
            backend=backend, preset=preset, device=str(device), batch_size=cfg.batch_size,
            patch_size=cfg.patch_sizes[0], global_size=cfg.global_size, amp=cfg.amp, g_every=cfg.g_every,
            num_classes=images.num_classes, setup_s=time.perf_counter() - start, iterations=[],
        )  # fmt: skip
        save(summarize(record))
        for index in range(warmup + iterations):
            g_update = trainer.step % cfg.g_every == 0
            _sync(device)
            began = time.perf_counter()
            trainer.adversarial_iteration(batch)
            _sync(device)
            seconds = time.perf_counter() - began
            record["iterations"].append(dict(index=index, timed=index >= warmup, g_update=g_update, seconds=seconds))
            if device.type == "cuda":
                record["peak_memory_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
            save(summarize(record))
            print(f"{backend}: iteration {index} ({'G+D' if g_update else 'D'}"
                  f"{'' if index >= warmup else ', warm-up'}): {seconds:.3f} s", flush=True)  # fmt: skip
    return record


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", required=True, help="MSCA backend: cuda, triton, reference, ...")
    parser.add_argument("--out", required=True, help="where to write the JSON")
    parser.add_argument("--preset", default="256")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--iterations", type=int, default=5)
    parser.add_argument("--num-images", type=int, default=16, help="synthetic scenes to draw pairs from")
    args = parser.parse_args(argv)
    if args.warmup < 0 or args.iterations < 1:
        parser.error(f"--warmup must be >= 0 and --iterations >= 1, got {args.warmup} and {args.iterations}")

    def save(record: dict) -> None:
        with open(args.out, "w", encoding="utf-8") as f:
            json.dump(record, f, indent=1)

    record = run(
        args.backend, args.preset, torch.device(args.device), args.warmup, args.iterations, args.num_images, save
    )
    print(f"{args.backend}: {record['mean_s']:.3f} s / iteration, {record['images_per_s']:.1f} images / s")


if __name__ == "__main__":
    main()
