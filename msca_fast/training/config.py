"""Training options and presets.

A :class:`TrainConfig` holds how to train, as its ``model`` field the
:class:`msca_fast.models.config.ModelConfig` to train, and as its ``data`` field the
:class:`msca_fast.data.catalog.DatasetOptions` of the images it trains on. A preset fills
every option; options given explicitly override it (:func:`make_config` takes them flat and
gives the ModelConfig's to the model, the DatasetOptions' to the data).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from msca_fast.data.catalog import DATA_OPTIONS, DatasetOptions, dataset_options_from
from msca_fast.models.config import ModelConfig
from msca_fast.number_checks import check_non_negative_int, check_positive_int

AMP_MODES = ("none", "bf16", "fp16")


# Every ModelConfig field a training option can set: all but the class count, which the data
# set decides, and the free-form notes.
MODEL_OPTIONS = tuple(f.name for f in dataclasses.fields(ModelConfig) if f.name not in ("num_classes", "extra"))


def cpu_model() -> ModelConfig:
    """The narrow model of the CPU presets; vgg_weights "auto" uses the ImageNet VGG-19 when it
    can be found and a random one (warned) when not."""
    return ModelConfig(
        ngf=16, ndf=16, spade_hidden=32, image_feature_channels=(16, 32, 32, 64, 64),
        label_feature_channels=(16, 16, 32, 32, 32), vgg_weights="auto",
    )  # fmt: skip


@dataclass
class TrainConfig:
    """How to train ``model``. Sizes are in pixels; ``steps`` counts adversarial iterations (each
    runs a D update, and a G update every ``g_every``-th iteration); ``epochs``, when set, replaces
    it: training then ends after that many passes over the data, pretraining iterations included.

    ``model``: the architecture; its ``num_classes`` is replaced by the data set's class count
    when training starts, and its ``vgg_weights`` may also be "auto" (see :func:`cpu_model`).
    ``data``: the training images (split "train"; synthetic scenes drawn from ``seed``).
    """

    preset: str = "cpu-demo"
    data: DatasetOptions = field(default_factory=DatasetOptions)
    output_dir: str = "runs/cpu-demo"
    # self-supervised sampling (paper section 3.4)
    load_size: int = 128
    patch_sizes: tuple[int, ...] = (64,)
    patch_epochs: tuple[int, ...] = ()
    global_size: int = 64
    flip_probability: float = 0.5
    # schedule
    batch_size: int = 4
    steps: int = 250
    epochs: int | None = None  # when set: train this many epochs (pretraining included) instead of `steps`
    pretrain_steps: int = 50
    lr_pretrain: float | None = None  # attention pretraining's learning rate; None: lr_g
    pretrain_rgb: bool = False  # pretraining also predicts the target's colours (not in the paper)
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    beta1: float = 0.0
    beta2: float = 0.9
    ttur: bool = False  # SPADE's two time-scale rule: lr_g / 2, lr_d * 2
    g_every: int = 1  # update G every n-th iteration (paper: 5)
    lambda_global: float = 1.0  # lambda of Eq. 11
    lambda_feat: float = 10.0
    lambda_vgg: float = 10.0
    lambda_l1: float = 0.0  # an L1 pixel loss on both reconstructions (not in the paper; 0 = off)
    l1_pool: int = 1  # the L1 loss compares l1_pool x l1_pool means: colour, not texture phase (1 = pixels)
    ema_decay: float = 0.999  # at most; early updates use (1 + n) / (10 + n) after n G updates
    # the model
    model: ModelConfig = field(default_factory=cpu_model)
    # machinery
    amp: str = "none"
    channels_last: bool = False
    compile: bool = False
    seed: int = 0
    device: str = "auto"
    workers: int = 0
    log_every: int = 10
    sample_every: int = 100
    checkpoint_every: int = 100
    keep_checkpoints: int = 3
    max_bad_steps: int = 20  # this many iterations with non-finite losses in a row stop the run
    num_samples: int = 4  # rows of the sample grid
    resume: str | None = None  # "latest" or a checkpoint path

    def __post_init__(self) -> None:
        if not isinstance(self.model, ModelConfig):
            raise TypeError(f"model: expected a ModelConfig, got {type(self.model).__name__}")
        if not isinstance(self.data, DatasetOptions):
            raise TypeError(f"data: expected DatasetOptions, got {type(self.data).__name__}")
        if self.amp not in AMP_MODES:
            raise ValueError(f"amp: expected one of {list(AMP_MODES)}, got {self.amp!r}")
        positive = ("batch_size", "g_every", "keep_checkpoints", "max_bad_steps", "log_every", "sample_every")
        for name in (*positive, "checkpoint_every"):
            check_positive_int(name, getattr(self, name))
        check_positive_int("epochs", self.epochs, allow_none=True)
        check_positive_int("l1_pool", self.l1_pool)
        for name in ("steps", "pretrain_steps", "workers", "num_samples"):
            check_non_negative_int(name, getattr(self, name))
        if self.lambda_l1 < 0:
            raise ValueError(f"lambda_l1: expected a non-negative weight, got {self.lambda_l1}")
        if self.lr_pretrain is not None and not self.lr_pretrain > 0:
            raise ValueError(f"lr_pretrain: expected a positive learning rate or None, got {self.lr_pretrain}")
        if not 0 <= self.ema_decay < 1:
            raise ValueError(f"ema_decay: expected a number in [0, 1), got {self.ema_decay}")

    @property
    def learning_rates(self) -> tuple[float, float]:
        """(lr_g, lr_d) after the TTUR rule."""
        return (self.lr_g / 2, self.lr_d * 2) if self.ttur else (self.lr_g, self.lr_d)

    def to_dict(self) -> dict[str, Any]:
        """The training options as plain values, ``data`` as a dict of its own, without ``model``:
        checkpoints save the model's options once, as the ModelConfig actually built
        (``model_config``). (Checkpoints written before DatasetOptions have the data options
        among the others: :meth:`DatasetOptions.from_train_config` reads both.)"""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in ("model", "data")}
        out = {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}
        return {"data": self.data.to_dict(), **out}


# What the 256 and 512 presets share: the paper's network (ModelConfig's defaults), schedule
# and update period.
_PAPER: dict[str, Any] = dict(
    patch_epochs=(20,),
    epochs=40,
    pretrain_steps=5_000,
    g_every=5,
    ngf=64,
    ndf=64,
    spade_hidden=128,
    image_feature_channels=(64, 128, 128, 256, 256),
    label_feature_channels=(32, 32, 64, 64, 64),
    vgg_weights="imagenet",
    amp="bf16",
    workers=8,
    log_every=50,
    sample_every=2_000,
    checkpoint_every=5_000,
)

# What the CPU presets add to the paper's method so that its attention forms within minutes
# (each measured in RESULTS.md): sharper attention logits, a faster and longer attention
# pretraining that also predicts colours (a random VGG's features say little about appearance),
# an L1 loss on 4x4 block means (colour, not the texture's phase), replicate padding (zero
# padding drew a dark frame on 64x64 outputs), a generator learning rate five times the paper's
# (a few hundred updates instead of 100k+) and fixed noise channels in the SPADE conditions
# (without them a one-class region can only be painted flat).
_CPU: dict[str, Any] = dict(
    attention_logit_scale=20.0,
    pretrain_steps=300,
    lr_pretrain=1e-3,
    pretrain_rgb=True,
    lambda_l1=20.0,
    l1_pool=4,
    padding_mode="replicate",
    lr_g=1e-3,
    noise_channels=8,
)

PRESETS: dict[str, dict[str, Any]] = {
    # About 10 minutes on a 2-core CPU: 64x64 outputs, a narrow model.
    "cpu-demo": dict(_CPU),
    # The same for 26-32 minutes (26 measured alone on 2 cores; an earlier, interrupted run about 32):
    # 1100 adversarial iterations instead of 250.
    "cpu-long": dict(_CPU, output_dir="runs/cpu-long", steps=1100, checkpoint_every=200, sample_every=200),
    # The paper's setting at 256x256 (section 4): 512 loads, 256 patches (384 after epoch 20).
    "256": dict(
        output_dir="runs/256", load_size=512, patch_sizes=(256, 384), global_size=256, batch_size=8,
        num_samples=8, **_PAPER,
    ),  # fmt: skip
    "512": dict(
        output_dir="runs/512", load_size=1024, patch_sizes=(512, 768), global_size=512, batch_size=4,
        num_samples=4, **_PAPER,
    ),  # fmt: skip
}


def make_config(preset: str = "cpu-demo", **overrides: Any) -> TrainConfig:
    """The preset's options with ``overrides`` (None values are ignored) applied.

    Options are flat: the names of :data:`MODEL_OPTIONS` (``ngf=64``, ``num_regions=(...)``)
    set the model, those of :data:`~msca_fast.data.catalog.DATA_OPTIONS` (``dataset="folder"``)
    the data, every other name a training option.
    """
    if preset not in PRESETS:
        raise ValueError(f"preset: expected one of {list(PRESETS)}, got {preset!r}")
    values = {**PRESETS[preset], **{k: v for k, v in overrides.items() if v is not None}}
    model = {name: values.pop(name) for name in MODEL_OPTIONS if name in values}
    data = dataset_options_from(values, DatasetOptions())
    known = {f.name for f in dataclasses.fields(TrainConfig)} - {"model", "data", "preset"}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(
            f"unknown training options {unknown}; model options are {list(MODEL_OPTIONS)}, "
            f"data options {list(DATA_OPTIONS)}"
        )
    return TrainConfig(preset=preset, model=cpu_model().replace(**model), data=data, **values)
