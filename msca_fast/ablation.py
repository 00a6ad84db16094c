"""``python -m msca_fast.ablation``: the paper's Table 1 ablations, trained and evaluated alike.

    python -m msca_fast.ablation --output-dir ablation                      # synthetic, demo budget
    python -m msca_fast.ablation --output-dir ablation --preset 256 --dataset coco-stuff \\
        --data-root /data/cocostuff --steps 50000 --eval-size 256

Each variant (full MSCA, w/o masking, GAP, w/o attention, w/o global self-reconstruction) is
trained with the same options and seed (every train.py option but --output-dir, --variant,
--resume and --lambda-global, which are set per variant) into ``<output-dir>/<variant>``, then
evaluated on the same images into ``<output-dir>/<variant>/eval``. Written to
``<output-dir>``: ``ablation.md`` and ``ablation.json`` (the comparison table),
``comparison.png`` (target label | exemplar | each variant | ground truth on the first
evaluation rows) and ``attention/`` (the full model's attention maps at scales 0-2). Finished
variants are not retrained (their final checkpoint is found); interrupted ones resume. The
work is :func:`msca_fast.evaluation.ablation.ablate`; this module is its command line.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

from msca_fast import train as train_command
from msca_fast.cli import default_text, new_parser, options_of, run_command
from msca_fast.evaluation.ablation import VARIANTS, AblationConfig, ablate
from msca_fast.evaluation.tasks import TASKS
from msca_fast.metrics.suite import METRIC_NAMES

PROG = "python -m msca_fast.ablation"
# train.py's options that the ablation sets per variant (argparse destinations).
PER_VARIANT = ("output_dir", "alignment", "resume", "lambda_global")


def build_parser() -> argparse.ArgumentParser:
    """The ablation's options (absent ones take AblationConfig's defaults), then train.py's."""
    p = new_parser(PROG, __doc__, allow_abbrev=False, argument_default=argparse.SUPPRESS)

    def default(name: str) -> str:
        return default_text(AblationConfig, name)

    own = p.add_argument_group("ablation")
    own.add_argument("--output-dir", help=default("output_dir"))
    own.add_argument("--variants", nargs="+", choices=list(VARIANTS), help=default("variants"))
    own.add_argument("--eval-num-images", type=int, help=default("eval_num_images"))
    own.add_argument("--eval-size", type=int, help=default("eval_size"))
    own.add_argument("--eval-tasks", nargs="+", choices=TASKS, help="default: every task the data set allows")
    own.add_argument("--eval-metrics", nargs="+", choices=METRIC_NAMES, help=default("eval_metrics"))
    own.add_argument("--eval-strict", action="store_true", help="fail when a metric's pretrained network is missing")
    train_command.add_training_arguments(p, skip=PER_VARIANT)
    return p


def config_from_args(args: argparse.Namespace) -> AblationConfig:
    """The parsed options -> the AblationConfig, the train.py options becoming its ``train``."""
    values = options_of(args)
    own = {f.name: values.pop(f.name) for f in dataclasses.fields(AblationConfig) if f.name in values}
    return AblationConfig(train=train_command.config_from_args(argparse.Namespace(**values)), **own)


def main(argv: list[str] | None = None) -> int:
    """Exit code: 0 done, 2 bad options or files, 130 stopped by Ctrl-C, 1 anything else."""
    return run_command(build_parser(), argv, lambda args: ablate(config_from_args(args)))


if __name__ == "__main__":
    sys.exit(main())
