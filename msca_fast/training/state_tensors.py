"""The tensors of a checkpoint state: nested dicts and lists of tensors and plain values."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from torch import Tensor


def named_tensors(state: object, prefix: str = "") -> Iterator[tuple[str, Tensor]]:
    """(dotted name, tensor) for every tensor anywhere in ``state``, e.g. "optimizer_g.state.0.exp_avg"."""
    if isinstance(state, Tensor):
        yield prefix, state
    elif isinstance(state, Mapping):
        for key, item in state.items():
            yield from named_tensors(item, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(state, (list, tuple)):
        for index, item in enumerate(state):
            yield from named_tensors(item, f"{prefix}.{index}" if prefix else str(index))


def state_bytes(state: object) -> int:
    """The bytes of ``state``'s tensors: about the size of its checkpoint file."""
    return sum(t.nelement() * t.element_size() for _, t in named_tensors(state))
