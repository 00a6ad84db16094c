"""An empty batch (B = 0) gives an empty output and zero weight gradients on the reference."""

from __future__ import annotations

import pytest
import torch

from msca_fast import reference as R
from msca_fast.op_arguments import validate_aggregate, validate_distribute, validate_msca
from msca_fast.ops import MSCA, aggregate, attention_maps, distribute, msca

from helpers import ARG_NAMES, call, make_inputs

# N=3, M2=2, M1=2, K=3, exemplar 3x4, target 2x3 (helpers.make_inputs), with B = 0.
N, K, H1, W1 = 3, 3, 2, 3
DTYPES = [torch.float64, torch.float32, torch.bfloat16]


def _empty(dtype=torch.float64, **overrides):
    inputs = make_inputs(B=0, dtype=dtype)
    inputs.update(overrides)
    return inputs


def _reference(*args):
    return msca(*args, backend="reference")


def test_validation_accepts_an_empty_batch():
    inputs = _empty()
    assert validate_msca(*(inputs[n] for n in ARG_NAMES)).problem.batch == 0
    assert validate_aggregate(inputs["fx2"], inputs["fc2"], inputs["phi_weight"], None).problem.batch == 0
    v = torch.zeros(0, N, K, dtype=torch.float64)
    assert validate_distribute(v, inputs["fc1"], inputs["psi_weight"], None, inputs["gate"]).problem.batch == 0


def test_validation_still_rejects_a_batch_mismatch_against_an_empty_batch():
    inputs = _empty(fc1=make_inputs(B=1)["fc1"])
    with pytest.raises(ValueError, match=r"^fc1: expected batch size 0 \(that of fx2\)"):
        call(_reference, inputs)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_reference_functions_return_empty_results(dtype):
    inputs = _empty(dtype)
    out = call(R.msca_reference, inputs)
    assert out.shape == (0, N, H1, W1) and out.dtype == dtype
    alpha = R.spatial_attention(inputs["fx2"], inputs["fc2"], inputs["phi_weight"], inputs["phi_bias"])
    beta = R.channel_attention(inputs["fc1"], inputs["psi_weight"], inputs["psi_bias"])
    assert alpha.shape == (0, K, 3, 4) and beta.shape == (0, K, H1, W1)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("optional", ["all", "no_bias_no_gate"])
def test_msca_on_the_reference_backend_gives_empty_output_and_zero_weight_gradients(dtype, optional):
    overrides = {"psi_bias": None, "phi_bias": None, "gate": None} if optional == "no_bias_no_gate" else {}
    inputs = _empty(dtype, **overrides)
    leaves = {n: t.requires_grad_(True) for n, t in inputs.items() if t is not None}
    out = call(_reference, inputs)
    assert out.shape == (0, N, H1, W1) and out.dtype == dtype
    grads = torch.autograd.grad(out, list(leaves.values()), torch.ones_like(out), allow_unused=True)
    for (name, leaf), grad in zip(leaves.items(), grads):
        assert grad is not None, f"{name}: no gradient"
        assert grad.shape == leaf.shape, name
        assert torch.count_nonzero(grad) == 0, name
    weight_grads = [g for n, g in zip(leaves, grads) if n in ("phi_weight", "psi_weight")]
    assert all(g.numel() > 0 for g in weight_grads)


def test_channels_last_empty_batch():
    inputs = _empty()
    inputs = {n: t.contiguous(memory_format=torch.channels_last) if t.dim() == 4 else t for n, t in inputs.items()}
    assert call(_reference, inputs).shape == (0, N, H1, W1)


def test_aggregate_distribute_and_attention_maps_accept_an_empty_batch():
    inputs = _empty()
    v = aggregate(inputs["fx2"], inputs["fc2"], inputs["phi_weight"], inputs["phi_bias"], backend="reference")
    assert v.shape == (0, N, K)
    out = distribute(v, inputs["fc1"], inputs["psi_weight"], inputs["psi_bias"], inputs["gate"], backend="reference")
    assert out.shape == (0, N, H1, W1)
    alpha, beta = attention_maps(*(inputs[n] for n in ARG_NAMES[:-1]))
    assert alpha.shape == (0, K, 3, 4) and beta.shape == (0, K, H1, W1)


def test_module_with_an_empty_batch_gives_zero_parameter_gradients():
    module = MSCA(N, 2, 2, num_regions=K, masking=True, backend="reference").double()
    inputs = _empty()
    out = module(inputs["fx2"], inputs["fc2"], inputs["fc1"])
    assert out.shape == (0, N, H1, W1)
    out.sum().backward()
    grads = {name: p.grad for name, p in module.named_parameters()}
    assert any(g is not None for g in grads.values())
    for name, grad in grads.items():
        assert grad is None or torch.count_nonzero(grad) == 0, name
