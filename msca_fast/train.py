"""``python train.py`` (or ``python -m msca_fast.train``): the command line of
:func:`msca_fast.training.run.train`, single process or under torchrun."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Collection
from pathlib import Path

from msca_fast.cli import new_parser, options_of, run_command
from msca_fast.data.catalog import DatasetOptions, add_dataset_arguments
from msca_fast.models.config import ALIGNMENTS, D_NORMS, NUM_SCALES, PADDING_MODES, PARAM_FREE_NORMS
from msca_fast.training.config import AMP_MODES, PRESETS, TrainConfig, make_config
from msca_fast.training.run import train

PROG = "train.py"
EPILOG = """examples:
  python train.py                                   # ~10 min CPU demo on the embedded synthetic scenes
  python train.py --preset 256 --dataset coco-stuff --data-root /data/cocostuff --filter-outdoor
  python train.py --dataset folder --data-root /data/mine --label-nc 35 --preset 256
  torchrun --nproc_per_node 8 train.py --preset 256 --dataset ade20k --data-root /data/ADEChallengeData2016
  python train.py --resume latest                   # continue the run in --output-dir
"""
DESCRIPTION = """Train the example-guided generator (self-supervised, paper section 3.4).

With no options it trains a small model on the embedded synthetic scenes in about ten minutes
on a 2-core CPU (preset "cpu-demo"). A preset gives every option a value; an option given here
overrides it.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = new_parser(PROG, DESCRIPTION, EPILOG)
    add_training_arguments(parser)
    return parser


