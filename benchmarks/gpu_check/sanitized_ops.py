"""The workload the sanitizer step runs under compute-sanitizer: both CUDA operators
(torch.ops.msca_fast.msca_forward and msca_backward) on tiny shapes, for several K and dtypes,
with and without psi's bias and the gate.

    python -m benchmarks.gpu_check.sanitized_ops [--device cuda]

Inputs are made on the CPU and copied over, so that the only kernels launched are the op's
own. Imports torch and the extension only (each sanitized run pays its start-up). Prints one
line per case; a case that raises is printed and the exit status is 1.
"""

from __future__ import annotations

import argparse
import sys

import torch

# (B, N, M2, M1, K, H2, W2, H1, W1): K = 1, a padded K, 16, K past 16 and 32; odd sizes, an
# exemplar over several 256-pixel tiles, target and exemplar of different sizes, a batch.
SHAPES = (
    (1, 5, 3, 4, 1, 3, 5, 4, 3),
    (2, 9, 7, 5, 5, 7, 13, 13, 7),
    (1, 7, 3, 5, 16, 20, 33, 11, 13),
    (2, 4, 3, 3, 27, 6, 6, 5, 5),
    (1, 6, 4, 3, 32, 9, 11, 6, 5),
)
# dtype -> the largest K the CUDA kernels take in it (csrc/msca_cuda_limits.h)
DTYPES = {torch.float32: 32, torch.bfloat16: 32, torch.float16: 32, torch.float64: 16}


def cases() -> list[tuple[tuple[int, ...], torch.dtype, bool]]:
    """(shape, dtype, with psi_bias and gate): every shape in float32 and bfloat16 with and
    without the optional arguments; float16 and float64 on one shape each."""
    found = [(shape, dtype, optional) for shape in SHAPES for dtype in (torch.float32, torch.bfloat16)
             for optional in (True, False)]  # fmt: skip
    found += [(SHAPES[1], torch.float64, True), (SHAPES[3], torch.float16, False)]
    return [(shape, dtype, optional) for shape, dtype, optional in found if shape[4] <= DTYPES[dtype]]


def inputs(shape: tuple[int, ...], dtype: torch.dtype, optional: bool, device: torch.device) -> tuple:
    """The forward operator's arguments (fx2, fc2, fc1, phi, psi, psi_bias, gate) and an upstream
    gradient, drawn on the CPU and copied to ``device``."""
    b, n, m2, m1, k, h2, w2, h1, w1 = shape
    gen = torch.Generator().manual_seed(0)

    def randn(*size: int) -> torch.Tensor:
        return torch.randn(*size, generator=gen).to(dtype).to(device)

    psi_bias = randn(k) if optional else None
    gate = torch.rand(b, k, generator=gen).to(dtype).to(device) if optional else None
    args = (randn(b, n, h2, w2), randn(b, m2, h2, w2), randn(b, m1, h1, w1), randn(k, n + m2), randn(k, m1),
            psi_bias, gate)  # fmt: skip
    return args, randn(b, n, h1, w1)


def run_case(shape: tuple[int, ...], dtype: torch.dtype, optional: bool, device: torch.device) -> None:
    """One forward and one backward, synchronised (an asynchronous fault surfaces here)."""
    args, grad_out = inputs(shape, dtype, optional, device)
    with torch.no_grad():
        out, v, lse = torch.ops.msca_fast.msca_forward(*args)
        grads = torch.ops.msca_fast.msca_backward(grad_out, *args, v, lse)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    if not torch.isfinite(out).all() or not all(torch.isfinite(g).all() for g in grads if g.numel()):
        raise RuntimeError("non-finite output or gradient")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda")
    args = parser.parse_args(argv)
    from msca_fast import _extension

    if _extension.load_error is not None:
        print(f"msca_fast._C did not load: {_extension.load_error}")
        return 1
    device = torch.device(args.device)
    failed = 0
    for shape, dtype, optional in cases():
        label = (f"K={shape[4]} {str(dtype).removeprefix('torch.')} "
                 f"{'with' if optional else 'without'} psi_bias and gate")  # fmt: skip
        try:
            run_case(shape, dtype, optional, device)
            print(f"{label}: ok", flush=True)
        except Exception as exc:  # noqa: BLE001 - every case runs; the exit status says one failed
            failed += 1
            print(f"{label}: {type(exc).__name__}: {(str(exc).splitlines() or [''])[0]}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
