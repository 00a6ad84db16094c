"""``evaluate(config)``: the paper's quantitative tasks on a trained checkpoint, written as a report."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor
from tqdm import tqdm

from msca_fast.data.catalog import open_dataset
from msca_fast.evaluation.attention_quality import AttentionQuality
from msca_fast.evaluation.config import EvalConfig
from msca_fast.evaluation.metric_setup import open_metric_suite
from msca_fast.evaluation.report import markdown_table, write_html, write_json
from msca_fast.evaluation.tasks import TASKS, TaskSample, build_task, task_is_available
from msca_fast.metrics.region import RegionTransfer
from msca_fast.metrics.texture import TextureTransfer
from msca_fast.models.labels import one_hot
from msca_fast.visuals import class_palette, magnify, sample_grid, save_grid


@dataclass(frozen=True)
class Evaluation:
    """results: task -> measure -> value (None: n/a); missing: metric -> why it is n/a;
    table: results.md's text; files: results.md, results.json, index.html."""

    results: dict[str, dict[str, float | None]]
    missing: dict[str, str]
    table: str
    files: tuple[Path, ...]


def evaluate(config: EvalConfig) -> Evaluation:
    """Run every task of ``config`` on its checkpoint and write ``results.md`` (a table like the
    paper's Table 1), ``results.json`` and ``index.html`` (sample rows: target label | exemplar |
    output | ground truth) into ``config.output_dir``.

    Raises ValueError / OSError for a bad checkpoint, data set or option.
    """
    from msca_fast.training.checkpoint import load_generator

    device = torch.device(config.device if config.device != "auto" else "cuda" if torch.cuda.is_available() else "cpu")
    generator = load_generator(config.checkpoint, ema=not config.raw_weights).to(device)
    images = open_dataset(config.data, size=config.size, split=config.split, seed=config.seed)
    num_classes = generator.config.num_classes
    if images.num_classes != num_classes:
        raise ValueError(
            f"--checkpoint: the model was trained with {num_classes} classes, the {config.data.dataset} data set "
            f"has {images.num_classes}; evaluate it on the data set it was trained on"
        )
    tasks = config.tasks or [t for t in TASKS if task_is_available(t, images) is None]
    for task in tasks:
        reason = task_is_available(task, images)
        if reason:
            raise ValueError(f"--tasks: {task!r} {reason}")
    suite, missing = open_metric_suite(config, device)  # the metric networks load once
    count = min(config.data.num_images, len(images))
    items = [images[i] for i in tqdm(range(count), desc="loading", leave=False)]

    out = Path(config.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    palette = getattr(images, "palette", None)
    palette = class_palette(num_classes) if palette is None else torch.as_tensor(palette, dtype=torch.uint8)
    results: dict[str, dict[str, float | None]] = {}
    html_rows: dict[str, list[str]] = {}
    task_images = ([it["image"] for it in items], [it["label"] for it in items], [it["name"] for it in items])
    for task in tasks:
        samples = build_task(task, *task_images, num_classes, dataset=images)
        # Style transfer has exact truths for any exemplar: a second one measures sensitivity.
        second = build_task(task, *task_images, num_classes, images, 2) if task == "style-transfer" else None
        suite.reset()
        results[task], rows = run_task(generator, samples, suite, config.batch_size, device,
                                       out / "samples" / task, config.rows, palette, task, second,
                                       config.zoom)  # fmt: skip
        html_rows[task] = [str(p.relative_to(out)) for p in rows]

    table = markdown_table({Path(config.checkpoint).name: results}, missing)
    files = (out / "results.md", out / "results.json", out / "index.html")
    files[0].write_text(table)
    write_json(files[1], {
        "checkpoint": str(config.checkpoint), "dataset": config.data.dataset, "num_images": count, "size": config.size,
        "ema": not config.raw_weights, "results": {Path(config.checkpoint).name: results}, "missing": missing,
    })  # fmt: skip
    write_html(files[2], f"msca-fast evaluation: {config.checkpoint}", table, html_rows)
    return Evaluation(results, missing, table, files)


def _batch(chunk: list[TaskSample], num_classes: int, device: torch.device) -> tuple[Tensor, ...]:
    """c1 (B,C,H,W), x2 (B,3,He,We), c2 (B,C,He,We), truth (B,3,H,W), target ids (B,H,W), exemplar ids (B,He,We)."""
    target_ids = torch.stack([s.target_label for s in chunk]).to(device)
    exemplar_ids = torch.stack([s.exemplar_label for s in chunk]).to(device)
    x2 = torch.stack([s.exemplar_image for s in chunk]).to(device)
    truth = torch.stack([s.truth for s in chunk]).to(device)
    return one_hot(target_ids, num_classes), x2, one_hot(exemplar_ids, num_classes), truth, target_ids, exemplar_ids


def _other_phase(chunk: list[TaskSample], device: torch.device) -> Tensor | None:
    """The chunk's truths in another noise phase (B,3,H,W), or None where the data set has none."""
    if any(s.other_phase is None for s in chunk):
        return None
    return torch.stack([s.other_phase for s in chunk]).to(device)


@torch.no_grad()
def run_task(generator, samples: list[TaskSample], suite, batch_size: int, device: torch.device, rows_dir: Path,
             rows: int, palette: torch.Tensor, desc: str,
             second_samples: list[TaskSample] | None = None,
             zoom: int = 1) -> tuple[dict[str, float | None], list[Path]]:  # fmt: skip
    """Synthesize every sample and measure it: the suite's metrics, the region and texture metrics and, for
    models with attention, its quality. ``second_samples`` (same targets, other exemplars) adds
    exemplar sensitivity. Saves the first ``rows`` rows, magnified ``zoom`` times; returns
    (results, their paths)."""
    num_classes = generator.config.num_classes
    rows_dir.mkdir(parents=True, exist_ok=True)
    region, texture, attention = RegionTransfer(), TextureTransfer(), AttentionQuality()
    saved: list[Path] = []
    for start in tqdm(range(0, len(samples), batch_size), desc=desc, leave=False):
        chunk = samples[start : start + batch_size]
        c1, x2, c2, truth, target_ids, exemplar_ids = _batch(chunk, num_classes, device)
        output = generator(c1, x2, c2).float().clamp(-1, 1)
        suite.update(output, truth)
        region.update(output, truth, target_ids, x2, exemplar_ids)
        texture.update(output, truth, target_ids, x2, exemplar_ids, _other_phase(chunk, device))
        attention.update(generator, c1, x2, c2)
        if second_samples is not None:
            _, x2_b, c2_b, truth_b, _, _ = _batch(second_samples[start : start + batch_size], num_classes, device)
            region.update_sensitivity(output, generator(c1, x2_b, c2_b).float().clamp(-1, 1), truth, truth_b)
        for k in range(output.shape[0]):
            if len(saved) < rows:
                path = rows_dir / f"{start + k:04d}.png"
                grid = sample_grid(c1[k : k + 1], x2[k : k + 1], output[k : k + 1], truth[k : k + 1], palette)
                save_grid(magnify(grid, zoom), path)
                saved.append(path)
    return {**suite.compute(), **region.compute(), **texture.compute(), **attention.compute()}, saved
