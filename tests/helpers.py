"""Test helpers: random MSCA inputs, a plain-Python loop oracle, error metrics."""

from __future__ import annotations

import contextlib
import math

import pytest
import torch

from msca_fast.ops import msca
from msca_fast.tolerances import LOW_PRECISION_TOL, rel_rms, relative_error  # noqa: F401  (the tests import them from here)

ARG_NAMES = ("fx2", "fc2", "fc1", "phi_weight", "phi_bias", "psi_weight", "psi_bias", "gate")

# (B, N, M2, M1, K, H2, W2, H1, W1): odd sizes, 1x1 images, K = 1, above 16 and above 32 (the
# CPU's own limit for its transposed dots; the GPU kernels decline it), exemplar and
# target of different sizes; "chunks" crosses Triton's interpreter blocks, channel chunks and
# splits; "multi_tile" has several CPU tiles and chunks, and several blocks of several tiles
# on the emulated 3-SM GPU; "batched" gives each batch element blocks that end mid-warp.
SHAPES = {  # the backends' shared test shapes
    "tiny": (2, 3, 2, 2, 3, 3, 4, 2, 3),
    "1x1": (1, 5, 3, 4, 2, 1, 1, 1, 1),
    "7x13": (2, 9, 7, 5, 4, 7, 13, 13, 7),
    "K1": (1, 6, 3, 3, 1, 5, 5, 4, 6),
    "K16": (2, 10, 6, 6, 16, 9, 11, 6, 5),
    "K27": (1, 7, 3, 5, 27, 6, 6, 5, 5),
    "K40": (1, 7, 3, 5, 40, 6, 6, 5, 5),
    "chunks": (2, 20, 18, 17, 5, 9, 11, 7, 13),
    "multi_tile": (1, 11, 5, 6, 8, 41, 53, 37, 29),
    "batched": (2, 6, 3, 4, 9, 30, 61, 21, 23),
}

def make_inputs(B=2, N=3, M2=2, M1=2, K=3, H2=3, W2=4, H1=2, W1=3, dtype=torch.float64, seed=0):
    """Random MSCA arguments keyed by the public API's argument names."""
    g = torch.Generator().manual_seed(seed)

    def randn(*shape, scale=1.0):
        return (torch.randn(*shape, generator=g, dtype=torch.float64) * scale).to(dtype)

    return {
        "fx2": randn(B, N, H2, W2),
        "fc2": randn(B, M2, H2, W2),
        "fc1": randn(B, M1, H1, W1),
        "phi_weight": randn(K, N + M2, scale=0.7),
        "phi_bias": randn(K),
        "psi_weight": randn(K, M1, scale=0.7),
        "psi_bias": randn(K),
        "gate": torch.rand(B, K, generator=g, dtype=torch.float64).to(dtype),
    }


SHAPE_KEYS = ("B", "N", "M2", "M1", "K", "H2", "W2", "H1", "W1")


def inputs_for_shape(shape, dtype=torch.float64, device="cpu"):
    """:func:`make_inputs` for a (B, N, M2, M1, K, H2, W2, H1, W1) tuple, drawn in float64 and
    then cast, so every dtype sees the same values."""
    inp = make_inputs(**dict(zip(SHAPE_KEYS, shape)), dtype=torch.float64)
    return {name: t.to(device=device, dtype=dtype) for name, t in inp.items()}


def call(fn, inp, **overrides):
    """fn(*the eight arguments in order), with some replaced."""
    merged = {**inp, **overrides}
    return fn(*(merged[name] for name in ARG_NAMES))


def _softmax(values):
    top = max(values)
    exps = [math.exp(v - top) for v in values]
    total = sum(exps)
    return [x / total for x in exps]


