"""Mutation check of the C++ CPU op (backend "cpu", msca_fast._C): plants one bug at a time in
the CPU tile routines (csrc/msca_cpu_fp32.h, csrc/msca_math.h, csrc/msca_cpu.cpp), rebuilds
only msca_fast._C and runs the op's CPU tests against it; prints mutant -> caught (with the
first failing test) or SURVIVED, and exits 1 if any mutant survived.

    python tests/mutation/cpp_mutants.py              # every mutant, 2 at a time
    python tests/mutation/cpp_mutants.py --jobs 1 --only gemm_dots.remainder_skips_last_region
    python tests/mutation/cpp_mutants.py --list       # the mutants, without building

Not part of the test suite (pytest collects only test_*.py files). Run from any directory
with the project's Python environment (it needs torch, pytest and a C++ compiler). The 24
mutants took 26 minutes with --jobs 2 on a 2-core machine shared with other work (load about
5; 16 minutes of CPU time; 45 minutes at load 10): 110 s for the two unmutated builds side by
side and 80 s for the unmutated tests, then 50-110 s a mutant's build and 7-70 s of tests.

How: the repository's files (tracked, and untracked ones git does not ignore) are copied
into one scratch checkout per job. Each job first builds its checkout unmutated with
``setup.py build_ext --inplace`` and MSCA_FAST_SKIP_CUDA=1 MSCA_FAST_SKIP_EMULATION=1 (the C++
CPU extension alone: no nvcc, no emulated CUDA kernels), with the flags setup.py uses minus
debug info; the first job then runs the tests on it, which must pass, or every result is
void. For each mutant the job writes the mutated file, rebuilds (ninja recompiles only the
translation unit that includes it, msca_cpu.cpp, and relinks), restores the file and runs
the tests with ``-x``: the first failure catches the mutant. A mutant's pattern must occur
exactly once in its file, so that an edit of the sources cannot silently turn a mutant into
the unmutated code.

Exit status: 0 all caught, 1 some survived, 2 the check itself failed (a pattern not found
or not unique, a build error, the unmutated build failing its tests).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import queue
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# The op's tests that run the cpu backend, fastest and most specific first (-x stops at the
# first failure). The other backends' cases are deselected, and one test about the build
# (CUDA kernels present where a CUDA toolchain is) that a CPU-only build fails by design.
TEST_FILES = [
    "tests/backends/test_cpu_region_counts.py",
    "tests/backends/test_backend_conformance.py",
    "tests/backends/test_extension_kernels.py",
    "tests/op/test_ops.py",
]
TEST_SELECTION = ["-k", "not cuda_emulated and not triton"]
TEST_DESELECTED = ["tests/backends/test_extension_kernels.py::test_cuda_kernels_registered_when_built_with_cuda"]
TEST_TIMEOUT_S = 900  # a mutant that hangs counts as caught


@dataclasses.dataclass(frozen=True)
class Mutant:
    """One planted bug: ``old`` replaced by ``new`` in ``path`` (relative to the repository)."""

    name: str
    path: str
    old: str
    new: str
    bug: str


FP32 = "csrc/msca_cpu_fp32.h"
MATH = "csrc/msca_math.h"
DRIVER = "csrc/msca_cpu.cpp"

MUTANTS = [
    # msca_cpu_fp32.h: the float32 tile routines.
    Mutant(
        "gemm_dots.remainder_skips_last_region", FP32,
        "    for (; k < K; ++k) {\n      f8 c0 = splat(0.f), c1 = splat(0.f);",
        "    for (; k + 1 < K; ++k) {\n      f8 c0 = splat(0.f), c1 = splat(0.f);",
        "the one-region-at-a-time loop (K > 32, K % 4 != 0) stops before the last region",
    ),
    Mutant(
        "gemm_dots_transposed.partial_block_drops_last_pixel", FP32,
        "      for (int l = 0; l < L; ++l)\n        for (int i = 0; i < rows; ++i) {",
        "      for (int l = 0; l + 1 < L; ++l)\n        for (int i = 0; i < rows; ++i) {",
        "the last, partial block of rows leaves out the tile's last pixel",
    ),
    Mutant(
        "tile_dots_fp32.wrong_vector_count", FP32,
        "case 3: gemm_dots_transposed<3>",
        "case 3: gemm_dots_transposed<2>",
        "K = 17..24 dispatched to the 16-region kernel",
    ),
    Mutant(
        "gemm_rows_block.second_half_reuses_first", FP32,
        "      c[i][1] += w * x1;",
        "      c[i][1] += w * x0;",
        "pixels 8..15 of a register block take the products of pixels 0..7",
    ),
    Mutant(
        "gemm_rows.row_tail_off_by_one", FP32,
        "  for (int r = R_blocked; r < R; ++r)",
        "  for (int r = R_blocked + 1; r < R; ++r)",
        "the rows after the last block of 4 start one row late",
    ),
    Mutant(
        "online_softmax_tile_fp32.tile_max_for_running_max", FP32,
        "    const f8 shift = splat(m_new);",
        "    const f8 shift = splat(tile_max);",
        "the vector part subtracts the tile's max instead of the running max",
    ),
    Mutant(
        "exp_shift_fp32.tail_off_by_one", FP32,
        "    for (int l = L_blocked; l < L; ++l) yk[l] = math::exp_(yk[l] - lse[k]);",
        "    for (int l = L_blocked; l + 1 < L; ++l) yk[l] = math::exp_(yk[l] - lse[k]);",
        "the tile's last pixel keeps its logit instead of exp(logit - lse)",
    ),
    Mutant(
        "softmax_columns_fp32.tail_off_by_one", FP32,
        "math::softmax_columns(y + L_blocked, ldy, K, L - L_blocked, colmax, colsum);",
        "math::softmax_columns(y + L_blocked, ldy, K, L - L_blocked - 1, colmax, colsum);",
        "the tile's last column is left unnormalised",
    ),
    Mutant(
        "exp8.exponent_bias", FP32,
        "(__builtin_convertvector(n, i8) + 127) << 23",
        "(__builtin_convertvector(n, i8) + 126) << 23",
        "the vector exp is half the scalar one",
    ),
    Mutant(
        "hsum.skips_lane_0", FP32,
        "  for (int i = 0; i < kLanes; ++i) s += v[i];",
        "  for (int i = 1; i < kLanes; ++i) s += v[i];",
        "horizontal sums leave out lane 0",
    ),
    # msca_math.h: the shared routines (the whole float64 path; float32's tails and merges).
    Mutant(
        "project_add.channel_tail_off_by_one", MATH,
        "  for (; c < C; ++c) {",
        "  for (; c + 1 < C; ++c) {",
        "the last input channel is dropped when C % 4 != 0",
    ),
    Mutant(
        "expand_row.region_tail_off_by_one", MATH,
        "  for (; k < K; ++k) {\n    const acc_t ak = a[k];",
        "  for (; k + 1 < K; ++k) {\n    const acc_t ak = a[k];",
        "the last region is dropped when K % 4 != 0",
    ),
    Mutant(
        "outer_accumulate.overwrites", MATH,
        "      acc[r * K + k] += s;",
        "      acc[r * K + k] = s;",
        "each tile's sum replaces the earlier tiles' instead of adding to it",
    ),
    Mutant(
        "online_softmax_tile.sum_not_rescaled", MATH,
        "    s[k] = s[k] * scale[k] + sum;",
        "    s[k] = s[k] + sum;",
        "the running sum is not rescaled when the running max grows",
    ),
    Mutant(
        "exp_shift.first_region_lse", MATH,
        "    const acc_t shift = lse[k];",
        "    const acc_t shift = lse[0];",
        "every region's recomputed attention is shifted by region 0's log-sum-exp",
    ),
    Mutant(
        "softmax_columns.first_region_skipped", MATH,
        "  for (int k = 0; k < K; ++k) {\n    MSCA_SIMD\n"
        "    for (int l = 0; l < L; ++l) {\n      y[k * ldy + l] = exp_(",
        "  for (int k = 1; k < K; ++k) {\n    MSCA_SIMD\n"
        "    for (int l = 0; l < L; ++l) {\n      y[k * ldy + l] = exp_(",
        "region 0 is neither exponentiated nor summed",
    ),
    Mutant(
        "softmax_columns_backward.dot_drops_region_0", MATH,
        "  for (int k = 0; k < K; ++k) {\n    MSCA_SIMD\n    for (int l = 0; l < L; ++l) dot[l] +=",
        "  for (int k = 1; k < K; ++k) {\n    MSCA_SIMD\n    for (int l = 0; l < L; ++l) dot[l] +=",
        "sum_k beta dbeta leaves out region 0",
    ),
    Mutant(
        "softmax_rows_backward.drops_delta", MATH,
        "g[k * ld + l] = p[k * ld + l] * (g[k * ld + l] - dk);",
        "g[k * ld + l] = p[k * ld + l] * g[k * ld + l];",
        "dS = P dP, without the - delta term",
    ),
    Mutant(
        "combine_partials.drops_first_chunk", MATH,
        "  for (int j = 0; j < chunks; ++j) total += ",
        "  for (int j = 1; j < chunks; ++j) total += ",
        "the softmax normaliser leaves out the first chunk of pixels",
    ),
    # msca_cpu.cpp: the driver's tile steps.
    Mutant(
        "pack_tile.short_copy", DRIVER,
        "std::memcpy(buf + r * kLd, x + r * ld, sizeof(T) * L);",
        "std::memcpy(buf + r * kLd, x + r * ld, sizeof(T) * (L - 1));",
        "the packed tile misses each row's last pixel",
    ),
    Mutant(
        "channel_attention_tile.bias_of_region_0", DRIVER,
        "std::fill(y + k * kLd, y + k * kLd + L, bias[k]);",
        "std::fill(y + k * kLd, y + k * kLd + L, bias[0]);",
        "every region gets region 0's psi bias",
    ),
    Mutant(
        "aggregate_task.rescale_by_region_0", DRIVER,
        "acc[n * K + k] *= scale[k];",
        "acc[n * K + k] *= scale[0];",
        "the accumulator of every region is rescaled by region 0's factor",
    ),
    Mutant(
        "backward_sweep_a.dbias_drops_first_pixel", DRIVER,
        "for (int l = 0; l < L; ++l) sum += g[k * kLd + l];",
        "for (int l = 1; l < L; ++l) sum += g[k * kLd + l];",
        "the bias gradient leaves out each tile's first pixel",
    ),
    Mutant(
        "backward_kernel.delta_without_gate", DRIVER,
        "delta[b * K + k] += grad_v * value;",
        "delta[b * K + k] += dvt * value;",
        "delta = sum_n dV V takes dV before the gate",
    ),
]


class StaleMutant(Exception):
    """A mutant whose pattern is not in its file exactly once: the sources moved on."""


def apply(mutant: Mutant, text: str) -> str:
    """``text`` with the mutant's one replacement; StaleMutant unless the pattern occurs once."""
    count = text.count(mutant.old)
    if count != 1:
        raise StaleMutant(
            f"mutant {mutant.name}: its pattern occurs {count} times in {mutant.path} (expected exactly once); "
            f"update the mutant to the current source:\n{mutant.old}"
        )
    return text.replace(mutant.old, mutant.new)


