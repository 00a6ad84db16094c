"""``python -m msca_fast.export``: a trained generator as a deployable ``torch.export`` file.

    python -m msca_fast.export --checkpoint runs/cpu-demo --output cpu-demo.pt2 --size 64

The ``.pt2`` file runs the generator at that size and batch with every MSCA as the registered
custom op ``msca_fast::msca_forward``; load it with
``msca_fast.synthesis.exported.load_exported(path)`` (or ``torch.export.load`` after
``import msca_fast.ops``). The work is :func:`msca_fast.synthesis.exported.export_generator`;
this module is its command line.
"""

from __future__ import annotations

import argparse
import sys

from msca_fast.cli import new_parser, run_command

PROG = "python -m msca_fast.export"


def build_parser() -> argparse.ArgumentParser:
    p = new_parser(PROG, __doc__)
    p.add_argument("--checkpoint", required=True, help="a checkpoint file or a training run folder (its newest)")
    p.add_argument("--output", required=True, help="the .pt2 file to write")
    p.add_argument("--size", type=int, nargs="+", default=[64], metavar="N", help="H W, or one N for N x N (64)")
    p.add_argument("--batch", type=int, default=1, help="the batch size the program takes (1)")
    p.add_argument("--raw-weights", action="store_true", help="export the raw generator instead of its EMA copy")
    return p


def export_checkpoint(args: argparse.Namespace) -> None:
    from msca_fast.synthesis.exported import export_generator
    from msca_fast.synthesis.model_file import load_model

    if len(args.size) not in (1, 2):
        raise ValueError(f"--size: expected N or H W, got {len(args.size)} numbers")
    size = (args.size[0], args.size[-1])
    model = load_model(args.checkpoint, ema=not args.raw_weights)
    path = export_generator(model.generator, args.output, size=size, batch=args.batch, dataset=model.dataset)
    print(f"wrote {path} (generator at {size[0]}x{size[1]}, batch {args.batch})")


def main(argv: list[str] | None = None) -> int:
    """Exit code: 0 written, 2 bad options or files, 1 anything else."""
    return run_command(build_parser(), argv, export_checkpoint)


if __name__ == "__main__":
    sys.exit(main())
