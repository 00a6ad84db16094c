"""SPADE layers and residual blocks (Park et al. 2019), conditioned on aligned features.

In this model the condition of each SPADE layer is [F_x1^(i), F_c1^(i)] (paper section 3.3)
rather than the raw label map.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm

from msca_fast.models.config import PADDING_MODES


def param_free_norm(kind: str, channels: int) -> nn.Module:
    """Normalisation without a learned affine: "batch", "syncbatch" (multi-GPU) or "instance"."""
    if kind == "batch":
        return nn.BatchNorm2d(channels, affine=False)
    if kind == "syncbatch":
        return nn.SyncBatchNorm(channels, affine=False)
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=False)
    raise ValueError(f"param_free_norm: expected 'batch', 'syncbatch' or 'instance', got {kind!r}")


def conv3x3(in_channels: int, out_channels: int, padding_mode: str = "zeros") -> nn.Conv2d:
    """A 3x3 conv keeping the size. "replicate" padding works at any size (a 1x1 map included),
    and unlike zero padding gives border pixels no different statistics at small scales."""
    if padding_mode not in PADDING_MODES:
        raise ValueError(f"padding_mode: expected one of {list(PADDING_MODES)}, got {padding_mode!r}")
    conv = EdgeReplicatingConv2d if padding_mode == "replicate" else nn.Conv2d
    return conv(in_channels, out_channels, 3, padding=1, padding_mode=padding_mode)


class EdgeReplicatingConv2d(nn.Conv2d):
    """nn.Conv2d with padding=1, padding_mode="replicate" that also trains under torch.compile.

    Inductor (torch 2.14) lays convolutions out channels-last and then passes a channels-last
    gradient to ``aten.replication_pad2d_backward``, whose output strides no longer match what
    its meta function promised: the compiled backward stops with "expected size 16==16, stride
    1==4096 at dim=1 ... Error in op: torch.ops.aten.replication_pad2d_backward.default".
    When compiling, the border is therefore built from slices (the same values; the backward
    is a sum of slices, which compiles). Eager runs keep torch's padding kernel.
    """

    def _conv_forward(self, input: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        if not torch.compiler.is_compiling():
            return super()._conv_forward(input, weight, bias)
        rows = torch.cat([input[..., :1, :], input, input[..., -1:, :]], dim=-2)
        padded = torch.cat([rows[..., :1], rows, rows[..., -1:]], dim=-1)
        return F.conv2d(padded, weight, bias, self.stride, 0, self.dilation, self.groups)


class SPADE(nn.Module):
    """Spatially-adaptive denormalisation.

    forward(x (B,C,H,W), condition (B,Cc,Hc,Wc)) -> norm(x) * (1 + gamma) + beta, (B,C,H,W),
    where gamma and beta are 3x3 convs of a shared 3x3 conv + ReLU (``hidden`` channels) of the
    condition, resized (nearest) to (H, W) when its size differs. ``padding_mode`` is every 3x3
    conv's ("zeros" as SPADE, or "replicate").
    """

    def __init__(
        self,
        channels: int,
        condition_channels: int,
        hidden: int = 128,
        norm: str = "batch",
        padding_mode: str = "zeros",
    ) -> None:
        super().__init__()
        self.norm = param_free_norm(norm, channels)
        self.shared = nn.Sequential(conv3x3(condition_channels, hidden, padding_mode), nn.ReLU())
        self.gamma = conv3x3(hidden, channels, padding_mode)
        self.beta = conv3x3(hidden, channels, padding_mode)

    def forward(self, x: Tensor, condition: Tensor) -> Tensor:
        if condition.shape[-2:] != x.shape[-2:]:
            condition = F.interpolate(condition, size=x.shape[-2:], mode="nearest")
        hidden = self.shared(condition)
        return self.norm(x) * (1 + self.gamma(hidden)) + self.beta(hidden)


class SPADEResBlock(nn.Module):
    """Residual block of two SPADE -> LeakyReLU(0.2) -> 3x3 conv stages (spectral norm), with a
    learned SPADE -> 1x1 conv shortcut when the channel count changes.

    forward(x (B,in_channels,H,W), condition (B,Cc,*,*)) -> (B,out_channels,H,W).
    """

    def __init__(
        self, in_channels: int, out_channels: int, condition_channels: int, hidden: int = 128, norm: str = "batch",
        padding_mode: str = "zeros",
    ) -> None:
        super().__init__()
        middle = min(in_channels, out_channels)
        self.norm_0 = SPADE(in_channels, condition_channels, hidden, norm, padding_mode)
        self.conv_0 = spectral_norm(conv3x3(in_channels, middle, padding_mode))
        self.norm_1 = SPADE(middle, condition_channels, hidden, norm, padding_mode)
        self.conv_1 = spectral_norm(conv3x3(middle, out_channels, padding_mode))
        self.learned_shortcut = in_channels != out_channels
        if self.learned_shortcut:
            self.norm_s = SPADE(in_channels, condition_channels, hidden, norm, padding_mode)
            self.conv_s = spectral_norm(nn.Conv2d(in_channels, out_channels, 1, bias=False))

    def forward(self, x: Tensor, condition: Tensor) -> Tensor:
        shortcut = self.conv_s(self.norm_s(x, condition)) if self.learned_shortcut else x
        dx = self.conv_0(F.leaky_relu(self.norm_0(x, condition), 0.2))
        dx = self.conv_1(F.leaky_relu(self.norm_1(dx, condition), 0.2))
        return shortcut + dx
