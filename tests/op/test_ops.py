"""The public functional API (msca_fast.ops): composition, maps, argument checks, backends."""

import re

import pytest
import torch
from torch.testing import assert_close

import msca_fast.backends.registry as registry
from msca_fast import reference as R
from msca_fast.backends import Backend, register_backend, registered_backends
from msca_fast.op_arguments import finite_check
from msca_fast.ops import aggregate, attention_maps, distribute, msca

from helpers import backend_params, call, loop_msca, make_inputs


def _msca(inp, backend="auto", **overrides):
    return call(lambda *args: msca(*args, backend=backend), inp, **overrides)


def _maps(inp):
    return attention_maps(*(inp[n] for n in ("fx2", "fc2", "fc1", "phi_weight", "phi_bias", "psi_weight", "psi_bias")))


# --- values -------------------------------------------------------------------------------


EVERY_BACKEND = ["auto"] + backend_params(make_inputs())


@pytest.mark.parametrize("backend", EVERY_BACKEND)
def test_msca_matches_loops(inputs, backend):
    assert_close(_msca(inputs, backend=backend), loop_msca(**inputs)[-1], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("backend", EVERY_BACKEND)
@pytest.mark.parametrize("drop", ["phi_bias", "psi_bias", "gate"])
def test_msca_optional_arguments_none_match_loops(inputs, backend, drop):
    inp = {**inputs, drop: None}
    assert_close(_msca(inp, backend=backend), loop_msca(**inp)[-1], rtol=1e-12, atol=1e-12)


def test_distribute_of_aggregate_is_msca_exactly(inputs):
    v = aggregate(inputs["fx2"], inputs["fc2"], inputs["phi_weight"], inputs["phi_bias"], backend="reference")
    assert v.shape == (2, 3, 3)
    out = distribute(v, inputs["fc1"], inputs["psi_weight"], inputs["psi_bias"], inputs["gate"], backend="reference")
    assert torch.equal(out, _msca(inputs, backend="reference"))


def test_distribute_of_aggregate_matches_auto_msca(inputs):
    """With "auto" the fused op may run on another backend than the two stages: fp64 rounding apart."""
    v = aggregate(inputs["fx2"], inputs["fc2"], inputs["phi_weight"], inputs["phi_bias"])
    out = distribute(v, inputs["fc1"], inputs["psi_weight"], inputs["psi_bias"], inputs["gate"])
    assert_close(out, _msca(inputs), rtol=1e-12, atol=1e-12)


def test_aggregate_matches_loops(inputs):
    _, v, *_ = loop_msca(**inputs)
    got = aggregate(inputs["fx2"], inputs["fc2"], inputs["phi_weight"], inputs["phi_bias"])
    assert_close(got, v, rtol=1e-12, atol=1e-12)


def test_distribute_gate_defaults_to_none(inputs):
    v = torch.randn(2, 3, 3, dtype=torch.float64)
    with_none = distribute(v, inputs["fc1"], inputs["psi_weight"], inputs["psi_bias"], None)
    default = distribute(v, inputs["fc1"], inputs["psi_weight"], inputs["psi_bias"])
    assert torch.equal(with_none, default)


def test_msca_accepts_conv_shaped_weights(inputs):
    conv = _msca(
        inputs,
        phi_weight=inputs["phi_weight"][:, :, None, None],
        psi_weight=inputs["psi_weight"][:, :, None, None],
    )
    assert torch.equal(conv, _msca(inputs))


@pytest.mark.parametrize("backend", backend_params(make_inputs()))
def test_msca_output_is_channels_last_when_fc1_is(inputs, backend):
    out = _msca(inputs, backend=backend, fc1=inputs["fc1"].contiguous(memory_format=torch.channels_last))
    assert_close(out, _msca(inputs, backend="reference"), rtol=1e-12, atol=1e-12)
    assert out.is_contiguous(memory_format=torch.channels_last) and not out.is_contiguous()


@pytest.mark.parametrize("backend", EVERY_BACKEND)
def test_msca_channels_last_inputs_give_the_same_values(inputs, backend):
    cl = {n: t.contiguous(memory_format=torch.channels_last) if t.dim() == 4 else t for n, t in inputs.items()}
    assert_close(_msca(cl, backend=backend), _msca(inputs, backend="reference"), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("backend", EVERY_BACKEND)
def test_msca_gradients_match_reference(inputs, backend):
    def grads(name):
        tensors = {n: t.clone().requires_grad_() for n, t in inputs.items()}
        out = _msca(tensors, backend=name)
        (out * torch.linspace(-1, 1, out.numel(), dtype=out.dtype).reshape(out.shape)).sum().backward()
        return {n: t.grad for n, t in tensors.items()}

    got, want = grads(backend), grads("reference")
    for name in inputs:
        assert got[name] is not None and got[name].shape == inputs[name].shape, name
        assert_close(got[name], want[name], rtol=1e-10, atol=1e-12, msg=name)


def test_attention_maps_shapes_and_sums():
    inp = make_inputs(B=2, N=3, M2=2, M1=3, K=4, H2=5, W2=7, H1=3, W1=4)
    maps = _maps(inp)
    assert maps.alpha.shape == (2, 4, 5, 7)
    assert maps.beta.shape == (2, 4, 3, 4)
    assert_close(maps.alpha.sum(dim=(2, 3)), torch.ones(2, 4, dtype=torch.float64), rtol=1e-12, atol=1e-12)
    assert_close(maps.beta.sum(dim=1), torch.ones(2, 3, 4, dtype=torch.float64), rtol=1e-12, atol=1e-12)
    alpha, _, _, beta, _ = loop_msca(**inp)
    assert_close(maps.alpha, alpha, rtol=1e-12, atol=1e-12)
    assert_close(maps.beta, beta, rtol=1e-12, atol=1e-12)


def test_attention_maps_recompose_to_msca(inputs):
    alpha, beta = _maps(inputs)
    v = R.spatial_aggregation(inputs["fx2"], alpha)
    out = R.channel_aggregation(R.feature_masking(v, inputs["gate"]), beta)
    assert_close(out, _msca(inputs), rtol=1e-12, atol=1e-12)


def test_attention_maps_accept_conv_shaped_weights(inputs):
    inp = {
        **inputs,
        "phi_weight": inputs["phi_weight"][:, :, None, None],
        "psi_weight": inputs["psi_weight"][:, :, None, None],
    }
    got, want = _maps(inp), _maps(inputs)
    assert torch.equal(got.alpha, want.alpha) and torch.equal(got.beta, want.beta)


# --- argument checks: msca -----------------------------------------------------------------

B, N, M2, M1, K = 2, 3, 2, 2, 3  # the `inputs` fixture's sizes
_f64 = dict(dtype=torch.float64)

BAD_SHAPES = {
    "fx2_3d": ({"fx2": torch.randn(B, N, 12, **_f64)}, "fx2"),
    "fc2_5d": ({"fc2": torch.randn(B, M2, 3, 4, 1, **_f64)}, "fc2"),
    "fc1_3d": ({"fc1": torch.randn(B, M1, 6, **_f64)}, "fc1"),
    "fc2_batch": ({"fc2": torch.randn(B + 1, M2, 3, 4, **_f64)}, r"fc2: expected batch size 2"),
    "fc1_batch": ({"fc1": torch.randn(B + 1, M1, 2, 3, **_f64)}, r"fc1: expected batch size 2"),
    "gate_batch": ({"gate": torch.rand(B + 1, K, **_f64)}, r"gate: expected shape \(B, K\)"),
    "gate_1d_K": ({"gate": torch.rand(K, **_f64)}, r"gate: expected shape \(B, K\) = \(2, 3\)"),
    "gate_B1_broadcastable": ({"gate": torch.rand(1, K, **_f64)}, "gate"),
    "gate_BK1": ({"gate": torch.rand(B, K, 1, **_f64)}, "gate"),
    "gate_wrong_K": ({"gate": torch.rand(B, K + 1, **_f64)}, "gate"),
    "fc2_spatial": ({"fc2": torch.randn(B, M2, 4, 3, **_f64)}, r"fc2: expected the exemplar's spatial size"),
    "phi_channels": ({"phi_weight": torch.randn(K, N + M2 + 1, **_f64)}, r"phi_weight: expected shape"),
    "fx2_channels": ({"fx2": torch.randn(B, N + 1, 3, 4, **_f64)}, "phi_weight"),
    "psi_channels": ({"psi_weight": torch.randn(K, M1 + 1, **_f64)}, r"psi_weight: expected shape"),
    "fc1_channels": ({"fc1": torch.randn(B, M1 + 1, 2, 3, **_f64)}, "psi_weight"),
    "psi_K": ({"psi_weight": torch.randn(K + 1, M1, **_f64)}, r"psi_weight: expected K = 3"),
    "phi_K0": ({"phi_weight": torch.randn(0, N + M2, **_f64)}, r"phi_weight: expected K >= 1"),
    "psi_K0": ({"psi_weight": torch.randn(0, M1, **_f64)}, "psi_weight"),
    "phi_1d": ({"phi_weight": torch.randn(N + M2, **_f64)}, "phi_weight"),
    "phi_3x3_kernel": ({"phi_weight": torch.randn(K, N + M2, 3, 3, **_f64)}, r"phi_weight: expected a 1x1 kernel"),
    "psi_3d": ({"psi_weight": torch.randn(K, M1, 1, **_f64)}, "psi_weight"),
    "phi_bias_shape": ({"phi_bias": torch.randn(K + 1, **_f64)}, r"phi_bias: expected shape \(K,\) = \(3,\)"),
    "phi_bias_2d": ({"phi_bias": torch.randn(K, 1, **_f64)}, "phi_bias"),
    "psi_bias_shape": ({"psi_bias": torch.randn(1, **_f64)}, r"psi_bias: expected shape \(K,\)"),
    "empty_exemplar": (
        {"fx2": torch.randn(B, N, 0, 4, **_f64), "fc2": torch.randn(B, M2, 0, 4, **_f64)},
        r"fx2: expected at least one pixel",
    ),
    "empty_target": ({"fc1": torch.randn(B, M1, 2, 0, **_f64)}, r"fc1: expected at least one pixel"),
}


@pytest.mark.parametrize("bad,match", list(BAD_SHAPES.values()), ids=list(BAD_SHAPES))
def test_msca_rejects_bad_shapes(inputs, bad, match):
    with pytest.raises(ValueError, match=match):
        _msca(inputs, **bad)


NON_FINITE = [
    (name, value)
    for name in ("phi_weight", "phi_bias", "psi_weight", "psi_bias")
    for value in (float("nan"), float("inf"), float("-inf"))
]


@pytest.mark.parametrize("name,value", NON_FINITE, ids=[f"{n}-{v}" for n, v in NON_FINITE])
def test_msca_rejects_non_finite_weights(inputs, name, value):
    bad = inputs[name].clone()
    bad.view(-1)[-1] = value
    with finite_check(), pytest.raises(ValueError, match=rf"{name}: contains NaN or Inf"):
        _msca(inputs, **{name: bad})


@pytest.mark.parametrize("name", ["fx2", "fc2", "fc1", "phi_weight", "phi_bias", "psi_weight", "psi_bias", "gate"])
def test_msca_rejects_dtype_mismatch(inputs, name):
    # fx2 sets the expectation, so a float32 fx2 is reported against the next argument.
    match = (
        r"fc2: expected dtype torch.float32 \(that of fx2\)"
        if name == "fx2"
        else rf"{name}: expected dtype torch.float64"
    )
    with pytest.raises(TypeError, match=match):
        _msca(inputs, **{name: inputs[name].float()})


@pytest.mark.parametrize("name", ["fx2", "fc2", "fc1", "phi_weight", "psi_weight"])
@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.bool, torch.complex64], ids=str)
def test_msca_rejects_unsupported_dtype(inputs, name, dtype):
    with pytest.raises(TypeError, match=name):
        _msca(inputs, **{name: inputs[name].to(dtype)})


