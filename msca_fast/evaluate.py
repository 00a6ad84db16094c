"""``python -m msca_fast.evaluate``: the paper's quantitative tasks on a trained checkpoint.

    python -m msca_fast.evaluate --checkpoint runs/cpu-demo                  # synthetic scenes
    python -m msca_fast.evaluate --checkpoint runs/256 --dataset coco-stuff --data-root /data/cocostuff

Writes ``results.md`` (a table like the paper's Table 1), ``results.json`` and ``index.html``
(sample rows: target label | exemplar | output | ground truth) into ``--output-dir``.
Metrics whose pretrained networks are missing are reported as n/a with the reason and where
to put the file (``--strict`` makes that an error). The work is
:func:`msca_fast.evaluation.run.evaluate`; this module is its command line.
"""

from __future__ import annotations

import argparse
import sys

from msca_fast.cli import default_text, new_parser, options_of, run_command
from msca_fast.data.catalog import add_dataset_arguments, dataset_options_from
from msca_fast.evaluation.config import DEFAULT_DATA, EvalConfig
from msca_fast.evaluation.run import Evaluation, evaluate
from msca_fast.evaluation.tasks import TASKS
from msca_fast.metrics.suite import METRIC_NAMES

PROG = "python -m msca_fast.evaluate"


def build_parser() -> argparse.ArgumentParser:
    """Options left out are absent from the namespace, so EvalConfig's defaults apply."""
    p = new_parser(PROG, __doc__, argument_default=argparse.SUPPRESS)

    def default(name: str) -> str:
        return default_text(EvalConfig, name)

    p.add_argument("--checkpoint", required=True, help="a checkpoint file or a training run folder (its newest)")
    data = p.add_argument_group("evaluation images")
    add_dataset_arguments(data, DEFAULT_DATA)
    data.add_argument("--split", help=f"real data sets: the split evaluated ({default('split')})")
    data.add_argument("--seed", type=int, help=f"synthetic scenes: their seed ({default('seed')}; training uses 0)")
    data.add_argument("--size", type=int, help=f"evaluation resolution, square ({default('size')})")
    run = p.add_argument_group("tasks and metrics")
    run.add_argument("--tasks", nargs="+", choices=TASKS, help="default: every task the data set allows")
    run.add_argument("--metrics", nargs="+", choices=METRIC_NAMES, help=default("metrics"))
    run.add_argument("--batch-size", type=int, help=default("batch_size"))
    run.add_argument("--raw-weights", action="store_true", help="use the raw generator instead of its EMA copy")
    run.add_argument("--strict", action="store_true", help="fail when a metric's pretrained network is missing")
    run.add_argument("--lpips-weights", metavar="PATH", help="VGG-16 ImageNet weights file for LPIPS")
    run.add_argument("--fid-weights", metavar="PATH", help="FID Inception-v3 weights file")
    run.add_argument("--vgg-weights", help=f"the style loss's VGG-19: imagenet or PATH ({default('vgg_weights')})")
    run.add_argument("--device", help=f"auto (CUDA when available), cpu, cuda, cuda:1, ... ({default('device')})")
    out = p.add_argument_group("output")
    out.add_argument("--output-dir", help=default("output_dir"))
    out.add_argument("--rows", type=int, help=f"sample rows per task in index.html ({default('rows')})")
    out.add_argument("--zoom", type=int, help=f"sample rows magnified N times, nearest neighbour ({default('zoom')})")
    return p


def config_from_args(args: argparse.Namespace) -> EvalConfig:
    """The parsed options -> the EvalConfig (the options are its fields, one for one, the
    data-set options those of its ``data``)."""
    values = options_of(args)
    return EvalConfig(data=dataset_options_from(values, DEFAULT_DATA), **values)


def main(argv: list[str] | None = None) -> int:
    """Exit code: 0 written, 2 bad options or files, 130 stopped by Ctrl-C, 1 anything else."""
    return run_command(build_parser(), argv, lambda args: _print(evaluate(config_from_args(args))))


def _print(evaluation: Evaluation) -> None:
    print(evaluation.table)
    print("wrote " + ", ".join(str(path) for path in evaluation.files))


if __name__ == "__main__":
    sys.exit(main())
