"""Per-module summary of the last `mutmut run` (README, "Testing"): killed, survived, untested
and unchecked mutants of each module in pyproject.toml's [tool.mutmut] only_mutate, and the score
killed / (killed + survived).

    python tests/mutation/mutmut_scores.py          # from the repository root, after mutmut run
"""

from __future__ import annotations

import collections
import sys
from pathlib import Path

from mutmut.configuration import config
from mutmut.mutation.data import SourceFileMutationData
from mutmut.stats import status_by_exit_code


def module_counts(path: Path) -> collections.Counter:
    """Mutant statuses of one mutated module ("killed", "survived", "no tests", "not checked", ...)."""
    data = SourceFileMutationData(path=path)
    data.load()
    return collections.Counter(status_by_exit_code[code] for code in data.exit_code_by_key.values())


def main() -> int:
    if not Path("mutants").is_dir():
        print("no mutants/ folder here: run `mutmut run` from the repository root first", file=sys.stderr)
        return 2
    print("| module | mutants | killed | survived | no tests | not checked | score |")
    print("|---|---|---|---|---|---|---|")
    for pattern in config().only_mutate:
        counts = module_counts(Path(pattern))
        checked = counts["killed"] + counts["survived"]
        score = f"{100 * counts['killed'] / checked:.0f}%" if checked else "-"
        print(f"| `{pattern}` | {sum(counts.values())} | {counts['killed']} | {counts['survived']} | "
              f"{counts['no tests']} | {counts['not checked']} | {score} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
