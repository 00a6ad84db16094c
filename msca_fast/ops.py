"""The public, drop-in MSCA API.

    from msca_fast.ops import msca, aggregate, distribute, attention_maps, MSCA

Shapes: fx2 (B,N,H2,W2) exemplar image features, fc2 (B,M2,H2,W2) exemplar label features,
fc1 (B,M1,H1,W1) target label features, phi_weight (K,N+M2) or (K,N+M2,1,1), psi_weight
(K,M1) or (K,M1,1,1), biases (K,) or None, gate (B,K) or None. The exemplar and target
sizes may differ. ``backend`` is "auto" or the name of a registered backend (see
:func:`msca_fast.backends.registered_backends`).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn

from msca_fast import reference
from msca_fast.backends import check_backend_name, select_backend
from msca_fast.number_checks import check_positive_int
from msca_fast.op_arguments import validate_aggregate, validate_distribute, validate_msca

__all__ = ["msca", "aggregate", "distribute", "attention_maps", "AttentionMaps", "MSCA"]


def msca(
    fx2: Tensor,
    fc2: Tensor,
    fc1: Tensor,
    phi_weight: Tensor,
    phi_bias: Tensor | None,
    psi_weight: Tensor,
    psi_bias: Tensor | None,
    gate: Tensor | None = None,
    *,
    backend: str = "auto",
) -> Tensor:
    """Masked spatial-channel attention (Eq. 4-8) -> aligned features (B,N,H1,W1)."""
    args = validate_msca(fx2, fc2, fc1, phi_weight, phi_bias, psi_weight, psi_bias, gate)
    impl = select_backend(backend, args.problem)
    return impl.msca(
        args.fx2, args.fc2, args.fc1, args.phi_weight, args.phi_bias, args.psi_weight, args.psi_bias, args.gate
    )


def aggregate(
    fx2: Tensor, fc2: Tensor, phi_weight: Tensor, phi_bias: Tensor | None, *, backend: str = "auto"
) -> Tensor:
    """Spatial attention and aggregation (Eq. 4-5) -> V (B,N,K), the exemplar's K region features.

    Mixing the V of two exemplars before :func:`distribute` interpolates their styles.
    """
    args = validate_aggregate(fx2, fc2, phi_weight, phi_bias)
    impl = select_backend(backend, args.problem)
    return impl.aggregate(args.fx2, args.fc2, args.phi_weight, args.phi_bias)


def distribute(
    v: Tensor,
    fc1: Tensor,
    psi_weight: Tensor,
    psi_bias: Tensor | None,
    gate: Tensor | None = None,
    *,
    backend: str = "auto",
) -> Tensor:
    """Feature masking, channel attention and redistribution (Eq. 6-8): V (B,N,K) -> (B,N,H1,W1)."""
    args = validate_distribute(v, fc1, psi_weight, psi_bias, gate)
    impl = select_backend(backend, args.problem)
    return impl.distribute(args.v, args.fc1, args.psi_weight, args.psi_bias, args.gate)


class AttentionMaps(NamedTuple):
    """alpha (B,K,H2,W2): spatial attention over the exemplar, each map sums to 1 (Eq. 4).
    beta (B,K,H1,W1): channel attention at each target pixel, sums to 1 over K (Eq. 7)."""

    alpha: Tensor
    beta: Tensor


def attention_maps(
    fx2: Tensor,
    fc2: Tensor,
    fc1: Tensor,
    phi_weight: Tensor,
    phi_bias: Tensor | None,
    psi_weight: Tensor,
    psi_bias: Tensor | None,
) -> AttentionMaps:
    """The K spatial and K channel attention maps, for visualisation (paper Fig. 6).

    Always computed by the reference: the maps are what the fast backends never write.
    """
    args = validate_msca(fx2, fc2, fc1, phi_weight, phi_bias, psi_weight, psi_bias, None)
    alpha = reference.spatial_attention(args.fx2, args.fc2, args.phi_weight, args.phi_bias)
    beta = reference.channel_attention(args.fc1, args.psi_weight, args.psi_bias)
    return AttentionMaps(alpha, beta)


class MSCA(nn.Module):
    """The masked spatial-channel attention module of the paper (section 3.2), one scale.

    Holds phi (1x1 conv, N+M2 -> K), psi (1x1 conv, M1 -> K) and, with ``masking``, the
    feature-masking MLP of Eq. 6: [gap(Fc1), gap(Fc2)] (M1+M2) -> mlp_hidden -> ReLU -> K
    -> sigmoid. ``mlp_hidden`` defaults to max(K, (M1+M2) // 4).

    ``logit_scale`` multiplies both attention logits (phi's and psi's outputs): an inverse
    softmax temperature, fixed, not learned. The paper gives none (1.0). A larger one makes the
    attention maps sharper at initialisation and lets each optimiser step move the logits further,
    which short trainings need (see RESULTS.md).

    forward(fx2 (B,N,H2,W2), fc2 (B,M2,H2,W2), fc1 (B,M1,H1,W1)) -> (B,N,H1,W1).
    Under autocast the parameters are cast to the features' dtype.
    """

    def __init__(
        self,
        image_channels: int,
        exemplar_label_channels: int,
        target_label_channels: int,
        num_regions: int = 8,
        masking: bool = True,
        mlp_hidden: int | None = None,
        backend: str = "auto",
        logit_scale: float = 1.0,
    ) -> None:
        super().__init__()
        for name, value in (
            ("image_channels", image_channels),
            ("exemplar_label_channels", exemplar_label_channels),
            ("target_label_channels", target_label_channels),
            ("num_regions", num_regions),
        ):
            check_positive_int(name, value)
        check_positive_int("mlp_hidden", mlp_hidden, allow_none=True)
        if mlp_hidden is None:
            mlp_hidden = max(num_regions, (target_label_channels + exemplar_label_channels) // 4)
        if not isinstance(masking, bool):
            raise TypeError(f"masking: expected True or False, got {masking!r}")
        if isinstance(logit_scale, bool) or not isinstance(logit_scale, (int, float)) or not logit_scale > 0:
            raise ValueError(f"logit_scale: expected a positive number, got {logit_scale!r}")
        check_backend_name(backend)
        self.image_channels = image_channels
        self.exemplar_label_channels = exemplar_label_channels
        self.target_label_channels = target_label_channels
        self.num_regions = num_regions
        self.masking = masking
        self.backend = backend
        self.logit_scale = float(logit_scale)
        self.phi = nn.Conv2d(image_channels + exemplar_label_channels, num_regions, kernel_size=1)
        self.psi = nn.Conv2d(target_label_channels, num_regions, kernel_size=1)
        self.gate_mlp = (
            nn.Sequential(
                nn.Linear(target_label_channels + exemplar_label_channels, mlp_hidden),
                nn.ReLU(inplace=True),
                nn.Linear(mlp_hidden, num_regions),
                nn.Sigmoid(),
            )
            if masking
            else None
        )

    def extra_repr(self) -> str:
        return (
            f"num_regions={self.num_regions}, masking={self.masking}, backend={self.backend!r}, "
            f"logit_scale={self.logit_scale}"
        )

    def _params(self, dtype: torch.dtype) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """phi's and psi's weights and biases as the op takes them: times ``logit_scale``, in ``dtype``."""
        params = (self.phi.weight, self.phi.bias, self.psi.weight, self.psi.bias)
        if self.logit_scale == 1.0:
            return tuple(p.to(dtype) for p in params)
        return tuple((p * self.logit_scale).to(dtype) for p in params)

    def _check_features(self, name: str, x: Tensor, channels: int, what: str, ndim: int = 4) -> None:
        layout = f"(B, {channels}, H, W)" if ndim == 4 else f"(B, {channels}, K)"
        if not isinstance(x, Tensor):
            raise TypeError(f"{name}: expected a {layout} tensor, got {type(x).__name__}")
        if x.dim() != ndim or x.shape[1] != channels:
            raise ValueError(f"{name}: expected a {layout} tensor ({what} of this MSCA), got shape {tuple(x.shape)}")

    def _check_exemplar(self, fx2: Tensor, fc2: Tensor) -> None:
        self._check_features("fx2", fx2, self.image_channels, "image_channels")
        self._check_features("fc2", fc2, self.exemplar_label_channels, "exemplar_label_channels")

    def gate(self, fc1: Tensor, fc2: Tensor) -> Tensor | None:
        """Eq. 6's gating vector mlp([gap(Fc1), gap(Fc2)]) -> (B,K) in (0,1); None without masking."""
        self._check_features("fc1", fc1, self.target_label_channels, "target_label_channels")
        self._check_features("fc2", fc2, self.exemplar_label_channels, "exemplar_label_channels")
        return self._gate(fc1, fc2)

    def _gate(self, fc1: Tensor, fc2: Tensor) -> Tensor | None:
        if self.gate_mlp is None:
            return None
        pooled = torch.cat([fc1.mean(dim=(2, 3)), fc2.mean(dim=(2, 3))], dim=1)
        return self.gate_mlp(pooled).to(fc1.dtype)

    def aggregate(self, fx2: Tensor, fc2: Tensor) -> Tensor:
        """Eq. 4-5: the exemplar's region features V (B,N,K)."""
        self._check_exemplar(fx2, fc2)
        phi_w, phi_b, _, _ = self._params(fx2.dtype)
        return aggregate(fx2, fc2, phi_w, phi_b, backend=self.backend)

    def distribute(self, v: Tensor, fc1: Tensor, gate: Tensor | None = None) -> Tensor:
        """Eq. 6-8: V (B,N,K) placed on the target layout -> (B,N,H1,W1)."""
        self._check_features("v", v, self.image_channels, "image_channels", ndim=3)
        _, _, psi_w, psi_b = self._params(v.dtype)
        return distribute(v, fc1, psi_w, psi_b, gate, backend=self.backend)

    def attention_maps(self, fx2: Tensor, fc2: Tensor, fc1: Tensor) -> AttentionMaps:
        """alpha (B,K,H2,W2) and beta (B,K,H1,W1) of this module, for visualisation."""
        self._check_exemplar(fx2, fc2)
        self._check_features("fc1", fc1, self.target_label_channels, "target_label_channels")
        return attention_maps(fx2, fc2, fc1, *self._params(fx2.dtype))

    def forward(self, fx2: Tensor, fc2: Tensor, fc1: Tensor) -> Tensor:
        self._check_exemplar(fx2, fc2)
        self._check_features("fc1", fc1, self.target_label_channels, "target_label_channels")
        phi_w, phi_b, psi_w, psi_b = self._params(fx2.dtype)
        gate = self._gate(fc1, fc2)
        return msca(fx2, fc2, fc1, phi_w, phi_b, psi_w, psi_b, gate, backend=self.backend)
