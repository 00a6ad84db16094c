"""The MSCA nn.Module: its parameters, forward, state_dict, masking, dtypes and checks."""

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.testing import assert_close

from msca_fast.ops import MSCA, aggregate, attention_maps, distribute, msca

from helpers import LOW_PRECISION_TOL, backend_params, make_inputs, rel_rms

N, M2, M1, K = 3, 2, 4, 3
SIZES = dict(B=2, N=N, M2=M2, M1=M1, K=K, H2=3, W2=5, H1=2, W1=3)


def features(dtype=torch.float64, **sizes):
    inp = make_inputs(**{**SIZES, **sizes}, dtype=dtype)
    return inp["fx2"], inp["fc2"], inp["fc1"]


@pytest.fixture
def module():
    return MSCA(N, M2, M1, num_regions=K).double()


def expected_gate(m, fc1, fc2):
    """mlp([gap(fc1), gap(fc2)]) written out: Linear, ReLU, Linear, Sigmoid."""
    first, second = m.gate_mlp[0], m.gate_mlp[2]
    w1 = first.weight
    hidden = fc1.mean(dim=(2, 3)) @ w1[:, :M1].T + fc2.mean(dim=(2, 3)) @ w1[:, M1:].T + first.bias
    return torch.sigmoid(F.linear(torch.relu(hidden), second.weight, second.bias))


# --- structure -----------------------------------------------------------------------------


def test_layers_have_the_paper_shapes():
    m = MSCA(5, 3, 4, num_regions=6, mlp_hidden=7)
    assert isinstance(m.phi, nn.Conv2d) and isinstance(m.psi, nn.Conv2d)
    assert (m.phi.in_channels, m.phi.out_channels, m.phi.kernel_size) == (8, 6, (1, 1))
    assert (m.psi.in_channels, m.psi.out_channels, m.psi.kernel_size) == (4, 6, (1, 1))
    assert m.phi.bias is not None and m.psi.bias is not None
    layers = list(m.gate_mlp)
    assert [type(layer) for layer in layers] == [nn.Linear, nn.ReLU, nn.Linear, nn.Sigmoid]
    assert (layers[0].in_features, layers[0].out_features) == (7, 7)
    assert (layers[2].in_features, layers[2].out_features) == (7, 6)


@pytest.mark.parametrize(
    "m2,m1,k,hidden",
    [(3, 4, 6, 6), (40, 24, 8, 16), (2, 2, 1, 1), (30, 10, 10, 10), (30, 14, 10, 11)],
)
def test_default_mlp_hidden_is_max_of_k_and_quarter_of_label_channels(m2, m1, k, hidden):
    m = MSCA(5, m2, m1, num_regions=k)
    assert m.gate_mlp[0].out_features == hidden
    assert m.gate_mlp[0].in_features == m1 + m2


def test_default_num_regions_is_8():
    m = MSCA(4, 3, 2)
    assert m.num_regions == 8 and m.phi.out_channels == 8 and m.psi.out_channels == 8


@pytest.mark.parametrize("masking", [True, False])
def test_parameter_count(masking):
    n, m2, m1, k, h = 5, 3, 4, 6, 7
    m = MSCA(n, m2, m1, num_regions=k, masking=masking, mlp_hidden=h)
    expected = (n + m2) * k + k + m1 * k + k
    if masking:
        expected += (m1 + m2) * h + h + h * k + k
    assert sum(p.numel() for p in m.parameters()) == expected


def test_without_masking_there_is_no_gate_mlp():
    m = MSCA(N, M2, M1, num_regions=K, masking=False)
    assert m.gate_mlp is None
    assert not any(name.startswith("gate_mlp") for name, _ in m.named_parameters())
    fx2, fc2, fc1 = features()
    assert m.gate(fc1, fc2) is None


def test_extra_repr_mentions_settings(module):
    assert "num_regions=3" in repr(module) and "masking=True" in repr(module)


# --- forward -------------------------------------------------------------------------------


