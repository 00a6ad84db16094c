"""The FID Inception-v3 (TensorFlow's inception-2015-12-05 graph, ported to PyTorch), via torch-fidelity.

torch-fidelity's network reproduces the TensorFlow FID code, resizing included; its weights
file (``weights-inception-2015-12-05-6726825d.pth``) and pytorch-fid's
(``pt_inception-2015-12-05-6726825d.pth``) are the same conversion and either loads.
"""

from __future__ import annotations

import os

import torch
from torch import Tensor, nn

from msca_fast.image_checks import check_image_batch
from msca_fast.metrics.errors import import_optional
from msca_fast.pretrained import WeightSource, find_weights_file, load_state_dict_file

INCEPTION_SOURCE = WeightSource(
    name="FID Inception-v3 weights",
    detail="TensorFlow's inception-2015-12-05 graph as torch-fidelity and pytorch-fid port it",
    urls=(
        # torch_fidelity.feature_extractor_inceptionv3.URL_INCEPTION_V3
        "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/weights-inception-2015-12-05-6726825d.pth",
        # pytorch_fid.inception.FID_WEIGHTS_URL
        "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth",
    ),
    env_var="MSCA_FAST_FID_INCEPTION_WEIGHTS",
    argument="inception_weights",
    flag="--fid-weights",
)
FEATURE_DIM = 2048


class FIDInceptionV3(nn.Module):
    """The 2048-d pool3 features FID is computed on.

    inception_weights: path to the weights file; None looks in
        ``MSCA_FAST_FID_INCEPTION_WEIGHTS``, then the torch hub cache
        (``<torch.hub.get_dir()>/checkpoints/`` under either file name above), then downloads
        torch-fidelity's file there if ``allow_download``. Raises
        :class:`msca_fast.errors.WeightsUnavailable` (how to get the file) when all fail,
        FileNotFoundError for a given path that does not exist.

    forward(images (B,3,H,W) in [-1,1]) -> (B, 2048) float32, without gradients. Images are
    quantised to 8 bits first (values outside [-1, 1] are clipped), as when FID is computed
    from saved image files, then resized to 299x299 the way TensorFlow's FID code does.
    """

    def __init__(self, inception_weights: str | os.PathLike | None = None, allow_download: bool = True) -> None:
        super().__init__()
        inception = import_optional("torch_fidelity.feature_extractor_inceptionv3", "torch-fidelity", "FID")
        self.weights_file = find_weights_file(INCEPTION_SOURCE, inception_weights, allow_download)
        # torch-fidelity unpickles the file in full (weights_only=False): read it safely first,
        # which also turns a wrong file into a clear error.
        state = load_state_dict_file(self.weights_file, INCEPTION_SOURCE.argument)
        if "Mixed_7c.branch_pool.conv.weight" not in state or "fc.weight" not in state:
            raise ValueError(
                f"{INCEPTION_SOURCE.argument}: {str(self.weights_file)!r} is not an FID Inception-v3 state_dict "
                f"(it lacks Mixed_7c and fc weights)"
            )
        del state
        try:
            self.network = inception.FeatureExtractorInceptionV3(
                "inception-v3-compat", [str(FEATURE_DIM)], feature_extractor_weights_path=str(self.weights_file)
            )
        except RuntimeError as error:  # load_state_dict's key or shape mismatch
            raise ValueError(
                f"{INCEPTION_SOURCE.argument}: {str(self.weights_file)!r} does not fit the FID Inception-v3 ({error})"
            ) from error
        self.train(False)

    def train(self, mode: bool = True) -> FIDInceptionV3:
        return super().train(False)  # frozen: never in training mode

    @torch.no_grad()
    def forward(self, images: Tensor) -> Tensor:
        images = check_image_batch("images", images)
        quantised = ((images.clamp(-1.0, 1.0) + 1.0) * 127.5).round().to(torch.uint8)
        (features,) = self.network(quantised)
        return features