def add_training_arguments(parser: argparse.ArgumentParser, skip: Collection[str] = ()) -> None:
    """Every training and model option (default None: the preset's value), except the
    destinations in ``skip`` (the ablation sets those per variant)."""

    def adder(group: argparse._ArgumentGroup):
        def add(*flags: str, **options) -> None:
            dest = options.get("dest") or flags[0].lstrip("-").replace("-", "_")
            if dest not in skip:
                group.add_argument(*flags, **options)

        return add

    def group(title: str):
        return adder(parser.add_argument_group(title))

    add = group("preset")
    add("--preset", choices=list(PRESETS), default="cpu-demo", help="defaults for every option below")
    data = parser.add_argument_group("data")
    add_dataset_arguments(data, DatasetOptions())  # never set per variant: no skip
    add = adder(data)
    add("--load-size", type=int, help="images are resized to this square (paper: 512)")
    add("--patch-sizes", type=int, nargs="+", help="cross-reconstruction patch sizes (paper: 256 384)")
    add("--patch-epochs", type=int, nargs="*", help="epochs where the next patch size starts (paper: 20)")
    add("--global-size", type=int, help="global self-reconstruction size")
    add("--workers", type=int, help="data loader processes")
    add = group("schedule")
    add("--batch-size", type=int, help="per process")
    add("--steps", type=int, help="adversarial iterations")
    add("--epochs", type=int, help="train this many epochs instead of --steps (paper: 40)")
    add("--pretrain-steps", type=int, help="attention-pretraining iterations before them")
    add("--lr-pretrain", type=float, help="attention pretraining's learning rate (default: --lr-g)")
    add("--pretrain-rgb", action=argparse.BooleanOptionalAction, default=None,
        help="attention pretraining also predicts the target's colours (not in the paper)")  # fmt: skip
    add("--lr-g", type=float)
    add("--lr-d", type=float)
    add("--ttur", action="store_true", default=None, help="lr_g / 2 and lr_d * 2 (SPADE's TTUR)")
    add("--g-every", type=int, help="update G every n-th iteration (paper: 5)")
    add("--lambda-global", type=float, help="weight of global self-reconstruction (paper: 1)")
    add("--lambda-feat", type=float, help="weight of the discriminator feature-matching loss (paper: 10)")
    add("--lambda-vgg", type=float, help="weight of the VGG perceptual loss (paper: 10)")
    add("--lambda-l1", type=float, help="weight of an L1 pixel loss (not in the paper: 0)")
    add("--l1-pool", type=int, help="the L1 loss compares the means of N x N blocks (1: pixels)")
    add("--ema-decay", type=float, help="the EMA generator's decay, at most (0.999)")
    add = group("model (msca_fast.models.config.ModelConfig; the class count comes from the data set)")
    add("--variant", dest="alignment", choices=ALIGNMENTS, help="the alignment: msca or a Table 1 ablation")
    add("--msca-backend", help="auto, reference, cpu, cuda, ...")
    add("--attention-logit-scale", type=float,
        help="fixed factor on the MSCA attention logits (inverse temperature; paper: 1)")  # fmt: skip
    add("--num-regions", type=int, nargs=NUM_SCALES, metavar="K", help="MSCA regions per scale (paper: 8 16 16 16 16)")
    add("--image-feature-channels", type=int, nargs=NUM_SCALES, metavar="N", help="compressed VGG features per scale")
    add("--label-feature-channels", type=int, nargs=NUM_SCALES, metavar="M", help="label encoder channels per scale")
    add("--ngf", type=int, help="generator width")
    add("--spade-hidden", type=int, help="hidden channels of each SPADE layer")
    add("--param-free-norm", choices=PARAM_FREE_NORMS, help="the SPADE layers' normalisation")
    add("--padding-mode", choices=PADDING_MODES, help="the generator's conv padding")
    add("--noise-channels", type=int, help="fixed per-pixel noise channels in the SPADE conditions (paper: 0)")
    add("--label-slope", type=float, help="negative slope of the label encoder's LeakyReLU")
    add("--vgg-weights", help="auto, imagenet, random or a path to vgg19 weights")
    add("--ndf", type=int, help="discriminator width")
    add("--num-discriminators", type=int, help="scales of the multi-scale PatchGAN")
    add("--discriminator-layers", type=int, help="layers of each PatchGAN")
    add("--discriminator-norm", choices=D_NORMS)
    add = group("run")
    add("--output-dir")
    add("--resume", nargs="?", const="latest", help="'latest' (of --output-dir) or a checkpoint path")
    add("--amp", choices=AMP_MODES)
    add("--channels-last", action="store_true", default=None)
    add("--compile", action="store_true", default=None, help="torch.compile the G and D updates")
    add("--seed", type=int)
    add("--device", help="auto, cpu, cuda, cuda:1")
    add("--log-every", type=int)
    add("--sample-every", type=int)
    add("--checkpoint-every", type=int)
    add("--keep-checkpoints", type=int)
    add("--max-bad-steps", type=int,
        help="stop after this many iterations in a row with non-finite losses "
             "(each one's update is skipped)")  # fmt: skip


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The parsed options -> the preset's TrainConfig with every given option applied."""
    values = options_of(args)
    preset = values.pop("preset")
    for key in ("patch_sizes", "patch_epochs"):
        if values.get(key) is not None:
            values[key] = tuple(values[key])
    return make_config(preset, **values)


def main(argv: list[str] | None = None) -> int:
    """``train.py``'s exit code: 0 done, 2 bad options or files, 130 stopped by Ctrl-C
    (143 by SIGTERM, 138 by SIGUSR1: 128 + the signal), 1 anything else."""
    return run_command(build_parser(), argv, lambda args: _print_done(train(config_from_args(args))))


def _print_done(final: Path | None) -> None:
    if final is None:  # not the main process
        return
    run = final.parent
    print(
        f"done: checkpoint {final}\n"
        f"      samples {run / 'samples' / 'latest.png'}\n"
        f"      loss log {run / 'losses.jsonl'}\n"
        f"synthesize with it (EMA generator, eval mode):\n"
        f"  from msca_fast.training.checkpoint import load_generator\n"
        f"  g = load_generator('{final}')\n"
        f"  image = g(target_labels_onehot, exemplar_image, exemplar_labels_onehot)  # in [-1, 1]"
    )


if __name__ == "__main__":
    sys.exit(main())