def test_forward_equals_functional_msca_with_module_gate(module):
    fx2, fc2, fc1 = features()
    gate = expected_gate(module, fc1, fc2)
    assert_close(module.gate(fc1, fc2), gate, rtol=1e-14, atol=1e-14)
    want = msca(fx2, fc2, fc1, module.phi.weight, module.phi.bias, module.psi.weight, module.psi.bias, gate)
    out = module(fx2, fc2, fc1)
    assert out.shape == (2, N, 2, 3)
    assert_close(out, want, rtol=1e-13, atol=1e-13)


def test_logit_scale_multiplies_both_attention_logits():
    fx2, fc2, fc1 = features()
    scaled = MSCA(N, M2, M1, num_regions=K, logit_scale=7.5).double()
    assert "logit_scale=7.5" in repr(scaled)
    gate = scaled.gate(fc1, fc2)
    w = [7.5 * p for p in (scaled.phi.weight, scaled.phi.bias, scaled.psi.weight, scaled.psi.bias)]
    assert_close(scaled(fx2, fc2, fc1), msca(fx2, fc2, fc1, *w, gate), rtol=1e-13, atol=1e-13)
    alpha, beta = scaled.attention_maps(fx2, fc2, fc1)
    logits = torch.einsum("kc,bchw->bkhw", w[2].flatten(1), fc1) + w[3].view(1, -1, 1, 1)
    assert_close(beta, logits.softmax(dim=1), rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="logit_scale"):
        MSCA(N, M2, M1, num_regions=K, logit_scale=0.0)


def test_gate_is_in_unit_interval_and_per_sample(module):
    fx2, fc2, fc1 = features()
    gate = module.gate(fc1, fc2)
    assert gate.shape == (2, K)
    assert ((gate > 0) & (gate < 1)).all()
    assert not torch.equal(gate[0], gate[1])


def test_masking_false_equals_msca_without_gate():
    m = MSCA(N, M2, M1, num_regions=K, masking=False).double()
    fx2, fc2, fc1 = features()
    want = msca(fx2, fc2, fc1, m.phi.weight, m.phi.bias, m.psi.weight, m.psi.bias, None)
    assert_close(m(fx2, fc2, fc1), want, rtol=0, atol=0)


def test_masking_changes_the_output(module):
    fx2, fc2, fc1 = features()
    unmasked = msca(fx2, fc2, fc1, module.phi.weight, module.phi.bias, module.psi.weight, module.psi.bias)
    assert not torch.allclose(module(fx2, fc2, fc1), unmasked)


def test_state_dict_round_trip(module):
    fx2, fc2, fc1 = features()
    torch.manual_seed(123)
    fresh = MSCA(N, M2, M1, num_regions=K).double()
    assert not torch.equal(fresh(fx2, fc2, fc1), module(fx2, fc2, fc1))
    fresh.load_state_dict(module.state_dict())
    assert torch.equal(fresh(fx2, fc2, fc1), module(fx2, fc2, fc1))
    assert set(module.state_dict()) == {
        "phi.weight", "phi.bias", "psi.weight", "psi.bias",
        "gate_mlp.0.weight", "gate_mlp.0.bias", "gate_mlp.2.weight", "gate_mlp.2.bias",
    }


def test_deepcopy_gives_identical_outputs(module):
    fx2, fc2, fc1 = features()
    assert torch.equal(copy.deepcopy(module)(fx2, fc2, fc1), module(fx2, fc2, fc1))


@pytest.mark.parametrize("masking", [True, False])
def test_gradients_reach_every_parameter(masking):
    m = MSCA(N, M2, M1, num_regions=K, masking=masking).double()
    fx2, fc2, fc1 = (t.requires_grad_() for t in features())
    out = m(fx2, fc2, fc1)
    (out * torch.randn_like(out)).sum().backward()
    for name, p in m.named_parameters():
        assert p.grad is not None, name
        if name == "phi.bias":
            # A per-row constant in Eq. 4's logits cancels in the softmax over pixels.
            assert p.grad.abs().max() < 1e-13, name
        else:
            assert p.grad.abs().max() > 1e-6, name
    for t in (fx2, fc2, fc1):
        assert t.grad is not None and t.grad.abs().max() > 1e-6