def check_patterns(mutants: list[Mutant]) -> None:
    names = [m.name for m in mutants]
    if len(set(names)) != len(names):
        raise StaleMutant("two mutants share a name")
    for mutant in mutants:
        with open(os.path.join(REPO, mutant.path)) as f:
            apply(mutant, f.read())


def repository_files() -> list[str]:
    """Tracked files and untracked ones git does not ignore (so uncommitted work is included)."""
    out = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO, check=True, capture_output=True,
    ).stdout
    return [p for p in out.decode().split("\0") if p and os.path.isfile(os.path.join(REPO, p))]


def copy_repository(dest: str, files: list[str]) -> None:
    for rel in files:
        os.makedirs(os.path.join(dest, os.path.dirname(rel)), exist_ok=True)
        shutil.copy2(os.path.join(REPO, rel), os.path.join(dest, rel))


def build_env() -> dict:
    """setup.py's environment for msca_fast._C alone: no CUDA, no emulation, one compile job,
    Python's compile flags without -g (debug info only costs time here)."""
    cflags = [f for f in (sysconfig.get_config_var("CFLAGS") or "").split() if f != "-g"]
    return {
        **os.environ,
        "MSCA_FAST_SKIP_CUDA": "1",
        "MSCA_FAST_SKIP_EMULATION": "1",
        "MAX_JOBS": "1",
        "CFLAGS": " ".join(cflags + ["-g0"]),
    }


