"""Turns the GPU-check steps' result files into markdown sections of the report.

One function per kind of result: the environment and backends JSON, pytest's JUnit XML, the
op timings (JSON lines), the training timings, and the verdict on "auto"'s order between the
cuda and triton backends. Each takes parsed data (or a path) and returns markdown; none
imports torch.
"""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

OP_BACKENDS = ("cuda", "triton", "reference")  # the columns of the op tables, in this order
PASS_ORDER = ("forward", "backward", "forward+backward")


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
    ("device_name", "GPU"), ("capability", "compute capability"), ("memory_gib", "GPU memory (GiB)"),
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
        f"{'' if data.get('extension_error') else ', CUDA kernels built: ' + str(data.get('extension_built_with_cuda'))}",
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


# --- pytest -----------------------------------------------------------------------------------


def render_junit(path: Path) -> str:
    """Counts of a pytest --junitxml run, every failure and error, and skip reasons by count."""
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as exc:
        return f"No test results ({type(exc).__name__}: the run did not write its JUnit XML)."
    failures, skips = [], Counter()
    passed = 0
    for case in root.iter("testcase"):
        name = f"{case.get('classname', '')}::{case.get('name', '')}"
        problem = case.find("failure")
        if problem is None:
            problem = case.find("error")
        skipped = case.find("skipped")
        if problem is not None:
            message = (problem.get("message") or problem.text or "").strip().splitlines()
            failures.append(f"- **{problem.tag}** `{name}`: {message[0] if message else ''}"[:400])
        elif skipped is not None:
            skips[(skipped.get("message") or "").strip()[:200]] += 1
        else:
            passed += 1
    lines = [f"{passed} passed, {len(failures)} failed or errored, {sum(skips.values())} skipped."]
    if failures:
        lines += ["", *failures]
    if skips:
        lines += ["", "Skip reasons:", ""] + [f"- {reason or '(none given)'} ({n})" for reason, n in skips.most_common(15)]
    return "\n".join(lines)


# --- op timings -------------------------------------------------------------------------------


def _worst_err(record: dict) -> float | None:
    errs = [record.get(k) for k in ("out_rel_err", "grad_rel_err") if record.get(k) is not None]
    return max(errs) if errs else None


def _op_cell(record: dict | None, notes: list[str]) -> str:
    if record is None:
        return "not run"
    if record["status"] != "ok":
        note = f"{record['backend']}: {record.get('note', '')}"
        if note not in notes:
            notes.append(note)
        return f"{record['status']} [{notes.index(note) + 1}]"
    err = _worst_err(record)
    return f"{record['median_s'] * 1e3:.3f} ms" + (f" (err {err:.1e})" if err is not None else "")


def render_ops(records: list[dict]) -> str:
    """One table per dtype: a row per (case, pass), a column per backend, and triton's speed-up
    over cuda (cuda time / triton time: > 1 means triton is faster)."""
    if not records:
        return "No op timings (the step did not record any)."
    parts = []
    for dtype in sorted({r["dtype"] for r in records}, key=lambda d: d != "float32"):
        rows, notes = [], []
        keyed = {(r["case"], r["pass_name"], r["backend"]): r for r in records if r["dtype"] == dtype}
        cases = list(dict.fromkeys(r["case"] for r in records if r["dtype"] == dtype))
        for case in cases:
            for pass_name in PASS_ORDER:
                found = {b: keyed.get((case, pass_name, b)) for b in OP_BACKENDS}
                if not any(found.values()):
                    continue
                cuda, triton = found["cuda"], found["triton"]
                both = cuda and triton and cuda["status"] == triton["status"] == "ok"
                speedup = f"{cuda['median_s'] / triton['median_s']:.2f}" if both else "-"
                rows.append([case, pass_name, *(_op_cell(found[b], notes) for b in OP_BACKENDS), speedup])
        parts.append(f"**{dtype}** (median of 3-20 rounds; err: relative error against the float32 reference)\n")
        parts.append(table(["case", "pass", *OP_BACKENDS, "triton speed-up over cuda"], rows, "llrrrr"))
        if notes:
            parts += [""] + [f"[{i}] {note}" for i, note in enumerate(notes, 1)]
        parts.append("")
    return "\n".join(parts).rstrip()


def auto_order_verdict(records: list[dict], priorities: dict[str, int] | None) -> str:
    """Whether the timings confirm or reverse "auto"'s order between cuda and triton.

    Compares every (dtype, case, pass) both timed: the count triton wins and the geometric mean
    of cuda time / triton time, per dtype and overall. ``priorities`` (name -> priority, from the
    registry) gives the order "auto" uses now; higher is tried first.
    """
    pairs: dict[str, list[float]] = {}
    keyed = {(r["dtype"], r["case"], r["pass_name"], r["backend"]): r for r in records if r.get("status") == "ok"}
    for (dtype, case, pass_name, backend), rec in keyed.items():
        if backend != "cuda":
            continue
        other = keyed.get((dtype, case, pass_name, "triton"))
        if other is not None:
            pairs.setdefault(dtype, []).append(rec["median_s"] / other["median_s"])
    if not pairs:
        return "No (case, pass) was timed on both cuda and triton, so the order stays unverified."

    def geomean(values: list[float]) -> float:
        return math.exp(sum(math.log(v) for v in values) / len(values))

    lines = []
    for dtype, ratios in pairs.items():
        wins = sum(r > 1 for r in ratios)
        lines.append(f"- {dtype}: triton faster in {wins} of {len(ratios)}; geometric mean cuda/triton time "
                     f"{geomean(ratios):.2f}")  # fmt: skip
    overall = geomean([r for ratios in pairs.values() for r in ratios])
    faster = "triton" if overall > 1 else "cuda"
    lines.append(f"- overall: geometric mean cuda/triton time {overall:.2f}: **{faster}** is faster")
    if priorities and "cuda" in priorities and "triton" in priorities:
        current = "triton" if priorities["triton"] > priorities["cuda"] else "cuda"
        verdict = "confirm" if current == faster else "reverse"
        lines.append(f'- "auto" now tries **{current}** first (priorities: triton {priorities["triton"]}, '
                     f'cuda {priorities["cuda"]}): these timings **{verdict}** that order.')  # fmt: skip
    else:
        lines.append('- the registry\'s priorities are unknown (backends step missing), so "auto"\'s order is not compared.')
    return "\n".join(lines)


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
