"""Which compiled extensions a CI run requires but does not have.

Without a compiler a user's test run skips the tests of a missing extension (about a hundred
for the emulated CUDA build alone). Under CI that skip would turn a broken build green, so
tests/conftest.py ends the session with one line naming what is missing and why.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping


def running_in_ci(environ: Mapping[str, str] = os.environ) -> bool:
    """True where CI services (and .ci/run) say so: CI=true."""
    return environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def _switched_off(environ: Mapping[str, str], name: str) -> bool:
    """setup.py's switches, read the way it reads them."""
    return environ.get(name, "0").lower() in ("1", "true", "yes", "on")


def missing_extensions(environ: Mapping[str, str] = os.environ) -> list[str]:
    """One entry per extension the build should have produced but that did not load: msca_fast._C
    always; msca_fast._C_cuda_emulated unless MSCA_FAST_SKIP_EMULATION is set; _C's CUDA kernels
    where nvcc is on PATH and torch is a CUDA build, unless MSCA_FAST_SKIP_CUDA is set."""
    import torch

    from msca_fast import _extension

    missing = []
    if _extension.load_error is not None:
        missing.append(f"msca_fast._C did not load: {_extension.load_error}")
    elif (nvcc := shutil.which("nvcc")) and torch.version.cuda and not _switched_off(environ, "MSCA_FAST_SKIP_CUDA"):
        if not _extension.built_with_cuda():
            missing.append(f"msca_fast._C was built without its CUDA kernels although nvcc is at {nvcc}")
    if _extension.emulation_load_error is not None and not _switched_off(environ, "MSCA_FAST_SKIP_EMULATION"):
        missing.append(f"msca_fast._C_cuda_emulated did not load: {_extension.emulation_load_error}")
    return missing
