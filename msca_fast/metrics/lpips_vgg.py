"""LPIPS (Zhang et al. 2018), VGG variant with its linearly calibrated layers, as the paper uses.

Built on the reference ``lpips`` package, which ships the calibrated linear layers
(``lpips/weights/v0.1/vgg.pth``) but takes its VGG-16 backbone from torchvision's ImageNet
weights. Those are found here (see :mod:`msca_fast.pretrained` for the order), never
downloaded behind the caller's back: the package's network is built without any weights
(``pnet_rand=True, pretrained=False``) and both weight sets are then loaded explicitly, every
tensor accounted for. With the same backbone, the distances equal those of
``lpips.LPIPS(net="vgg")``.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import torch
from torch import Tensor, nn

from msca_fast.errors import WeightsUnavailable
from msca_fast.image_checks import check_image_pair
from msca_fast.metrics.errors import import_optional
from msca_fast.pretrained import WeightSource, find_weights_file, load_state_dict_file

# torchvision.models.VGG16_Weights.IMAGENET1K_V1.url, the backbone LPIPS was calibrated on.
VGG16_SOURCE = WeightSource(
    name="LPIPS VGG-16 backbone weights",
    detail="torchvision's ImageNet VGG-16, VGG16_Weights.IMAGENET1K_V1",
    urls=("https://download.pytorch.org/models/vgg16-397923af.pth",),
    env_var="MSCA_FAST_VGG16_WEIGHTS",
    argument="backbone_weights",
    flag="--lpips-weights",
)
LPIPS_VERSION = "0.1"


class LPIPSMetric(nn.Module):
    """LPIPS distance with the calibrated VGG-16 network (lower is more similar).

    backbone_weights: path to torchvision's ImageNet VGG-16 weights (a full ``vgg16()``
        state_dict or that of its ``.features``); None looks in ``MSCA_FAST_VGG16_WEIGHTS``,
        then ``<torch.hub.get_dir()>/checkpoints/vgg16-397923af.pth``, then downloads it
        there if ``allow_download``. Raises :class:`msca_fast.errors.WeightsUnavailable` (how
        to get the file) when all fail, FileNotFoundError for a given path that does not exist.

    forward(x (B,3,H,W), y (B,3,H,W), both in [-1,1], H and W >= 16) -> (B,) distances.
    Symmetric, zero for identical images. Frozen and always in eval mode (the package's
    linear layers sit behind dropout); gradients still reach x and y.
    """

    def __init__(self, backbone_weights: str | os.PathLike | None = None, allow_download: bool = True) -> None:
        super().__init__()
        lpips = import_optional("lpips", "lpips", "LPIPS")
        # Find the file before building anything, so a missing file fails fast.
        self.backbone_file = find_weights_file(VGG16_SOURCE, backbone_weights, allow_download)
        backbone_state = load_state_dict_file(self.backbone_file, VGG16_SOURCE.argument)
        self.linear_file = Path(lpips.__file__).parent / "weights" / f"v{LPIPS_VERSION}" / "vgg.pth"
        if not self.linear_file.is_file():
            raise WeightsUnavailable(
                f"the lpips package's calibrated linear layers are missing ({self.linear_file}).\n"
                f"Reinstall the package: pip install --force-reinstall lpips"
            )
        linear_state = load_state_dict_file(self.linear_file, "the lpips package's linear layers")
        # Built on the meta device: torchvision's vgg16() would allocate and randomly initialise
        # its 120M-parameter classifier, which LPIPS discards; every tensor is loaded just below.
        with warnings.catch_warnings(), torch.device("meta"):
            # lpips asks torchvision for vgg16(pretrained=False), a deprecated spelling of weights=None.
            deprecations = "(The parameter 'pretrained'|Arguments other than a weight enum)"
            warnings.filterwarnings("ignore", message=deprecations, category=UserWarning)
            self.model = lpips.LPIPS(
                pretrained=False, net="vgg", version=LPIPS_VERSION, pnet_rand=True, pnet_tune=False, verbose=False
            )
        self.model.to_empty(device="cpu")
        self.model.load_state_dict(self._full_state(backbone_state, linear_state, lpips.ScalingLayer().state_dict()))
        self.model.requires_grad_(False)
        self.train(False)

    def _full_state(
        self, backbone_state: dict[str, Tensor], linear_state: dict[str, Tensor], scaling_state: dict[str, Tensor]
    ) -> dict[str, Tensor]:
        """A value for every parameter and buffer of the package's network, from the three sources."""
        if any(key.startswith("features.") for key in backbone_state):
            backbone_state = {key[len("features.") :]: value for key, value in backbone_state.items()
                              if key.startswith("features.")}  # fmt: skip
        state = {}
        for key, empty in self.model.state_dict().items():
            section, rest = key.split(".", 1)
            if section == "net":
                # net.slice<k>.<i>.<param> holds torchvision's features.<i>.<param>.
                state[key] = _matching(backbone_state, rest.split(".", 1)[1], empty, self.backbone_file)
            elif section.startswith("lin"):
                # lin<i>.* and lins.<i>.* name the same layers (the package keeps both).
                name = key if section != "lins" else "lin" + rest
                state[key] = _matching(linear_state, name, empty, self.linear_file)
            elif section == "scaling_layer":  # the package's fixed input normalisation
                state[key] = scaling_state[rest]
            else:
                raise RuntimeError(f"lpips: unexpected tensor {key!r}; this code was tested with lpips==0.1.4")
        tensors = {name for name, _ in self.model.named_parameters()} | {name for name, _ in self.model.named_buffers()}
        if not tensors <= state.keys():  # a non-persistent buffer would stay uninitialised memory
            raise RuntimeError(f"lpips: tensors {sorted(tensors - state.keys())} are not in its state_dict")
        return state

    def train(self, mode: bool = True) -> LPIPSMetric:
        return super().train(False)  # frozen: never in training mode

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        x, y = check_image_pair("x", x, "y", y)
        if min(x.shape[-2:]) < 16:
            raise ValueError(f"x, y: expected images of at least 16x16 pixels for VGG-16, got {tuple(x.shape[-2:])}")
        return self.model(x, y, normalize=False).reshape(x.shape[0])


def _matching(state: dict[str, Tensor], key: str, expected: Tensor, file: Path) -> Tensor:
    if key not in state:
        raise ValueError(f"{str(file)!r}: expected a torchvision VGG-16 / LPIPS state_dict, it lacks {key!r}")
    if state[key].shape != expected.shape:
        raise ValueError(
            f"{str(file)!r}: {key!r} has shape {tuple(state[key].shape)}, expected {tuple(expected.shape)}"
        )
    return state[key]