@pytest.mark.parametrize("name", ["phi_bias", "psi_bias", "gate"])
def test_msca_rejects_integer_bias_and_gate(inputs, name):
    with pytest.raises(TypeError, match=name):
        _msca(inputs, **{name: inputs[name].to(torch.int64)})


@pytest.mark.parametrize("name", ["fc2", "fc1", "phi_weight", "phi_bias", "psi_weight", "psi_bias", "gate"])
def test_msca_rejects_device_mismatch(inputs, name):
    on_meta = inputs[name].to("meta")
    with pytest.raises(ValueError, match=rf"{name}: expected device cpu \(that of fx2\), got meta"):
        _msca(inputs, **{name: on_meta})


@pytest.mark.parametrize("name", ["fx2", "fc2", "fc1", "phi_weight", "phi_bias", "psi_weight", "psi_bias", "gate"])
@pytest.mark.parametrize("value", [[[1.0]], 1.0, "x"], ids=["list", "float", "str"])
def test_msca_rejects_non_tensor_arguments(inputs, name, value):
    with pytest.raises(TypeError, match=rf"{name}: expected a torch.Tensor"):
        _msca(inputs, **{name: value})


def test_float32_inputs_are_accepted(inputs):
    f32 = {name: t.float() for name, t in inputs.items()}
    out = _msca(f32)
    assert out.dtype == torch.float32
    assert_close(out, _msca(inputs).float(), rtol=1e-5, atol=1e-6)


