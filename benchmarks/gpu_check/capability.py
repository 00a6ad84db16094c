"""The local GPUs' compute capability from nvidia-smi, for the build's TORCH_CUDA_ARCH_LIST.

nvidia-smi answers in well under a second and imports nothing, so the build does not depend
on the environment step (a cold torch import and CUDA initialisation) having finished.
"""

from __future__ import annotations

import re
import shutil
import subprocess

QUERY = ["nvidia-smi", "--query-gpu=compute_cap", "--format=csv,noheader"]
QUERY_TIMEOUT_S = 15.0
_CAPABILITY = re.compile(r"^\s*(\d+)\.(\d+)\s*$")


def parse_compute_caps(output: str) -> str | None:
    """TORCH_CUDA_ARCH_LIST for nvidia-smi's answer, one "major.minor" line per GPU: the
    distinct capabilities in ascending order joined by ";" ("9.0", "8.0;9.0"); None when any
    line is not a capability (e.g. "[N/A]" or an error message) or there is none."""
    found = set()
    for line in output.splitlines():
        if not line.strip():
            continue
        match = _CAPABILITY.match(line)
        if match is None:
            return None
        found.add((int(match.group(1)), int(match.group(2))))
    return ";".join(f"{major}.{minor}" for major, minor in sorted(found)) or None


def query_arch_list() -> str | None:
    """The local GPUs' TORCH_CUDA_ARCH_LIST from nvidia-smi; None when it is missing, fails or
    says something else."""
    if shutil.which(QUERY[0]) is None:
        return None
    try:
        done = subprocess.run(QUERY, capture_output=True, text=True, timeout=QUERY_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return parse_compute_caps(done.stdout) if done.returncode == 0 else None
