"""Parameter counts and one forward+backward time of the generator and the discriminator.

    python -m benchmarks.model_step [--size 256] [--batch 1] [--repeats 2]

The paper's configuration (ModelConfig defaults: 183 COCO-Stuff classes, ngf = ndf = 64,
K = 8,16,16,16,16). The VGG-19 is randomly initialised: the timing does not depend on its
weights. G is timed once per available MSCA backend, the backends in alternation; the best of
``repeats`` runs after one warm-up is printed as a markdown table.
"""

from __future__ import annotations

import argparse
import time
import warnings
from collections.abc import Callable

import torch

from msca_fast import _extension
from msca_fast.models.config import ModelConfig
from msca_fast.models.discriminator import MultiscaleDiscriminator
from msca_fast.models.generator import Generator
from msca_fast.models.labels import one_hot


def count(module: torch.nn.Module, trainable: bool) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad == trainable)


def best_times(steps: dict[str, Callable[[], None]], repeats: int) -> dict[str, float]:
    """Best of ``repeats`` timed runs of each step after one warm-up each (allocator and oneDNN
    primitive caches); the steps run in alternation so machine noise hits them alike."""
    for step in steps.values():
        step()
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(repeats):
        for name, step in steps.items():
            start = time.perf_counter()
            step()
            times[name].append(time.perf_counter() - start)
    return {name: min(values) for name, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=256, help="target and exemplar height = width")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    config = ModelConfig(vgg_weights="random")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        generator = Generator(config)
    discriminator = MultiscaleDiscriminator(config)
    gen = torch.Generator().manual_seed(0)
    shape = (args.batch, args.size, args.size)
    c1 = one_hot(torch.randint(0, config.num_classes, shape, generator=gen), config.num_classes)
    c2 = one_hot(torch.randint(0, config.num_classes, shape, generator=gen), config.num_classes)
    x2 = torch.rand(args.batch, 3, args.size, args.size, generator=gen) * 2 - 1

    def generator_step() -> None:
        generator.zero_grad(set_to_none=True)
        generator(c1, x2, c2).mean().backward()

    def discriminator_step() -> None:
        discriminator.zero_grad(set_to_none=True)
        outputs = discriminator(x2, c1, x2, c2)
        sum(features[-1].mean() for features in outputs).backward()

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, B={args.batch}, {args.size}x{args.size}\n")
    print("| network | trainable params | frozen params | MSCA backend | forward+backward (s) |")
    print("|---|---:|---:|---|---:|")
    def generator_step_on(backend: str) -> Callable[[], None]:
        def step() -> None:
            generator.set_msca_backend(backend)
            generator_step()

        return step

    backends = ["reference"] + (["cpu"] if _extension.extension_loaded() else [])
    steps = {f"G/{b}": generator_step_on(b) for b in backends} | {"D": discriminator_step}
    seconds = best_times(steps, args.repeats)
    for backend in backends:
        print(
            f"| G | {count(generator, True) / 1e6:.1f}M | {count(generator, False) / 1e6:.1f}M | {backend} | "
            f"{seconds[f'G/{backend}']:.2f} |"
        )
    print(f"| D | {count(discriminator, True) / 1e6:.1f}M | 0 | - | {seconds['D']:.2f} |")

if __name__ == "__main__":
    main()
