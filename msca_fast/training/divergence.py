"""Non-finite losses and weights: skip the update, stop after too many in a row, never save them.

A run diverges with a bad learning rate, a bad batch or a float16 overflow. An iteration whose
losses are not all finite changes nothing (no optimizer step, no EMA update, BatchNorm and
spectral-norm buffers put back as they were), the way AMP's GradScaler skips a step with
infinite gradients; ``max_bad_steps`` such iterations in a row stop the run. A checkpoint is
never written from non-finite tensors, so checkpoint rotation only ever removes finite ones
for newer finite ones.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import torch
from torch import Tensor, nn

from msca_fast.errors import RunFailed
from msca_fast.training.state_tensors import named_tensors


class TrainingDiverged(RunFailed):
    """The run stopped because its losses or weights are no longer finite; the message is one
    line naming the iteration, the losses and the checkpoint to resume from."""


def non_finite_names(values: Mapping[str, float]) -> list[str]:
    """The keys of ``values`` whose value is NaN or infinite."""
    return [name for name, value in values.items() if not math.isfinite(value)]


def describe(values: Mapping[str, float], most: int = 3) -> str:
    """"g_total=nan, d_global=inf" for the non-finite entries of ``values`` (the first ``most``,
    then how many more)."""
    names = non_finite_names(values)
    shown = ", ".join(f"{name}={values[name]}" for name in names[:most])
    return shown + (f" and {len(names) - most} more" if len(names) > most else "")


class NonFiniteStreak:
    """Counts iterations with non-finite losses: ``total`` in the run, ``consecutive`` now."""

    def __init__(self, max_bad_steps: int) -> None:
        self.max_bad_steps = max_bad_steps
        self.consecutive = 0
        self.total = 0

    def record(self, finite: bool) -> bool:
        """Count one iteration; True when ``max_bad_steps`` non-finite ones have now come in a row."""
        if finite:
            self.consecutive = 0
            return False
        self.consecutive += 1
        self.total += 1
        return self.consecutive >= self.max_bad_steps

    def state_dict(self) -> dict[str, int]:
        return {"consecutive": self.consecutive, "total": self.total}

    def load_state_dict(self, state: Mapping[str, int]) -> None:
        self.consecutive, self.total = int(state["consecutive"]), int(state["total"])


class BufferSnapshot:
    """A copy of ``modules``' buffers (BatchNorm statistics and counts, spectral-norm vectors),
    taken before an iteration's forward passes update them and put back when it is skipped."""

    def __init__(self, modules: Iterable[nn.Module]) -> None:
        self.buffers = [b for m in modules for b in m.buffers()]
        self.copies = [b.detach().clone() for b in self.buffers]

    def take(self) -> None:
        if self.buffers:
            torch._foreach_copy_(self.copies, self.buffers)

    def restore(self) -> None:
        if self.buffers:
            with torch.no_grad():
                torch._foreach_copy_(self.buffers, self.copies)


def non_finite_tensors(state: object) -> list[str]:
    """The dotted names of the floating-point tensors anywhere in ``state`` (a checkpoint's
    nested dicts and lists) that hold NaN or infinity, sorted; one host read a device."""
    flags: dict[torch.device, tuple[list[str], list[Tensor]]] = {}
    for name, tensor in named_tensors(state):
        if tensor.is_floating_point() or tensor.is_complex():
            names, finite = flags.setdefault(tensor.device, ([], []))
            names.append(name)
            finite.append(torch.isfinite(tensor).all())
    bad = [n for names, finite in flags.values() for n, ok in zip(names, torch.stack(finite).tolist()) if not ok]
    return sorted(bad)
