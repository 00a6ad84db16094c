"""GPU-check step "sanitizer": compute-sanitizer's memcheck, racecheck, synccheck and initcheck
over the CUDA operators on tiny shapes (benchmarks/gpu_check/sanitized_ops.py), one run per
tool, summarised as each tool's error count.

    python -m benchmarks.gpu_check.sanitizer --out sanitizer.json [--tools memcheck ...]
        [--seconds 60] [--log-dir DIR]

The tool is looked for on PATH, then in $CUDA_HOME/bin and /usr/local/cuda/bin; the step is
skipped, with that reason, where it is missing. A tool that refuses the device (or the
driver) is recorded as refused with its own line, not as a failure. The runs share
``--seconds`` (default: $GPU_CHECK_ALLOWED_S, the step's allowance, less a margin): each
gets an equal part of what is left. Torch's caching allocator is off
(PYTORCH_NO_CUDA_MEMORY_CACHING=1) so that memcheck sees each tensor's own bounds. The JSON
is rewritten after each tool. Exit status 1 when a tool reported errors or the workload
failed under it.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import time
from pathlib import Path

from benchmarks.gpu_check.results import table
from benchmarks.gpu_check.runner import run_command

TOOLS = ("memcheck", "racecheck", "synccheck", "initcheck")
PROGRAM = "compute-sanitizer"
DEFAULT_DIRS = ("/usr/local/cuda/bin",)
MARGIN_S = 3.0  # of the step's allowance, kept for writing the JSON

_ERROR_SUMMARY = re.compile(r"ERROR SUMMARY: (\d+) errors?")
_RACECHECK_SUMMARY = re.compile(r"RACECHECK SUMMARY: (\d+) hazards? displayed \((\d+) errors?, (\d+) warnings?\)")
_REFUSAL = re.compile(r"not supported|unsupported|no cuda-capable device|insufficient permission|unable to", re.I)


def find_sanitizer(path_env: str | None = None, cuda_home: str | None = None) -> tuple[str | None, list[str]]:
    """(the compute-sanitizer found, or None; the places looked in: "PATH", then $CUDA_HOME/bin
    and DEFAULT_DIRS). ``path_env`` and ``cuda_home`` default to the environment's."""
    path_env = os.environ.get("PATH", "") if path_env is None else path_env
    cuda_home = os.environ.get("CUDA_HOME") if cuda_home is None else cuda_home
    looked = ["PATH"]
    found = shutil.which(PROGRAM, path=path_env)
    if found:
        return found, looked
    for directory in ([os.path.join(cuda_home, "bin")] if cuda_home else []) + list(DEFAULT_DIRS):
        looked.append(directory)
        candidate = os.path.join(directory, PROGRAM)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate, looked
    return None, looked


def missing_reason(looked: list[str]) -> str:
    return f"{PROGRAM} not found (looked on {', '.join(looked)})"


def parse_output(text: str, returncode: int | None) -> dict:
    """A tool run's summary: status "clean", "errors", "refused" or "failed"; errors (the
    summary's count, None without one), warnings (racecheck's), note (the line that says why)."""
    errors = warnings = None
    racecheck = _RACECHECK_SUMMARY.search(text)
    if racecheck:
        errors, warnings = int(racecheck.group(2)), int(racecheck.group(3))
    summary = _ERROR_SUMMARY.search(text)
    if summary:
        errors = max(errors or 0, int(summary.group(1)))
    tool_lines = [line.strip("= ").strip() for line in text.splitlines() if line.startswith("=========")]
    if errors is None:
        refusal = next((line for line in tool_lines if _REFUSAL.search(line)), None)
        if refusal is not None:
            return {"status": "refused", "errors": None, "warnings": None, "note": refusal[:300]}
        last = next((line for line in reversed(text.splitlines()) if line.strip()), "")
        note = f"no summary (exit {returncode}): {last}"[:300]
        return {"status": "failed", "errors": None, "warnings": None, "note": note}
    if errors:
        first = next((line for line in tool_lines if line and "SUMMARY" not in line), "")
        return {"status": "errors", "errors": errors, "warnings": warnings, "note": first[:300]}
    if returncode not in (0, None):
        last = next((line for line in reversed(text.splitlines()) if line.strip() and not line.startswith("=")), "")
        return {"status": "failed", "errors": 0, "warnings": warnings,
                "note": f"workload exit {returncode}: {last}"[:300]}  # fmt: skip
    return {"status": "clean", "errors": 0, "warnings": warnings, "note": ""}