# --- argument checks: aggregate / distribute / attention_maps ------------------------------


def test_aggregate_rejects_bad_arguments(inputs):
    fx2, fc2, phi, phi_b = (inputs[n] for n in ("fx2", "fc2", "phi_weight", "phi_bias"))
    with pytest.raises(ValueError, match="fc2: expected batch size"):
        aggregate(fx2, fc2[:1], phi, phi_b)
    with pytest.raises(ValueError, match="phi_weight: expected shape"):
        aggregate(fx2, fc2, phi[:, :-1], phi_b)
    with finite_check(), pytest.raises(ValueError, match="phi_bias: contains NaN"):
        aggregate(fx2, fc2, phi, phi_b * float("nan"))
    with pytest.raises(TypeError, match="phi_weight: expected dtype"):
        aggregate(fx2, fc2, phi.float(), phi_b)
    with pytest.raises(ValueError, match="fx2: expected at least one pixel"):
        aggregate(fx2[:, :, :0], fc2[:, :, :0], phi, phi_b)


def test_distribute_rejects_bad_arguments(inputs):
    v = torch.randn(B, N, K, **_f64)
    fc1, psi, psi_b, gate = (inputs[n] for n in ("fc1", "psi_weight", "psi_bias", "gate"))
    with pytest.raises(ValueError, match=r"v: expected a 3-D tensor"):
        distribute(v[None], fc1, psi, psi_b, gate)
    with pytest.raises(ValueError, match=r"v: expected N >= 1 and K >= 1"):
        distribute(v[:, :, :0], fc1, psi[:0], psi_b[:0], gate[:, :0])
    with pytest.raises(ValueError, match=r"fc1: expected batch size 2 \(that of v\)"):
        distribute(v, fc1[:1], psi, psi_b, gate)
    with pytest.raises(ValueError, match=r"psi_weight: expected K = 2 rows"):
        distribute(v[:, :, :2], fc1, psi, psi_b, gate[:, :2])
    with pytest.raises(ValueError, match=r"gate: expected shape \(B, K\)"):
        distribute(v, fc1, psi, psi_b, gate[0])
    with pytest.raises(TypeError, match=r"gate: expected dtype torch.float64"):
        distribute(v, fc1, psi, psi_b, gate.float())
    with finite_check(), pytest.raises(ValueError, match=r"psi_weight: contains NaN or Inf"):
        distribute(v, fc1, psi * float("inf"), psi_b, gate)
    with pytest.raises(ValueError, match=r"fc1: expected at least one pixel"):
        distribute(v, fc1[:, :, :, :0], psi, psi_b, gate)
    with pytest.raises(TypeError, match=r"v: expected a torch.Tensor"):
        distribute(v.tolist(), fc1, psi, psi_b, gate)


