"""Checkpoint writes that stop part-way, for the crash tests of tests/test_checkpoint_torn.py.

``python tests/torn_writes.py DIRECTORY STEP KEEP BYTES`` calls ``save_checkpoint`` on a
4 MiB state (:func:`big_state`) with torch.save replaced by one that writes the first BYTES
bytes of the real file, prints "stalled" and sleeps: the parent kills it there, mid-write.
"""

from __future__ import annotations

import io
import sys
import time
from collections.abc import Callable

import torch

STALLED = "stalled"


def big_state(step: int) -> dict:
    """A checkpoint-shaped state (load_checkpoint accepts it) of about 4 MiB."""
    return {"model_config": {"num_classes": 3}, "step": step, "weights": torch.full((1 << 20,), float(step))}


def torn_save(limit: int, then: Callable[[], None]) -> Callable:
    """A stand-in for torch.save: the first ``limit`` bytes of what torch.save would write, to
    the same destination (an open file or a path), then ``then()`` (which raises or blocks)."""
    real_save = torch.save

    def save(obj, destination, *args, **kwargs):
        buffer = io.BytesIO()
        real_save(obj, buffer, *args, **kwargs)
        data = buffer.getvalue()
        assert len(data) > limit, f"the state serialises to {len(data)} bytes, not more than {limit}"
        handle = destination if hasattr(destination, "write") else open(destination, "wb")  # noqa: SIM115
        handle.write(data[:limit])
        handle.flush()
        then()

    return save


def stall() -> None:
    print(STALLED, flush=True)
    time.sleep(600)


if __name__ == "__main__":
    from msca_fast.training import checkpoint as ckpt

    directory, step, keep, limit = sys.argv[1], *map(int, sys.argv[2:])
    torch.save = torn_save(limit, stall)
    ckpt.save_checkpoint(big_state(step), directory, step, keep=keep)
    print("finished without stalling", flush=True)
