"""GPU-check step "environment": versions, the device and the tools the build needs, as JSON.

    python -m benchmarks.gpu_check.env --out environment.json

Every probe is guarded: one that fails records its error and the rest still run. The JSON is
rewritten after each group of probes, the quick ones (packages, nvcc, nvidia-smi) first, so
a step stopped during a slow torch import or CUDA initialisation keeps what it found.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import shutil
import subprocess
import sys
from collections.abc import Callable
from typing import Any

from benchmarks.gpu_check.capability import query_arch_list

PACKAGES = ("torch", "triton", "torchvision", "numpy", "pillow", "tqdm", "setuptools", "ninja", "pytest",
            "pytest-benchmark", "lpips", "torch-fidelity")  # fmt: skip


def _guard(probe: Callable[[], Any]) -> Any:
    try:
        return probe()
    except Exception as exc:  # noqa: BLE001 - a probe's failure is data for the report
        return f"error: {type(exc).__name__}: {exc}"


def _package_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _command_output(argv: list[str]) -> str | None:
    """The command's stdout, stripped; None when the program is not on PATH."""
    if shutil.which(argv[0]) is None:
        return None
    done = subprocess.run(argv, capture_output=True, text=True, timeout=20)
    return (done.stdout or done.stderr).strip()


def _torch_info() -> dict[str, Any]:
    import torch

    info: dict[str, Any] = {
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "cudnn": _guard(lambda: torch.backends.cudnn.version()),
        "cuda_available": torch.cuda.is_available(),
        "device_count": torch.cuda.device_count() if torch.cuda.is_available() else 0,
    }
    if info["cuda_available"]:
        props = torch.cuda.get_device_properties(0)
        info.update(
            device_name=props.name,
            capability=list(torch.cuda.get_device_capability(0)),
            memory_gib=round(props.total_memory / 2**30, 1),
            multiprocessors=props.multi_processor_count,
        )
    return info


def _cuda_home() -> str | None:
    from torch.utils.cpp_extension import CUDA_HOME

    return CUDA_HOME


def collect(save: Callable[[dict], None] = lambda env: None) -> dict[str, Any]:
    """Everything the report's environment table shows; errors are recorded as strings.
    ``save(env)`` is called after each group of probes."""
    env: dict[str, Any] = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "packages": {name: _package_version(name) for name in PACKAGES},
    }
    nvcc = _guard(lambda: _command_output(["nvcc", "--version"]))
    env["nvcc"] = nvcc.splitlines()[-1] if isinstance(nvcc, str) and nvcc else nvcc
    env["nvidia_smi"] = _guard(
        lambda: _command_output(
            ["nvidia-smi", "--query-gpu=name,driver_version,memory.total,clocks.max.sm", "--format=csv,noheader"]
        )
    )
    env["arch_list"] = _guard(query_arch_list)
    save(env)
    torch_info = _guard(_torch_info)
    if isinstance(torch_info, dict):
        env.update(torch_info)
    else:
        env["torch_error"] = torch_info
    save(env)
    env["triton_import"] = _guard(lambda: __import__("triton").__version__)
    env["cuda_home"] = _guard(_cuda_home)
    save(env)
    return env


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="where to write the JSON")
    args = parser.parse_args(argv)

    def save(env: dict) -> None:
        partial = args.out + ".partial"
        with open(partial, "w", encoding="utf-8") as f:
            json.dump(env, f, indent=1)
        os.replace(partial, args.out)

    env = collect(save)
    for key in ("python", "torch", "torch_cuda", "triton_import", "device_name", "capability", "arch_list", "nvcc"):
        print(f"{key}: {env.get(key)}")


if __name__ == "__main__":
    main()
