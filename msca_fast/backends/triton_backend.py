"""The "triton" backend: host launchers, custom ops, autograd and registration.

The kernels live in :mod:`msca_fast.backends.triton_kernels`. The ops
``msca_fast::triton_forward`` and ``msca_fast::triton_backward`` are ``torch.library.custom_op``
with ``register_fake`` and ``register_autograd``, so torch.compile sees one opaque node per
pass (fullgraph works) and autograd runs the two-sweep backward.

Devices: CUDA tensors, with the GPU compiler. Triton chooses between its GPU compiler and its
CPU interpreter once, when it is first imported (TRITON_INTERPRET=1 then selects the
interpreter, and its own library functions such as tl.sum are built for it), so the kernels
are built in that same mode. In an interpreter process the backend also serves CPU tensors
(slow; for testing without a GPU), but only by name: it registers outside "auto".

The kernels launch under the inputs' CUDA device (Triton takes device and stream from the
current one). A batch of zero launches nothing.

fp32 inputs use exact fp32 dots ("ieee") unless :func:`set_fp32_dot_precision` opts in to tf32;
16-bit inputs multiply in their own dtype with float32 accumulation, and the float32 values the
kernels compute (attention maps, V * gate, their gradients) enter the dots unrounded (see
triton_kernels). V and lse are saved in float32. The output is channels_last when fc1 is; each
gradient of a feature map follows the layout of its input (channels_last or contiguous).

The backward's float32 partial sums take one slot per program, not per tile
(:func:`backward_partial_shapes`): about 47 MB at B=16, 1024x1024, N=512, M=200, K=32.
"""

from __future__ import annotations

import contextlib
import importlib
from types import ModuleType

import torch
from torch import Tensor

from msca_fast.backends.devices import BACKWARD_ARGS, FORWARD_ARGS, check_one_device
from msca_fast.backends.fused import fused_msca, register_two_sweep_autograd
from msca_fast.backends.problem import Problem
from msca_fast.backends.registry import Backend, register_backend
from msca_fast.reference import is_channels_last

__all__ = ["set_fp32_dot_precision", "backward_partial_shapes", "import_error", "INTERPRETED", "MAX_K"]