def test_module_gradcheck():
    m = MSCA(2, 2, 2, num_regions=2, mlp_hidden=3).double()
    fx2, fc2, fc1 = (t.requires_grad_() for t in features(N=2, M2=2, M1=2, K=2, H2=2, W2=2, H1=2, W1=2))
    assert torch.autograd.gradcheck(m, (fx2, fc2, fc1), eps=1e-6, atol=1e-8, rtol=1e-6)


def test_aggregate_distribute_methods_compose_to_forward(module):
    fx2, fc2, fc1 = features()
    v = module.aggregate(fx2, fc2)
    assert v.shape == (2, N, K)
    assert torch.equal(v, aggregate(fx2, fc2, module.phi.weight, module.phi.bias))
    gate = module.gate(fc1, fc2)
    out = module.distribute(v, fc1, gate)
    assert_close(out, module(fx2, fc2, fc1), rtol=1e-14, atol=1e-14)
    ungated = module.distribute(v, fc1)
    assert torch.equal(ungated, distribute(v, fc1, module.psi.weight, module.psi.bias))


def test_mixing_two_exemplars_interpolates(module):
    """V is linear in the mix weight: distribute(t*Va + (1-t)*Vb) mixes the outputs the same way."""
    fxa, fca, fc1 = features()
    fxb, fcb, _ = features(H2=4, W2=2)
    va, vb = module.aggregate(fxa, fca), module.aggregate(fxb, fcb)
    mixed = module.distribute(0.25 * va + 0.75 * vb, fc1)
    want = 0.25 * module.distribute(va, fc1) + 0.75 * module.distribute(vb, fc1)
    assert_close(mixed, want, rtol=1e-12, atol=1e-12)


def test_attention_maps_method(module):
    fx2, fc2, fc1 = features()
    maps = module.attention_maps(fx2, fc2, fc1)
    assert maps.alpha.shape == (2, K, 3, 5) and maps.beta.shape == (2, K, 2, 3)
    want = attention_maps(fx2, fc2, fc1, module.phi.weight, module.phi.bias, module.psi.weight, module.psi.bias)
    assert torch.equal(maps.alpha, want.alpha) and torch.equal(maps.beta, want.beta)
    assert_close(maps.alpha.sum(dim=(2, 3)), torch.ones(2, K, dtype=torch.float64), rtol=1e-12, atol=1e-12)
    assert_close(maps.beta.sum(dim=1), torch.ones(2, 2, 3, dtype=torch.float64), rtol=1e-12, atol=1e-12)


def test_backend_setting_is_used(module):
    module.backend = "no-such-backend"
    fx2, fc2, fc1 = features()
    with pytest.raises(ValueError, match="unknown backend 'no-such-backend'"):
        module(fx2, fc2, fc1)


# --- dtypes --------------------------------------------------------------------------------


def test_float64_module_runs_in_float64(module):
    out = module(*features())
    assert out.dtype == torch.float64


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=str)
def test_low_precision_module_close_to_float32(dtype):
    m = MSCA(8, 6, 5, num_regions=4)
    fx2, fc2, fc1 = features(torch.float32, N=8, M2=6, M1=5, K=4, H2=7, W2=9, H1=6, W1=5)
    want = m(fx2, fc2, fc1)
    low = copy.deepcopy(m).to(dtype)
    out = low(fx2.to(dtype), fc2.to(dtype), fc1.to(dtype))
    assert out.dtype == dtype
    assert rel_rms(out, want) < LOW_PRECISION_TOL[dtype]


AUTOCAST_SIZES = dict(N=8, M2=6, M1=5, K=4, H2=7, W2=9, H1=6, W1=5)


@pytest.mark.parametrize(
    "backend", backend_params(make_inputs(**{**SIZES, **AUTOCAST_SIZES}, dtype=torch.float32))
)
def test_autocast_bfloat16_with_float32_module(backend):
    m = MSCA(8, 6, 5, num_regions=4, backend=backend)
    fx2, fc2, fc1 = features(torch.float32, **AUTOCAST_SIZES)
    want = m(fx2, fc2, fc1)
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        out = m(fx2, fc2, fc1)
    assert out.dtype == torch.bfloat16
    assert m.phi.weight.dtype == torch.float32
    assert rel_rms(out, want) < LOW_PRECISION_TOL[torch.bfloat16]
    assert rel_rms(out, want) > 0  # it really ran in reduced precision


