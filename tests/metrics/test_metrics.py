"""Evaluation metrics: PSNR, Fréchet distance and FID, LPIPS weight loading, style, the metric suite.

No test downloads anything: the torch hub cache is an empty temporary folder and every
download raises. Networks with pretrained weights are exercised with random weights written
to temporary files, which tests the loading paths only; their values mean nothing.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import pytest
import torch
import torchvision
from torch.testing import assert_close

from msca_fast.errors import WeightsUnavailable
from msca_fast.metrics import (
    INCEPTION_SOURCE,
    VGG16_SOURCE,
    FIDInceptionV3,
    FIDMetric,
    LPIPSMetric,
    MetricSuite,
    StyleLoss,
    activation_statistics,
    frechet_distance,
    mean_psnr,
    psnr,
    style_distance,
)

pytestmark = pytest.mark.filterwarnings("ignore:vgg_weights='random'")


class DownloadAttempted(RuntimeError):
    pass


@pytest.fixture(autouse=True)
def offline(tmp_path, monkeypatch):
    """An empty hub cache, no weight environment variables, and downloads that fail."""
    hub = tmp_path / "hub"
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(hub))

    def refuse(url, *args, **kwargs):
        raise DownloadAttempted(f"test blocked a download of {url}")

    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", refuse)
    for name in (VGG16_SOURCE.env_var, INCEPTION_SOURCE.env_var, "MSCA_FAST_VGG19_WEIGHTS"):
        monkeypatch.delenv(name, raising=False)
    return hub


def images(batch=2, size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(batch, 3, size, size, generator=g) * 2 - 1


# --- PSNR ------------------------------------------------------------------------------------


def test_psnr_of_identical_images_is_the_cap():
    x = images()
    assert psnr(x, x).tolist() == [100.0, 100.0]
    assert psnr(x, x, cap=60.0).tolist() == [60.0, 60.0]
    assert mean_psnr(x, x) == 100.0


def test_psnr_matches_the_formula_for_a_known_mse():
    # Multiples of 1/8 and a +-1/4 offset are exact in float32, so the MSE is exactly 1/16.
    g = torch.Generator().manual_seed(1)
    x = torch.randint(-6, 7, (3, 3, 8, 8), generator=g).float() / 8
    signs = torch.randint(0, 2, x.shape, generator=g).float() * 2 - 1
    y = x + 0.25 * signs
    expected = 10 * math.log10(2.0**2 / (1 / 16))
    assert psnr(x, y).tolist() == [expected] * 3
    assert psnr(x, y, data_range=1.0).tolist() == [10 * math.log10(1 / (1 / 16))] * 3
    assert mean_psnr(x, y) == pytest.approx(expected, abs=1e-12)


def test_psnr_rejects_bad_input():
    x = images()
    with pytest.raises(ValueError, match="x and y"):
        psnr(x, x[:1])
    with pytest.raises(ValueError, match="data_range"):
        psnr(x, x, data_range=0)
    with pytest.raises(TypeError, match="x:"):
        psnr(x.numpy(), x)


# --- Fréchet distance and FID -------------------------------------------------------------------


def test_frechet_distance_of_identical_gaussians_is_zero():
    g = torch.Generator().manual_seed(2)
    a = torch.randn(6, 6, generator=g, dtype=torch.float64)
    sigma = a @ a.T + 0.1 * torch.eye(6, dtype=torch.float64)
    mu = torch.randn(6, generator=g, dtype=torch.float64)
    assert frechet_distance(mu, sigma, mu, sigma) == pytest.approx(0.0, abs=1e-10)


def test_frechet_distance_between_unit_gaussians_is_the_squared_mean_difference():
    identity = torch.eye(4, dtype=torch.float64)
    m = torch.tensor([1.0, -2.0, 0.5, 3.0], dtype=torch.float64)
    assert frechet_distance(torch.zeros(4), identity, m, identity) == pytest.approx(m.square().sum().item(), abs=1e-12)


def test_frechet_distance_of_diagonal_covariances_has_a_closed_form():
    a = torch.tensor([0.5, 2.0, 3.0, 0.0], dtype=torch.float64)
    b = torch.tensor([1.5, 0.25, 3.0, 4.0], dtype=torch.float64)
    mu1 = torch.tensor([0.0, 1.0, 2.0, 3.0], dtype=torch.float64)
    mu2 = torch.tensor([1.0, 1.0, 0.0, -1.0], dtype=torch.float64)
    expected = ((a.sqrt() - b.sqrt()).square().sum() + (mu1 - mu2).square().sum()).item()
    assert frechet_distance(mu1, torch.diag(a), mu2, torch.diag(b)) == pytest.approx(expected, abs=1e-12)


def test_frechet_distance_matches_scipy_sqrtm_on_random_spd_matrices():
    scipy_linalg = pytest.importorskip("scipy.linalg")
    import numpy as np

    rng = np.random.default_rng(3)
    for dim in (3, 16, 64):
        a, b = rng.normal(size=(dim, dim)), rng.normal(size=(dim, dim))
        sigma1, sigma2 = a @ a.T + 1e-3 * np.eye(dim), b @ b.T + 1e-3 * np.eye(dim)
        mu1, mu2 = rng.normal(size=dim), rng.normal(size=dim)
        covmean = scipy_linalg.sqrtm(sigma1 @ sigma2).real  # pytorch-fid's formula
        expected = np.sum((mu1 - mu2) ** 2) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean)
        assert frechet_distance(mu1, sigma1, mu2, sigma2) == pytest.approx(expected, rel=1e-8, abs=1e-8)


def test_frechet_distance_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="sigma2"):
        frechet_distance(torch.zeros(3), torch.eye(3), torch.zeros(3), torch.eye(4))
    with pytest.raises(TypeError, match="mu1"):
        frechet_distance([0.0], torch.eye(1), torch.zeros(1), torch.eye(1))


def test_activation_statistics_match_numpy():
    import numpy as np

    features = torch.randn(50, 5)
    mu, sigma = activation_statistics(features)
    assert mu.dtype == sigma.dtype == torch.float64
    assert_close(mu, features.double().mean(0))
    assert_close(sigma, torch.from_numpy(np.cov(features.double().numpy(), rowvar=False)))
    with pytest.raises(ValueError, match="N >= 2"):
        activation_statistics(torch.randn(1, 5))


def random_projection(dim=8):
    """A fixed feature extractor: images (B,3,H,W) -> (B, dim)."""
    weight = torch.randn(3 * 16 * 16, dim, generator=torch.Generator().manual_seed(4))
    return lambda x: x.flatten(1) @ weight


def test_fid_with_an_injected_extractor_is_zero_for_identical_sets_and_positive_otherwise():
    real = images(batch=12, size=16, seed=5)
    fid = FIDMetric(feature_extractor=random_projection())
    for batch in real.split(5):
        fid.update("real", batch)
        fid.update("fake", batch)
    assert fid.count("real") == fid.count("fake") == 12
    assert fid.compute() == pytest.approx(0.0, abs=1e-6)

    fid.reset()
    fid.update("real", real)
    fid.update("fake", (real * 0.5 + 0.3).clamp(-1, 1))
    assert fid.compute() > 1.0


def test_fid_rejects_bad_use():
    fid = FIDMetric(feature_extractor=random_projection())
    with pytest.raises(ValueError, match="real_or_fake"):
        fid.update("generated", images(size=16))
    fid.update("real", images(size=16))
    with pytest.raises(ValueError, match="'fake' set needs at least 2"):
        fid.compute()
    with pytest.raises(TypeError, match="feature_extractor"):
        FIDMetric(feature_extractor="inception")


def test_fid_inception_unavailable_says_where_to_get_it(offline):
    pytest.importorskip("torch_fidelity.feature_extractor_inceptionv3")  # without it: test_missing_metric_packages
    with pytest.raises(WeightsUnavailable) as caught:
        FIDMetric()
    message = str(caught.value)
    assert INCEPTION_SOURCE.urls[0] in message
    assert str(offline / "checkpoints" / "weights-inception-2015-12-05-6726825d.pth") in message
    assert "MSCA_FAST_FID_INCEPTION_WEIGHTS" in message and "inception_weights" in message
    assert "download failed" in message


def test_fid_inception_urls_are_the_packages_own():
    inception = pytest.importorskip("torch_fidelity.feature_extractor_inceptionv3")
    assert INCEPTION_SOURCE.urls[0] == inception.URL_INCEPTION_V3


def test_fid_inception_loads_a_weights_file_from_the_environment(tmp_path, monkeypatch):
    pytest.importorskip("torch_fidelity")
    # torchvision's Inception3 has the FID network's parameter names; random weights test loading only.
    random_inception = torchvision.models.inception_v3(
        weights=None, aux_logits=False, init_weights=False, num_classes=1008
    )
    path = tmp_path / "random-inception.pth"
    torch.save(random_inception.state_dict(), path)
    monkeypatch.setenv(INCEPTION_SOURCE.env_var, str(path))
    network = FIDInceptionV3()
    assert network.weights_file == path
    assert not network.training and not any(p.requires_grad for p in network.parameters())

    class Recorder(torch.nn.Module):
        def forward(self, x):
            self.seen = x
            return (x.float().flatten(1),)

    network.network = Recorder()  # the 299x299 Inception pass is too slow for this suite
    network(torch.tensor([-1.0, -0.5, 0.0, 0.5, 1.0, 3.0]).view(1, 3, 1, 2))
    assert network.network.seen.dtype == torch.uint8
    assert network.network.seen.flatten().tolist() == [0, 64, 128, 191, 255, 255]  # 8-bit, as in saved images


def test_a_missing_given_weights_file_is_an_error_not_a_missing_metric(tmp_path):
    pytest.importorskip("torch_fidelity.feature_extractor_inceptionv3")  # looked for first
    with pytest.raises(FileNotFoundError, match="inception_weights"):
        FIDInceptionV3(tmp_path / "nowhere.pth")


# --- LPIPS -------------------------------------------------------------------------------------


def test_lpips_unavailable_says_where_to_get_the_backbone(offline):
    pytest.importorskip("lpips")
    with pytest.raises(WeightsUnavailable) as caught:
        LPIPSMetric()
    message = str(caught.value)
    assert "https://download.pytorch.org/models/vgg16-397923af.pth" in message
    assert str(offline / "checkpoints" / "vgg16-397923af.pth") in message
    assert "MSCA_FAST_VGG16_WEIGHTS" in message and "backbone_weights" in message
    with pytest.raises(WeightsUnavailable, match="downloads are off"):
        LPIPSMetric(allow_download=False)


@pytest.fixture(scope="module")
def random_vgg16_state():
    """A randomly initialised torchvision VGG-16 state_dict (its features; the classifier is never used)."""
    torch.manual_seed(6)
    features = torchvision.models.vgg.make_layers(torchvision.models.vgg.cfgs["D"])
    state = {f"features.{key}": value for key, value in features.state_dict().items()}
    state["classifier.0.weight"] = torch.zeros(1)  # stands in for the classifier a full state_dict has
    return state


@pytest.fixture(scope="module")
def lpips_from_cache(random_vgg16_state, tmp_path_factory):
    """LPIPSMetric whose backbone comes from the hub cache file (random weights: tests loading only)."""
    pytest.importorskip("lpips")
    hub = tmp_path_factory.mktemp("lpips_hub")
    (hub / "checkpoints").mkdir()
    torch.save(random_vgg16_state, hub / "checkpoints" / "vgg16-397923af.pth")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(torch.hub, "get_dir", lambda: str(hub))
        patch.delenv(VGG16_SOURCE.env_var, raising=False)
        metric = LPIPSMetric(allow_download=False)
    return metric, random_vgg16_state


def test_lpips_loads_the_cached_backbone_and_the_packages_linear_layers(lpips_from_cache):
    import lpips

    metric, state = lpips_from_cache
    assert metric.backbone_file.name == "vgg16-397923af.pth"
    assert_close(metric.model.net.slice1[0].weight, state["features.0.weight"])
    assert_close(getattr(metric.model.net.slice5, "28").bias, state["features.28.bias"])
    assert metric.linear_file == Path(lpips.__file__).parent / "weights" / "v0.1" / "vgg.pth"
    linear = torch.load(metric.linear_file, map_location="cpu", weights_only=True)
    for index in range(5):
        assert_close(metric.model.lins[index].model[1].weight, linear[f"lin{index}.model.1.weight"])
    assert not metric.training and not any(p.requires_grad for p in metric.parameters())


def test_lpips_is_zero_for_identical_images_positive_otherwise_and_symmetric(lpips_from_cache):
    metric, _ = lpips_from_cache
    x, y = images(size=16, seed=7), images(size=16, seed=8)
    with torch.no_grad():  # one pass over the three pairs (x, x), (x, y), (y, x)
        same, forward, backward = metric(torch.cat([x, x, y]), torch.cat([x, y, x])).split(2)
    assert same.shape == (2,)
    assert_close(same, torch.zeros(2), atol=1e-6, rtol=0)
    assert (forward > 0).all()
    assert_close(forward, backward)


def test_lpips_reads_a_features_only_file_given_by_path(tmp_path, random_vgg16_state):
    pytest.importorskip("lpips")
    features_only = {key[len("features.") :]: v for key, v in random_vgg16_state.items() if key.startswith("features.")}
    path = tmp_path / "vgg16-features.pth"
    torch.save(features_only, path)
    metric = LPIPSMetric(path)
    assert metric.backbone_file == path
    assert_close(getattr(metric.model.net.slice3, "14").weight, features_only["14.weight"])


def test_lpips_rejects_a_file_that_is_not_vgg16(tmp_path):
    pytest.importorskip("lpips")
    path = tmp_path / "wrong.pth"
    torch.save({"features.0.weight": torch.zeros(3)}, path)
    with pytest.raises(ValueError, match="features|shape|lacks"):
        LPIPSMetric(path)


# --- style -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def random_style_loss():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return StyleLoss(weights="random")


def test_style_distance_of_identical_images_is_zero(random_style_loss):
    x, y = images(size=16, seed=9), images(size=16, seed=10)
    same, different = style_distance(torch.cat([x, x]), torch.cat([x, y]), random_style_loss).split(2)
    assert_close(same, torch.zeros(2))
    assert (different > 0).all()
    with pytest.raises(TypeError, match="style_loss"):
        style_distance(x, y, lambda a, b: a)


# --- suite -------------------------------------------------------------------------------------


def test_suite_reports_metrics_whose_weights_are_missing():
    pytest.importorskip("lpips")  # without it LPIPS is missing for another reason: test_missing_metric_packages
    suite = MetricSuite(
        ("psnr", "lpips", "fid", "style"), fid_feature_extractor=random_projection(), allow_download=True
    )
    assert suite.available == ("psnr", "fid")
    assert set(suite.missing) == {"lpips", "style"}
    assert suite.missing["lpips"].startswith("LPIPS VGG-16 backbone weights are unavailable")
    assert "VGG-19" in suite.missing["style"]
    assert "vgg16-397923af.pth" in suite.missing_details["lpips"]

    truths = images(batch=4, size=16, seed=11)
    outputs = (truths + 0.1).clamp(-1, 1)
    suite.update(outputs, truths)
    results = suite.compute()
    assert list(results) == ["psnr", "lpips", "fid", "style"]
    assert results["lpips"] is None and results["style"] is None
    assert results["psnr"] == pytest.approx(mean_psnr(outputs, truths))
    assert results["fid"] > 0


def test_suite_without_allow_missing_raises():
    with pytest.raises(WeightsUnavailable):
        MetricSuite(("style",), allow_missing=False)


def test_suite_without_allow_missing_raises_for_missing_lpips_weights():
    pytest.importorskip("lpips")
    with pytest.raises(WeightsUnavailable):
        MetricSuite(("psnr", "lpips"), allow_missing=False)


def test_suite_with_every_metric_available(tmp_path, random_vgg16_state):
    pytest.importorskip("lpips")
    backbone = tmp_path / "vgg16.pth"
    torch.save(random_vgg16_state, backbone)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        suite = MetricSuite(
            lpips_backbone_weights=backbone, style_vgg_weights="random", fid_feature_extractor=random_projection()
        )
    assert suite.missing == {} and suite.available == ("psnr", "lpips", "fid", "style")
    truths = images(batch=3, size=16, seed=12)
    suite.update(truths, truths)
    results = suite.compute()
    assert results["psnr"] == 100.0
    assert results["lpips"] == pytest.approx(0.0, abs=1e-6)
    assert results["style"] == pytest.approx(0.0, abs=1e-12)
    assert results["fid"] == pytest.approx(0.0, abs=1e-9)


def test_suite_rejects_bad_input():
    with pytest.raises(ValueError, match="metrics"):
        MetricSuite(("psnr", "ssim"))
    suite = MetricSuite(("psnr",))
    with pytest.raises(ValueError, match="no images"):
        suite.compute()
    with pytest.raises(ValueError, match="outputs and truths"):
        suite.update(images(batch=2), images(batch=3))
