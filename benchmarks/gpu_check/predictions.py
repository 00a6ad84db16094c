"""The CUDA kernels' predicted times, from benchmarks/cuda_prediction.py when it provides
them, attached to the op step's records so that the report sets each measurement beside its
prediction.

cuda_prediction.py is to provide ``kernel_predictions(case_id, dtype, device)`` (kernel-name
substring such as "aggregate_kernel" -> predicted microseconds, summed over the forward's and
the backward's launches of it) and
``op_predictions(case_id, dtype, device)`` (pass name -> predicted op wall microseconds), for
device "H100" or "H200". Until it does (or when it fails), records get no prediction.
"""

from __future__ import annotations

import importlib
from types import ModuleType

PREDICTED_DEVICES = ("H200", "H100")  # names cuda_prediction knows, looked for in the GPU's name


def load(module_name: str = "benchmarks.cuda_prediction") -> ModuleType | None:
    """The prediction module when it imports and has both functions; None otherwise."""
    try:
        module = importlib.import_module(module_name)
    except Exception:  # noqa: BLE001 - no prediction is not a failure of the check
        return None
    has_both = (
        callable(getattr(module, "kernel_predictions", None))
        and callable(getattr(module, "op_predictions", None))
    )
    return module if has_both else None


def predicted_device(device_name: str | None) -> str | None:
    """"H200" for "NVIDIA H200", "H100" for "NVIDIA H100 80GB HBM3"; None for other GPUs."""
    return next((d for d in PREDICTED_DEVICES if device_name and d in device_name), None)


def attach(record: dict, predictions: ModuleType | None, device: str | None) -> dict:
    """Adds the predictions for a cuda backend record's (case, dtype) on ``device``:
    "predicted_us" to an op timing (by its pass: "pass_name", or "op" for a raw operator),
    "predicted_kernels_us" (kernel_predictions' table) to a kernel record. Returns the record;
    unchanged without predictions, or when they raise ("prediction_error" says why)."""
    if predictions is None or device is None or record.get("backend") != "cuda" or record.get("status") != "ok":
        return record
    case, dtype = record["case"], record["dtype"]
    try:
        if record["kind"] == "kernels":
            table = predictions.kernel_predictions(case, dtype, device)
            record["predicted_kernels_us"] = {str(key): float(value) for key, value in table.items()}
        else:
            pass_name = record["op"] if record["kind"] == "raw" else record["pass_name"]
            value = predictions.op_predictions(case, dtype, device).get(pass_name)
            record["predicted_us"] = None if value is None else float(value)
    except Exception as exc:  # noqa: BLE001 - a broken prediction must not lose the measurement
        record["prediction_error"] = f"{type(exc).__name__}: {exc}"[:200]
    return record
