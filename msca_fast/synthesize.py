"""``python -m msca_fast.synthesize``: example-guided synthesis and the paper's manipulations
(section 4) with a trained checkpoint, from image and label-map files.

Label maps are PNGs with one class id per pixel (grayscale or palette), in the id convention
of the model's training data; exemplars are photos with such a label map of the same size
(or a segmentation function, --exemplar-parser). Outputs are PNG (or any format by suffix).
"""

from __future__ import annotations

import argparse
import sys

import torch

from msca_fast.models.config import NUM_SCALES
from msca_fast.synthesis.commands import COMMANDS
from msca_fast.synthesis.errors import InputError
from msca_fast.synthesis.exemplar_parser import load_exemplar_parser
from msca_fast.synthesis.model_file import load_model
from msca_fast.synthesis.session import Session

PROG = "python -m msca_fast.synthesize"

EPILOG = f"""examples:
  {PROG} single --checkpoint runs/demo --label layout.png --exemplar photo.jpg \\
      --exemplar-label photo.png --output out.png --size 256
  {PROG} single --checkpoint runs/demo --label layouts/ --exemplar photos/ \\
      --exemplar-label photo_labels/ --output outputs/          # pairs by file stem
  {PROG} interpolate --checkpoint runs/demo --label layout.png --exemplar a.jpg b.jpg \\
      --exemplar-label a.png b.png --steps 5 --output strip.png
  {PROG} spatial --checkpoint runs/demo --label layout.png --exemplar a.jpg b.jpg \\
      --exemplar-label a.png b.png --output gradient.png
  {PROG} extrapolate --checkpoint runs/demo --canvas-label big_layout.png --size 512 \\
      --exemplar centre.jpg --exemplar-label centre.png --patch 256 --stride 128 --output panorama.png
  {PROG} swap-grid --checkpoint runs/demo --labels a.png b.png c.png \\
      --exemplars a.jpg b.jpg c.jpg --exemplar-labels a.png b.png c.png --output grid.png
  {PROG} attention --checkpoint runs/demo --label layout.png --exemplar photo.jpg \\
      --exemplar-label photo.png --scale 0 --output attention.png
"""


def _dontcare(text: str) -> int | None:
    if text.lower() == "none":
        return None
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a non-negative id or 'none', got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative id or 'none', got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    model = common.add_argument_group("model")
    model.add_argument("--checkpoint", required=True, help="a checkpoint_*.pt or a run folder (its latest checkpoint)")
    model.add_argument("--raw-weights", action="store_true", help="the raw training generator instead of the EMA one")
    model.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda, cuda:1, ...")
    model.add_argument(
        "--dontcare-label", type=_dontcare, default=argparse.SUPPRESS, metavar="ID",
        help="raw label id meaning the model's last class (don't care); default: as in training "
        "(255 for COCO-Stuff); 'none' to turn off",
    )  # fmt: skip
    model.add_argument("--debug", action="store_true", help="show the traceback of unexpected errors")
    sizes = common.add_argument_group("sizes and exemplar labels")
    sizes.add_argument("--size", type=int, nargs="+", metavar="N", help="resize label maps (nearest) to N x N or H W")
    sizes.add_argument(
        "--exemplar-size", type=int, nargs="+", metavar="N",
        help="resize exemplars and their label maps to N x N or H W (else they must have the same size)",
    )  # fmt: skip
    sizes.add_argument(
        "--exemplar-parser", metavar="MODULE:CALLABLE",
        help="segmentation for exemplars without --exemplar-label: image (1,3,H,W) in [-1,1] -> class ids (H,W); "
        "MODULE is importable or a .py file",
    )  # fmt: skip

    parser = argparse.ArgumentParser(
        prog=PROG, description=__doc__, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, parents=[common], help=help_text, description=help_text)

    single = command("single", "the target layout in the exemplar's style; folders give one image per pair")
    single.add_argument("--label", required=True, help="target label PNG, or a folder of them")
    single.add_argument("--exemplar", required=True, help="exemplar photo, or a folder of them (same stems)")
    single.add_argument("--exemplar-label", help="the exemplar's label PNG, or a folder of <exemplar stem>.png")
    single.add_argument("--output", required=True, help="output PNG, or a folder in folder mode")

    interpolate = command("interpolate", "style interpolation between two exemplars (paper Fig. 5)")
    _two_exemplar_options(interpolate)
    interpolate.add_argument("--steps", type=int, default=5, help="images from t = 0 to t = 1 (default 5)")
    interpolate.add_argument("--output", required=True, help="a strip: exemplar a | t = 0 .. 1 | exemplar b")
    interpolate.add_argument("--frames-dir", help="also write each step as its own PNG here")

    spatial = command("spatial", "horizontal style gradient from exemplar a (left) to b (right) (paper Fig. 7)")
    _two_exemplar_options(spatial)
    spatial.add_argument("--output", required=True)

    extra = command("extrapolate", "a large canvas from overlapping patches in one exemplar's style (paper Fig. 8)")
    extra.add_argument("--canvas-label", required=True, help="label PNG of the whole canvas (resized by --size)")
    extra.add_argument("--exemplar", required=True, help="the exemplar patch (the canvas centre's photo)")
    extra.add_argument("--exemplar-label")
    extra.add_argument("--patch", type=int, default=256, help="side of the synthesized patches (default 256)")
    extra.add_argument("--stride", type=int, default=128, help="distance between patches (default 128)")
    extra.add_argument("--batch-size", type=int, default=4, help="patches synthesized at once (default 4)")
    extra.add_argument("--output", required=True)

    swap = command("swap-grid", "every layout in every exemplar's style (paper Fig. 9)")
    swap.add_argument("--labels", nargs="+", required=True, help="layouts: the columns")
    swap.add_argument("--exemplars", nargs="+", required=True, help="exemplar photos: the rows")
    swap.add_argument("--exemplar-labels", nargs="+", help="one label PNG per exemplar, in the same order")
    swap.add_argument("--output", required=True)

    attention = command("attention", "the learned spatial and channel attention of one scale (paper Fig. 6)")
    attention.add_argument("--label", required=True)
    attention.add_argument("--exemplar", required=True)
    attention.add_argument("--exemplar-label")
    attention.add_argument("--scale", type=int, default=0, help=f"0 (finest) .. {NUM_SCALES - 1} (default 0)")
    attention.add_argument("--output", required=True)
    return parser


