"""Peers the backends are measured against: the same op written without msca_fast's kernels.

Both take the op's eight arguments (fx2 (B,N,H2,W2), fc2 (B,M2,H2,W2), fc1 (B,M1,H1,W1),
phi_weight (K,N+M2), phi_bias (K,) or None, psi_weight (K,M1), psi_bias (K,) or None,
gate (B,K) or None) and return (B,N,H1,W1).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch._inductor.config
import torch.nn.functional as F
from torch import Tensor

from msca_fast.reference import msca_reference

# One compiled graph per (shape, grad mode): 6 cases x 2 passes would pass dynamo's
# default limit of 8 and silently fall back to eager; fullgraph=True below makes any
# fallback an error instead.
_RECOMPILE_LIMIT = 64


def compiled_reference() -> Callable[..., Tensor]:
    """torch.compile of the eager reference, static shapes (one graph per case and pass).

    dynamic=False: with symbolic shapes the twelve graphs took longer to compile (116 s vs
    76 s, cold cache, 2 cores) and were not faster in a rough comparison. The compile
    happens at the first call of each shape and grad mode, outside the timed region.
    """
    torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, _RECOMPILE_LIMIT)
    # Compile in this process: inductor's worker pool keeps the cores busy for seconds
    # after the first compile (measured: 80 ms instead of 1 ms per call on 2 cores), which
    # would land inside the timed rounds.
    torch._inductor.config.compile_threads = 1
    # The "backward" pass calls one graph's backward repeatedly (retain_graph=True), which
    # a backward compiled with donated (reused-in-place) buffers refuses.
    torch._functorch.config.donated_buffer = False
    return torch.compile(msca_reference, dynamic=False, fullgraph=True)


def sdpa_msca(
    fx2: Tensor,
    fc2: Tensor,
    fc1: Tensor,
    phi_weight: Tensor,
    phi_bias: Tensor | None,
    psi_weight: Tensor,
    psi_bias: Tensor | None,
    gate: Tensor | None = None,
) -> Tensor:
    """MSCA as two ``F.scaled_dot_product_attention`` calls (DESIGN.md section 3).

    Pass 1: K queries (rows of phi) over P2 keys (pixels of [Fx2;Fc2]), values = pixels
    of Fx2, scale 1 -> V (B,K,N). phi_bias is not passed: a per-query constant cancels in
    the softmax over keys, so it changes neither the output nor any gradient.
    Pass 2: P1 queries (pixels of Fc1) over K keys (rows of psi) with psi_bias as an
    additive mask, values = gated V -> (B,P1,N).

    The result is a (B,N,H1,W1) view of the (B,P1,N) SDPA output, i.e. channels_last
    strides; copying it to the contiguous layout would add a full write of the output.
    """
    del phi_bias
    batch, n = fx2.shape[:2]
    k = phi_weight.shape[0]
    keys = torch.cat([fx2, fc2], dim=1).flatten(2).transpose(1, 2)  # (B, P2, N+M2)
    values = fx2.flatten(2).transpose(1, 2)  # (B, P2, N)
    queries = phi_weight.expand(batch, k, phi_weight.shape[1])  # (B, K, N+M2)
    v = F.scaled_dot_product_attention(queries, keys, values, scale=1.0)  # (B, K, N)
    if gate is not None:
        v = v * gate[:, :, None]
    queries = fc1.flatten(2).transpose(1, 2)  # (B, P1, M1)
    keys = psi_weight.expand(batch, k, psi_weight.shape[1])  # (B, K, M1)
    mask = None if psi_bias is None else psi_bias.expand(1, k)  # (1, K), broadcast over queries
    out = F.scaled_dot_product_attention(queries, keys, v, attn_mask=mask, scale=1.0)  # (B, P1, N)
    return out.transpose(1, 2).reshape(batch, n, *fc1.shape[2:])
