"""``python train.py``: self-supervised training from the command line (single process or torchrun)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from msca_fast.training import checkpoint as ckpt
from msca_fast.data.catalog import DATASETS
from msca_fast.training.config import AMP_MODES, PRESETS, TrainConfig, make_config
from msca_fast.training.data import build_image_dataset
from msca_fast.training.distributed import cleanup, init_distributed

EPILOG = """examples:
  python train.py                                   # ~10 min CPU demo on the embedded synthetic scenes
  python train.py --preset 256 --dataset coco-stuff --data-root /data/cocostuff --filter-outdoor
  python train.py --dataset folder --data-root /data/mine --label-nc 35 --preset 256
  torchrun --nproc_per_node 8 train.py --preset 256 --dataset ade20k --data-root /data/ADEChallengeData2016
  python train.py --resume latest                   # continue the run in --output-dir
"""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="train.py", description=__doc__, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add = p.add_argument
    add("--preset", choices=list(PRESETS), default="cpu-demo", help="defaults for every option below")
    data = p.add_argument_group("data")
    data.add_argument("--dataset", choices=DATASETS)
    data.add_argument("--data-root", help="root folder of coco-stuff / ade20k / folder data")
    data.add_argument("--label-nc", type=int, help="folder data set: number of classes")
    data.add_argument("--dontcare-label", type=int, help="folder data set: this id becomes an extra class")
    data.add_argument("--filter-outdoor", action="store_true", default=None, help="COCO-Stuff: the paper's filter")
    data.add_argument("--on-corrupt", choices=["skip", "fail"], help="unreadable files: skip with a warning, or fail")
    data.add_argument("--num-images", type=int, help="synthetic data set size")
    data.add_argument("--load-size", type=int, help="images are resized to this square (paper: 512)")
    data.add_argument("--patch-sizes", type=int, nargs="+", help="cross-reconstruction patch sizes (paper: 256 384)")
    data.add_argument("--patch-epochs", type=int, nargs="*", help="epochs where the next patch size starts (paper: 20)")
    data.add_argument("--global-size", type=int, help="global self-reconstruction size")
    data.add_argument("--workers", type=int, help="data loader processes")
    sched = p.add_argument_group("schedule")
    sched.add_argument("--batch-size", type=int, help="per process")
    sched.add_argument("--steps", type=int, help="adversarial iterations")
    sched.add_argument("--epochs", type=int, help="train this many epochs instead of --steps (paper: 40)")
    sched.add_argument("--pretrain-steps", type=int, help="attention-pretraining iterations before them")
    sched.add_argument("--lr-pretrain", type=float, help="attention pretraining's learning rate (default: --lr-g)")
    sched.add_argument("--pretrain-rgb", action=argparse.BooleanOptionalAction, default=None,
                       help="attention pretraining also predicts the target's colours (not in the paper)")  # fmt: skip
    sched.add_argument("--lr-g", type=float)
    sched.add_argument("--lr-d", type=float)
    sched.add_argument("--ttur", action="store_true", default=None, help="lr_g / 2 and lr_d * 2 (SPADE's TTUR)")
    sched.add_argument("--g-every", type=int, help="update G every n-th iteration (paper: 5)")
    sched.add_argument("--lambda-global", type=float, help="weight of global self-reconstruction (paper: 1)")
    sched.add_argument("--lambda-l1", type=float, help="weight of an L1 pixel loss (not in the paper: 0)")
    model = p.add_argument_group("model")
    model.add_argument("--variant", dest="alignment", choices=["msca", "gap", "no_attention", "no_masking"])
    model.add_argument("--msca-backend", help="auto, reference, cpu, cuda, ...")
    model.add_argument("--attention-logit-scale", type=float,
                       help="fixed factor on the MSCA attention logits (inverse temperature; paper: 1)")  # fmt: skip
    model.add_argument("--padding-mode", choices=["zeros", "replicate"], help="the generator's conv padding")
    model.add_argument("--ngf", type=int)
    model.add_argument("--ndf", type=int)
    model.add_argument("--vgg-weights", help="auto, imagenet, random or a path to vgg19 weights")
    run = p.add_argument_group("run")
    run.add_argument("--output-dir")
    run.add_argument("--resume", nargs="?", const="latest", help="'latest' (of --output-dir) or a checkpoint path")
    run.add_argument("--amp", choices=AMP_MODES)
    run.add_argument("--channels-last", action="store_true", default=None)
    run.add_argument("--compile", action="store_true", default=None, help="torch.compile the G and D updates")
    run.add_argument("--seed", type=int)
    run.add_argument("--device", help="auto, cpu, cuda, cuda:1")
    run.add_argument("--log-every", type=int)
    run.add_argument("--sample-every", type=int)
    run.add_argument("--checkpoint-every", type=int)
    run.add_argument("--keep-checkpoints", type=int)
    return p


def config_from_args(argv: list[str] | None = None) -> TrainConfig:
    args = vars(parser().parse_args(argv))
    preset = args.pop("preset")
    for key in ("patch_sizes", "patch_epochs"):
        if args[key] is not None:
            args[key] = tuple(args[key])
    return make_config(preset, **args)


def resume_state(cfg: TrainConfig) -> dict | None:
    if cfg.resume is None:
        return None
    where = Path(cfg.output_dir) if cfg.resume == "latest" else Path(cfg.resume)
    if cfg.resume == "latest" and ckpt.latest_checkpoint(where) is None:
        print(f"--resume latest: no checkpoint in {where}, starting from scratch")
        return None
    return ckpt.load_checkpoint(where)


def main(argv: list[str] | None = None) -> int:
    from msca_fast.training.trainer import Trainer

    try:
        cfg = config_from_args(argv)
    except ValueError as error:
        print(f"train.py: error: {error}", file=sys.stderr)
        return 2
    info, device = init_distributed(cfg.device)
    try:
        torch.manual_seed(cfg.seed + info.rank)
        try:
            images = build_image_dataset(cfg)
            state = resume_state(cfg)
            trainer = Trainer(cfg, info, device, images, resume=state)
        except (ValueError, FileNotFoundError, RuntimeError) as error:
            print(f"train.py: error: {error}", file=sys.stderr)
            return 2
        if info.is_main:
            where = "from scratch" if state is None else f"from iteration {trainer.iteration}"
            print(
                f"training {where} on {cfg.dataset} ({len(images)} images, {trainer.num_classes} classes), "
                f"device {device}, {info.world_size} process(es), output {cfg.output_dir}"
            )
        try:
            trainer.run()
        except KeyboardInterrupt:
            return 130
        if info.is_main:
            final = ckpt.latest_checkpoint(cfg.output_dir)
            print(
                f"done: checkpoint {final}\n"
                f"      samples {Path(cfg.output_dir) / 'samples' / 'latest.png'}\n"
                f"      loss log {Path(cfg.output_dir) / 'losses.jsonl'}\n"
                f"synthesize with it (EMA generator, eval mode):\n"
                f"  from msca_fast.training.checkpoint import load_generator\n"
                f"  g = load_generator('{final}')\n"
                f"  image = g(target_labels_onehot, exemplar_image, exemplar_labels_onehot)  # in [-1, 1]"
            )
        return 0
    finally:
        cleanup(info)
