"""The weight-finiteness check is opt-in: off by default (no host sync), on by flag or env var."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from msca_fast.op_arguments import finite_check, finite_check_enabled, set_finite_check
from msca_fast.ops import MSCA, aggregate, distribute, msca

from helpers import call
from repo_root import ROOT

WEIGHTS = ("phi_weight", "phi_bias", "psi_weight", "psi_bias")


@pytest.fixture
def check_off():
    """The default setting, whatever the environment running the tests says."""
    with finite_check(False):
        yield


def _with_nan(inputs, name):
    bad = inputs[name].clone()
    bad.view(-1)[0] = float("nan")
    return bad


def _msca(inputs, **overrides):
    return call(lambda *a: msca(*a, backend="reference"), inputs, **overrides)


def _enabled_in_fresh_process(value: str | None) -> subprocess.CompletedProcess:
    # The documented name, spelled out, so that renaming the constant fails here.
    env = {k: v for k, v in os.environ.items() if k != "MSCA_FAST_CHECK_FINITE"}
    if value is not None:
        env["MSCA_FAST_CHECK_FINITE"] = value
    code = "from msca_fast.op_arguments import finite_check_enabled; print(finite_check_enabled())"
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


# --- default: off ------------------------------------------------------------------------


def test_check_is_off_when_the_environment_variable_is_unset():
    done = _enabled_in_fresh_process(None)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


@pytest.mark.parametrize("name", WEIGHTS)
def test_default_path_lets_a_nan_weight_through(inputs, check_off, name):
    out = _msca(inputs, **{name: _with_nan(inputs, name)})
    # No error: the NaN goes through the logits into the output, as in any other layer.
    assert out.shape == (2, 3, 2, 3)
    assert torch.isnan(out).any()


def test_default_path_never_computes_the_check(inputs, check_off, monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("the finiteness check ran with the flag off")

    monkeypatch.setattr(torch, "_foreach_norm", forbidden)
    monkeypatch.setattr(torch, "isfinite", forbidden)
    _msca(inputs)
    aggregate(inputs["fx2"], inputs["fc2"], inputs["phi_weight"], inputs["phi_bias"], backend="reference")
    v = torch.randn(2, 3, 3, dtype=torch.float64)
    distribute(v, inputs["fc1"], inputs["psi_weight"], inputs["psi_bias"], inputs["gate"], backend="reference")
    module = MSCA(3, 2, 2, num_regions=3, backend="reference").double()
    module(inputs["fx2"], inputs["fc2"], inputs["fc1"])


# --- opt-in ------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["1", "true", "YES", " on "])
def test_environment_variable_turns_the_check_on(value):
    done = _enabled_in_fresh_process(value)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "True"


@pytest.mark.parametrize("value", ["0", "false", "off", ""])
def test_environment_variable_can_say_off(value):
    done = _enabled_in_fresh_process(value)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


def test_unrecognised_environment_value_fails_naming_the_variable():
    done = _enabled_in_fresh_process("maybe")
    assert done.returncode != 0
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("ValueError: MSCA_FAST_CHECK_FINITE: expected one of")
    assert "'maybe'" in last


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")], ids=["nan", "inf", "-inf"])
@pytest.mark.parametrize("name", WEIGHTS)
def test_opt_in_raises_a_one_line_error_naming_the_weight(inputs, name, value):
    bad = inputs[name].clone()
    bad.view(-1)[-1] = value
    with finite_check(), pytest.raises(ValueError) as caught:
        _msca(inputs, **{name: bad})
    message = str(caught.value)
    assert message == f"{name}: contains NaN or Inf; weights must be finite"
    assert "\n" not in message


def test_opt_in_accepts_huge_but_finite_weights(inputs):
    # Squares of 1e300 overflow the fast norm test; the exact per-tensor test must pass them.
    huge = torch.full_like(inputs["psi_bias"], 1e300)
    with finite_check():
        out = _msca(inputs, psi_bias=huge)
    assert out.shape == (2, 3, 2, 3)


def test_opt_in_covers_aggregate_and_distribute(inputs):
    v = torch.randn(2, 3, 3, dtype=torch.float64)
    with finite_check():
        with pytest.raises(ValueError, match=r"^phi_weight: contains NaN or Inf"):
            aggregate(inputs["fx2"], inputs["fc2"], _with_nan(inputs, "phi_weight"), None, backend="reference")
        with pytest.raises(ValueError, match=r"^psi_bias: contains NaN or Inf"):
            distribute(v, inputs["fc1"], inputs["psi_weight"], _with_nan(inputs, "psi_bias"), None, backend="reference")


def test_the_check_is_not_applied_to_features(inputs):
    # Only weights are checked: a NaN feature is data, and checking it would cost a pass over it.
    with finite_check():
        out = _msca(inputs, fx2=_with_nan(inputs, "fx2"))
    assert torch.isnan(out).any()


# --- the switch --------------------------------------------------------------------------


def test_set_finite_check_returns_the_previous_setting_and_the_context_restores_it():
    original = finite_check_enabled()
    try:
        assert set_finite_check(True) is original
        assert finite_check_enabled() is True
        with finite_check(False):
            assert finite_check_enabled() is False
        assert finite_check_enabled() is True
        with pytest.raises(RuntimeError), finite_check(False):
            raise RuntimeError("leaves the block early")
        assert finite_check_enabled() is True
    finally:
        set_finite_check(original)


def test_set_finite_check_rejects_a_non_bool():
    with pytest.raises(TypeError, match=r"^enabled: expected a bool, got int$"):
        set_finite_check(1)


def test_check_is_skipped_while_torch_compile_traces(inputs, monkeypatch):
    monkeypatch.setattr(torch.compiler, "is_compiling", lambda: True)
    with finite_check():
        out = _msca(inputs, psi_weight=_with_nan(inputs, "psi_weight"))
    assert torch.isnan(out).all()

