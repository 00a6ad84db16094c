"""The op steps' sections of the report, from their JSON lines (benchmarks/gpu_check/ops.py):
accuracy against the tolerance table, the public API's and the raw operators' times beside
the predictions, the CUDA kernels' times beside theirs, every profiled kernel, and the
verdict on "auto"'s order between cuda and triton. Imports no torch.
"""

from __future__ import annotations

import math

from benchmarks.gpu_check.results import table

OP_BACKENDS = ("cuda", "triton", "reference")  # the columns of the timing tables, in this order
PASS_ORDER = ("forward", "backward", "forward+backward")


def _of_kind(records: list[dict], kind: str) -> list[dict]:
    return [r for r in records if r.get("kind") == kind]


def _us(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1e6:.1f}"


def _ratio(measured_us: float | None, predicted_us: float | None) -> str:
    return f"{measured_us / predicted_us:.2f}" if measured_us and predicted_us else "-"


def worst(errors: dict[str, float], bounds: dict[str, float]) -> str:
    """The name of the error closest to (or furthest over) its bound; a NaN error is worst."""
    return max(errors, key=lambda k: errors[k] / bounds[k] if errors[k] == errors[k] else math.inf)


def _cell(record: dict | None, notes: list[str]) -> str:
    """A timing cell: microseconds, or the status with a numbered note."""
    if record is None:
        return "not run"
    if record["status"] != "ok":
        note = f"{record['backend']}: {record.get('note', '')}"
        if note not in notes:
            notes.append(note)
        return f"{record['status']} [{notes.index(note) + 1}]"
    return _us(record["median_s"])


def _notes(notes: list[str]) -> list[str]:
    return [""] + [f"[{i}] {note}" for i, note in enumerate(notes, 1)] if notes else []


def render_accuracy(records: list[dict]) -> str:
    """Per case and backend: within tolerance or not, with the worst error / bound, and one
    line per violation below the table."""
    found = _of_kind(records, "accuracy")
    if not found:
        return "No accuracy records."
    backends = list(dict.fromkeys(r["backend"] for r in found))
    keyed = {(r["case"], r["backend"]): r for r in found}
    rows, notes, beyond = [], [], []
    for case in dict.fromkeys(r["case"] for r in found):
        row = [case]
        for backend in backends:
            r = keyed.get((case, backend))
            if r is None or r["status"] != "ok":
                row.append(_cell(r, notes))
                continue
            name = worst(r["errors"], r["bounds"])
            verdict = "BEYOND" if r["violations"] else "ok" if r["judged"] else "(not judged)"
            row.append(f"{verdict}: {name} {r['errors'][name]:.1e} / {r['bounds'][name]:.1e}")
            beyond += [f"- **{r['dtype']} {case} {backend}**: {v}" for v in r["violations"]]
        rows.append(row)
    text = [table(["case", *backends], rows), *_notes(notes)]
    text += ["", "Beyond tolerance:", "", *beyond] if beyond else ["", "Every judged backend is within tolerance."]
    return "\n".join(text)


def render_api(records: list[dict]) -> str:
    """msca_fast.ops.msca per (case, pass): a column per backend (microseconds), triton's
    speed-up over cuda, and cuda's predicted op time."""
    found = _of_kind(records, "api")
    if not found:
        return "No public-API timings."
    keyed = {(r["case"], r["pass_name"], r["backend"]): r for r in found}
    rows, notes = [], []
    for case in dict.fromkeys(r["case"] for r in found):
        for pass_name in PASS_ORDER:
            cells = {b: keyed.get((case, pass_name, b)) for b in OP_BACKENDS}
            if not any(cells.values()):
                continue
            cuda, triton = cells["cuda"], cells["triton"]
            both = cuda and triton and cuda["status"] == triton["status"] == "ok"
            speedup = f"{cuda['median_s'] / triton['median_s']:.2f}" if both else "-"
            predicted = cuda.get("predicted_us") if cuda else None
            rows.append([case, pass_name, *(_cell(cells[b], notes) for b in OP_BACKENDS), speedup,
                         "-" if predicted is None else f"{predicted:.1f}"])  # fmt: skip
    header = ["case", "pass", *(f"{b} (us)" for b in OP_BACKENDS), "triton speed-up over cuda", "cuda predicted (us)"]
    return "\n".join([table(header, rows, "llrrrrr"), *_notes(notes)])


