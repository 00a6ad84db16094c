"""What one evaluation run does: :class:`EvalConfig`, the options of :func:`msca_fast.evaluation.run.evaluate`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from msca_fast.data.catalog import DatasetOptions
from msca_fast.evaluation.tasks import TASKS
from msca_fast.metrics.suite import METRIC_NAMES
from msca_fast.number_checks import check_non_negative_int, check_positive_int

DEFAULT_SEED = 1000  # held-out synthetic scenes: no training run uses this seed
DEFAULT_DATA = DatasetOptions(num_images=100)  # the evaluation images unless told otherwise


@dataclass
class EvalConfig:
    """checkpoint: a checkpoint file or a training run folder (its newest checkpoint).
    data, split, seed: the evaluation images, opened by
        :func:`msca_fast.data.catalog.open_dataset` (synthetic scenes from ``seed``; real data
        sets: the first ``data.num_images`` of ``split``).
    size: the evaluation resolution (square). tasks: None for every task the data set allows.
    metrics: names from :data:`msca_fast.metrics.suite.METRIC_NAMES`.
    raw_weights: the raw generator instead of its EMA copy.
    strict: a metric whose pretrained network is missing is an error instead of n/a.
    rows: sample rows per task in index.html; zoom: their magnification (nearest neighbour, so
        that texture shows pixel by pixel).
    lpips_weights, fid_weights, vgg_weights: the metric networks' weight files (None / "imagenet":
        the environment variable, then the torch hub cache, then a download; vgg_weights
        "random" for tests).
    device: "auto" (CUDA when available), "cpu", "cuda:1", ...
    """

    checkpoint: str
    data: DatasetOptions = field(default_factory=lambda: DEFAULT_DATA)
    split: str = "val"
    seed: int = DEFAULT_SEED
    size: int = 256
    tasks: tuple[str, ...] | None = None
    metrics: tuple[str, ...] = METRIC_NAMES
    batch_size: int = 8
    output_dir: str = "eval"
    raw_weights: bool = False
    strict: bool = False
    rows: int = 8
    zoom: int = 1
    lpips_weights: str | None = None
    fid_weights: str | None = None
    vgg_weights: str = "imagenet"
    device: str = "auto"

    def __post_init__(self) -> None:
        if not isinstance(self.data, DatasetOptions):
            raise TypeError(f"data: expected DatasetOptions, got {type(self.data).__name__}")
        if self.tasks is not None:
            self.tasks = tuple(self.tasks)
            unknown = [t for t in self.tasks if t not in TASKS]
            if unknown or not self.tasks:
                raise ValueError(f"tasks: expected names from {list(TASKS)} or None, got {list(self.tasks)}")
        self.metrics = tuple(self.metrics)
        unknown = [m for m in self.metrics if m not in METRIC_NAMES]
        if unknown or not self.metrics:
            raise ValueError(f"metrics: expected names from {list(METRIC_NAMES)}, got {list(self.metrics)}")
        check_positive_int("batch_size", self.batch_size)
        check_non_negative_int("rows", self.rows)
        check_positive_int("zoom", self.zoom)
        for name in ("lpips_weights", "fid_weights", "vgg_weights"):
            path = getattr(self, name)
            if path not in (None, "imagenet", "random") and not Path(path).is_file():
                raise FileNotFoundError(f"{name}: no such file {str(path)!r}; expected a weights file")
        if self.size < 16:
            raise ValueError(f"size: expected at least 16 pixels (the coarsest scale is 1/16), got {self.size}")
