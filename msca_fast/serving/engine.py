"""The studio's model side: one generator, its classes and colours, a gallery of held-out scenes,
and the synthesis calls the page makes, serialised and run under ``torch.inference_mode()``.

Every picture goes through the synthesis API (:mod:`msca_fast.synthesis`); this module only
turns the page's class-id grids and exemplar choices into its tensors and back into PNGs.
"""

from __future__ import annotations

import io
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from msca_fast.models.labels import one_hot
from msca_fast.synthesis import attention_at_scale, extrapolate, interpolate_styles, spatial_interpolation, synthesize
from msca_fast.synthesis.figures import fit, tint
from msca_fast.visuals import class_palette, colorize, to_uint8

GALLERY_SEED = 1000  # the evaluation's held-out synthetic scenes; training uses seed 0
MODES = ("style", "spatial", "extrapolate")


class StudioError(ValueError):
    """A request the model cannot serve; its message is one line for the page (HTTP 422)."""


@dataclass(frozen=True)
class Exemplar:
    """image (1,3,H,W) in [-1,1] and labels (1,C,H,W) one-hot."""

    image: Tensor
    labels: Tensor


def png_bytes(image: np.ndarray) -> bytes:
    """(H,W,3) or (H,W) uint8 -> PNG file bytes."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def image_png(image: Tensor) -> bytes:
    """(1,3,H,W) or (3,H,W) in [-1,1] -> PNG bytes."""
    return png_bytes(to_uint8(image.reshape(3, *image.shape[-2:])).permute(1, 2, 0).cpu().numpy())


class StudioEngine:
    """generator: a Generator in eval mode; class_names / palette (C,3) uint8 name and colour
    the classes; size (H, W): the canvas the page paints; gallery: held-out scenes as exemplars
    and starting layouts (synthetic-scene models only, else empty)."""

    def __init__(
        self, generator: torch.nn.Module, class_names: list[str], palette: Tensor, size: tuple[int, int],
        gallery: list[dict] | None = None,
    ) -> None:  # fmt: skip
        self.generator = generator.eval()
        self.num_classes = len(class_names)
        self.class_names, self.palette, self.size = list(class_names), palette, tuple(size)
        self.gallery = gallery or []
        self._lock = threading.Lock()

    @classmethod
    def from_checkpoint(cls, checkpoint: str | os.PathLike, gallery_size: int = 24) -> StudioEngine:
        """The EMA generator of a checkpoint file or run folder; the gallery holds ``gallery_size``
        held-out synthetic scenes when the model was trained on them."""
        from msca_fast.data.catalog import DatasetOptions
        from msca_fast.synthesis.model_file import load_model
        from msca_fast.training.checkpoint import load_checkpoint, resolve_checkpoint

        model = load_model(checkpoint)
        saved = load_checkpoint(resolve_checkpoint(Path(checkpoint))).get("train_config") or {}
        size = int(saved.get("global_size", 64))
        if DatasetOptions.from_train_config(saved).dataset == "synthetic":
            from msca_fast.data.synthetic import CLASS_NAMES, PALETTE, SyntheticScenes

            scenes = SyntheticScenes(num_images=gallery_size, size=size, seed=GALLERY_SEED)
            gallery = [scenes[i] for i in range(gallery_size)]
            palette = torch.tensor(PALETTE, dtype=torch.uint8)
            return cls(model.generator, list(CLASS_NAMES), palette, (size, size), gallery)
        names = [f"class {i}" for i in range(model.num_classes)]
        return cls(model.generator, names, class_palette(model.num_classes), (size, size))

    # What the page shows -------------------------------------------------------------------

    def info(self) -> dict:
        return {
            "size": list(self.size),
            "classes": [
                {"id": i, "name": name, "colour": "#" + "".join(f"{v:02x}" for v in self.palette[i].tolist())}
                for i, name in enumerate(self.class_names)
            ],
            "gallery": [{"id": i, "name": item["name"]} for i, item in enumerate(self.gallery)],
            "modes": list(MODES),
        }

    def gallery_item(self, index: int) -> dict:
        if not 0 <= index < len(self.gallery):
            raise StudioError(f"gallery index: expected 0 to {len(self.gallery) - 1}, got {index}")
        return self.gallery[index]

    def gallery_png(self, index: int, what: str) -> bytes:
        """The gallery scene's photo ("image") or its colour-coded label map ("label")."""
        item = self.gallery_item(index)
        if what == "image":
            return image_png(item["image"])
        return image_png(colorize(item["label"][None], self.palette)[0])

    def gallery_exemplar(self, index: int) -> Exemplar:
        item = self.gallery_item(index)
        return Exemplar(item["image"][None], one_hot(item["label"][None], self.num_classes))

    def layout_ids(self, index: int) -> list[int]:
        """The gallery scene's class ids, row by row (H*W ints)."""
        return self.gallery_item(index)["label"].flatten().tolist()

    # Synthesis ----------------------------------------------------------------------------

    def synthesize(
        self, layout: Tensor, exemplar: Exemplar, mode: str = "style", exemplar_b: Exemplar | None = None,
        mix: float = 0.0,
    ) -> tuple[Tensor, float]:  # fmt: skip
        """layout (H,W) class ids -> ((1,3,H,W) in [-1,1], milliseconds the generator took).

        style: exemplar's style, mixed with exemplar_b's by ``mix`` (0 = a, 1 = b); spatial: a
        on the left fading into b on the right; extrapolate: a canvas wider than the model's
        size, painted window by window (square windows of the canvas's height, half overlapping).
        """
        c1 = one_hot(layout[None], self.num_classes)
        a = (exemplar.image, exemplar.labels)
        with self._lock, torch.inference_mode():
            start = time.perf_counter()
            if mode == "extrapolate":
                height = layout.shape[0]
                image = extrapolate(self.generator, c1, a, patch=height, stride=max(1, height // 2))
            elif exemplar_b is None:
                if mode == "spatial":
                    raise StudioError("exemplar_b: spatial interpolation needs a second exemplar")
                image = synthesize(self.generator, c1, *a)
            elif mode == "spatial":
                image = spatial_interpolation(self.generator, c1, a, (exemplar_b.image, exemplar_b.labels))
            else:
                image = interpolate_styles(self.generator, c1, a, (exemplar_b.image, exemplar_b.labels), [mix])[0]
            return image, (time.perf_counter() - start) * 1000

    def attention(self, layout: Tensor, exemplar: Exemplar, scale: int, y: int, x: int) -> dict:
        """The region the output pixel (y, x) reads at ``scale`` (the largest channel attention
        there), its spatial attention over the exemplar and its channel attention over the
        output, each as the picture tinted by the map (PNG bytes)."""
        c1 = one_hot(layout[None], self.num_classes)
        with self._lock, torch.inference_mode():
            try:
                alpha, beta = attention_at_scale(self.generator, c1, exemplar.image, exemplar.labels, scale)
            except ValueError as error:
                raise StudioError(str(error)) from error
            output = synthesize(self.generator, c1, exemplar.image, exemplar.labels)
        size = tuple(layout.shape)
        beta_full = fit(beta.float(), size, "nearest")[0]
        region = int(beta_full[:, y, x].argmax())
        exemplar_image = fit(exemplar.image.float(), size)[0]
        spatial = fit(alpha.float()[:, region : region + 1], size, "nearest")[0, 0]
        spatial = spatial / spatial.max().clamp_min(1e-12)
        colour = torch.tensor([1.0, 0.2, 0.2])
        return {
            "region": region,
            "regions": int(beta.shape[1]),
            "spatial": tint(exemplar_image, spatial, colour),
            "channel": tint(output[0], beta_full[region], colour),
        }
