"""The reference MSCA op: the paper's Eq. 4-8, one function per equation.

This is the oracle every fast backend is tested against. It materialises the K x HW
attention maps, so it is simple, differentiable by autograd and slow.

Shapes (one letter per dimension):
    B batch, N image-feature channels, M2 / M1 exemplar / target label-feature channels,
    K attention regions, H2 x W2 = P2 exemplar pixels, H1 x W1 = P1 target pixels.

Precision: float64 and float32 compute in their own dtype. float16 and bfloat16 run the
matrix products in their own dtype (as a network under autocast would) and the softmaxes
in float32; the probabilities are cast back before the aggregation products.

An empty batch (B = 0) gives an empty (0,N,H1,W1) output and zero weight gradients.

Inputs may be contiguous or channels_last; the output is contiguous unless ``fc1`` is
channels_last, in which case it is channels_last too.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = [
    "spatial_attention",
    "spatial_aggregation",
    "feature_masking",
    "channel_attention",
    "channel_aggregation",
    "msca_reference",
    "aggregate_reference",
    "distribute_reference",
]

_LOW_PRECISION = (torch.float16, torch.bfloat16)


def _softmax(logits: Tensor, dim: int) -> Tensor:
    """Softmax over ``dim``, in float32 for 16-bit inputs, returned in the input dtype."""
    if logits.dtype in _LOW_PRECISION:
        return torch.softmax(logits.float(), dim=dim).to(logits.dtype)
    return torch.softmax(logits, dim=dim)


def is_channels_last(x: Tensor) -> bool:
    """True when a 4-D tensor is laid out channels_last (and not also plain contiguous)."""
    return x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()


def _as_matrix(weight: Tensor) -> Tensor:
    """A 1x1 conv weight (K,C,1,1) or a matrix (K,C) -> (K,C)."""
    return weight.reshape(weight.shape[0], weight.shape[1])


def spatial_attention(fx2: Tensor, fc2: Tensor, phi_weight: Tensor, phi_bias: Tensor | None) -> Tensor:
    """Eq. 4: alpha = softmax over the exemplar pixels of phi * [Fx2, Fc2].

    fx2 (B,N,H2,W2), fc2 (B,M2,H2,W2), phi_weight (K,N+M2) or (K,N+M2,1,1), phi_bias (K,) or None
    -> alpha (B,K,H2,W2); every map sums to 1 over its H2*W2 pixels.
    """
    batch, _, height, width = fx2.shape
    z = torch.cat([fx2, fc2], dim=1).flatten(2)  # (B, N+M2, P2)
    logits = torch.matmul(_as_matrix(phi_weight), z)  # (B, K, P2)
    if phi_bias is not None:
        # A per-row constant: it cancels in the softmax, kept so Conv2d weights drop in.
        logits = logits + phi_bias[:, None]
    alpha = _softmax(logits, dim=-1)
    # Explicit sizes, not -1: with an empty batch (B = 0) -1 would be ambiguous.
    return alpha.reshape(batch, logits.shape[1], height, width)


def spatial_aggregation(fx2: Tensor, alpha: Tensor) -> Tensor:
    """Eq. 5: V = Fx2 alpha^T.

    fx2 (B,N,H2,W2), alpha (B,K,H2,W2) -> V (B,N,K), the K region features of the exemplar.
    """
    return torch.matmul(fx2.flatten(2), alpha.flatten(2).transpose(1, 2))


def feature_masking(v: Tensor, gate: Tensor | None) -> Tensor:
    """Eq. 6: V~ = V o g, the gate broadcast over the N channels.

    v (B,N,K), gate (B,K) in [0,1] or None (no masking) -> V~ (B,N,K).
    The gate itself, mlp([gap(Fc1), gap(Fc2)]), is computed by the MSCA module.
    """
    if gate is None:
        return v
    return v * gate[:, None, :]


def channel_attention(fc1: Tensor, psi_weight: Tensor, psi_bias: Tensor | None) -> Tensor:
    """Eq. 7: beta = softmax over the K channels of psi * Fc1.

    fc1 (B,M1,H1,W1), psi_weight (K,M1) or (K,M1,1,1), psi_bias (K,) or None
    -> beta (B,K,H1,W1); at every pixel the K weights sum to 1.
    """
    batch, _, height, width = fc1.shape
    logits = torch.matmul(_as_matrix(psi_weight), fc1.flatten(2))  # (B, K, P1)
    if psi_bias is not None:
        logits = logits + psi_bias[:, None]
    beta = _softmax(logits, dim=1)
    return beta.reshape(batch, logits.shape[1], height, width)


def channel_aggregation(v_masked: Tensor, beta: Tensor) -> Tensor:
    """Eq. 8: F_x1 = V~ beta.

    v_masked (B,N,K), beta (B,K,H1,W1) -> out (B,N,H1,W1).
    """
    batch, _, height, width = beta.shape
    out = torch.matmul(v_masked, beta.flatten(2))  # (B, N, P1)
    return out.reshape(batch, v_masked.shape[1], height, width)


def aggregate_reference(fx2: Tensor, fc2: Tensor, phi_weight: Tensor, phi_bias: Tensor | None) -> Tensor:
    """Eq. 4-5: fx2 (B,N,H2,W2), fc2 (B,M2,H2,W2) -> V (B,N,K)."""
    return spatial_aggregation(fx2, spatial_attention(fx2, fc2, phi_weight, phi_bias))


def distribute_reference(
    v: Tensor, fc1: Tensor, psi_weight: Tensor, psi_bias: Tensor | None, gate: Tensor | None = None
) -> Tensor:
    """Eq. 6-8: V (B,N,K), fc1 (B,M1,H1,W1), gate (B,K) or None -> out (B,N,H1,W1)."""
    beta = channel_attention(fc1, psi_weight, psi_bias)
    out = channel_aggregation(feature_masking(v, gate), beta)
    if is_channels_last(fc1):
        out = out.contiguous(memory_format=torch.channels_last)
    return out


def msca_reference(
    fx2: Tensor,
    fc2: Tensor,
    fc1: Tensor,
    phi_weight: Tensor,
    phi_bias: Tensor | None,
    psi_weight: Tensor,
    psi_bias: Tensor | None,
    gate: Tensor | None = None,
) -> Tensor:
    """Eq. 4-8 end to end.

    fx2 (B,N,H2,W2), fc2 (B,M2,H2,W2), fc1 (B,M1,H1,W1), phi_weight (K,N+M2[,1,1]),
    phi_bias (K,) or None, psi_weight (K,M1[,1,1]), psi_bias (K,) or None, gate (B,K) or None
    -> out (B,N,H1,W1): the exemplar's features aligned to the target layout.
    """
    v = aggregate_reference(fx2, fc2, phi_weight, phi_bias)
    return distribute_reference(v, fc1, psi_weight, psi_bias, gate)
