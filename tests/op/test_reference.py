"""The reference op (msca_fast.reference) against explicit Python loops, plus its properties."""

import pytest
import torch
from torch.testing import assert_close

from msca_fast import reference as R

from helpers import LOW_PRECISION_TOL, call, loop_msca, make_inputs, rel_rms

FP64 = {"rtol": 1e-12, "atol": 1e-12}

SHAPES = {
    "small": dict(B=2, N=3, M2=2, M1=2, K=3, H2=3, W2=4, H1=2, W1=3),
    "exemplar_5x7_target_3x4": dict(B=1, N=2, M2=3, M1=4, K=4, H2=5, W2=7, H1=3, W1=4),
    "K1": dict(B=2, N=2, M2=1, M1=3, K=1, H2=2, W2=3, H1=3, W1=2),
    "one_pixel_each": dict(B=1, N=2, M2=2, M1=2, K=2, H2=1, W2=1, H1=1, W1=1),
}


@pytest.fixture(params=list(SHAPES), ids=list(SHAPES))
def case(request):
    inp = make_inputs(**SHAPES[request.param])
    return inp, loop_msca(**inp)


def test_spatial_attention_matches_loops(case):
    inp, (alpha, *_rest) = case
    got = R.spatial_attention(inp["fx2"], inp["fc2"], inp["phi_weight"], inp["phi_bias"])
    assert_close(got, alpha, **FP64)


def test_spatial_aggregation_matches_loops(case):
    inp, (alpha, v, *_rest) = case
    assert_close(R.spatial_aggregation(inp["fx2"], alpha), v, **FP64)


def test_feature_masking_matches_loops(case):
    inp, (_, v, v_masked, *_rest) = case
    assert_close(R.feature_masking(v, inp["gate"]), v_masked, **FP64)


def test_feature_masking_without_gate_is_identity(inputs):
    v = torch.randn(2, 3, 4, dtype=torch.float64)
    assert R.feature_masking(v, None) is v


def test_channel_attention_matches_loops(case):
    inp, (*_rest, beta, _) = case
    got = R.channel_attention(inp["fc1"], inp["psi_weight"], inp["psi_bias"])
    assert_close(got, beta, **FP64)


def test_channel_aggregation_matches_loops(case):
    _, (_, _, v_masked, beta, out) = case
    assert_close(R.channel_aggregation(v_masked, beta), out, **FP64)


def test_msca_reference_matches_loops(case):
    inp, (*_rest, out) = case
    assert_close(call(R.msca_reference, inp), out, **FP64)


@pytest.mark.parametrize("drop", ["phi_bias", "psi_bias", "gate"])
def test_msca_reference_with_optional_argument_none_matches_loops(inputs, drop):
    inp = {**inputs, drop: None}
    *_rest, out = loop_msca(**inp)
    assert_close(call(R.msca_reference, inp), out, **FP64)


def test_aggregate_then_distribute_is_msca(inputs):
    v = R.aggregate_reference(inputs["fx2"], inputs["fc2"], inputs["phi_weight"], inputs["phi_bias"])
    out = R.distribute_reference(v, inputs["fc1"], inputs["psi_weight"], inputs["psi_bias"], inputs["gate"])
    assert_close(out, call(R.msca_reference, inputs), rtol=0, atol=0)


def test_gradcheck_all_inputs():
    inp = make_inputs(B=2, N=2, M2=2, M1=2, K=3, H2=2, W2=3, H1=2, W1=2)
    tensors = tuple(inp[name].clone().requires_grad_() for name in inp)
    assert torch.autograd.gradcheck(R.msca_reference, tensors, eps=1e-6, atol=1e-8, rtol=1e-6)


def test_gradcheck_conv_shaped_weights():
    inp = make_inputs(B=1, N=2, M2=1, M1=2, K=2, H2=2, W2=2, H1=1, W1=3)
    inp["phi_weight"] = inp["phi_weight"][:, :, None, None]
    inp["psi_weight"] = inp["psi_weight"][:, :, None, None]
    tensors = tuple(inp[name].clone().requires_grad_() for name in inp)
    assert torch.autograd.gradcheck(R.msca_reference, tensors, eps=1e-6, atol=1e-8, rtol=1e-6)


