"""The optional metric packages (lpips, torch-fidelity: the ``eval`` extra) when they are absent:
the metric is reported missing with how to install it, never faked, and what needs no package
still works. Each test hides the packages (``sys.modules[name] = None`` makes importing them
fail as if they were not installed), so these run whether or not they are installed."""

from __future__ import annotations

import sys

import pytest
import torch

from msca_fast.evaluation.config import EvalConfig
from msca_fast.evaluation.metric_setup import open_metric_suite
from msca_fast.metrics import FIDMetric, LPIPSMetric, MetricPackageMissing, MetricSuite, MetricUnavailable

INSTALL_ADVICE = "pip install 'msca-fast[eval]'"


@pytest.fixture
def no_metric_packages(monkeypatch):
    """lpips and torch-fidelity cannot be imported for the test's duration."""
    for module in ("lpips", "torch_fidelity", "torch_fidelity.feature_extractor_inceptionv3"):
        monkeypatch.setitem(sys.modules, module, None)


def test_lpips_without_its_package_says_how_to_install_it(no_metric_packages):
    with pytest.raises(MetricPackageMissing) as caught:
        LPIPSMetric()
    assert isinstance(caught.value, ImportError) and isinstance(caught.value, MetricUnavailable)
    message = str(caught.value)
    assert message.startswith("LPIPS needs the 'lpips' package, which is not installed") and INSTALL_ADVICE in message


def test_fid_without_its_package_says_how_to_install_it(no_metric_packages):
    with pytest.raises(MetricPackageMissing) as caught:
        FIDMetric()
    message = str(caught.value)
    assert message.startswith("FID needs the 'torch-fidelity' package, which is not installed")
    assert INSTALL_ADVICE in message


def test_fid_with_its_own_feature_extractor_needs_no_package(no_metric_packages):
    fid = FIDMetric(feature_extractor=lambda images: images.mean(dim=(2, 3)))
    real = torch.rand(6, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    fid.update("real", real)
    fid.update("fake", real + 0.1)  # equal covariances, means 0.1 apart on 3 channels
    assert fid.compute() == pytest.approx(3 * 0.01, rel=1e-6)


def test_the_suite_reports_the_missing_packages_and_computes_the_rest(no_metric_packages):
    suite = MetricSuite(("psnr", "lpips", "fid"))
    assert suite.available == ("psnr",)
    assert suite.missing["lpips"].startswith("LPIPS needs the 'lpips' package")
    assert suite.missing["fid"].startswith("FID needs the 'torch-fidelity' package")
    assert all(INSTALL_ADVICE in details for details in suite.missing_details.values())
    truths = torch.zeros(2, 3, 16, 16)
    suite.update(truths + 0.1, truths)
    assert suite.compute() == {"psnr": pytest.approx(10 * torch.log10(torch.tensor(4 / 0.01)).item()), "lpips": None,
                               "fid": None}  # fmt: skip
    with pytest.raises(MetricPackageMissing, match="lpips"):
        MetricSuite(("psnr", "lpips"), allow_missing=False)


def test_evaluation_reports_a_missing_package_in_one_line(no_metric_packages):
    config = EvalConfig(checkpoint="unused", metrics=("psnr", "lpips", "fid"))
    _, missing = open_metric_suite(config, torch.device("cpu"))
    assert set(missing) == {"lpips", "fid"}
    for reason in missing.values():
        assert "\n" not in reason and INSTALL_ADVICE in reason, reason
    config.strict = True
    with pytest.raises(MetricUnavailable) as caught:
        open_metric_suite(config, torch.device("cpu"))
    lines = str(caught.value).splitlines()
    assert [line.split(":")[1].strip() for line in lines] == ["lpips", "fid"]
    assert all(line.startswith("--strict: ") and INSTALL_ADVICE in line for line in lines)
