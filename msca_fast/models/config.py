"""Every architectural choice of the generator and discriminator, in one dataclass.

A :class:`ModelConfig` is saved inside checkpoints as a plain dict (:meth:`ModelConfig.to_dict`),
which ``torch.load(..., weights_only=True)`` reads back, so a model can be rebuilt from its
checkpoint alone (:meth:`ModelConfig.from_dict`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from msca_fast.number_checks import check_non_negative_int, check_positive_int

ALIGNMENTS = ("msca", "gap", "no_attention", "no_masking")
PARAM_FREE_NORMS = ("batch", "instance", "syncbatch")
D_NORMS = ("spectralinstance", "spectralbatch", "instance", "none")
PADDING_MODES = ("zeros", "replicate")
NUM_SCALES = 5  # the paper's L = 4: scales i = 0 (finest, full resolution) .. 4 (1/16)


@dataclass(frozen=True)
class ModelConfig:
    """The generator G(c1, x2, c~2) and the discriminator D(x, c, x_ex, c~_ex).

    Scale i (0..4) works at 1/2**i of the input resolution. Defaults follow the paper
    (K = 8,16,16,16,16) and NVlabs/SPADE (ngf = ndf = 64, SPADE hidden 128, two 4-layer
    discriminators with spectral-instance norm).

    num_classes: channels of the one-hot label maps (COCO-Stuff: 182 classes + don't-care = 183).
    image_feature_channels: N_i, the VGG features compressed by W_x^(i) (Eq. 1).
    label_feature_channels: M_i, the label encoder's output (Eq. 2-3), shared by c1 and c~2.
    num_regions: K_i of the MSCA at scale i.
    alignment: "msca" (the full model), or a Table 1 ablation: "gap" (global average pooling
        of the exemplar features), "no_attention" (per-class means of the exemplar features
        placed where the target has that class), "no_masking" (MSCA without the Eq. 6 gate).
    msca_backend: the :mod:`msca_fast.ops` backend ("auto", "reference", "cpu", "cuda", ...).
    attention_logit_scale: a fixed factor on every MSCA's attention logits (an inverse softmax
        temperature; the paper gives none: 1.0).
    ngf: generator width; the SPADE blocks have 16,16,16,8,4,2,1 x ngf channels from coarse to fine.
    spade_hidden: hidden channels of each SPADE layer's shared conv.
    param_free_norm: the SPADE layers' normalisation ("batch" as SPADE, "instance", "syncbatch").
    padding_mode: the generator's 3x3 convs pad with "zeros" (as SPADE) or "replicate" (no dark
        frame along the borders of small maps; see RESULTS.md).
    noise_channels: fixed per-pixel noise channels added to every SPADE condition, a source of
        texture inside regions (:mod:`msca_fast.models.noise`; not in the paper: 0).
    label_slope: negative slope of the label encoder's LeakyReLU.
    vgg_weights: where the frozen VGG-19 comes from ("imagenet", "random" or a file path); see
        :func:`msca_fast.models.vgg.load_vgg19_features`.
    ndf, num_discriminators, discriminator_layers, discriminator_norm: the multi-scale PatchGAN.
    """

    num_classes: int = 183
    image_feature_channels: tuple[int, ...] = (64, 128, 128, 256, 256)
    label_feature_channels: tuple[int, ...] = (32, 32, 64, 64, 64)
    num_regions: tuple[int, ...] = (8, 16, 16, 16, 16)
    alignment: str = "msca"
    msca_backend: str = "auto"
    attention_logit_scale: float = 1.0
    ngf: int = 64
    spade_hidden: int = 128
    param_free_norm: str = "batch"
    padding_mode: str = "zeros"
    noise_channels: int = 0
    label_slope: float = 0.2
    vgg_weights: str = "imagenet"
    ndf: int = 64
    num_discriminators: int = 2
    discriminator_layers: int = 4
    discriminator_norm: str = "spectralinstance"
    extra: dict[str, Any] = field(default_factory=dict)  # free-form notes kept with the config

    def __post_init__(self) -> None:
        for name in ("num_classes", "ngf", "spade_hidden", "ndf", "num_discriminators", "discriminator_layers"):
            check_positive_int(name, getattr(self, name))
        check_non_negative_int("noise_channels", self.noise_channels)
        for name in ("image_feature_channels", "label_feature_channels", "num_regions"):
            value = getattr(self, name)
            if isinstance(value, list):
                object.__setattr__(self, name, tuple(value))
                value = tuple(value)
            if not isinstance(value, tuple) or len(value) != NUM_SCALES:
                raise ValueError(f"{name}: expected {NUM_SCALES} positive ints (one per scale), got {value!r}")
            for item in value:
                check_positive_int(name, item)
        _check_choice("alignment", self.alignment, ALIGNMENTS)
        _check_choice("param_free_norm", self.param_free_norm, PARAM_FREE_NORMS)
        _check_choice("padding_mode", self.padding_mode, PADDING_MODES)
        _check_choice("discriminator_norm", self.discriminator_norm, D_NORMS)
        if isinstance(self.attention_logit_scale, bool) or not isinstance(self.attention_logit_scale, (int, float)) \
                or not self.attention_logit_scale > 0:
            raise ValueError(f"attention_logit_scale: expected a positive number, got {self.attention_logit_scale!r}")
        if not isinstance(self.msca_backend, str):
            raise TypeError(f"msca_backend: expected a backend name, got {self.msca_backend!r}")
        if not isinstance(self.vgg_weights, str):
            raise TypeError(f"vgg_weights: expected 'imagenet', 'random' or a file path, got {self.vgg_weights!r}")
        if not isinstance(self.label_slope, (int, float)) or not 0 <= self.label_slope < 1:
            raise ValueError(f"label_slope: expected a number in [0, 1), got {self.label_slope!r}")

    def replace(self, **changes: Any) -> ModelConfig:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain Python values only (ints, floats, strs, lists, dicts): safe for weights_only loading."""
        out = dataclasses.asdict(self)
        for name in ("image_feature_channels", "label_feature_channels", "num_regions"):
            out[name] = list(out[name])
        return out

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ModelConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error that names them."""
        if not isinstance(values, dict):
            raise TypeError(f"values: expected a dict saved by ModelConfig.to_dict, got {type(values).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"values: unknown ModelConfig fields {unknown}; known fields are {sorted(known)}")
        return cls(**values)


def _check_choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{name}: expected one of {list(choices)}, got {value!r}")
