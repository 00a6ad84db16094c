"""``python -m msca_fast.evaluate``: the paper's quantitative tasks on a trained checkpoint.

    python -m msca_fast.evaluate --checkpoint runs/cpu-demo                  # synthetic scenes
    python -m msca_fast.evaluate --checkpoint runs/256 --dataset coco-stuff --data-root /data/cocostuff

Writes ``results.md`` (a table like the paper's Table 1), ``results.json`` and ``index.html``
(sample rows: target label | exemplar | output | ground truth) into ``--output-dir``.
Metrics whose pretrained networks are missing are reported as n/a with the reason
(``--strict`` makes that an error).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from tqdm import tqdm

from msca_fast.data.catalog import DATASETS, ON_CORRUPT, open_dataset
from msca_fast.evaluation.attention_quality import AttentionQuality
from msca_fast.evaluation.report import markdown_table, write_html, write_json
from msca_fast.evaluation.tasks import TASKS, TaskSample, build_task, task_is_available
from msca_fast.metrics.region import RegionTransfer
from msca_fast.models.labels import one_hot
from msca_fast.visuals import class_palette, sample_grid, save_grid


DEFAULT_SEED = 1000  # held-out synthetic scenes: no training run uses this seed


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m msca_fast.evaluate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--checkpoint", required=True, help="a checkpoint file or a training run folder (newest checkpoint)")
    p.add_argument("--dataset", default="synthetic", choices=DATASETS)
    p.add_argument("--data-root")
    p.add_argument("--label-nc", type=int, help="folder data set: number of classes")
    p.add_argument("--dontcare-label", type=int, help="folder data set: this id becomes an extra class")
    p.add_argument("--filter-outdoor", action="store_true", help="COCO-Stuff: the paper's outdoor filter")
    p.add_argument("--on-corrupt", choices=ON_CORRUPT, default="skip", help="unreadable files: skip with a warning, or fail")
    p.add_argument("--split", default="val", help="real data sets: the split evaluated")
    p.add_argument("--num-images", type=int, default=100)
    p.add_argument("--size", type=int, default=256, help="evaluation resolution (square)")
    p.add_argument("--tasks", nargs="+", choices=TASKS, help="default: every task the data set allows")
    p.add_argument("--metrics", nargs="+", default=["psnr", "lpips", "fid", "style"])
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--output-dir", default="eval")
    p.add_argument("--raw-weights", action="store_true", help="use the raw generator instead of its EMA copy")
    p.add_argument("--strict", action="store_true", help="fail when a metric's pretrained network is missing")
    p.add_argument("--rows", type=int, default=8, help="sample rows per task in index.html")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED,
                   help="synthetic scenes: seed of the evaluation images (training uses --seed, default 0)")  # fmt: skip
    p.add_argument("--lpips-weights", help="VGG-16 ImageNet weights file for LPIPS")
    p.add_argument("--fid-weights", help="FID Inception-v3 weights file")
    p.add_argument("--vgg-weights", default="imagenet", help="VGG-19 weights for the style loss")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    return p


def evaluation_images(args: argparse.Namespace):
    """The data set of evaluation images (items: image (3,S,S), label (S,S), name)."""
    return open_dataset(
        args.dataset, size=args.size, split=args.split, data_root=args.data_root, label_nc=args.label_nc,
        dontcare_label=args.dontcare_label, filter_outdoor=args.filter_outdoor, on_corrupt=args.on_corrupt,
        num_images=args.num_images, seed=args.seed,
    )  # fmt: skip


def _batch(chunk: list[TaskSample], num_classes: int, device: torch.device) -> tuple[Tensor, ...]:
    """c1 (B,C,H,W), x2 (B,3,He,We), c2 (B,C,He,We), truth (B,3,H,W), target ids (B,H,W), exemplar ids (B,He,We)."""
    target_ids = torch.stack([s.target_label for s in chunk]).to(device)
    exemplar_ids = torch.stack([s.exemplar_label for s in chunk]).to(device)
    x2 = torch.stack([s.exemplar_image for s in chunk]).to(device)
    truth = torch.stack([s.truth for s in chunk]).to(device)
    return one_hot(target_ids, num_classes), x2, one_hot(exemplar_ids, num_classes), truth, target_ids, exemplar_ids


@torch.no_grad()
def run_task(generator, samples: list[TaskSample], suite, batch_size: int, device: torch.device, rows_dir: Path,
             rows: int, palette: torch.Tensor, desc: str,
             second_samples: list[TaskSample] | None = None) -> tuple[dict[str, float | None], list[Path]]:  # fmt: skip
    """Synthesize every sample and measure it: the suite's metrics, the region metrics and, for
    models with attention, its quality. ``second_samples`` (same targets, other exemplars) adds
    exemplar sensitivity. Saves the first ``rows`` rows; returns (results, their paths)."""
    num_classes = generator.config.num_classes
    rows_dir.mkdir(parents=True, exist_ok=True)
    region, attention = RegionTransfer(), AttentionQuality()
    saved: list[Path] = []
    for start in tqdm(range(0, len(samples), batch_size), desc=desc, leave=False):
        c1, x2, c2, truth, target_ids, exemplar_ids = _batch(samples[start : start + batch_size], num_classes, device)
        output = generator(c1, x2, c2).float().clamp(-1, 1)
        suite.update(output, truth)
        region.update(output, truth, target_ids, x2, exemplar_ids)
        attention.update(generator, c1, x2, c2)
        if second_samples is not None:
            _, x2_b, c2_b, truth_b, _, _ = _batch(second_samples[start : start + batch_size], num_classes, device)
            region.update_sensitivity(output, generator(c1, x2_b, c2_b).float().clamp(-1, 1), truth, truth_b)
        for k in range(output.shape[0]):
            if len(saved) < rows:
                path = rows_dir / f"{start + k:04d}.png"
                save_grid(sample_grid(c1[k : k + 1], x2[k : k + 1], output[k : k + 1], truth[k : k + 1], palette), path)
                saved.append(path)
    return {**suite.compute(), **region.compute(), **attention.compute()}, saved


def make_suite(args: argparse.Namespace, device: torch.device):
    from msca_fast.metrics import MetricSuite

    return MetricSuite(
        metrics=tuple(args.metrics),
        lpips_backbone_weights=args.lpips_weights,
        fid_inception_weights=args.fid_weights,
        style_vgg_weights=args.vgg_weights,
        allow_missing=not args.strict,
        device=device,
    )


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    from msca_fast.training.checkpoint import load_generator

    device = torch.device(args.device)
    try:
        generator = load_generator(args.checkpoint, ema=not args.raw_weights).to(device)
        images = evaluation_images(args)
        num_classes = generator.config.num_classes
        if images.num_classes != num_classes:
            raise ValueError(
                f"--checkpoint: the model was trained with {num_classes} classes, the {args.dataset} data set "
                f"has {images.num_classes}; evaluate it on the data set it was trained on"
            )
        tasks = args.tasks or [t for t in TASKS if task_is_available(t, images) is None]
        for task in tasks:
            reason = task_is_available(task, images)
            if reason:
                raise ValueError(f"--tasks: {task!r} {reason}")
        count = min(args.num_images, len(images))
        items = [images[i] for i in tqdm(range(count), desc="loading", leave=False)]
    except (ValueError, FileNotFoundError, RuntimeError, OSError) as error:
        print(f"evaluate: error: {error}", file=sys.stderr)
        return 2

    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    palette = getattr(images, "palette", None)
    palette = class_palette(num_classes) if palette is None else torch.as_tensor(palette, dtype=torch.uint8)
    column = Path(args.checkpoint).name
    results: dict[str, Any] = {column: {}}
    missing: dict[str, str] = {}
    html_rows: dict[str, list[str]] = {}
    try:
        suite = make_suite(args, device)  # the metric networks load once
        missing.update(suite.missing)
        for task in tasks:
            task_images = ([it["image"] for it in items], [it["label"] for it in items], [it["name"] for it in items])
            samples = build_task(task, *task_images, num_classes, dataset=images)
            # Style transfer has exact truths for any exemplar: a second one measures sensitivity.
            second = build_task(task, *task_images, num_classes, images, 2) if task == "style-transfer" else None
            suite.reset()
            results[column][task], rows = run_task(generator, samples, suite, args.batch_size, device,
                                                   out / "samples" / task, args.rows, palette, task, second)  # fmt: skip
            html_rows[task] = [str(p.relative_to(out)) for p in rows]
    except (ValueError, RuntimeError) as error:
        print(f"evaluate: error: {error}", file=sys.stderr)
        return 2
    table = markdown_table(results, missing)
    (out / "results.md").write_text(table)
    write_json(out / "results.json", {
        "checkpoint": str(args.checkpoint), "dataset": args.dataset, "num_images": count, "size": args.size,
        "ema": not args.raw_weights, "results": results, "missing": missing,
    })  # fmt: skip
    write_html(out / "index.html", f"msca-fast evaluation: {args.checkpoint}", table, html_rows)
    print(table)
    print(f"wrote {out / 'results.md'}, {out / 'results.json'} and {out / 'index.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