def loop_msca(fx2, fc2, fc1, phi_weight, phi_bias, psi_weight, psi_bias, gate):
    """Eq. 4-8 with explicit loops over Python floats.

    Returns (alpha (B,K,H2,W2), v (B,N,K), v_masked (B,N,K), beta (B,K,H1,W1), out (B,N,H1,W1))
    as float64 tensors.
    """
    B, N, H2, W2 = fx2.shape
    M2, M1, H1, W1 = fc2.shape[1], fc1.shape[1], fc1.shape[2], fc1.shape[3]
    K = phi_weight.shape[0]
    P2, P1 = H2 * W2, H1 * W1
    x = fx2.double().reshape(B, N, P2).tolist()
    c2 = fc2.double().reshape(B, M2, P2).tolist()
    c1 = fc1.double().reshape(B, M1, P1).tolist()
    phi = phi_weight.double().reshape(K, N + M2).tolist()
    psi = psi_weight.double().reshape(K, M1).tolist()
    pb = [0.0] * K if phi_bias is None else phi_bias.double().tolist()
    sb = [0.0] * K if psi_bias is None else psi_bias.double().tolist()
    gt = [[1.0] * K for _ in range(B)] if gate is None else gate.double().tolist()

    alpha, v, vm, beta, out = [], [], [], [], []
    for b in range(B):
        # Eq. 4: softmax over the exemplar pixels, one row per region k.
        a_b = []
        for k in range(K):
            logits = []
            for p in range(P2):
                z = [x[b][n][p] for n in range(N)] + [c2[b][m][p] for m in range(M2)]
                logits.append(sum(phi[k][i] * z[i] for i in range(N + M2)) + pb[k])
            a_b.append(_softmax(logits))
        # Eq. 5 and 6.
        v_b = [[sum(x[b][n][p] * a_b[k][p] for p in range(P2)) for k in range(K)] for n in range(N)]
        vm_b = [[v_b[n][k] * gt[b][k] for k in range(K)] for n in range(N)]
        # Eq. 7: softmax over the K regions, at every target pixel.
        columns = []
        for p in range(P1):
            logits = [sum(psi[k][m] * c1[b][m][p] for m in range(M1)) + sb[k] for k in range(K)]
            columns.append(_softmax(logits))
        be_b = [[columns[p][k] for p in range(P1)] for k in range(K)]
        # Eq. 8.
        o_b = [[sum(vm_b[n][k] * be_b[k][p] for k in range(K)) for p in range(P1)] for n in range(N)]
        alpha.append(a_b)
        v.append(v_b)
        vm.append(vm_b)
        beta.append(be_b)
        out.append(o_b)

    t = lambda data, *shape: torch.tensor(data, dtype=torch.float64).reshape(*shape)  # noqa: E731
    return (
        t(alpha, B, K, H2, W2),
        t(v, B, N, K),
        t(vm, B, N, K),
        t(beta, B, K, H1, W1),
        t(out, B, N, H1, W1),
    )


def backend_params(inp):
    """One pytest.param per registered backend for msca(**inp), skipped where the backend
    cannot serve that problem."""
    from msca_fast.backends import registered_backends
    from msca_fast.op_arguments import validate_msca

    problem = validate_msca(*(inp[name] for name in ARG_NAMES)).problem
    params = []
    for backend in registered_backends():
        reason = backend.reason(problem)
        marks = [pytest.mark.skip(reason=f"{backend.name}: {reason}")] if reason is not None else []
        params.append(pytest.param(backend.name, marks=marks, id=backend.name))
    return params


def forward_and_grads(inp, backend, grad_out):
    """The backend's output and the gradient of every argument given (None for those absent)
    for the upstream gradient grad_out."""
    leaves = {name: t.detach().clone().requires_grad_() if t is not None else None for name, t in inp.items()}
    out = call(lambda *a: msca(*a, backend=backend), leaves)
    out.backward(grad_out)
    return out.detach(), {name: leaves[name].grad if leaves[name] is not None else None for name in ARG_NAMES}


def seeded_grad_out(exact: dict) -> torch.Tensor:
    """A fixed random upstream gradient (B,N,H1,W1) in float64 on the inputs' device."""
    shape = (exact["fx2"].shape[0], exact["fx2"].shape[1], *exact["fc1"].shape[2:])
    grad_out = torch.randn(shape, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    return grad_out.to(exact["fx2"].device)


def compare_to_reference(inp, backend, forward_tol, grad_tol, context=None):
    """The backend on ``inp`` against the reference on the same values in float64: the
    exact result up to float64 rounding, where an fp32 reference would carry an error of
    its own as large as the tolerance (2e-6 on 25k-pixel sums). ``grad_tol``: one bound, or
    one per argument name; ``context``: what must hold while the backend runs."""
    exact = {name: t.double() if t is not None else None for name, t in inp.items()}
    grad_out = seeded_grad_out(exact)
    with context if context is not None else contextlib.nullcontext():
        out, grads = forward_and_grads(inp, backend, grad_out.to(inp["fx2"].dtype))
    ref_out, ref_grads = forward_and_grads(exact, "reference", grad_out)
    assert out.dtype == inp["fx2"].dtype and out.shape == ref_out.shape
    assert rel_rms(out, ref_out) < forward_tol
    for name in (n for n in ARG_NAMES if inp[n] is not None):
        assert grads[name] is not None, f"{name} got no gradient"
        assert grads[name].shape == inp[name].shape and grads[name].dtype == inp[name].dtype, name
        if name == "phi_bias":  # cancels in the softmax: exactly zero
            assert torch.count_nonzero(grads[name]) == 0
            continue
        bound = grad_tol[name] if isinstance(grad_tol, dict) else grad_tol
        assert relative_error(grads[name], ref_grads[name]) < bound, name
