"""MSCA backends. Importing this package registers every backend this install can offer."""

from msca_fast.backends import (
    extension_backend,  # noqa: F401  (registers "cpu" and "cuda")
    reference_backend,  # noqa: F401  (registers "reference")
    triton_backend,  # noqa: F401  (registers "triton"; a missing triton shows in its why_not)
)
from msca_fast.backends.registry import (
    Backend,
    backend_reasons,
    check_backend_name,
    register_backend,
    registered_backends,
    select_backend,
)

__all__ = [
    "Backend",
    "backend_reasons",
    "check_backend_name",
    "register_backend",
    "registered_backends",
    "select_backend",
]