def _two_exemplar_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--label", required=True, help="target label PNG")
    parser.add_argument("--exemplar", nargs=2, required=True, metavar=("A", "B"), help="two exemplar photos")
    parser.add_argument("--exemplar-label", nargs=2, metavar=("A", "B"), help="their label PNGs")


def parse_size(option: str, values: list[int] | None) -> tuple[int, int] | None:
    """``--size N`` or ``--size H W`` -> (H, W); None when not given."""
    if values is None:
        return None
    if len(values) not in (1, 2) or min(values) < 1:
        raise InputError(f"{option}: expected N (a square) or H W, positive, got {' '.join(map(str, values))}")
    return (values[0], values[-1])


def make_session(args: argparse.Namespace) -> Session:
    device = args.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    model = load_model(args.checkpoint, ema=not args.raw_weights, device=device)
    parser = None if args.exemplar_parser is None else load_exemplar_parser(args.exemplar_parser)
    return Session(
        model,
        target_size=parse_size("--size", args.size),
        exemplar_size=parse_size("--exemplar-size", args.exemplar_size),
        dontcare=getattr(args, "dontcare_label", model.dontcare),
        parser=parser,
        parser_name=args.exemplar_parser or "",
    )


def main(argv: list[str] | None = None) -> int:
    """Run one subcommand; 0 on success, 2 for bad inputs or options, 1 for anything else."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit_:  # argparse has printed the usage and the error (or the help)
        return int(exit_.code or 0)
    try:
        session = make_session(args)
        for path in COMMANDS[args.command](args, session):
            print(f"wrote {path}")
        return 0
    except KeyboardInterrupt:
        return 130
    except ValueError as error:  # InputError, and the library's argument checks
        _report(error)
        return 2
    except Exception as error:  # noqa: BLE001  (one line, never a traceback, unless --debug)
        if args.debug:
            raise
        _report(error, f"unexpected {type(error).__name__}: ", " (rerun with --debug for the traceback)")
        return 1


def _report(error: BaseException, prefix: str = "", suffix: str = "") -> None:
    message = " ".join(str(error).split()) or type(error).__name__
    print(f"{PROG}: error: {prefix}{message}{suffix}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
