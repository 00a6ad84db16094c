"""Images per second of one adversarial training iteration, per MSCA backend.

    python -m benchmarks.train_step [--preset cpu-demo] [--iterations 6] [--backends reference cpu]

Builds the preset's trainer on the synthetic scenes (random VGG: speed does not depend on the
weights), runs two warm-up iterations, then times ``iterations`` adversarial iterations (a G
and a D update each: the demo preset updates G every iteration) on the same batch. An
iteration reconstructs 2 x batch_size images (patch and global tasks). The backends are timed
in alternation, so machine noise hits them alike; the median per backend is printed.
"""

from __future__ import annotations

import argparse
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="cpu-demo")
    parser.add_argument("--iterations", type=int, default=6)
    parser.add_argument("--backends", nargs="+", default=["reference", "cpu"])
    args = parser.parse_args()

    trainers = {}
    with tempfile.TemporaryDirectory() as out, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for backend in args.backends:
            cfg = make_config(
                args.preset, output_dir=out, msca_backend=backend, vgg_weights="random", num_images=64, device="cpu"
            )
            torch.manual_seed(0)
            images = SyntheticScenes(num_images=cfg.data.num_images, size=cfg.load_size, seed=0)
            trainers[backend] = Trainer(cfg, DistInfo(), torch.device("cpu"), images)
        cfg = next(iter(trainers.values())).cfg
        batch = fixed_batch(build_pairs(cfg, images), cfg.batch_size)
        times: dict[str, list[float]] = {b: [] for b in trainers}
        for round_index in range(2 + args.iterations):
            for backend, trainer in trainers.items():
                tensors = trainer.to_batch(batch)
                start = time.perf_counter()
                trainer.adversarial_iteration(tensors)
                if round_index >= 2:
                    times[backend].append(time.perf_counter() - start)
    images_per_iteration = 2 * cfg.batch_size
    print(f"preset {args.preset}: batch {cfg.batch_size}, patch {cfg.patch_sizes[0]}, global {cfg.global_size}, "
          f"{torch.get_num_threads()} threads\n")
    print("| MSCA backend | s / iteration (median) | images / s |")
    print("|---|---:|---:|")
    for backend, values in times.items():
        seconds = statistics.median(values)
        print(f"| {backend} | {seconds:.3f} | {images_per_iteration / seconds:.1f} |")


if __name__ == "__main__":
    main()