class Printer:
    """Progress lines from several jobs, one whole line at a time, with the elapsed time."""

    def __init__(self):
        self.start = time.monotonic()
        self.lock = threading.Lock()

    def __call__(self, job: int, message: str) -> None:
        with self.lock:
            print(f"[{time.monotonic() - self.start:7.1f}s] job {job}: {message}", flush=True)


@dataclasses.dataclass
class Result:
    name: str
    outcome: str  # "caught", "SURVIVED", "ERROR"
    detail: str
    build_s: float
    test_s: float


FAILED_LINE = re.compile(r"^(?:FAILED|ERROR) (\S+)", re.MULTILINE)


def first_failure(output: str) -> str:
    match = FAILED_LINE.search(output)
    return match.group(1) if match else "(no FAILED line: see the log)"


class Job:
    """One scratch checkout with its own build directory, building and testing in turn."""

    def __init__(self, index: int, root: str, files: list[str], tests: list[str], say: Printer):
        self.index, self.tests, self.say = index, tests, say
        self.dir = os.path.join(root, f"job{index}")
        self.logs = os.path.join(root, "logs")
        copy_repository(self.dir, files)
        os.makedirs(self.logs, exist_ok=True)

    def log_path(self, name: str, step: str) -> str:
        return os.path.join(self.logs, f"{name}.{step}.log")

    def build(self, name: str) -> tuple[bool, float]:
        start = time.monotonic()
        with open(self.log_path(name, "build"), "w") as log:
            rc = subprocess.run(
                [sys.executable, "setup.py", "build_ext", "--inplace", "--force"],
                cwd=self.dir, env=build_env(), stdout=log, stderr=subprocess.STDOUT,
            ).returncode
        return rc == 0, time.monotonic() - start

    def test(self, name: str) -> tuple[str, str, float]:
        """("passed" | "failed" | "error", first failing test or what went wrong, seconds)."""
        command = [sys.executable, "-m", "pytest", "-x", "-q", "-rfE", "-p", "no:cacheprovider",
                   *self.tests, *TEST_SELECTION]
        for test_id in TEST_DESELECTED:
            command += ["--deselect", test_id]
        env = {**os.environ, "PYTHONPATH": self.dir}
        start = time.monotonic()
        path = self.log_path(name, "test")
        try:
            with open(path, "w") as log:
                rc = subprocess.run(
                    command, cwd=self.dir, env=env, stdout=log, stderr=subprocess.STDOUT, timeout=TEST_TIMEOUT_S,
                ).returncode
        except subprocess.TimeoutExpired:
            return "failed", f"timed out after {TEST_TIMEOUT_S} s", time.monotonic() - start
        elapsed = time.monotonic() - start
        with open(path) as f:
            output = f.read()
        if rc == 0:
            return "passed", "", elapsed
        if rc == 1:
            return "failed", first_failure(output), elapsed
        if rc < 0:  # killed by a signal: a crash is a detection too
            return "failed", f"tests crashed (signal {-rc}), log {path}", elapsed
        return "error", f"pytest exit status {rc}, log {path}", elapsed

    def run_mutant(self, mutant: Mutant) -> Result:
        path = os.path.join(self.dir, mutant.path)
        with open(path) as f:
            original = f.read()
        self.say(self.index, f"{mutant.name}: building ({mutant.bug})")
        try:
            with open(path, "w") as f:
                f.write(apply(mutant, original))
            built, build_s = self.build(mutant.name)
        finally:
            with open(path, "w") as f:  # the next build sees it newer than the objects
                f.write(original)
        if not built:
            self.say(self.index, f"{mutant.name}: BUILD FAILED, log {self.log_path(mutant.name, 'build')}")
            return Result(mutant.name, "ERROR", "build failed", build_s, 0.0)
        self.say(self.index, f"{mutant.name}: built in {build_s:.0f} s, testing")
        status, detail, test_s = self.test(mutant.name)
        outcome = {"failed": "caught", "passed": "SURVIVED", "error": "ERROR"}[status]
        self.say(self.index, f"{mutant.name}: {outcome} {detail} ({test_s:.0f} s)")
        return Result(mutant.name, outcome, detail, build_s, test_s)