def test_k1_constant_logits_is_global_average_pooling():
    inp = make_inputs(B=2, N=3, M2=2, M1=2, K=1, H2=3, W2=5, H1=2, W1=4)
    phi = torch.zeros_like(inp["phi_weight"])
    out = call(R.msca_reference, inp, phi_weight=phi, gate=None)
    gap = inp["fx2"].mean(dim=(2, 3))[:, :, None, None].expand(-1, -1, 2, 4)
    assert_close(out, gap, **FP64)


def test_phi_bias_has_no_effect_on_output(inputs):
    out = call(R.msca_reference, inputs)
    shifted = call(R.msca_reference, inputs, phi_bias=inputs["phi_bias"] + 5.0)
    no_bias = call(R.msca_reference, inputs, phi_bias=None)
    assert_close(shifted, out, **FP64)
    assert_close(no_bias, out, **FP64)


def test_phi_bias_gradient_is_zero(inputs):
    tensors = {name: t.clone().requires_grad_() for name, t in inputs.items()}
    out = call(R.msca_reference, tensors)
    weights = torch.randn_like(out)
    (out * weights).sum().backward()
    assert tensors["phi_bias"].grad.abs().max() < 1e-13
    # ...while phi's weight does receive a gradient, so the check above is not vacuous.
    assert tensors["phi_weight"].grad.abs().max() > 1e-3


def test_gate_zero_gives_zeros(inputs):
    out = call(R.msca_reference, inputs, gate=torch.zeros_like(inputs["gate"]))
    assert torch.equal(out, torch.zeros_like(out))


def test_gate_one_equals_no_gate(inputs):
    ones = call(R.msca_reference, inputs, gate=torch.ones_like(inputs["gate"]))
    assert_close(ones, call(R.msca_reference, inputs, gate=None), rtol=0, atol=0)


def test_permuting_exemplar_pixels_changes_nothing():
    inp = make_inputs(B=2, N=3, M2=2, M1=2, K=3, H2=3, W2=5, H1=2, W1=3)
    perm = torch.randperm(15)

    def shuffle(x):
        return x.flatten(2)[:, :, perm].reshape(x.shape)

    shuffled = shuffle(inp["fx2"])
    assert not torch.equal(shuffled, inp["fx2"])
    out = call(R.msca_reference, inp, fx2=shuffled, fc2=shuffle(inp["fc2"]))
    assert_close(out, call(R.msca_reference, inp), **FP64)


def test_exemplar_and_target_sizes_differ():
    inp = make_inputs(B=2, N=3, M2=2, M1=3, K=4, H2=5, W2=7, H1=3, W1=4)
    out = call(R.msca_reference, inp)
    assert out.shape == (2, 3, 3, 4)
    assert_close(out, loop_msca(**inp)[-1], **FP64)


def test_alpha_sums_to_one_over_pixels_and_beta_over_regions():
    inp = make_inputs(B=2, N=3, M2=2, M1=3, K=4, H2=5, W2=7, H1=3, W1=4)
    alpha = R.spatial_attention(inp["fx2"], inp["fc2"], inp["phi_weight"], inp["phi_bias"])
    beta = R.channel_attention(inp["fc1"], inp["psi_weight"], inp["psi_bias"])
    assert alpha.shape == (2, 4, 5, 7) and beta.shape == (2, 4, 3, 4)
    assert_close(alpha.sum(dim=(2, 3)), torch.ones(2, 4, dtype=torch.float64), **FP64)
    assert_close(beta.sum(dim=1), torch.ones(2, 3, 4, dtype=torch.float64), **FP64)
    assert (alpha > 0).all() and (beta > 0).all()


@pytest.mark.parametrize("dtype", list(LOW_PRECISION_TOL), ids=str)
def test_low_precision_close_to_float32(dtype):
    inp = make_inputs(B=2, N=8, M2=6, M1=5, K=4, H2=7, W2=9, H1=6, W1=5, dtype=torch.float32)
    expected = call(R.msca_reference, inp)
    low = {name: t.to(dtype) for name, t in inp.items()}
    got = call(R.msca_reference, low)
    assert got.dtype == dtype
    assert torch.isfinite(got).all()
    assert rel_rms(got, expected) < LOW_PRECISION_TOL[dtype]