def command(sanitizer: str, tool: str, python: str) -> list[str]:
    """The tool's run: its own defaults (the summary line counts every error, printed or not)."""
    return [sanitizer, "--tool", tool, python, "-m", "benchmarks.gpu_check.sanitized_ops"]


def run(tools: list[str], seconds: float, log_dir: Path, save, sanitizer: str | None = None) -> dict:
    """Runs each tool in turn within ``seconds`` in all; ``save(summary)`` after each."""
    if sanitizer is None:
        sanitizer, looked = find_sanitizer()
        if sanitizer is None:
            summary = {"skipped": missing_reason(looked), "tools": {}}
            save(summary)
            return summary
    summary: dict = {"sanitizer": sanitizer, "tools": {}}
    env = {**os.environ, "PYTORCH_NO_CUDA_MEMORY_CACHING": "1"}
    deadline = time.monotonic() + seconds
    for index, tool in enumerate(tools):
        allowed = (deadline - time.monotonic()) / (len(tools) - index)
        log = log_dir / f"sanitizer_{tool}.log"
        outcome = run_command(command(sanitizer, tool, sys.executable), allowed, cwd=Path.cwd(), env=env, log_path=log)
        if outcome.status in ("timeout", "skipped"):
            found = {"status": outcome.status, "errors": None, "warnings": None, "note": outcome.note}
        else:
            text = log.read_text(encoding="utf-8", errors="replace") if log.exists() else outcome.tail
            found = parse_output(text, outcome.returncode)
        summary["tools"][tool] = {**found, "seconds": round(outcome.seconds, 1)}
        note = f": {found['note']}" if found["note"] else ""
        print(f"{tool}: {found['status']}, errors {found['errors']}{note}", flush=True)
        save(summary)
    return summary


def render(summary: dict | None) -> str:
    """The report's section: errors per tool."""
    if summary is None:
        return "No sanitizer record (the step did not run, or was stopped before its first tool finished)."
    if summary.get("skipped"):
        return f"Skipped: {summary['skipped']}."
    rows = [[tool, r["status"], "-" if r["errors"] is None else r["errors"],
             "-" if r.get("warnings") is None else r["warnings"], r.get("seconds", "-"), r.get("note", "")]
            for tool, r in summary.get("tools", {}).items()]  # fmt: skip
    text = table(["tool", "status", "errors", "warnings", "seconds", "first finding / why"], rows, "llrrrl")
    return f"{summary.get('sanitizer', PROGRAM)} over benchmarks/gpu_check/sanitized_ops.py:\n\n{text}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="where to write the JSON summary")
    parser.add_argument("--tools", nargs="+", choices=TOOLS, default=list(TOOLS))
    parser.add_argument("--seconds", type=float, default=None, help="time for all the tools")
    parser.add_argument("--log-dir", default=None, help="each tool's log (default: next to --out)")
    args = parser.parse_args(argv)
    seconds = args.seconds if args.seconds is not None else float(os.environ.get("GPU_CHECK_ALLOWED_S", 60)) - MARGIN_S
    log_dir = Path(args.log_dir) if args.log_dir else Path(args.out).resolve().parent

    def save(summary: dict) -> None:
        partial = args.out + ".partial"
        Path(partial).write_text(json.dumps(summary, indent=1), encoding="utf-8")
        os.replace(partial, args.out)

    summary = run(args.tools, max(seconds, 1.0), log_dir, save)
    bad = [tool for tool, r in summary["tools"].items() if r["status"] in ("errors", "failed")]
    if bad:
        print(f"FAILED: {', '.join(f'{t} ' + summary['tools'][t]['status'] for t in bad)}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
