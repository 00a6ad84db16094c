"""GPU-check step "backends": which MSCA backends this build registers, and whom "auto" picks.

    python -m benchmarks.gpu_check.backends --out backends.json [--device cuda]

For every benchmark case, in float32 and bfloat16, with and without gradients, it records
each backend's reason for declining (None: it can serve) and "auto"'s choice, so the report
shows the order the timings are meant to confirm or reverse.
"""

from __future__ import annotations

import argparse
import json

import torch

from benchmarks.cases import CASES
from msca_fast import _extension
from msca_fast.backends import registered_backends, select_backend
from msca_fast.backends.problem import Problem

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def _triton_import_error() -> str | None:
    from msca_fast.backends import triton_backend

    return triton_backend.import_error


def problems(device: torch.device):
    """(case id, dtype name, requires_grad, Problem) for every case, dtype and grad setting."""
    for case in CASES:
        for dtype_name, dtype in DTYPES.items():
            for requires_grad in (False, True):
                m, p = case.label_channels, case.pixels
                yield case.id, dtype_name, requires_grad, Problem(
                    "msca", device, dtype, case.batch, case.image_channels, m, m, case.num_regions, p, p,
                    requires_grad,
                )  # fmt: skip


def _first_line(exc: Exception) -> str:
    return f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0]}"


def reasons(problem: Problem) -> dict[str, str | None]:
    """Each backend's why_not, one at a time, so that one that raises is recorded, not fatal."""
    found = {}
    for backend in registered_backends():
        try:
            found[backend.name] = backend.why_not(problem)
        except Exception as exc:  # noqa: BLE001 - a crashing why_not is a finding for the report
            found[backend.name] = f"why_not raised {_first_line(exc)}"
    return found


def auto_choice(problem: Problem) -> str:
    """The backend "auto" selects, or why none is selected."""
    try:
        return select_backend("auto", problem).name
    except ValueError as exc:
        return f"none: {str(exc).splitlines()[0]}"
    except Exception as exc:  # noqa: BLE001
        return f"error: {_first_line(exc)}"


def _guarded(probe):
    try:
        return probe()
    except Exception as exc:  # noqa: BLE001
        return f"error: {_first_line(exc)}"


def collect(device: torch.device) -> dict:
    """The registered backends, load errors, and per-problem reasons and "auto" picks."""
    choices = [
        dict(case=case_id, dtype=dtype_name, requires_grad=requires_grad, auto=auto_choice(problem),
             reasons=reasons(problem))  # fmt: skip
        for case_id, dtype_name, requires_grad, problem in problems(device)
    ]
    return {
        "device": str(device),
        "backends": [dict(name=b.name, priority=b.priority, description=b.description) for b in registered_backends()],
        "extension_error": _extension.load_error,
        "extension_built_with_cuda": _guarded(_extension.built_with_cuda),
        "triton_error": _triton_import_error(),
        "choices": choices,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="where to write the JSON")
    parser.add_argument("--device", default="cuda")
    args = parser.parse_args(argv)
    found = collect(torch.device(args.device))
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(found, f, indent=1)
    print("registered:", ", ".join(f"{b['name']} ({b['priority']})" for b in found["backends"]))
    print("extension:", found["extension_error"] or f"loaded, CUDA kernels: {found['extension_built_with_cuda']}")
    print("triton:", found["triton_error"] or "imported")
    picks = sorted({c["auto"] for c in found["choices"]})
    print('"auto" picks:', ", ".join(picks))


if __name__ == "__main__":
    main()