def run(mutants: list[Mutant], jobs: int, root: str, tests: list[str]) -> tuple[list[Result], str | None]:
    """Results in the order of ``mutants``, and why the whole check is void (or None)."""
    say = Printer()
    files = repository_files()
    work: queue.Queue = queue.Queue()
    for mutant in mutants:
        work.put(mutant)
    results: dict[str, Result] = {}
    void: list[str] = []
    baseline_done = threading.Event()

    def worker(index: int) -> None:
        job = Job(index, root, files, tests, say)
        say(index, f"building the unmutated source in {job.dir}")
        built, build_s = job.build(f"unmutated{index}")
        if not built:
            void.append(f"the unmutated source does not build (log {job.log_path(f'unmutated{index}', 'build')})")
            baseline_done.set()
            return
        say(index, f"unmutated build done in {build_s:.0f} s")
        if index == 0:
            status, detail, test_s = job.test("unmutated")
            if status != "passed":
                void.append(f"the unmutated build fails its tests: {detail}")
            say(index, f"unmutated tests {status} in {test_s:.0f} s {detail}")
            baseline_done.set()
        while not void:
            try:
                mutant = work.get_nowait()
            except queue.Empty:
                return
            results[mutant.name] = job.run_mutant(mutant)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(jobs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return [results[m.name] for m in mutants if m.name in results], (void[0] if void else None)


def print_table(results: list[Result]) -> None:
    width = max(len(r.name) for r in results)
    print(f"\n{'mutant':<{width}}  {'result':<8}  build  tests  first failing test")
    for r in results:
        print(f"{r.name:<{width}}  {r.outcome:<8}  {r.build_s:4.0f}s  {r.test_s:4.0f}s  {r.detail}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=int(os.environ.get("MAX_JOBS", "2")),
                        help="mutants built and tested at once, each in its own checkout (default: $MAX_JOBS or 2)")
    parser.add_argument("--only", action="append", metavar="NAME", help="run only this mutant (repeatable)")
    parser.add_argument("--tests", nargs="+", metavar="FILE", default=TEST_FILES,
                        help=f"test files to run, in this order (default: {' '.join(TEST_FILES)})")
    parser.add_argument("--list", action="store_true", help="list the mutants and exit")
    parser.add_argument("--scratch", help="directory for the checkouts, builds and logs (default: a new temporary one)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory")
    args = parser.parse_args(argv)

    try:
        check_patterns(MUTANTS)
    except StaleMutant as exc:
        print(f"CHECK VOID: {exc}", file=sys.stderr)
        return 2
    mutants = MUTANTS
    if args.only:
        unknown = set(args.only) - {m.name for m in MUTANTS}
        if unknown:
            parser.error(f"--only: unknown mutant(s) {sorted(unknown)}; --list shows them")
        mutants = [m for m in MUTANTS if m.name in args.only]
    if args.list:
        for m in mutants:
            print(f"{m.name:<55} {m.path:<22} {m.bug}")
        return 0
    if args.jobs < 1:
        parser.error(f"--jobs: expected at least 1, got {args.jobs}")

    root = args.scratch or tempfile.mkdtemp(prefix="msca_cpp_mutants_")
    os.makedirs(root, exist_ok=True)
    start = time.monotonic()
    print(f"{len(mutants)} mutants, {args.jobs} at a time, in {root}", flush=True)
    try:
        results, void = run(mutants, min(args.jobs, len(mutants)), root, args.tests)
    finally:
        if not args.keep and not args.scratch:
            shutil.rmtree(root, ignore_errors=True)
    if results:
        print_table(results)
    print(f"\ntotal {time.monotonic() - start:.0f} s")
    if void is not None:
        print(f"CHECK VOID: {void}")
        return 2
    if any(r.outcome == "ERROR" for r in results):
        return 2
    survived = [r.name for r in results if r.outcome == "SURVIVED"]
    print(f"{len(results) - len(survived)} of {len(results)} mutants caught"
          + (f"; SURVIVED: {', '.join(survived)}" if survived else ""))
    return 1 if survived else 0


if __name__ == "__main__":
    sys.exit(main())
