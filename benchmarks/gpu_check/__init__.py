"""The GPU check: one command for a fresh GPU machine that builds, tests, times and reports
within 8 minutes, and keeps what it did when it is stopped.

    python -m benchmarks.gpu_check --out-dir "$OUT"     # or --dry-run to see the plan

Modules, one job each (none but the workers imports torch):
  __main__        the command line;
  plan            choosing steps (--only / --skip), scaling budgets, the --dry-run text;
  check           running the steps in order, rewriting the report and archive after each;
  steps           the steps, their commands and budgets (with the measurements behind them);
  context         what a step is (Step, Command, Skip) and what the steps share (Context);
  runner          a step as a child process with a deadline; the schedule that carries
                  unused time forward;
  capability      the local GPU's compute capability from nvidia-smi (TORCH_CUDA_ARCH_LIST);
  pack            the output folder: report.md and logs.tar.gz, nothing else;
  report          the markdown report; results, op_results, pytest_results: its sections;
  pytest_plugin   one JSON line per finished test, so a killed test step keeps its results;
  predictions     the CUDA kernels' predicted times (benchmarks/cuda_prediction.py), if any;
workers (python -m benchmarks.gpu_check.<name>):
  env, backends, ops (with op_timing, op_kernels, op_accuracy), sanitizer (running
  sanitized_ops under compute-sanitizer), train.
"""
