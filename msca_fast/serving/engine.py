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
from msca_fast.synthesis.exported import ExportedGenerator, load_exported
from msca_fast.synthesis.figures import fit, tint
from msca_fast.visuals import class_palette, colorize, to_uint8

GALLERY_SEED = 1000  # the evaluation's held-out synthetic scenes; training uses seed 0
MODES = ("style", "spatial", "extrapolate")
EXPORTED_ONLY = (
    "this studio serves an exported generator (.pt2), which only synthesizes; interpolation, extrapolation "
    "and attention need the training checkpoint (--checkpoint RUN)"
)


class StudioError(ValueError):
    """A request the model cannot serve; its message is one line for the page (HTTP 422)."""


class NoSuchScene(StudioError):
    """A gallery index out of range (HTTP 404)."""


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
        self, generator: torch.nn.Module | ExportedGenerator, class_names: list[str], palette: Tensor,
        size: tuple[int, int], gallery: list[dict] | None = None,
    ) -> None:  # fmt: skip
        self.exported = generator if isinstance(generator, ExportedGenerator) else None
        self.generator = generator if self.exported else generator.eval()
        self.num_classes = len(class_names)
        self.class_names, self.palette, self.size = list(class_names), palette, tuple(size)
        self.gallery = gallery or []
        self._lock = threading.Lock()

    @classmethod
    def open(cls, source: str | os.PathLike, gallery_size: int = 24) -> StudioEngine:
        """A checkpoint file or run folder (its EMA generator), or an exported ``.pt2`` generator
        (plain synthesis only). The gallery holds ``gallery_size`` held-out synthetic scenes when
        the model was trained on them; other models take uploaded exemplars."""
        if Path(source).suffix == ".pt2":
            exported = load_exported(source)
            height, width = exported.size
            return cls._with_catalogue(exported, exported.dataset, exported.num_classes, (height, width), gallery_size)
        from msca_fast.synthesis.model_file import load_model

        model = load_model(source)
        size = (model.size, model.size)
        return cls._with_catalogue(model.generator, model.dataset, model.num_classes, size, gallery_size)

    @classmethod
    def _with_catalogue(
        cls, generator: torch.nn.Module | ExportedGenerator, dataset: str | None, num_classes: int,
        size: tuple[int, int], gallery_size: int,
    ) -> StudioEngine:  # fmt: skip
        """Class names, colours and gallery: the synthetic scenes' own, or numbered classes."""
        if dataset == "synthetic":
            from msca_fast.data.synthetic import CLASS_NAMES, PALETTE, SyntheticScenes

            scenes = SyntheticScenes(num_images=gallery_size, size=size[0], seed=GALLERY_SEED)
            gallery = [scenes[i] for i in range(gallery_size)]
            if size[1] != size[0]:
                gallery = [{**item, **_resized(item, size)} for item in gallery]
            palette = torch.tensor(PALETTE, dtype=torch.uint8)
            return cls(generator, list(CLASS_NAMES), palette, size, gallery)
        names = [f"class {i}" for i in range(num_classes)]
        return cls(generator, names, class_palette(num_classes), size)

    # What the page shows -------------------------------------------------------------------

    def info(self) -> dict:
        return {
            "size": list(self.size),
            "classes": [
                {"id": i, "name": name, "colour": "#" + "".join(f"{v:02x}" for v in self.palette[i].tolist())}
                for i, name in enumerate(self.class_names)
            ],
            "gallery": [{"id": i, "name": item["name"]} for i, item in enumerate(self.gallery)],
            "modes": ["style"] if self.exported else list(MODES),
        }

    def gallery_item(self, index: int, name: str = "gallery index") -> dict:
        """Scene ``index`` of the gallery; NoSuchScene naming ``name`` when there is none."""
        if not 0 <= index < len(self.gallery):
            raise NoSuchScene(f"{name}: no gallery scene {index} (the gallery has {len(self.gallery)})")
        return self.gallery[index]

    def gallery_png(self, index: int, what: str) -> bytes:
        """The gallery scene's photo ("image") or its colour-coded label map ("label")."""
        item = self.gallery_item(index, "gallery picture")
        if what == "image":
            return image_png(item["image"])
        return image_png(colorize(item["label"][None], self.palette)[0])

    def gallery_exemplar(self, index: int, name: str = "exemplar") -> Exemplar:
        item = self.gallery_item(index, name)
        return Exemplar(item["image"][None], one_hot(item["label"][None], self.num_classes))

    def layout_ids(self, index: int) -> list[int]:
        """The gallery scene's class ids, row by row (H*W ints)."""
        return self.gallery_item(index, "layout index")["label"].flatten().tolist()

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
        if self.exported and (mode != "style" or exemplar_b is not None):
            raise StudioError(f"mode: {EXPORTED_ONLY}")
        with self._lock, torch.inference_mode():
            start = time.perf_counter()
            if self.exported:
                image = self.exported(c1, *a)
            elif mode == "extrapolate":
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
        if self.exported:
            raise StudioError(f"attention: {EXPORTED_ONLY}")
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


def _resized(item: dict, size: tuple[int, int]) -> dict:
    """A square gallery scene stretched to (H, W): the photo bilinear, the labels nearest."""
    image = torch.nn.functional.interpolate(item["image"][None], size=size, mode="bilinear", align_corners=False)[0]
    label = torch.nn.functional.interpolate(item["label"][None, None].float(), size=size, mode="nearest")[0, 0]
    return {"image": image.clamp(-1, 1), "label": label.long()}