def test_float32_close_to_float64():
    inp = make_inputs(B=2, N=8, M2=6, M1=5, K=4, H2=7, W2=9, H1=6, W1=5)
    got = call(R.msca_reference, {name: t.float() for name, t in inp.items()})
    assert got.dtype == torch.float32
    assert rel_rms(got, call(R.msca_reference, inp)) < 1e-6


def test_channels_last_matches_contiguous():
    inp = make_inputs(B=2, N=3, M2=2, M1=3, K=4, H2=3, W2=5, H1=2, W1=3)
    cl = {
        name: (t.contiguous(memory_format=torch.channels_last) if t.dim() == 4 else t)
        for name, t in inp.items()
    }
    for name in ("fx2", "fc2", "fc1"):
        assert not cl[name].is_contiguous()
    out = call(R.msca_reference, cl)
    assert_close(out, call(R.msca_reference, inp), **FP64)
    assert out.is_contiguous(memory_format=torch.channels_last) and not out.is_contiguous()


def test_output_layout_follows_fc1():
    inp = make_inputs(B=2, N=3, M2=2, M1=3, K=4, H2=3, W2=5, H1=2, W1=3)
    out = call(R.msca_reference, inp)
    assert out.is_contiguous()
    cl_exemplar = call(
        R.msca_reference,
        inp,
        fx2=inp["fx2"].contiguous(memory_format=torch.channels_last),
        fc2=inp["fc2"].contiguous(memory_format=torch.channels_last),
    )
    assert cl_exemplar.is_contiguous()
    cl_target = call(R.msca_reference, inp, fc1=inp["fc1"].contiguous(memory_format=torch.channels_last))
    assert not cl_target.is_contiguous()
    assert cl_target.is_contiguous(memory_format=torch.channels_last)


def test_matrix_and_conv_shaped_weights_agree(inputs):
    conv = call(
        R.msca_reference,
        inputs,
        phi_weight=inputs["phi_weight"][:, :, None, None],
        psi_weight=inputs["psi_weight"][:, :, None, None],
    )
    assert_close(conv, call(R.msca_reference, inputs), rtol=0, atol=0)


def test_reference_matches_conv2d_formulation(inputs):
    """phi and psi are 1x1 convolutions: Eq. 4 and 7 via F.conv2d give the same maps."""
    phi4 = inputs["phi_weight"][:, :, None, None]
    psi4 = inputs["psi_weight"][:, :, None, None]
    z = torch.cat([inputs["fx2"], inputs["fc2"]], dim=1)
    s = torch.nn.functional.conv2d(z, phi4, inputs["phi_bias"])
    alpha = torch.softmax(s.flatten(2), dim=-1).reshape(s.shape)
    t = torch.nn.functional.conv2d(inputs["fc1"], psi4, inputs["psi_bias"])
    beta = torch.softmax(t, dim=1)
    assert_close(R.spatial_attention(inputs["fx2"], inputs["fc2"], phi4, inputs["phi_bias"]), alpha, **FP64)
    assert_close(R.channel_attention(inputs["fc1"], psi4, inputs["psi_bias"]), beta, **FP64)


@pytest.mark.parametrize("dtype", list(LOW_PRECISION_TOL), ids=str)
def test_low_precision_softmax_runs_in_float32(dtype):
    """16-bit inputs: products in their own dtype, softmax in float32, probabilities cast back."""
    inp = {n: t.to(dtype) for n, t in make_inputs(B=1, N=4, M2=3, M1=3, K=4, H2=16, W2=32, H1=4, W1=4).items()}
    z = torch.cat([inp["fx2"], inp["fc2"]], dim=1).flatten(2)
    s = torch.matmul(inp["phi_weight"], z) + inp["phi_bias"][:, None]
    alpha = torch.softmax(s.float(), dim=-1).to(dtype).reshape(1, 4, 16, 32)
    t = torch.matmul(inp["psi_weight"], inp["fc1"].flatten(2)) + inp["psi_bias"][:, None]
    beta = torch.softmax(t.float(), dim=1).to(dtype).reshape(1, 4, 4, 4)
    got_alpha = R.spatial_attention(inp["fx2"], inp["fc2"], inp["phi_weight"], inp["phi_bias"])
    got_beta = R.channel_attention(inp["fc1"], inp["psi_weight"], inp["psi_bias"])
    assert got_alpha.dtype == dtype and got_beta.dtype == dtype
    assert torch.equal(got_alpha, alpha)
    assert torch.equal(got_beta, beta)