def test_attention_maps_rejects_bad_arguments(inputs):
    with pytest.raises(ValueError, match="psi_weight: expected K"):
        _maps({**inputs, "psi_weight": inputs["psi_weight"][:2]})
    with pytest.raises(TypeError, match="fc1: expected dtype"):
        _maps({**inputs, "fc1": inputs["fc1"].float()})


# --- backends ------------------------------------------------------------------------------


def test_reference_backend_is_registered():
    assert "reference" in [b.name for b in registered_backends()]


def test_unknown_backend_lists_known_names(inputs):
    with pytest.raises(ValueError, match=r"unknown backend 'nope'; expected one of \"auto\", .*\"reference\""):
        _msca(inputs, backend="nope")


def test_backend_must_be_a_string(inputs):
    with pytest.raises(TypeError, match="backend: expected a backend name \\(a string\\), got NoneType"):
        _msca(inputs, backend=None)


def test_auto_is_a_reserved_name():
    with pytest.raises(ValueError, match="reserved"):
        register_backend(_dummy("auto", 1, None))


@pytest.fixture
def clean_registry():
    saved = dict(registry._BACKENDS)
    yield registry
    registry._BACKENDS.clear()
    registry._BACKENDS.update(saved)


def _dummy(name, priority, reason, result=None, calls=None):
    def record(stage):
        def run(*args):
            if calls is not None:
                calls.append(stage)
            return result
        return run

    return Backend(
        name=name,
        priority=priority,
        why_not=lambda problem: reason,
        msca=record("msca"),
        aggregate=record("aggregate"),
        distribute=record("distribute"),
        description="test double",
    )