def test_autocast_backward_reaches_float32_parameters():
    m = MSCA(4, 3, 2, num_regions=3)
    fx2, fc2, fc1 = features(torch.float32, N=4, M2=3, M1=2, K=3)
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        out = m(fx2, fc2, fc1)
    out.float().square().mean().backward()
    for name, p in m.named_parameters():
        assert p.grad is not None and p.grad.dtype == torch.float32, name


# --- argument checks -----------------------------------------------------------------------

BAD_CONSTRUCTOR = {
    "image_channels_zero": ((0, 2, 2), {}, "image_channels"),
    "image_channels_float": ((2.0, 2, 2), {}, "image_channels"),
    "image_channels_bool": ((True, 2, 2), {}, "image_channels"),
    "exemplar_label_channels_negative": ((2, -1, 2), {}, "exemplar_label_channels"),
    "target_label_channels_str": ((2, 2, "4"), {}, "target_label_channels"),
    "num_regions_zero": ((2, 2, 2), {"num_regions": 0}, "num_regions"),
    "num_regions_none": ((2, 2, 2), {"num_regions": None}, "num_regions"),
    "mlp_hidden_zero": ((2, 2, 2), {"mlp_hidden": 0}, "mlp_hidden"),
    "mlp_hidden_float": ((2, 2, 2), {"mlp_hidden": 4.0}, "mlp_hidden"),
}


@pytest.mark.parametrize("args,kwargs,name", list(BAD_CONSTRUCTOR.values()), ids=list(BAD_CONSTRUCTOR))
def test_bad_constructor_arguments(args, kwargs, name):
    with pytest.raises(ValueError, match=rf"^{name}: expected a positive int"):
        MSCA(*args, **kwargs)


def test_bool_mlp_hidden_is_rejected():
    with pytest.raises(ValueError, match="mlp_hidden"):
        MSCA(2, 2, 2, mlp_hidden=True)


@pytest.mark.parametrize("masking", [True, False])
def test_wrong_label_channels_name_the_argument(masking):
    m = MSCA(N, M2, M1, num_regions=K, masking=masking).double()
    fx2, fc2, fc1 = features()
    with pytest.raises(ValueError, match=r"fc1: expected a \(B, 4, H, W\) tensor \(target_label_channels"):
        m(fx2, fc2, fc1[:, :-1])
    with pytest.raises(ValueError, match=r"fc2: expected a \(B, 2, H, W\) tensor \(exemplar_label_channels"):
        m(fx2, torch.cat([fc2, fc2], dim=1), fc1)
    with pytest.raises(ValueError, match="fc1"):
        m(fx2, fc2, fc1[0])


def test_wrong_image_channels_raise_value_error(module):
    fx2, fc2, fc1 = features()
    with pytest.raises(ValueError):
        module(fx2[:, :-1], fc2, fc1)


def test_wrong_image_channels_name_fx2(module):
    fx2, fc2, fc1 = features()
    with pytest.raises(ValueError, match="fx2"):
        module(fx2[:, :-1], fc2, fc1)


def test_aggregate_method_rejects_a_shifted_channel_split(module):
    fx2, fc2, _ = features()
    shifted_fx2 = torch.cat([fx2, fc2[:, :1]], dim=1)  # N+1 channels
    shifted_fc2 = fc2[:, 1:]  # M2-1 channels
    with pytest.raises(ValueError, match="fx2|fc2"):
        module.aggregate(shifted_fx2, shifted_fc2)


@pytest.mark.parametrize(
    "name",
    [
        "fx2",
        "fc2",
        "fc1",
    ],
)
def test_non_tensor_input_names_the_argument(module, name):
    args = dict(zip(("fx2", "fc2", "fc1"), features()))
    args[name] = args[name].tolist()
    with pytest.raises((TypeError, ValueError), match=name):
        module(**args)


def test_mismatched_input_dtype_is_rejected(module):
    fx2, fc2, fc1 = features()
    with pytest.raises(TypeError, match="fc2: expected dtype torch.float32"):
        module(fx2.float(), fc2, fc1)
