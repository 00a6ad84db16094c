"""The "reference" backend: the eager PyTorch oracle; serves any device and dtype."""

from msca_fast import reference
from msca_fast.backends.registry import Backend, register_backend


def _always(problem):
    return None


register_backend(
    Backend(
        name="reference",
        priority=0,
        why_not=_always,
        msca=reference.msca_reference,
        aggregate=reference.aggregate_reference,
        distribute=reference.distribute_reference,
        description="eager PyTorch, Eq. 4-8 as written; materialises the K x HW maps",
    )
)
