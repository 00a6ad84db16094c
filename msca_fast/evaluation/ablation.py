"""``ablate(config)``: the paper's Table 1 ablations, trained and evaluated alike.

Each variant (full MSCA, w/o masking, GAP, w/o attention, w/o global self-reconstruction) is
trained from the same :class:`~msca_fast.training.config.TrainConfig` (its alignment and
lambda_global changed) into ``<output_dir>/<variant>``, resuming what is there, then evaluated
on the same images into ``<output_dir>/<variant>/eval``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import torch

from msca_fast.evaluation.comparison import comparison_grid, save_attention_figures
from msca_fast.evaluation.config import DEFAULT_SEED, EvalConfig
from msca_fast.evaluation.report import markdown_table, write_json
from msca_fast.evaluation.run import evaluate
from msca_fast.evaluation.tasks import build_task
from msca_fast.metrics.suite import METRIC_NAMES
from msca_fast.training.checkpoint import load_generator
from msca_fast.training.config import TrainConfig
from msca_fast.training.run import train
from msca_fast.visuals import save_grid


class Variant(NamedTuple):
    """A column of Table 1: its label, the model's alignment, and lambda_global (None: the base's)."""

    label: str
    alignment: str
    lambda_global: float | None = None


VARIANTS = {
    "msca": Variant("full", "msca"),
    "no_masking": Variant("w/o masking", "no_masking"),
    "gap": Variant("GAP", "gap"),
    "no_attention": Variant("w/o attention", "no_attention"),
    "no_global": Variant("w/o global", "msca", lambda_global=0.0),
}
COMPARISON_ROWS = 6


@dataclass
class AblationConfig:
    """train: the options every variant trains with (its output_dir, resume, the model's
    alignment and lambda_global are set per variant). variants: keys of :data:`VARIANTS`.
    eval_*: the evaluation of each variant (:class:`EvalConfig`'s num_images, size, tasks,
    metrics, strict)."""

    train: TrainConfig
    output_dir: str = "ablation"
    variants: tuple[str, ...] = tuple(VARIANTS)
    eval_num_images: int = 100
    eval_size: int = 64
    eval_tasks: tuple[str, ...] | None = None
    eval_metrics: tuple[str, ...] = METRIC_NAMES
    eval_strict: bool = False

    def __post_init__(self) -> None:
        self.variants = tuple(self.variants)
        unknown = [v for v in self.variants if v not in VARIANTS]
        if unknown or not self.variants:
            raise ValueError(f"variants: expected names from {list(VARIANTS)}, got {list(self.variants)}")
        self.evaluation(Path(self.output_dir))  # checks the evaluation options now, not after training

    def training(self, variant: str) -> TrainConfig:
        """The TrainConfig of ``variant``."""
        v = VARIANTS[variant]
        lambda_global = self.train.lambda_global if v.lambda_global is None else v.lambda_global
        return dataclasses.replace(
            self.train, model=self.train.model.replace(alignment=v.alignment), lambda_global=lambda_global,
            output_dir=str(Path(self.output_dir) / variant), resume="latest",
        )  # fmt: skip

    def evaluation(self, run_dir: Path) -> EvalConfig:
        """The EvalConfig of the run in ``run_dir``: the training data set's evaluation images."""
        return EvalConfig(
            checkpoint=str(run_dir), data=self.train.data.replace(num_images=self.eval_num_images), size=self.eval_size,
            tasks=self.eval_tasks, metrics=self.eval_metrics, strict=self.eval_strict, output_dir=str(run_dir / "eval"),
        )  # fmt: skip


def ablate(config: AblationConfig) -> dict[str, dict]:
    """Train and evaluate every variant; write ``ablation.md`` and ``ablation.json`` (the
    comparison table) and, on the synthetic scenes, ``comparison.png`` (target label | exemplar
    | each variant | ground truth) and ``attention/`` (the full model's maps at scales 0-2).
    Finished variants are not retrained (their final checkpoint is found); interrupted ones
    resume. Returns {variant label: task -> measure -> value}."""
    out = Path(config.output_dir)
    results, missing = {}, {}
    for variant in config.variants:
        training = config.training(variant)
        print(f"== {variant}: training into {training.output_dir}")
        train(training)
        print(f"== {variant}: evaluating")
        evaluation = evaluate(config.evaluation(Path(training.output_dir)))
        results[VARIANTS[variant].label] = evaluation.results
        missing.update(evaluation.missing)
    table = markdown_table(results, missing)
    (out / "ablation.md").write_text(table)
    write_json(out / "ablation.json", {
        "variants": list(config.variants), "train_config": config.train.to_dict(),
        "model_config": config.train.model.to_dict(), "results": results, "missing": missing,
    })  # fmt: skip
    print(table)
    print(f"wrote {out / 'ablation.md'} and {out / 'ablation.json'}")
    if config.train.data.dataset == "synthetic":
        write_pictures(out, config)
    return results


def write_pictures(out: Path, config: AblationConfig) -> None:
    """comparison.png and the full model's attention/ figures, on the first style-transfer rows
    of the evaluation scenes (synthetic data only: its truths are exact)."""
    from msca_fast.data.synthetic import SyntheticScenes

    scenes = SyntheticScenes(num_images=COMPARISON_ROWS + 1, size=config.eval_size, seed=DEFAULT_SEED)
    items = [scenes[i] for i in range(len(scenes))]
    samples = build_task(
        "style-transfer", [it["image"] for it in items], [it["label"] for it in items], [it["name"] for it in items],
        scenes.num_classes, dataset=scenes,
    )[:COMPARISON_ROWS]  # fmt: skip
    generators = {VARIANTS[v].label: load_generator(out / v) for v in config.variants}
    palette = torch.as_tensor(scenes.palette, dtype=torch.uint8)
    save_grid(comparison_grid(generators, samples, palette), out / "comparison.png")
    print(f"wrote {out / 'comparison.png'} (columns: target label | exemplar | {' | '.join(generators)} | truth)")
    if "msca" in config.variants:
        paths = save_attention_figures(generators[VARIANTS["msca"].label], samples[0], palette, out / "attention")
        print(f"wrote {', '.join(str(p) for p in paths)}")
