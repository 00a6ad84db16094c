"""One device for every tensor argument of the fused ops, checked by name.

The C++ ops check it in csrc/msca_common.h; this is the same check for the fake (meta)
implementations, which the dispatcher picks when any one argument is on ``meta`` (the others
would otherwise come back as meta tensors without a word), and for the Triton ops, whose
kernels would be handed a pointer to the wrong memory.
"""

from __future__ import annotations

from torch import Tensor

FORWARD_ARGS = ("fx2", "fc2", "fc1", "phi", "psi", "psi_bias", "gate")
BACKWARD_ARGS = ("grad_out",) + FORWARD_ARGS + ("v", "lse")


def check_one_device(op: str, names: tuple[str, ...], tensors: tuple[Tensor | None, ...]) -> None:
    """Raises RuntimeError naming the first argument not on fx2's device (absent ones skipped).

    ``names`` and ``tensors`` run in parallel, in the op's argument order (one of
    :data:`FORWARD_ARGS`, :data:`BACKWARD_ARGS`).
    """
    given = dict(zip(names, tensors))
    device = given["fx2"].device
    for name, tensor in given.items():
        if tensor is not None and tensor.device != device:
            raise RuntimeError(f"{op}: {name} must be on fx2's device ({device}), got {tensor.device}")