_TILES_PER_SPLIT_INTERPRETED = 2  # small, so the tests' images span several splits
_MIN_TILES_PER_SPLIT_GPU = 2
# Programs per SM that a pass over many tiles is split into: a few waves of the forward's
# aggregate; about one wave of the backward sweeps (at 120-255 registers a thread, one to three
# of their programs fit on an SM), whose float32 partial sums grow with the number of programs.
_FORWARD_PROGRAMS_PER_SM = 4
_BACKWARD_PROGRAMS_PER_SM = 2
_TRITON_DTYPE_NAMES = {torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16"}
_SERVED_DTYPES = tuple(_TRITON_DTYPE_NAMES)
_INT32_LIMIT = 2**31


def _triton_runs_interpreted() -> bool:
    """True when triton was imported under TRITON_INTERPRET=1: its library functions
    (tl.zeros, tl.sum, ...) are then interpreter functions, and ours must be too."""
    import triton
    from triton.runtime.interpreter import InterpretedFunction

    return isinstance(triton.language.standard.zeros, InterpretedFunction)


def _load_kernels() -> ModuleType:
    """msca_fast.backends.triton_kernels, its kernels built in the mode triton was imported in
    (whatever TRITON_INTERPRET says by now)."""
    import triton

    with triton.knobs.runtime.scope():
        triton.knobs.runtime.interpret = _triton_runs_interpreted()
        return importlib.import_module("msca_fast.backends.triton_kernels")


import_error: str | None = None
kernels: ModuleType | None = None
try:
    kernels = _load_kernels()
    MAX_K: int = kernels.MAX_K
    # Fixed for the process: the kernels run in triton's CPU interpreter, not on a GPU.
    INTERPRETED: bool = kernels.INTERPRETED
except Exception as exc:  # a missing or broken triton must never break `import msca_fast`
    import_error = f"{type(exc).__name__}: {exc}"
    MAX_K = 0
    INTERPRETED = False


_fp32_dot_precision = "ieee"


def set_fp32_dot_precision(precision: str) -> None:
    """How the kernels multiply float32 inputs: "ieee" (default: exact float32, CUDA cores)
    or "tf32" (tensor cores, about 1e-3 relative error). 16-bit inputs are unaffected."""
    global _fp32_dot_precision
    if precision not in ("ieee", "tf32"):
        raise ValueError(f'precision: expected "ieee" or "tf32", got {precision!r}')
    _fp32_dot_precision = precision


# --- host-side helpers --------------------------------------------------------------------------


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


def _padded_k(k: int) -> int:
    """BK: K rounded up to the smallest padding the kernels are built for."""
    return next(p for p in kernels.K_PADDINGS if p >= k)


def _new_map(layout_of: Tensor, shape, dtype: torch.dtype | None = None) -> Tensor:
    """An empty (B,C,H,W) tensor, channels_last when ``layout_of`` is, else contiguous."""
    fmt = torch.channels_last if is_channels_last(layout_of) else torch.contiguous_format
    dtype = layout_of.dtype if dtype is None else dtype
    return torch.empty(shape, dtype=dtype, device=layout_of.device, memory_format=fmt)


def _pixels(x: Tensor) -> Tensor:
    """(B,C,H,W) -> (B,C,H*W): a view for contiguous and channels_last tensors, a copy where
    H and W do not merge or where one batch element would span int32 offsets."""
    flat = x.flatten(2)
    if (flat.shape[1] - 1) * flat.stride(1) + (flat.shape[2] - 1) * flat.stride(2) >= _INT32_LIMIT:
        flat = flat.contiguous()
    return flat


def _strides(prefix: str, t: Tensor) -> dict[str, int]:
    """The launch arguments <prefix>b, <prefix>c, <prefix>p: strides of a (B,C,P) view."""
    return {f"{prefix}b": t.stride(0), f"{prefix}c": t.stride(1), f"{prefix}p": t.stride(2)}


def _multiprocessors(device: torch.device) -> int | None:
    """The number of SMs of ``device``'s GPU; None in the interpreter."""
    if device.type != "cuda":
        return None
    return torch.cuda.get_device_properties(device).multi_processor_count


def _split_length(pixels: int, batch: int, block: int, sms: int | None, per_sm: int) -> int:
    """Pixels per split of a kernel that loops over tiles: whole tiles, and enough splits for
    ``per_sm`` programs per SM over the batch (in the interpreter: two tiles per split)."""
    tiles = _cdiv(pixels, block)
    if sms is not None:
        splits = max(1, min(per_sm * sms // batch, _cdiv(tiles, _MIN_TILES_PER_SPLIT_GPU)))
    else:
        splits = _cdiv(tiles, _TILES_PER_SPLIT_INTERPRETED)
    return block * _cdiv(tiles, splits)


def backward_partial_shapes(
    batch: int, n: int, m2: int, m1: int, k: int, p2: int, p1: int, sms: int | None
) -> dict[str, tuple[int, ...]]:
    """Shapes of the float32 partial sums the backward allocates on a GPU of ``sms`` SMs (None:
    the interpreter): one slot per program of sweep A (over the P1 target pixels) and of sweep
    B (over the P2 exemplar pixels)."""
    per_sm = _BACKWARD_PROGRAMS_PER_SM
    splits_a = _cdiv(p1, _split_length(p1, batch, kernels.block_p("sweep_a"), sms, per_sm))
    splits_b = _cdiv(p2, _split_length(p2, batch, kernels.block_p("sweep_b"), sms, per_sm))
    return {
        "dvt": (batch, splits_a, n, k),
        "dpsi": (batch, splits_a, k, m1),
        "dbias": (batch, splits_a, k),
        "dphi": (batch, splits_b, n + m2, k),
    }


def _device_guard(device: torch.device):
    """Makes ``device`` current while the kernels launch: Triton takes the device and the
    stream from torch's current CUDA device, not from the tensors."""
    return torch.cuda.device(device) if device.type == "cuda" else contextlib.nullcontext()


def _launch(kernel: str, grid, **args) -> None:
    """Launches kernels.KERNELS[kernel] on ``grid`` (a tuple, or a function of the config)."""
    kernels.KERNELS[kernel][grid](**args)


def _kernels() -> ModuleType:
    if import_error is not None:
        raise RuntimeError(f"the triton backend is unavailable: {import_error}")
    return kernels


def _dot_options(dtype: torch.dtype) -> dict:
    return kernels.dot_constexprs(_TRITON_DTYPE_NAMES[dtype], _fp32_dot_precision)


def _filled(t: Tensor | None, shape, value: float, like: Tensor) -> Tensor:
    """t made contiguous, or a constant stand-in for an absent optional argument."""
    return t.contiguous() if t is not None else like.new_full(shape, value)


# --- forward and backward on raw tensors -----------------------------------------------------


def _forward(fx2, fc2, fc1, phi, psi, psi_bias, gate) -> tuple[Tensor, Tensor, Tensor]:
    """out (B,N,H1,W1), V (B,N,K) float32, lse (B,K) float32. Shapes as in the module doc."""
    check_one_device("msca_fast::triton_forward", FORWARD_ARGS, (fx2, fc2, fc1, phi, psi, psi_bias, gate))
    with _device_guard(fx2.device):
        return _forward_on_device(fx2, fc2, fc1, phi, psi, psi_bias, gate)


def _forward_on_device(fx2, fc2, fc1, phi, psi, psi_bias, gate) -> tuple[Tensor, Tensor, Tensor]:
    kernels = _kernels()
    batch, n, m2, m1, k = fx2.shape[0], fx2.shape[1], fc2.shape[1], fc1.shape[1], phi.shape[0]
    if batch == 0:  # nothing to compute (and an empty grid is a launch error on the GPU)
        out = _new_map(fc1, (0, n, fc1.shape[2], fc1.shape[3]), fx2.dtype)
        return out, fx2.new_empty((0, n, k), dtype=torch.float32), fx2.new_empty((0, k), dtype=torch.float32)
    bk = _padded_k(k)
    x, c2, c1 = _pixels(fx2), _pixels(fc2), _pixels(fc1)
    p2, p1 = x.shape[2], c1.shape[2]
    phi, psi = phi.contiguous(), psi.contiguous()
    bias = _filled(psi_bias, (k,), 0.0, psi)
    gate = _filled(gate, (batch, k), 1.0, psi)
    dots = _dot_options(fx2.dtype)
    f32 = {"dtype": torch.float32, "device": fx2.device}

    block = kernels.block_p("aggregate")
    split_len = _split_length(p2, batch, block, _multiprocessors(fx2.device), _FORWARD_PROGRAMS_PER_SM)
    splits = _cdiv(p2, split_len)
    part_m = torch.empty(batch, splits, bk, **f32)
    part_l = torch.empty(batch, splits, bk, **f32)
    part_acc = torch.empty(batch, splits, n, bk, **f32)
    _launch(
        "aggregate",
        lambda meta: (_cdiv(n, meta["BLOCK_N"]), splits, batch),
        fx2=x,
        fc2=c2,
        phi=phi,
        part_m=part_m,
        part_l=part_l,
        part_acc=part_acc,
        N=n,
        M=m2,
        K=k,
        P=p2,
        split_len=split_len,
        **_strides("s_x", x),
        **_strides("s_c", c2),
        BK=bk,
        BLOCK_P=block,
        **dots,
    )

    v = torch.empty(batch, n, k, **f32)
    lse = torch.empty(batch, k, **f32)
    _launch(
        "combine",
        lambda meta: (_cdiv(n, meta["BLOCK_N"]), batch),
        part_m=part_m,
        part_l=part_l,
        part_acc=part_acc,
        v=v,
        lse=lse,
        N=n,
        K=k,
        num_splits=splits,
        BK=bk,
    )

    out = _new_map(fc1, (batch, n, fc1.shape[2], fc1.shape[3]), fx2.dtype)
    o = _pixels(out)
    block = kernels.block_p("distribute")
    _launch(
        "distribute",
        (_cdiv(p1, block), batch),
        fc1=c1,
        psi=psi,
        psi_bias=bias,
        v=v,
        gate=gate,
        out=o,
        N=n,
        M=m1,
        K=k,
        P=p1,
        **_strides("s_c", c1),
        **_strides("s_o", o),
        BK=bk,
        BLOCK_P=block,
        **dots,
    )
    return out, v, lse


def _backward(grad_out, fx2, fc2, fc1, phi, psi, psi_bias, gate, v, lse) -> tuple[Tensor, ...]:
    """Sweep A over the target pixels, the tiny (B,N,K) algebra, sweep B over the exemplar's.

    Returns dfx2, dfc2, dfc1, dphi (K,N+M2), dpsi (K,M1), dpsi_bias (K,) and dgate (B,K);
    the last two are empty (0,) tensors when the argument is None.
    """
    args = (grad_out, fx2, fc2, fc1, phi, psi, psi_bias, gate, v, lse)
    check_one_device("msca_fast::triton_backward", BACKWARD_ARGS, args)
    with _device_guard(fx2.device):
        return _backward_on_device(grad_out, fx2, fc2, fc1, phi, psi, psi_bias, gate, v, lse)


def _backward_on_device(grad_out, fx2, fc2, fc1, phi, psi, psi_bias, gate, v, lse) -> tuple[Tensor, ...]:
    kernels = _kernels()
    batch, n, m2, m1, k = fx2.shape[0], fx2.shape[1], fc2.shape[1], fc1.shape[1], phi.shape[0]
    if batch == 0:  # empty feature-map gradients, zero weight gradients, no launch
        return (
            _new_map(fx2, fx2.shape),
            _new_map(fc2, fc2.shape),
            _new_map(fc1, fc1.shape),
            torch.zeros_like(phi, memory_format=torch.contiguous_format),
            torch.zeros_like(psi, memory_format=torch.contiguous_format),
            torch.zeros_like(psi_bias) if psi_bias is not None else fx2.new_empty((0,)),
            gate.new_empty(gate.shape) if gate is not None else fx2.new_empty((0,)),
        )
    bk = _padded_k(k)
    x, c2, c1, go = _pixels(fx2), _pixels(fc2), _pixels(fc1), _pixels(grad_out)
    p2, p1 = x.shape[2], c1.shape[2]
    phi_c, psi_c = phi.contiguous(), psi.contiguous()
    bias = _filled(psi_bias, (k,), 0.0, psi)
    gate_c = _filled(gate, (batch, k), 1.0, psi)
    dots = _dot_options(fx2.dtype)
    f32 = {"dtype": torch.float32, "device": fx2.device}

    sms = _multiprocessors(fx2.device)
    parts = {
        name: torch.zeros(shape, **f32)
        for name, shape in backward_partial_shapes(batch, n, m2, m1, k, p2, p1, sms).items()
    }

    dfc1 = _new_map(fc1, fc1.shape)
    d_c1 = _pixels(dfc1)
    block = kernels.block_p("sweep_a")
    split_len = _split_length(p1, batch, block, sms, _BACKWARD_PROGRAMS_PER_SM)
    _launch(
        "sweep_a",
        (_cdiv(p1, split_len), batch),
        grad_out=go,
        fc1=c1,
        psi=psi_c,
        psi_bias=bias,
        v=v,
        gate=gate_c,
        dfc1=d_c1,
        part_dvt=parts["dvt"],
        part_dpsi=parts["dpsi"],
        part_dbias=parts["dbias"],
        N=n,
        M=m1,
        K=k,
        P=p1,
        split_len=split_len,
        **_strides("s_g", go),
        **_strides("s_c", c1),
        **_strides("s_d", d_c1),
        BK=bk,
        BLOCK_P=block,
        **dots,
    )
    # (B,N,K) and (B,K) algebra: too small for a kernel of its own.
    dvt = parts["dvt"].sum(1)
    dv = dvt * gate_c.float()[:, None, :]
    dgate = (dvt * v).sum(1)
    delta = (dv * v).sum(1)
    dpsi = parts["dpsi"].sum((0, 1))
    dbias = parts["dbias"].sum((0, 1))

    dfx2, dfc2 = _new_map(fx2, fx2.shape), _new_map(fc2, fc2.shape)
    d_x, d_c2 = _pixels(dfx2), _pixels(dfc2)
    block = kernels.block_p("sweep_b")
    split_len = _split_length(p2, batch, block, sms, _BACKWARD_PROGRAMS_PER_SM)
    _launch(
        "sweep_b",
        (_cdiv(p2, split_len), batch),
        fx2=x,
        fc2=c2,
        phi=phi_c,
        lse=lse,
        dv=dv,
        delta=delta,
        dfx2=d_x,
        dfc2=d_c2,
        part_dphi=parts["dphi"],
        N=n,
        M=m2,
        K=k,
        P=p2,
        split_len=split_len,
        **_strides("s_x", x),
        **_strides("s_c", c2),
        **_strides("s_dx", d_x),
        **_strides("s_dc", d_c2),
        BK=bk,
        BLOCK_P=block,
        **dots,
    )
    dphi = parts["dphi"].sum((0, 1)).t().contiguous()

    return (
        dfx2,
        dfc2,
        dfc1,
        dphi.to(phi.dtype),
        dpsi.to(psi.dtype),
        dbias.to(psi_bias.dtype) if psi_bias is not None else fx2.new_empty((0,)),
        dgate.to(gate.dtype) if gate is not None else fx2.new_empty((0,)),
    )


# --- custom ops ----------------------------------------------------------------------------------


@torch.library.custom_op("msca_fast::triton_forward", mutates_args=())
def triton_forward(
    fx2: Tensor,
    fc2: Tensor,
    fc1: Tensor,
    phi: Tensor,
    psi: Tensor,
    psi_bias: Tensor | None,
    gate: Tensor | None,
) -> tuple[Tensor, Tensor, Tensor]:
    """Eq. 4-8 -> (out (B,N,H1,W1), V (B,N,K) float32, lse (B,K) float32). phi's bias, which
    cancels in the softmax, is left to the fused backends' glue (backends/fused.py)."""
    return _forward(fx2, fc2, fc1, phi, psi, psi_bias, gate)


@triton_forward.register_fake
def _(fx2, fc2, fc1, phi, psi, psi_bias, gate):
    check_one_device("msca_fast::triton_forward", FORWARD_ARGS, (fx2, fc2, fc1, phi, psi, psi_bias, gate))
    batch, n, k = fx2.shape[0], fx2.shape[1], phi.shape[0]
    out = _new_map(fc1, (batch, n, fc1.shape[2], fc1.shape[3]), fx2.dtype)
    return out, fx2.new_empty((batch, n, k), dtype=torch.float32), fx2.new_empty((batch, k), dtype=torch.float32)


@torch.library.custom_op("msca_fast::triton_backward", mutates_args=())
def triton_backward(
    grad_out: Tensor,
    fx2: Tensor,
    fc2: Tensor,
    fc1: Tensor,
    phi: Tensor,
    psi: Tensor,
    psi_bias: Tensor | None,
    gate: Tensor | None,
    v: Tensor,
    lse: Tensor,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """-> (dfx2, dfc2, dfc1, dphi, dpsi, dpsi_bias or (0,), dgate or (0,))."""
    return _backward(grad_out, fx2, fc2, fc1, phi, psi, psi_bias, gate, v, lse)


@triton_backward.register_fake
def _(grad_out, fx2, fc2, fc1, phi, psi, psi_bias, gate, v, lse):
    args = (grad_out, fx2, fc2, fc1, phi, psi, psi_bias, gate, v, lse)
    check_one_device("msca_fast::triton_backward", BACKWARD_ARGS, args)
    return (
        _new_map(fx2, fx2.shape),
        _new_map(fc2, fc2.shape),
        _new_map(fc1, fc1.shape),
        phi.new_empty(phi.shape),
        psi.new_empty(psi.shape),
        psi_bias.new_empty(psi_bias.shape) if psi_bias is not None else fx2.new_empty((0,)),
        gate.new_empty(gate.shape) if gate is not None else fx2.new_empty((0,)),
    )


register_two_sweep_autograd(
    "msca_fast::triton_forward", lambda: torch.ops.msca_fast.triton_backward, contiguous_grad=False
)


# --- the backend ---------------------------------------------------------------------------------


def _largest_batch_element(problem: Problem) -> int:
    """Elements of the largest per-batch-element tensor the kernels index with int32 offsets."""
    n, m2, m1 = problem.image_channels, problem.exemplar_label_channels, problem.target_label_channels
    return max((n + m2) * problem.exemplar_pixels, max(n, m1) * problem.target_pixels)


def why_not(problem: Problem) -> str | None:
    """Why the triton backend cannot serve ``problem`` (None when it can)."""
    if import_error is not None:
        return f"triton is not usable: {import_error}"
    if problem.dtype not in _SERVED_DTYPES:
        return f"takes float32, float16 or bfloat16, got {problem.dtype}"
    if problem.num_regions > MAX_K:
        return f"K = {problem.num_regions} exceeds the kernels' limit of {MAX_K}"
    if _largest_batch_element(problem) >= _INT32_LIMIT:
        return "a batch element holds 2**31 elements or more (the kernels use int32 offsets within one)"
    if problem.device.type == "cuda":
        return None
    if problem.device.type == "cpu":
        if INTERPRETED:
            return None
        return (
            "CPU tensors: only with TRITON_INTERPRET=1 (set before triton is imported) and "
            "backend='triton' (triton's interpreter, for testing)"
        )
    return f"runs on CUDA tensors, got {problem.device.type}"


# Above "cuda" (10): see BENCHMARKS.md, "auto" on CUDA tensors; the first GPU run
# (python -m benchmarks.gpu_check) times both.
PRIORITY = 20


def registry_entry(interpreted: bool) -> Backend:
    """The registry's "triton": compiled for the GPU, a candidate for "auto"; interpreted on
    the CPU (slow, for testing), served by name only."""
    return Backend(
        name="triton",
        priority=PRIORITY,
        why_not=why_not,
        msca=fused_msca(lambda: torch.ops.msca_fast.triton_forward),
        description="Triton kernels: flash-decoding forward and two-sweep backward (CUDA; CPU via the interpreter)",
        in_auto=not interpreted,
    )


register_backend(registry_entry(INTERPRETED))
