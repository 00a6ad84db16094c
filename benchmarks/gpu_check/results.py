"""Reading the GPU-check steps' result files, and the sections of the report for the
environment, backends and training steps (op_results.py, pytest_results.py and
sanitizer.py render the others). Each renderer takes parsed data and returns markdown;
nothing here imports torch.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path


def _cell(value: object) -> str:
    """A value fit for a markdown table cell (no pipes or line breaks)."""
    text = "-" if value is None else str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def table(header: list[str], rows: list[list[object]], align: str | None = None) -> str:
    """A markdown table; ``align`` has one character per column: "l" or "r"."""
    align = align or "l" * len(header)
    rule = ["---:" if a == "r" else "---" for a in align]
    lines = ["| " + " | ".join(_cell(h) for h in header) + " |", "| " + " | ".join(rule) + " |"]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def read_json(path: Path) -> dict | None:
    """The file's JSON object, or None when it is missing or unreadable (a step killed early)."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def read_json_lines(path: Path) -> list[dict]:
    """Every complete JSON line of the file; a line cut off by a kill is dropped."""
    records = []
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError:
        return records
    for line in lines:
        try:
            records.append(json.loads(line))
        except ValueError:
            continue
    return records


# --- environment and backends ------------------------------------------------------------------

ENVIRONMENT_ROWS = (
    ("device_name", "GPU"), ("capability", "compute capability"), ("arch_list", "TORCH_CUDA_ARCH_LIST (nvidia-smi)"),
    ("memory_gib", "GPU memory (GiB)"),
    ("multiprocessors", "multiprocessors"), ("nvidia_smi", "nvidia-smi (name, driver, memory, max SM clock)"),
    ("torch", "torch"), ("torch_cuda", "torch's CUDA"), ("cudnn", "cuDNN"), ("triton_import", "triton (imported)"),
    ("nvcc", "nvcc"), ("cuda_home", "CUDA_HOME"), ("python", "Python"), ("platform", "platform"),
    ("cpu_count", "CPU cores"), ("cuda_available", "torch.cuda.is_available()"), ("torch_error", "torch import"),
)  # fmt: skip


def render_environment(env: dict | None) -> str:
    """Versions and device as a two-column table, then the installed packages."""
    if env is None:
        return "No environment record (the step did not finish)."
    rows = [[label, env[key]] for key, label in ENVIRONMENT_ROWS if key in env]
    packages = env.get("packages") or {}
    rows += [[f"package {name}", version or "not installed"] for name, version in packages.items()]
    return table(["what", "value"], rows)


def render_backends(data: dict | None) -> str:
    """Registered backends with priorities, load errors, and "auto"'s pick per case."""
    if data is None:
        return "No backends record (the step did not finish)."
    parts = [
        table(["backend", "priority", "description"],
              [[b["name"], b["priority"], b["description"]] for b in data.get("backends", [])], "lrl"),  # fmt: skip
        "",
        f"- extension msca_fast._C: {data.get('extension_error') or 'loaded'}"
        + ("" if data.get("extension_error")
           else ", CUDA kernels built: " + str(data.get("extension_built_with_cuda"))),  # fmt: skip
        f"- triton: {data.get('triton_error') or 'imported'}",
        "",
    ]
    choices = data.get("choices", [])
    columns = sorted({(c["dtype"], c["requires_grad"]) for c in choices}, key=lambda k: (k[0] != "float32", k[1]))
    by_case: dict[str, dict] = {}
    for c in choices:
        by_case.setdefault(c["case"], {})[(c["dtype"], c["requires_grad"])] = c["auto"]
    header = ["case"] + [f"{dtype}{' + grad' if grad else ''}" for dtype, grad in columns]
    parts.append(f'"auto" picks on {data.get("device")}:\n')
    parts.append(table(header, [[case] + [picks.get(col) for col in columns] for case, picks in by_case.items()]))
    reasons = Counter(
        f"{name}: {reason}" for c in choices for name, reason in c.get("reasons", {}).items()
        if reason is not None and name in ("cuda", "triton")
    )  # fmt: skip
    if reasons:
        parts += ["", "Why cuda / triton declined (number of case x dtype x grad settings):", ""]
        parts += [f"- {reason} ({count})" for reason, count in reasons.most_common()]
    return "\n".join(parts)


# --- training ---------------------------------------------------------------------------------


def render_training(records: list[dict]) -> str:
    """One row per backend: mean s / iteration, G+D and D-only iterations, images / s, memory."""
    if not records:
        return "No training timings."
    rows = []
    for r in records:
        def seconds(key: str) -> str:
            return f"{r[key]:.3f}" if r.get(key) is not None else "-"

        ips = f"{r['images_per_s']:.1f}" if r.get("images_per_s") else "-"
        memory = f"{r['peak_memory_gib']:.1f}" if r.get("peak_memory_gib") is not None else "-"
        rows.append([r["backend"], r.get("timed_iterations", 0), seconds("mean_s"), seconds("g_update_s"),
                     seconds("d_only_s"), ips, memory, seconds("setup_s")])  # fmt: skip
    first = records[0]
    intro = (f"Preset {first.get('preset')}: batch {first.get('batch_size')}, patch {first.get('patch_size')}, "
             f"global {first.get('global_size')}, AMP {first.get('amp')}, G updated every {first.get('g_every')} "
             f"iterations; synthetic scenes ({first.get('num_classes')} classes), random VGG.\n")  # fmt: skip
    header = ["MSCA backend", "timed iterations", "s / iteration", "G+D iteration (s)", "D-only iteration (s)",
              "images / s", "peak memory (GiB)", "set-up (s)"]  # fmt: skip
    return intro + "\n" + table(header, rows, "lrrrrrrr")