def test_backend_that_cannot_serve_lists_every_reason(inputs, clean_registry):
    register_backend(_dummy("broken", 100, "needs a flux capacitor"))
    with pytest.raises(ValueError) as info:
        _msca(inputs, backend="broken")
    message = str(info.value)
    assert "backend: 'broken' cannot serve" in message
    assert "dtype=torch.float64" in message and "stage=msca" in message
    assert re.search(r"^  broken: needs a flux capacitor$", message, re.M)
    assert re.search(r"^  reference: can serve$", message, re.M)


def test_auto_skips_a_backend_that_cannot_serve(inputs, clean_registry):
    calls = []
    register_backend(_dummy("broken", 100, "not today", calls=calls))
    assert_close(_msca(inputs), R.msca_reference(*(inputs[n] for n in inputs)), rtol=1e-12, atol=1e-12)
    assert calls == []


def test_auto_picks_the_highest_priority_backend_that_can_serve(inputs, clean_registry):
    sentinel = torch.full((1,), 42.0)
    calls = []
    register_backend(_dummy("fast", 1000, None, result=sentinel, calls=calls))
    register_backend(_dummy("faster_but_broken", 2000, "no GPU"))
    register_backend(_dummy("slow", 999, None))
    assert [b.name for b in registered_backends()][:3] == ["faster_but_broken", "fast", "slow"]
    assert _msca(inputs) is sentinel
    v = aggregate(inputs["fx2"], inputs["fc2"], inputs["phi_weight"], inputs["phi_bias"])
    assert v is sentinel
    assert distribute(torch.randn(B, N, K, **_f64), inputs["fc1"], inputs["psi_weight"], inputs["psi_bias"]) is sentinel
    assert calls == ["msca", "aggregate", "distribute"]
    # Asking for the reference by name still gets the reference.
    assert _msca(inputs, backend="reference").shape == (B, N, 2, 3)


def test_no_backend_can_serve(inputs, clean_registry):
    registry._BACKENDS.clear()
    register_backend(_dummy("a", 1, "reason a"))
    register_backend(_dummy("b", 2, "reason b"))
    with pytest.raises(ValueError, match=r"no backend can serve[\s\S]*b: reason b[\s\S]*a: reason a"):
        _msca(inputs)


def test_backend_receives_weights_as_matrices(inputs, clean_registry):
    seen = {}

    def spy(fx2, fc2, fc1, phi, phi_b, psi, psi_b, gate):
        seen["phi"], seen["psi"] = phi.shape, psi.shape
        return fx2

    register_backend(Backend("spy", 10_000, lambda p: None, spy, spy, spy))
    _msca(inputs, phi_weight=inputs["phi_weight"][:, :, None, None], psi_weight=inputs["psi_weight"][:, :, None, None])
    assert seen == {"phi": (K, N + M2), "psi": (K, M1)}


def test_problem_describes_the_call(inputs, clean_registry):
    problems = []

    def why_not(problem):
        problems.append(problem)
        return "just looking"

    register_backend(Backend("probe", 10_000, why_not, None, None, None))
    inp = make_inputs(B=2, N=3, M2=2, M1=4, K=5, H2=3, W2=4, H1=2, W1=5)
    _msca(inp)
    p = problems[0]
    assert (p.stage, p.dtype, p.batch) == ("msca", torch.float64, 2)
    assert (p.image_channels, p.exemplar_label_channels, p.target_label_channels) == (3, 2, 4)
    assert (p.num_regions, p.exemplar_pixels, p.target_pixels) == (5, 12, 10)
    assert p.requires_grad is False
    problems.clear()
    _msca(inp, gate=inp["gate"].clone().requires_grad_())
    assert problems[0].requires_grad is True
    problems.clear()
    with torch.no_grad():
        _msca(inp, gate=inp["gate"].clone().requires_grad_())
    assert problems[0].requires_grad is False
