"""Under CI=true a missing extension fails the run with one line; elsewhere its tests skip."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from msca_fast import _extension

from extension_requirements import missing_extensions, running_in_ci
from repo_root import ROOT


@pytest.mark.parametrize(
    "value, expected", [("true", True), ("TRUE", True), ("1", True), ("", False), ("false", False)]
)
def test_ci_is_read_from_the_environment(value, expected):
    assert running_in_ci({"CI": value}) is expected
    assert running_in_ci({}) is False


def test_each_missing_extension_is_named_with_its_reason(monkeypatch):
    monkeypatch.setattr(_extension, "load_error", "no _C here")
    monkeypatch.setattr(_extension, "emulation_load_error", "no emulation here")
    missing = missing_extensions({})
    assert missing == [
        "msca_fast._C did not load: no _C here",
        "msca_fast._C_cuda_emulated did not load: no emulation here",
    ]
    assert missing_extensions({"MSCA_FAST_SKIP_EMULATION": "1"}) == missing[:1]


def test_a_complete_build_misses_nothing():
    if _extension.load_error or _extension.emulation_load_error:
        pytest.skip(f"this build is incomplete: {_extension.load_error or _extension.emulation_load_error}")
    assert missing_extensions({}) == []


def run_pytest_without(module: str, ci: str | None) -> subprocess.CompletedProcess:
    """A pytest session over one small test file in which importing ``module`` fails."""
    env = {k: v for k, v in os.environ.items() if k != "CI"} | ({"CI": ci} if ci is not None else {})
    code = (f"import sys; sys.modules[{module!r}] = None; import pytest; "
            "sys.exit(pytest.main(['-q', '-p', 'no:cacheprovider', 'tests/backends/test_extension_schemas.py']))")
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("module", ["msca_fast._C", "msca_fast._C_cuda_emulated"])
def test_ci_fails_the_session_when_an_extension_is_missing(module):
    result = run_pytest_without(module, ci="true")
    assert result.returncode == 1, result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("Exit: CI=true:")]
    assert len(lines) == 1 and f"{module} did not load" in lines[0], result.stderr
    assert " passed" not in result.stdout and " skipped" not in result.stdout  # no test ran


def test_without_ci_the_tests_of_a_missing_extension_skip():
    result = run_pytest_without("msca_fast._C", ci=None)
    assert result.returncode == 0 and " skipped" in result.stdout and "failed" not in result.stdout, (
        result.stdout + result.stderr
    )
