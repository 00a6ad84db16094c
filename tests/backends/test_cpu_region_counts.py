"""The cpu backend's float32 kernels by region count K. Its reductions over pixels (V, and
the gradients' sums) take one of four transposed-dot kernels for K <= 32 (1 to 4 vectors of
8 regions) and gemm_dots above 32 (blocks of 2 rows x 4 regions, then one region at a time
for K % 4 != 0, and one row at a time for an odd row count). Against the float64 reference
(output and every gradient, the conformance suite's tolerances): each kernel's first and last
K in float32 (the conformance suite runs K = 1..32 in float64 on this backend), and K = 33,
37, 41, 63, 64 in float32, float64 and bfloat16; with regions absent from the exemplar, the
target or the gate, and with the regions reordered.

Sizes are chosen to reach every tail: N = 5 and M1 = 3 rows (odd), N + M2 = 9, exemplars of
42 pixels and targets of 25 (not multiples of the 8-float vectors).
"""

from __future__ import annotations

import pytest
import torch

from msca_fast import _extension
from msca_fast.ops import msca
from msca_fast.tolerances import TOLERANCE

from helpers import ARG_NAMES, call, compare_to_reference, forward_and_grads, rel_rms, relative_error
from helpers import inputs_for_shape as inputs_for
from test_backend_conformance import Target, check_against_reference

pytestmark = pytest.mark.skipif(not _extension.extension_loaded(), reason=f"{_extension.load_error}")

REGION_COUNTS = [33, 37, 41, 63, 64]
B, N, M2, M1, H2, W2, H1, W1 = 2, 5, 4, 3, 6, 7, 5, 5
CPU = Target("cpu", "cpu")


def shape(k: int) -> tuple:
    return (B, N, M2, M1, k, H2, W2, H1, W1)


@pytest.mark.parametrize("k", [1, 8, 9, 16, 17, 24, 25, 32])
def test_float32_region_counts_of_each_transposed_kernel(k):
    check_against_reference(CPU, inputs_for(shape(k), torch.float32))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16], ids=["fp32", "fp64", "bf16"])
@pytest.mark.parametrize("k", REGION_COUNTS)
def test_region_counts_above_32_match_reference(k, dtype):
    check_against_reference(CPU, inputs_for(shape(k), dtype))


def label_masks(labels: torch.Tensor, k: int, scale: float) -> torch.Tensor:
    """(B,H,W) integer labels -> (B,k,H,W) one-hot maps times ``scale``."""
    return torch.nn.functional.one_hot(labels, k).permute(0, 3, 1, 2).to(torch.float64) * scale


def masked_inputs(k: int, scale: float) -> dict:
    """Label-mask features: region j's label channel selected by phi and psi (plus a little
    of everything else), the exemplar missing the labels of the last region and of region
    k // 2, the target missing region 1's, and the gate 0 for the last region and region 0."""
    g = torch.Generator().manual_seed(k)
    present = torch.tensor([j for j in range(k) if j not in (k - 1, k // 2)])
    exemplar_labels = present[torch.randint(len(present), (B, H2, W2), generator=g)]
    target_labels = torch.randint(k - 1, (B, H1, W1), generator=g)
    target_labels[target_labels >= 1] += 1  # never label 1
    eye = torch.eye(k, dtype=torch.float64)
    noise = lambda *size: 0.1 * torch.randn(*size, generator=g, dtype=torch.float64)  # noqa: E731
    gate = torch.rand(B, k, generator=g, dtype=torch.float64)
    gate[:, [0, k - 1]] = 0.0
    return {
        "fx2": torch.randn(B, N, H2, W2, generator=g, dtype=torch.float64),
        "fc2": label_masks(exemplar_labels, k, scale),
        "fc1": label_masks(target_labels, k, scale),
        "phi_weight": torch.cat([noise(k, N), eye + noise(k, k)], dim=1),
        "phi_bias": None,
        "psi_weight": eye + noise(k, k),
        "psi_bias": noise(k),
        "gate": gate,
    }


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["fp32", "fp64"])
@pytest.mark.parametrize("k", REGION_COUNTS)
def test_absent_regions_match_reference(k, dtype):
    """Regions with no exemplar pixel, no target pixel or a zero gate: the last region's
    forward contribution is gated off, so only the gradients can show it computed wrong."""
    inp = {name: t.to(dtype) if t is not None else None for name, t in masked_inputs(k, scale=2.0).items()}
    compare_to_reference(inp, "cpu", *TOLERANCE[dtype])


def region_mean(features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(N,H,W) features averaged over the pixels of ``mask`` (H,W), or over all of them when
    the mask is empty: a region's exemplar colour under a one-hot attention."""
    return features[:, mask].mean(dim=1) if mask.any() else features.flatten(1).mean(dim=1)


@pytest.mark.parametrize("k", [33, 63])
def test_saturated_label_masks_copy_region_means(k):
    """Label masks scaled so far (logits 300) that both softmaxes are exact one-hots: each
    target pixel then gets gate * (mean of the exemplar's features over its own label), and
    a label absent from the exemplar the mean over the whole exemplar (its logits are equal)."""
    inp = masked_inputs(k, scale=300.0)
    inp.update(phi_weight=torch.cat([torch.zeros(k, N), torch.eye(k)], 1), psi_weight=torch.eye(k), psi_bias=None)
    inp["gate"][:, k - 1] = 0.5  # the last region (absent from the exemplar) shows in the output
    inp = {name: t.float() if t is not None else None for name, t in inp.items()}
    exemplar_labels, target_labels = inp["fc2"].argmax(1), inp["fc1"].argmax(1)
    fx2, gate = inp["fx2"].double(), inp["gate"].double()
    expected = torch.zeros(B, N, H1, W1, dtype=torch.float64)
    for b in range(B):
        means = torch.stack([region_mean(fx2[b], exemplar_labels[b] == j) for j in range(k)], dim=1)  # (N, k)
        expected[b] = (means * gate[b])[:, target_labels[b]]
    out = call(lambda *args: msca(*args, backend="cpu"), inp)
    assert rel_rms(out, expected) < TOLERANCE[torch.float32][0]


@pytest.mark.parametrize("k", [33, 37])
def test_reordering_regions_permutes_the_results(k):
    """Regions are interchangeable: reversing their order (the last region moves to the
    blocked path, the first into the one-at-a-time tail) leaves the output unchanged and
    reverses the region axis of the weights' and the gate's gradients."""
    inp = inputs_for(shape(k), torch.float32)
    per_region = {"phi_weight": 0, "phi_bias": 0, "psi_weight": 0, "psi_bias": 0, "gate": 1}
    flipped = {name: t.flip(per_region[name]) if name in per_region else t for name, t in inp.items()}
    grad_out = torch.randn(B, N, H1, W1, generator=torch.Generator().manual_seed(2))
    out, grads = forward_and_grads(inp, "cpu", grad_out)
    out_flipped, grads_flipped = forward_and_grads(flipped, "cpu", grad_out)
    output_tol, grad_tol = TOLERANCE[torch.float32]
    assert rel_rms(out_flipped, out) < output_tol
    for name in ARG_NAMES:
        unflipped = grads_flipped[name].flip(per_region[name]) if name in per_region else grads_flipped[name]
        assert relative_error(unflipped, grads[name]) < grad_tol, name

