"""``python -m msca_fast.synthesize``: example-guided synthesis and the paper's manipulations
(section 4) with a trained checkpoint, from image and label-map files.

Label maps are PNGs with one class id per pixel (grayscale or palette), in the id convention
of the model's training data; exemplars are photos with such a label map of the same size
(or a segmentation function, --exemplar-parser). Outputs are PNG (or any format by suffix).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

from msca_fast.cli import add_debug_option, default_text, new_parser, options_of, run_command
from msca_fast.models.config import NUM_SCALES
from msca_fast.synthesis.commands import (
    run_attention,
    run_extrapolate,
    run_interpolate,
    synthesize_files,
)  # fmt: skip
from msca_fast.synthesis.errors import InputError
from msca_fast.synthesis.session import SynthesisConfig

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
    """Options left out are absent from the parsed namespace (argparse.SUPPRESS), so
    SynthesisConfig's and the command functions' defaults apply: they are the only defaults."""
    common = argparse.ArgumentParser(add_help=False, argument_default=argparse.SUPPRESS)
    model = common.add_argument_group("model")
    model.add_argument("--checkpoint", required=True, help="a checkpoint_*.pt or a run folder (its latest checkpoint)")
    model.add_argument("--raw-weights", action="store_true", help="the raw training generator instead of the EMA one")
    model.add_argument("--device", help="auto (CUDA when available; the default), cpu, cuda, cuda:1, ...")
    model.add_argument(
        "--dontcare-label", type=_dontcare, metavar="ID",
        help="raw label id meaning the model's last class (don't care); default: as in training "
        "(255 for COCO-Stuff); 'none' to turn off",
    )  # fmt: skip
    add_debug_option(model)
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

    parser = new_parser(PROG, __doc__, EPILOG)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        return sub.add_parser(
            name, parents=[common], help=help_text, description=help_text, argument_default=argparse.SUPPRESS
        )

    single = command("single", "the target layout in the exemplar's style; folders give one image per pair")
    single.add_argument("--label", required=True, help="target label PNG, or a folder of them")
    single.add_argument("--exemplar", required=True, help="exemplar photo, or a folder of them (same stems)")
    single.add_argument("--exemplar-label", help="the exemplar's label PNG, or a folder of <exemplar stem>.png")
    single.add_argument("--output", required=True, help="output PNG, or a folder in folder mode")

    interpolate = command("interpolate", "style interpolation between two exemplars (paper Fig. 5)")
    _two_exemplar_options(interpolate)
    interpolate.add_argument(
        "--steps", type=int, help=f"images from t = 0 to t = 1 ({default_text(run_interpolate, 'steps')})"
    )
    interpolate.add_argument("--output", required=True, help="a strip: exemplar a | t = 0 .. 1 | exemplar b")
    interpolate.add_argument("--frames-dir", help="also write each step as its own PNG here")

    spatial = command("spatial", "horizontal style gradient from exemplar a (left) to b (right) (paper Fig. 7)")
    _two_exemplar_options(spatial)
    spatial.add_argument("--output", required=True)

    extra = command("extrapolate", "a large canvas from overlapping patches in one exemplar's style (paper Fig. 8)")
    extra.add_argument("--canvas-label", required=True, help="label PNG of the whole canvas (resized by --size)")
    extra.add_argument("--exemplar", required=True, help="the exemplar patch (the canvas centre's photo)")
    extra.add_argument("--exemplar-label")
    for flag, text in (("--patch", "side of the synthesized patches"), ("--stride", "distance between patches"),
                       ("--batch-size", "patches synthesized at once")):  # fmt: skip
        extra.add_argument(flag, type=int, help=f"{text} ({default_text(run_extrapolate, flag[2:].replace('-', '_'))})")
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
    attention.add_argument(
        "--scale", type=int, help=f"0 (finest) .. {NUM_SCALES - 1} ({default_text(run_attention, 'scale')})"
    )
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


def config_from_args(args: argparse.Namespace) -> tuple[str, SynthesisConfig, dict]:
    """The parsed options -> (the command, the SynthesisConfig of the common options, the
    command's own options as keywords of its function)."""
    values = options_of(args)
    command = values.pop("command")
    common = {f.name: values.pop(f.name) for f in dataclasses.fields(SynthesisConfig) if f.name in values}
    for name in ("size", "exemplar_size"):
        if name in common:
            common[name] = parse_size(f"--{name.replace('_', '-')}", common[name])
    return command, SynthesisConfig(**common), values


def main(argv: list[str] | None = None) -> int:
    """Run one subcommand; 0 on success, 2 for bad inputs or options, 130 on Ctrl-C, 1 for anything else."""
    return run_command(build_parser(), argv, _run)


def _run(args: argparse.Namespace) -> None:
    command, config, options = config_from_args(args)
    for path in synthesize_files(command, config, **options):
        print(f"wrote {path}")


if __name__ == "__main__":
    sys.exit(main())
