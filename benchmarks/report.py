"""The benchmark report: one markdown table of every contender, case and pass.

Columns: median time; speed-up over the eager "reference" backend (reference median /
contender median, > 1 is faster); fraction of the roofline (max(min bytes / copy BW,
min FLOPs / GEMM rate) / median); achieved GB/s and GFLOP/s (minimum bytes and FLOPs over
the median); peak extra memory of one call.

    python -m benchmarks.report                      # benchmarks/results/latest.json
    python -m benchmarks.report path.json            # a latest.json, or pytest --benchmark-json output

Imports no torch, so it re-prints saved results quickly anywhere.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from benchmarks.roofline import Work, achieved

BASELINE = "reference"  # the registered name of the eager backend all ratios are against
PASS_ORDER = ("forward", "backward", "forward+backward")
FORMAT = "msca-fast-benchmarks/1"
DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "latest.json"
MACHINE_KEYS = ("device", "device_name", "threads", "torch_version", "copy_gbs", "gemm_gflops")


@dataclass(frozen=True)
class Row:
    """One timed contender on one case and pass. Times in seconds, sizes in bytes."""

    case: str
    shape: str
    pass_name: str
    contender: str
    kind: str
    median_s: float
    min_s: float
    rounds: int
    min_bytes: int
    min_flops: int
    peak_memory_bytes: int | None
    first_call_s: float | None


@dataclass(frozen=True)
class Results:
    """machine: MACHINE_KEYS (copy_gbs in GB/s, gemm_gflops in GFLOP/s). suite_wall_s: the
    whole run; other_cpu_share: fraction of the CPU time other processes took meanwhile."""

    machine: dict
    rows: list[Row]
    suite_wall_s: float | None = None
    other_cpu_share: float | None = None


def results_from_records(
    records: list[dict], suite_wall_s: float | None = None, other_cpu_share: float | None = None
) -> Results | None:
    """Results from pytest-benchmark records (Metadata.as_dict() or a --benchmark-json's
    "benchmarks" list); records not made by test_msca_bench are ignored. None if none are left."""
    rows, machine = [], None
    for record in records:
        info, stats = record.get("extra_info") or {}, record.get("stats") or {}
        if "contender" not in info or "median" not in stats:
            continue
        if machine is None:
            machine = {key: info.get(f"machine_{key}") for key in MACHINE_KEYS}
        rows.append(
            Row(
                case=info["case"],
                shape=info.get("shape", ""),
                pass_name=info["pass_name"],
                contender=info["contender"],
                kind=info.get("kind", ""),
                median_s=stats["median"],
                min_s=stats["min"],
                rounds=stats.get("rounds", 0),
                min_bytes=info["min_bytes"],
                min_flops=info["min_flops"],
                peak_memory_bytes=info.get("peak_memory_bytes"),
                first_call_s=info.get("first_call_s"),
            )
        )
    if not rows:
        return None
    return Results(machine, _ordered(rows), suite_wall_s, other_cpu_share)


def _ordered(rows: list[Row]) -> list[Row]:
    """Cases and contenders in the order first run (baseline first), passes forward first."""
    cases = list(dict.fromkeys(r.case for r in rows))
    contenders = list(dict.fromkeys(r.contender for r in rows))
    if BASELINE in contenders:
        contenders.remove(BASELINE)
        contenders.insert(0, BASELINE)

    def key(r: Row) -> tuple:
        pass_index = PASS_ORDER.index(r.pass_name) if r.pass_name in PASS_ORDER else len(PASS_ORDER)
        return cases.index(r.case), pass_index, contenders.index(r.contender)

    return sorted(rows, key=key)


def _ms(seconds: float) -> str:
    ms = seconds * 1e3
    digits = 0 if ms >= 100 else 1 if ms >= 10 else 2 if ms >= 1 else 3
    return f"{ms:.{digits}f}"


def _mib(nbytes: int | None) -> str:
    return "-" if nbytes is None else f"{nbytes / 2**20:.1f}"


def render(results: Results) -> str:
    """The markdown report: a header naming the machine, the table, and footnotes."""
    m = results.machine
    baseline = {(r.case, r.pass_name): r.median_s for r in results.rows if r.contender == BASELINE}
    lines = [
        f"MSCA benchmarks on {m['device_name']} ({m['device']}, {m['threads']} threads, torch "
        f"{m['torch_version']}): copy bandwidth {m['copy_gbs']:.1f} GB/s (read + write), "
        f"fp32 GEMM {m['gemm_gflops']:.1f} GFLOP/s.",
        "",
        "| case | pass | contender | median ms | min ms | vs reference | roofline | GB/s | GFLOP/s | peak MiB |",
        "|---|---|---|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for r in results.rows:
        rates = achieved(Work(r.min_bytes, r.min_flops), r.median_s, m["copy_gbs"], m["gemm_gflops"])
        base = baseline.get((r.case, r.pass_name))
        ratio = "-" if base is None else f"{base / r.median_s:.2f}x"
        lines.append(
            f"| {r.case} | {r.pass_name} | {r.contender} | {_ms(r.median_s)} | {_ms(r.min_s)} | {ratio} "
            f"| {rates.fraction:.1%} {rates.bound[:3]} | {rates.gbs:.1f} | {rates.gflops:.1f} "
            f"| {_mib(r.peak_memory_bytes)} |"
        )
    lines += ["", *_footnotes(results)]
    return "\n".join(lines)


def _footnotes(results: Results) -> list[str]:
    shapes = dict.fromkeys(f"{r.case}: {r.shape}" for r in results.rows if r.shape)
    notes = [
        "vs reference = reference median / contender median (> 1 is faster). roofline = "
        "max(min bytes / copy BW, min FLOPs / GEMM rate) / median, tagged mem or com by the "
        "larger term. GB/s and GFLOP/s = minimum bytes and FLOPs (DESIGN.md section 3) / median. "
        "peak MiB = most extra memory allocated during one call.",
        "Shapes: " + "; ".join(shapes) + ".",
    ]
    compiled = [r for r in results.rows if r.contender == "compiled_reference" and r.first_call_s]
    if compiled:
        parts = ", ".join(f"{r.case} {r.pass_name} {r.first_call_s:.1f}" for r in compiled)
        total = sum(r.first_call_s for r in compiled)
        notes.append(f"compiled_reference first call (compile + one run), s: {parts}; total {total:.1f}.")
    if results.suite_wall_s is not None:
        notes.append(f"Suite wall time: {results.suite_wall_s:.0f} s.")
    if results.other_cpu_share is not None:
        notes.append(
            f"Other processes used {results.other_cpu_share:.0%} of the machine's CPU time during the run"
            " (timings from a run with more than a few percent are suspect)."
        )
    return notes


def save(results: Results, folder: Path) -> tuple[Path, Path]:
    """Writes latest.md (the rendered report) and latest.json (machine, rows) into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    md_path, json_path = folder / "latest.md", folder / "latest.json"
    md_path.write_text(render(results) + "\n")
    payload = {
        "format": FORMAT,
        "machine": results.machine,
        "suite_wall_s": results.suite_wall_s,
        "other_cpu_share": results.other_cpu_share,
        "rows": [asdict(r) for r in results.rows],
    }
    json_path.write_text(json.dumps(payload, indent=2) + "\n")
    return md_path, json_path


def load(path: Path) -> Results:
    """Results from a saved latest.json or from a ``pytest --benchmark-json`` file."""
    data = json.loads(Path(path).read_text())
    if data.get("format") == FORMAT:
        rows = [Row(**r) for r in data["rows"]]
        return Results(data["machine"], rows, data.get("suite_wall_s"), data.get("other_cpu_share"))
    results = results_from_records(data.get("benchmarks", []))
    if results is None:
        raise ValueError(f"{path}: no MSCA benchmark results in it")
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Print the MSCA benchmark report table.")
    parser.add_argument(
        "path", nargs="?", default=DEFAULT_JSON, type=Path, help="latest.json or --benchmark-json output"
    )
    args = parser.parse_args(argv)
    try:
        results = load(args.path)
    except (OSError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(render(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