def render_raw(records: list[dict]) -> str:
    """The raw operators per (case, op): cuda and triton (microseconds), cuda's prediction and
    measured / predicted."""
    found = _of_kind(records, "raw")
    if not found:
        return "No raw-operator timings."
    keyed = {(r["case"], r["op"], r["backend"]): r for r in found}
    rows, notes = [], []
    for case in dict.fromkeys(r["case"] for r in found):
        for op in ("forward", "backward"):
            cuda, triton = keyed.get((case, op, "cuda")), keyed.get((case, op, "triton"))
            if cuda is None and triton is None:
                continue
            predicted = cuda.get("predicted_us") if cuda else None
            measured = cuda["median_s"] * 1e6 if cuda and cuda["status"] == "ok" else None
            rows.append([case, op, _cell(cuda, notes), _cell(triton, notes),
                         "-" if predicted is None else f"{predicted:.1f}", _ratio(measured, predicted)])  # fmt: skip
    header = ["case", "op", "cuda (us)", "triton (us)", "cuda predicted (us)", "cuda measured / predicted"]
    return "\n".join([table(header, rows, "llrrrr"), *_notes(notes)])


def render_kernels(records: list[dict]) -> str:
    """Every profiled kernel per (case, backend, op): launches and device time per call."""
    found = _of_kind(records, "kernels")
    if not found:
        return "No kernel profiles."
    rows, notes = [], []
    for r in found:
        if r["status"] != "ok":
            rows.append([r["case"], r["backend"], r["op"], _cell(r, notes), "-", "-"])
            continue
        rows += [[r["case"], r["backend"], r["op"], k["name"], f"{k['launches']:g}", f"{k['device_us']:.1f}"]
                 for k in r["kernels"]]  # fmt: skip
    header = ["case", "backend", "op", "kernel", "launches / call", "device us / call"]
    return "\n".join([table(header, rows, "llllrr"), *_notes(notes)])


def render_kernel_predictions(records: list[dict]) -> str:
    """Each predicted CUDA kernel per case: its device time per forward + backward (the kernels
    whose full name holds the prediction's name, over both raw operators' profiles) beside
    the prediction, and measured / predicted."""
    profiled = [r for r in _of_kind(records, "kernels") if r["backend"] == "cuda" and r["status"] == "ok"]
    rows = []
    for case in dict.fromkeys(r["case"] for r in profiled):
        mine = [r for r in profiled if r["case"] == case]
        predicted = next((r["predicted_kernels_us"] for r in mine if r.get("predicted_kernels_us")), None)
        if predicted is None:
            continue
        ops = "+".join(r["op"] for r in mine)
        for name, us in predicted.items():
            measured = sum(k["device_us"] for r in mine for k in r["kernels"] if name in k["full_name"])
            rows.append([case, ops, name, f"{measured:.1f}" if measured else "not seen", f"{us:.1f}",
                         _ratio(measured, us)])  # fmt: skip
    if not rows:
        return ("No kernel predictions (benchmarks/cuda_prediction.py provides none for this GPU, "
                "or no cuda kernel was profiled).")  # fmt: skip
    header = ["case", "ops profiled", "kernel", "measured (us)", "predicted (us)", "measured / predicted"]
    return table(header, rows, "lllrrr")


def render_ops(records: list[dict]) -> str:
    """The op step's section: one block per dtype."""
    if not records:
        return "No op records (the step wrote none)."
    parts = []
    for dtype in sorted({r["dtype"] for r in records}, key=lambda d: d != "float32"):
        mine = [r for r in records if r["dtype"] == dtype]
        parts += [
            f"**{dtype}: accuracy** against the float64 reference "
            "(worst error / its bound; msca_fast/tolerances.py)", "",
            render_accuracy(mine), "",
            f"**{dtype}: msca_fast.ops.msca** (median of 5-100 rounds, CUDA events; Python and autograd included)", "",
            render_api(mine), "",
            f"**{dtype}: raw operators** (torch.ops.msca_fast.*, no autograd)", "",
            render_raw(mine), "",
            f"**{dtype}: CUDA kernels against their predictions** (device time per forward + backward)", "",
            render_kernel_predictions(mine), "",
            f"**{dtype}: kernels** (torch.profiler, per raw-operator call)", "",
            render_kernels(mine), "",
        ]  # fmt: skip
    return "\n".join(parts).rstrip()


def auto_order_verdict(records: list[dict], priorities: dict[str, int] | None) -> str:
    """Whether the public API's timings confirm or reverse "auto"'s order between cuda and triton.

    Compares every (dtype, case, pass) both timed: the count triton wins and the geometric mean
    of cuda time / triton time, per dtype and overall. ``priorities`` (name -> priority, from the
    registry) gives the order "auto" uses now; higher is tried first.
    """
    pairs: dict[str, list[float]] = {}
    timed = [r for r in _of_kind(records, "api") if r.get("status") == "ok"]
    keyed = {(r["dtype"], r["case"], r["pass_name"], r["backend"]): r for r in timed}
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
        lines.append('- the registry\'s priorities are unknown (backends step missing), '
                     'so "auto"\'s order is not compared.')  # fmt: skip
    return "\n".join(lines)
