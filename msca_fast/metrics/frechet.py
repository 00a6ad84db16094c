"""The Fréchet distance between two Gaussians, FID's formula (Heusel et al. 2017), in float64 torch.

d^2 = |mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr(sqrt(S1 S2)), where tr(sqrt(S1 S2)) is computed as
the sum of the square roots of the eigenvalues of sqrt(S1) S2 sqrt(S1): that matrix is
similar to S1 S2 but symmetric positive semi-definite, so a symmetric eigendecomposition
suffices and no complex matrix square root (scipy.linalg.sqrtm) is needed.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


def activation_statistics(features: Tensor) -> tuple[Tensor, Tensor]:
    """Mean (D,) and unbiased covariance (D, D), both float64, of features (N, D), N >= 2.

    The covariance divides by N - 1, as numpy.cov does in pytorch-fid and torch-fidelity.
    """
    if not isinstance(features, Tensor):
        raise TypeError(f"features: expected a tensor (N, D), got {type(features).__name__}")
    if features.dim() != 2 or features.shape[0] < 2 or features.shape[1] < 1:
        raise ValueError(
            f"features: expected a 2-D tensor (N, D) with N >= 2 samples, got shape {tuple(features.shape)}"
        )
    features = features.double()
    mu = features.mean(dim=0)
    centred = features - mu
    sigma = centred.T @ centred / (features.shape[0] - 1)
    return mu, sigma


def frechet_distance(mu1: Tensor, sigma1: Tensor, mu2: Tensor, sigma2: Tensor) -> float:
    """Squared Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2) (a float >= 0, up to rounding).

    mu1, mu2: (D,) means; sigma1, sigma2: (D, D) symmetric positive semi-definite covariances.
    Tensors or numpy arrays (e.g. precomputed statistics of pytorch-fid); computed in float64
    on the device of mu1. Eigenvalues at rounding level (slightly negative ones included) count as 0.
    """
    mu1, sigma1 = _as_float64("mu1", mu1), _as_float64("sigma1", sigma1)
    device = mu1.device
    mu2, sigma2 = _as_float64("mu2", mu2).to(device), _as_float64("sigma2", sigma2).to(device)
    sigma1 = sigma1.to(device)
    if mu1.dim() != 1 or mu1.shape[0] == 0:
        raise ValueError(f"mu1: expected a 1-D mean (D,), got shape {tuple(mu1.shape)}")
    dim = mu1.shape[0]
    if mu2.shape != (dim,):
        raise ValueError(f"mu2: expected a mean of shape ({dim},) like mu1, got {tuple(mu2.shape)}")
    for name, sigma in (("sigma1", sigma1), ("sigma2", sigma2)):
        if sigma.shape != (dim, dim):
            raise ValueError(f"{name}: expected a covariance of shape ({dim}, {dim}), got {tuple(sigma.shape)}")
    sqrt_sigma1 = _psd_sqrt(sigma1)
    product = _psd_sqrt_eigenvalues(sqrt_sigma1 @ sigma2 @ sqrt_sigma1)
    distance = (mu1 - mu2).square().sum() + torch.trace(sigma1) + torch.trace(sigma2) - 2.0 * product.sum()
    return distance.item()


def _as_float64(name: str, value: object) -> Tensor:
    if isinstance(value, np.ndarray):
        value = torch.from_numpy(value)
    if not isinstance(value, Tensor):
        raise TypeError(f"{name}: expected a tensor or numpy array, got {type(value).__name__}")
    value = value.double()
    if not torch.isfinite(value).all():
        raise ValueError(f"{name}: expected finite values, got NaN or infinity")
    return value


def _clamped_eigenvalues(eigenvalues: Tensor) -> Tensor:
    """Eigenvalues of a PSD matrix with those at rounding level (<= D * eps * largest) set to 0.

    Rounding leaves the zero eigenvalues of a rank-deficient covariance (fewer samples than
    dimensions) at about +-eps * largest; their square roots would add ~sqrt(eps) each.
    """
    threshold = eigenvalues.shape[0] * torch.finfo(eigenvalues.dtype).eps * eigenvalues.abs().max()
    return torch.where(eigenvalues > threshold, eigenvalues, torch.zeros_like(eigenvalues))


def _psd_sqrt(matrix: Tensor) -> Tensor:
    """The symmetric PSD square root of a symmetric PSD matrix (D, D)."""
    eigenvalues, eigenvectors = torch.linalg.eigh((matrix + matrix.T) / 2)
    return (eigenvectors * _clamped_eigenvalues(eigenvalues).sqrt()) @ eigenvectors.T


def _psd_sqrt_eigenvalues(matrix: Tensor) -> Tensor:
    """Square roots of the (clamped) eigenvalues of a symmetric PSD matrix (D,)."""
    return _clamped_eigenvalues(torch.linalg.eigvalsh((matrix + matrix.T) / 2)).sqrt()
