"""Loads the compiled operator library msca_fast._C, if this install built it.

Importing it runs its TORCH_LIBRARY registrations (the torch.ops.msca_fast namespace).
When it is missing, the pure-PyTorch backends still work and ``load_error`` says why.
"""

from __future__ import annotations

import torch

load_error: str | None = None
try:
    from msca_fast import _C  # noqa: F401
except ImportError as exc:  # not built: `python setup.py build_ext --inplace`
    load_error = f"{exc} (build it with `python setup.py build_ext --inplace` or `pip install --no-build-isolation -e .`)"


def extension_loaded() -> bool:
    """True when msca_fast._C is loaded and its ops are registered."""
    return load_error is None


def built_with_cuda() -> bool:
    """True when the loaded extension compiled the CUDA kernels."""
    return extension_loaded() and bool(torch.ops.msca_fast.built_with_cuda())
