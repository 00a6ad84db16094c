"""``python -m msca_fast.demo [--out DIR]``: a short demonstration of the MSCA op.

1. Style transfer by hand-set attention: the exemplar is a coloured picture with a label
   map; phi attends to each label's region, psi routes each target pixel to its label's
   region, so MSCA paints the target layout with the exemplar's region colours. The result
   is saved as a PNG (exemplar | exemplar labels | target labels | MSCA output).
2. Every registered backend is checked against the reference and timed at the generator's
   finest 256x256 scale, forward and forward+backward.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import torch

from msca_fast import reference
from msca_fast.backends import backend_reasons, registered_backends
from msca_fast.cli import new_parser, run_command
from msca_fast.models.labels import one_hot
from msca_fast.op_arguments import validate_msca
from msca_fast.ops import msca
from msca_fast.visuals import save_picture

PROG = "python -m msca_fast.demo"

# Four classes: sky, water, grass, sand; their colours in the exemplar.
_EXEMPLAR_COLOURS = torch.tensor(
    [[0.95, 0.55, 0.35], [0.20, 0.25, 0.55], [0.55, 0.45, 0.15], [0.85, 0.75, 0.55]]
)
_PALETTE = np.array([[120, 170, 255], [30, 90, 200], [40, 170, 60], [230, 210, 140]], dtype=np.uint8)


def _layout(size: int, horizon: float, shore: float, flip: bool) -> torch.Tensor:
    """A label map (size, size) of sky above a horizon, then water, grass and sand bands."""
    rows = torch.linspace(0, 1, size)[:, None].expand(size, size)
    cols = torch.linspace(0, 1, size)[None, :].expand(size, size)
    labels = torch.zeros(size, size, dtype=torch.long)
    labels[rows >= horizon] = 1
    boundary = shore + 0.15 * torch.sin(cols * 6.0)
    labels[(rows >= boundary) & (cols < 0.5)] = 2
    labels[(rows >= boundary) & (cols >= 0.5)] = 3
    return labels.flip(1) if flip else labels


def _to_image(x: torch.Tensor) -> np.ndarray:
    """(1,3,H,W) in [0,1] -> (H,W,3) uint8."""
    return (x[0].clamp(0, 1).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)


def style_transfer_demo(out_dir: str, size: int = 128) -> float:
    """Runs the hand-set MSCA, writes the PNG; returns the mean colour error per pixel."""
    classes = len(_PALETTE)
    exemplar_labels = _layout(size, horizon=0.35, shore=0.6, flip=False)
    target_labels = _layout(size, horizon=0.55, shore=0.75, flip=True)
    generator = torch.Generator().manual_seed(0)
    exemplar = _EXEMPLAR_COLOURS[exemplar_labels].permute(2, 0, 1)[None]
    exemplar = exemplar + 0.05 * torch.randn(exemplar.shape, generator=generator)
    fc2, fc1 = one_hot(exemplar_labels[None], classes), one_hot(target_labels[None], classes)
    sharpness = 20.0
    phi = torch.cat([torch.zeros(classes, 3), sharpness * torch.eye(classes)], dim=1)  # (K, N+M2)
    psi = sharpness * torch.eye(classes)  # (K, M1)
    out = msca(exemplar, fc2, fc1, phi, None, psi, None)
    expected = _EXEMPLAR_COLOURS[target_labels].permute(2, 0, 1)[None]
    error = (out - expected).abs().mean().item()

    panels = [
        _to_image(exemplar),
        _PALETTE[exemplar_labels.numpy()],
        _PALETTE[target_labels.numpy()],
        _to_image(out),
    ]
    gap = np.full((size, 4, 3), 255, dtype=np.uint8)
    strip = np.concatenate([p for panel in panels for p in (panel, gap)][:-1], axis=1)
    path = os.path.join(out_dir, "msca_style_transfer.png")
    save_picture(torch.from_numpy(strip).permute(2, 0, 1), path)
    print(f"style transfer by attention: mean colour error {error:.4f}; picture: {path}")
    print("  (exemplar | exemplar labels | target labels | MSCA output)")
    return error


def _time(fn, repeats: int = 3) -> float:
    fn()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def backend_demo() -> None:
    """Checks and times every backend at the finest 256x256 generator scale (B=1)."""
    torch.manual_seed(0)
    b, n, m, k, size = 1, 64, 32, 8, 256
    fx2, fc2, fc1 = (torch.randn(b, c, size, size) for c in (n, m, m))
    phi = torch.randn(k, n + m) / (n + m) ** 0.5
    psi, psi_bias = torch.randn(k, m) / m**0.5, torch.randn(k)
    gate = torch.rand(b, k)
    args = (fx2, fc2, fc1, phi, None, psi, psi_bias, gate)
    expected = reference.msca_reference(*args)
    print(f"\nbackends at B={b}, N={n}, M={m}, K={k}, {size}x{size} (fp32, {torch.get_num_threads()} threads):")
    reasons = backend_reasons(validate_msca(*args).problem)
    for backend in registered_backends():
        if reasons[backend.name] is not None:
            print(f"  {backend.name:>10}: unavailable here ({reasons[backend.name]})")
            continue
        out = msca(*args, backend=backend.name)
        err = ((out - expected).norm() / expected.norm()).item()
        forward = _time(lambda: msca(*args, backend=backend.name))
        leaves = [t.detach().requires_grad_() for t in (fx2, fc2, fc1, phi, psi, psi_bias, gate)]

        def step():
            x2, c2, c1, w_phi, w_psi, b_psi, g = leaves
            msca(x2, c2, c1, w_phi, None, w_psi, b_psi, g, backend=backend.name).sum().backward()

        both = _time(step)
        print(f"  {backend.name:>10}: rel. error {err:.1e}, forward {forward * 1e3:7.1f} ms, "
              f"forward+backward {both * 1e3:7.1f} ms")


def build_parser() -> argparse.ArgumentParser:
    parser = new_parser(PROG, __doc__)
    parser.add_argument("--out", default="demo_output", help="folder for the demo picture (default: demo_output)")
    return parser


def run(out_dir: str) -> None:
    """The whole demonstration: the style transfer into ``out_dir``, then the backends."""
    style_transfer_demo(out_dir)
    backend_demo()
    print("\nnext: `python -m pytest tests` for the tests, `pytest benchmarks/ --benchmark-only` for benchmarks")


def main(argv: list[str] | None = None) -> int:
    """Exit code: 0 done, 2 bad options or an unwritable folder, 130 stopped by Ctrl-C, 1 anything else."""
    return run_command(build_parser(), argv, lambda args: run(args.out))


if __name__ == "__main__":
    sys.exit(main())
