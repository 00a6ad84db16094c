"""Loads the compiled operator libraries, if this install built them.

msca_fast._C registers the torch.ops.msca_fast ops (CPU kernels, and CUDA kernels where
nvcc was present); msca_fast._C_cuda_emulated registers torch.ops.msca_fast_emulated, the
CUDA kernels compiled for the CPU over an emulation of the CUDA execution model. When one
is missing, the other backends still work and ``load_error`` / ``emulation_load_error`` say why.
"""

from __future__ import annotations

import torch

load_error: str | None = None
try:
    from msca_fast import _C  # noqa: F401
except ImportError as exc:  # not built: `python setup.py build_ext --inplace`
    load_error = (
        f"{exc} (build it with `python setup.py build_ext --inplace` or `pip install --no-build-isolation -e .`)"
    )


emulation_load_error: str | None = None
try:
    from msca_fast import _C_cuda_emulated  # noqa: F401
except ImportError as exc:
    emulation_load_error = f"{exc} (build it with `python setup.py build_ext --inplace`)"


def extension_loaded() -> bool:
    """True when msca_fast._C is loaded and its ops are registered."""
    return load_error is None


def built_with_cuda() -> bool:
    """True when the loaded extension compiled the CUDA kernels."""
    return extension_loaded() and bool(torch.ops.msca_fast.built_with_cuda())


def emulation_loaded() -> bool:
    """True when msca_fast._C_cuda_emulated is loaded (torch.ops.msca_fast_emulated)."""
    return emulation_load_error is None
