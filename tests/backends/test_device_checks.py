"""Every tensor argument of the fused ops must be on fx2's device; one argument elsewhere is
refused with an error naming it: by the C++ kernels (csrc/msca_common.h), by the fake (meta)
implementations the dispatcher picks when any argument is on ``meta``, and by the Triton ops.

On the CPU the "other device" is ``meta``; the tests marked ``gpu`` put each argument in turn
on the CPU beside CUDA tensors.
"""

from __future__ import annotations

import pytest
import torch

from msca_fast import _extension
from msca_fast.backends import triton_backend
from msca_fast.backends.devices import BACKWARD_ARGS, FORWARD_ARGS

from helpers import inputs_for_shape

SHAPE = (2, 3, 2, 2, 3, 3, 4, 2, 3)


def libraries() -> list[str]:
    """The op namespaces whose msca_forward / msca_backward this build holds."""
    names = []
    if _extension.extension_loaded():
        names.append("msca_fast")
    if _extension.emulation_loaded():
        names.append("msca_fast_emulated")
    return names


def forward_args(device="cpu", dtype=torch.float32) -> dict[str, torch.Tensor]:
    """The forward op's arguments by schema name."""
    inp = inputs_for_shape(SHAPE, dtype, device)
    names = {"phi_weight": "phi", "psi_weight": "psi"}
    return {names.get(n, n): t for n, t in inp.items() if n != "phi_bias"}


def backward_args(device="cpu", dtype=torch.float32) -> dict[str, torch.Tensor]:
    """The backward op's arguments by schema name, V and lse from the CPU kernels' forward."""
    fwd = forward_args("cpu", dtype)
    out, v, lse = torch.ops.msca_fast.msca_forward(*(fwd[n] for n in FORWARD_ARGS))
    args = {"grad_out": torch.randn_like(out), **fwd, "v": v, "lse": lse}
    return {n: t.to(device) for n, t in args.items()}


def moved(args: dict[str, torch.Tensor], name: str, device: str) -> dict[str, torch.Tensor]:
    return {n: t.to(device) if n == name else t for n, t in args.items()}


def expected_message(name: str, device_of_fx2: str, device: str) -> str:
    """fx2 itself moved: the first other argument checked is the one named."""
    if name == "fx2":
        return rf"(fc2|grad_out) must be on fx2's device \({device}\), got {device_of_fx2}"
    return rf"{name} must be on fx2's device \({device_of_fx2}\), got {device}"


needs_extension = pytest.mark.skipif(not libraries(), reason="no operator library built")


# (op direction, argument name) for every argument of both ops.
ARGUMENTS = [("forward", n) for n in FORWARD_ARGS] + [("backward", n) for n in BACKWARD_ARGS]


def args_with_one_on(device: str, direction: str, name: str) -> list[torch.Tensor]:
    """The op's arguments in schema order, on the CPU but ``name`` on ``device``."""
    args = forward_args() if direction == "forward" else backward_args()
    names = FORWARD_ARGS if direction == "forward" else BACKWARD_ARGS
    placed = moved(args, name, device)
    return [placed[n] for n in names]


def cpu_kernel(op, args):
    """The op's CPU kernel itself, past the dispatcher's choice of the fake for meta inputs."""
    return op.default.redispatch(torch._C.DispatchKeySet(torch._C.DispatchKey.CPU), *args)


@needs_extension
@pytest.mark.parametrize("library", libraries() or ["none"])
@pytest.mark.parametrize("direction, name", ARGUMENTS)
@pytest.mark.parametrize("refused_by", ["fake", "kernel"])
def test_argument_on_meta_is_refused(library, direction, name, refused_by):
    """By the fake (what the dispatcher picks for a meta argument) and by the C++ kernel itself."""
    op = getattr(getattr(torch.ops, library), f"msca_{direction}")
    args = args_with_one_on("meta", direction, name)
    with pytest.raises(RuntimeError, match=expected_message(name, "cpu", "meta")):
        op(*args) if refused_by == "fake" else cpu_kernel(op, args)


@needs_extension
@pytest.mark.parametrize("library", libraries() or ["none"])
def test_every_argument_on_meta_still_gives_shapes(library):
    """Shape inference on meta tensors, what torch.compile does, is untouched by the check."""
    ops = getattr(torch.ops, library)
    out, v, lse = ops.msca_forward(*(forward_args("meta")[n] for n in FORWARD_ARGS))
    assert (out.device.type, out.shape, v.shape, lse.shape) == ("meta", (2, 3, 2, 3), (2, 3, 3), (2, 3))
    grads = ops.msca_backward(*(backward_args("meta")[n] for n in BACKWARD_ARGS))
    assert [g.device.type for g in grads] == ["meta"] * 7


triton_ops = pytest.mark.skipif(triton_backend.import_error is not None, reason=f"{triton_backend.import_error}")


@triton_ops
@needs_extension
@pytest.mark.parametrize("direction, name", ARGUMENTS)
def test_triton_argument_on_meta_is_refused(direction, name):
    op = getattr(torch.ops.msca_fast, f"triton_{direction}")
    with pytest.raises(RuntimeError, match=expected_message(name, "cpu", "meta")):
        op(*args_with_one_on("meta", direction, name))


# --- on a GPU: one argument on the CPU beside CUDA tensors ------------------------------------------

GPU_OPS = [("msca_fast", "msca"), ("msca_fast", "triton")]


def _gpu_op(library: str, kind: str, direction: str):
    ops = getattr(torch.ops, library)
    return getattr(ops, f"msca_{direction}" if kind == "msca" else f"triton_{direction}")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("library, kind", GPU_OPS)
@pytest.mark.parametrize("name", BACKWARD_ARGS)
def test_one_argument_on_the_cpu_beside_cuda_tensors_is_refused(library, kind, name):
    if kind == "msca" and not _extension.built_with_cuda():
        pytest.skip("the extension was built without its CUDA kernels")
    if kind == "triton" and triton_backend.import_error is not None:
        pytest.skip(triton_backend.import_error)
    if name in FORWARD_ARGS:
        args = moved(forward_args("cuda"), name, "cpu")
        with pytest.raises(RuntimeError, match=expected_message(name, "cuda:0", "cpu")):
            _gpu_op(library, kind, "forward")(*(args[n] for n in FORWARD_ARGS))
    args = moved(backward_args("cuda"), name, "cpu")
    with pytest.raises(RuntimeError, match=expected_message(name, "cuda:0", "cpu")):
        _gpu_op(library, kind, "backward")(*(args[n] for n in BACKWARD_ARGS))
