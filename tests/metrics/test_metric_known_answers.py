"""Known answers of the metrics that need no pretrained network: PSNR and the suite's averaging,
FID with a mean-colour feature extractor, CIELAB and Reinhard's colour transfer, exemplar
retrieval, attention quality, and the style distance's Gram-matrix formula."""

from __future__ import annotations

import math
import warnings

import pytest
import torch
import torch.nn.functional as F

from msca_fast.evaluation import attention_quality as attention_module
from msca_fast.evaluation.attention_quality import AttentionQuality, channel_entropy, region_purity
from msca_fast.evaluation.color import reinhard_transfer, rgb_to_lab
from msca_fast.evaluation.retrieval import histogram_intersection, label_histograms, retrieve_exemplars
from msca_fast.metrics import MetricSuite, StyleLoss, mean_psnr, psnr, style_distance


def scenes(batch: int, size: int = 8, seed: int = 0) -> torch.Tensor:
    """Random images in [-0.5, 0.5] (room for offsets of up to 0.5 inside [-1, 1])."""
    return torch.rand(batch, 3, size, size, generator=torch.Generator().manual_seed(seed)) - 0.5


# --- PSNR --------------------------------------------------------------------------------------


def test_psnr_of_constant_errors_per_image():
    # A constant error e on every channel and pixel: MSE e^2, PSNR 10 log10(2^2 / e^2) (range 2).
    x = scenes(3)
    y = x + torch.tensor([0.0, 0.1, 0.5]).view(3, 1, 1, 1)
    expected = [100.0, 10 * math.log10(4 / 0.01), 10 * math.log10(4 / 0.25)]  # identical: the 100 dB cap
    assert psnr(x, y).tolist() == pytest.approx(expected, rel=1e-6)
    assert mean_psnr(x, y) == pytest.approx(sum(expected) / 3, rel=1e-6)  # each image capped, then averaged
    assert psnr(x, y - 0.2, data_range=1.0)[1].item() == pytest.approx(10 * math.log10(1 / 0.01), rel=1e-6)


def test_psnr_options_are_checked():
    x = scenes(1)
    with pytest.raises(ValueError, match="cap: expected a finite number"):
        psnr(x, x, cap=math.inf)
    with pytest.raises(ValueError, match="data_range: expected a positive number"):
        psnr(x, x, data_range=True)
    assert psnr(x, x + 0.5, cap=5.0).item() == 5.0  # 12.04 dB capped at 5


def test_suite_psnr_is_a_mean_over_images_not_batches():
    suite = MetricSuite(("psnr",))
    truths = scenes(3)
    suite.update(truths[:2] + 0.1, truths[:2])  # 26.02 dB twice
    suite.update(truths[2:] + 0.01, truths[2:])  # 46.02 dB once
    expected = (2 * 10 * math.log10(4 / 0.01) + 10 * math.log10(4 / 0.0001)) / 3
    assert suite.compute() == {"psnr": pytest.approx(expected, rel=1e-6)}
    suite.reset()
    suite.update(truths, truths)
    assert suite.compute()["psnr"] == 100.0


def mean_colour(images: torch.Tensor) -> torch.Tensor:
    """A feature extractor: each image's mean colour (B, 3)."""
    return images.mean(dim=(2, 3))


def test_suite_fid_of_shifted_and_scaled_sets():
    real = scenes(12, seed=1)
    suite = MetricSuite(("fid",), fid_feature_extractor=mean_colour)
    shift = torch.tensor([0.1, -0.2, 0.05])
    suite.update(real + shift.view(1, 3, 1, 1), real)
    # Equal covariances: only the means differ, by the shift: |shift|^2.
    assert suite.compute()["fid"] == pytest.approx(0.01 + 0.04 + 0.0025, rel=1e-6)
    suite.reset()
    for part in real.split(5):
        suite.update(0.5 * part, part)
    # Features scaled by s: |mu (1 - s)|^2 + (1 - s)^2 tr(S), S the unbiased covariance (N - 1).
    features = mean_colour(real).double()
    trace = torch.cov(features.T, correction=1).trace().item()
    expected = 0.25 * features.mean(0).square().sum().item() + 0.25 * trace
    assert suite.compute()["fid"] == pytest.approx(expected, rel=1e-6)


# --- colour ------------------------------------------------------------------------------------


def rgb(*values: float) -> torch.Tensor:
    """One sRGB pixel given in [0, 1] as a (1,3,1,1) image in [-1, 1]."""
    return (torch.tensor(values, dtype=torch.float64) * 2 - 1).view(1, 3, 1, 1)


@pytest.mark.parametrize(
    "colour, lab",
    [
        ((1.0, 0.0, 0.0), (53.2408, 80.0925, 67.2032)),  # the sRGB primaries' published CIELAB (D65)
        ((0.0, 1.0, 0.0), (87.7347, -86.1827, 83.1793)),
        ((0.0, 0.0, 1.0), (32.2970, 79.1875, -107.8602)),
        ((0.0, 0.0, 0.0), (0.0, 0.0, 0.0)),
    ],
)  # fmt: skip
def test_cielab_of_known_colours(colour, lab):
    assert rgb_to_lab(rgb(*colour)).flatten().tolist() == pytest.approx(lab, abs=0.01)


def test_cielab_of_a_neutral_grey():
    # sRGB 0.5: linear ((0.5 + 0.055) / 1.055)^2.4 = Y, L = 116 Y^(1/3) - 16; a = b = 0 for greys.
    luminance = ((0.5 + 0.055) / 1.055) ** 2.4
    assert rgb_to_lab(rgb(0.5, 0.5, 0.5)).flatten().tolist() == pytest.approx(
        [116 * luminance ** (1 / 3) - 16, 0.0, 0.0], abs=1e-4)  # fmt: skip


def two_tone(size: int, dark: float, light: float, split_rows: bool) -> torch.Tensor:
    """A (1,3,size,size) grey image: half ``dark``, half ``light`` (top/bottom or left/right)."""
    image = torch.full((1, 3, size, size), light)
    if split_rows:
        image[..., : size // 2, :] = dark
    else:
        image[..., :, : size // 2] = dark
    return image


def test_reinhard_maps_a_two_tone_source_onto_the_references_two_tones():
    # Greys have a = b = 0, so only L moves; shifting and scaling L to the reference's mean and
    # standard deviation (equal halves, equal pixel counts as in the retrieve task) maps dark onto
    # dark and light onto light, wherever they lie.
    source = two_tone(6, -1.0, 1.0, split_rows=True)
    reference = two_tone(6, -0.5, 0.5, split_rows=False)
    torch.testing.assert_close(reinhard_transfer(source, reference), two_tone(6, -0.5, 0.5, split_rows=True),
                               atol=1e-4, rtol=0)  # fmt: skip


def test_reinhard_to_a_flat_reference_gives_its_colour():
    reference = torch.tensor([0.4, -0.2, 0.1]).view(1, 3, 1, 1).expand(1, 3, 5, 5)
    out = reinhard_transfer(scenes(1, size=6), reference)
    torch.testing.assert_close(out, reference[..., :1, :1].expand(1, 3, 6, 6), atol=1e-4, rtol=0)


# --- retrieval ---------------------------------------------------------------------------------


def test_retrieval_prefers_agreement_among_the_top_histograms():
    target = torch.zeros(4, 4, dtype=torch.long)
    target[:, 2:] = 1  # left half class 0, right half class 1
    mirrored = 1 - target  # the same histogram, no pixel in agreement
    close = target.clone()
    close[:2, 3] = 2  # histogram (8, 6, 2) / 16: intersection 14/16; 14 pixels agree
    labels = torch.stack([target, mirrored, close])
    assert label_histograms(labels, 3)[2].tolist() == [0.5, 0.375, 0.125]
    assert histogram_intersection(label_histograms(labels, 3))[0].tolist() == [1.0, 1.0, 0.875]
    assert retrieve_exemplars(labels, 3, top=1)[0] == 1  # the best histogram alone
    assert retrieve_exemplars(labels, 3, top=2)[0] == 2  # among the top 2, the one that agrees


# --- attention quality -------------------------------------------------------------------------


def test_purity_with_area_resized_labels_and_usage_weights():
    ids = torch.tensor([[0, 0, 1, 1], [0, 1, 1, 1], [0, 0, 0, 0], [0, 0, 0, 0]])
    labels = F.one_hot(ids, 2).permute(2, 0, 1)[None].float()  # (1,2,4,4): class 0 on 11 pixels
    # At alpha's 2x2 the top-left pixel is 3/4 class 0; region 0 sits on it, region 1 is uniform:
    # mass on (class 0, class 1) = (0.75, 0.25) and 0.25 * (0.75 + 0 + 1 + 1) = (0.6875, 0.3125).
    alpha = torch.zeros(1, 2, 2, 2)
    alpha[0, 0, 0, 0] = 1
    alpha[0, 1] = 0.25
    purity, area = region_purity(alpha, labels, torch.tensor([[3.0, 1.0]]))
    assert purity.item() == pytest.approx((3 * 0.75 + 1 * 0.6875) / 4)
    assert area.item() == pytest.approx(11 / 16)


def test_channel_entropy_of_known_distributions():
    half = torch.zeros(1, 4, 2, 2)
    half[:, :2] = 0.5  # two of four regions: log 2 / log 4
    assert channel_entropy(half).item() == pytest.approx(0.5)
    mixed = torch.full((1, 4, 1, 2), 0.25)
    mixed[0, :, 0, 1] = torch.tensor([0.0, 0.0, 1.0, 0.0])  # one uniform pixel (1), one certain (0)
    assert channel_entropy(mixed).item() == pytest.approx(0.5)


def test_attention_quality_averages_over_images_and_scales(monkeypatch):
    def scale(purity, area, entropy):
        return {"purity": torch.tensor(purity), "area": torch.tensor(area), "entropy": torch.tensor(entropy)}

    # Two batches (2 images, then 1) of two scales each.
    per_batch = iter([
        {0: scale([0.8, 0.6], [0.5, 0.5], [0.2, 0.4]), 1: scale([1.0, 0.4], [0.3, 0.7], [0.6, 0.0])},
        {0: scale([0.9], [0.4], [1.0]), 1: scale([0.5], [0.2], [0.8])},
    ])
    monkeypatch.setattr(attention_module, "attention_quality", lambda g, c1, x2, c2: next(per_batch))
    quality = AttentionQuality()
    quality.update(None, torch.zeros(2, 1, 1, 1), None, None)
    quality.update(None, torch.zeros(1, 1, 1, 1), None, None)
    result = quality.compute()
    assert result["purity_s0"] == pytest.approx((0.8 + 0.6 + 0.9) / 3)
    assert result["purity_s1"] == pytest.approx((1.0 + 0.4 + 0.5) / 3)
    assert result["purity"] == pytest.approx((0.8 + 0.6 + 0.9 + 1.0 + 0.4 + 0.5) / 6)
    assert result["purity_area"] == pytest.approx((0.5 + 0.5 + 0.4 + 0.3 + 0.7 + 0.2) / 6)
    assert result["channel_entropy"] == pytest.approx((0.2 + 0.4 + 1.0 + 0.6 + 0.0 + 0.8) / 6)


# --- style -------------------------------------------------------------------------------------


def gram_by_hand(features: torch.Tensor) -> torch.Tensor:
    """G[b,i,j] = sum_p F[b,i,p] F[b,j,p] / (C H W), in float64."""
    _, channels, height, width = features.shape
    flat = features.flatten(2).double()
    return torch.einsum("bip,bjp->bij", flat, flat) / (channels * height * width)


def test_style_distance_is_the_sum_over_layers_of_mean_squared_gram_differences():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # random VGG weights: the formula is what is tested
        style_loss = StyleLoss(weights="random", layers=("relu1_1", "relu2_1"))
    x, y = scenes(2, size=16, seed=2), scenes(2, size=16, seed=3)
    distances = style_distance(x, y, style_loss)
    expected = torch.zeros(2, dtype=torch.float64)
    for fx, fy in zip(style_loss.vgg(x), style_loss.vgg(y)):
        expected += (gram_by_hand(fx) - gram_by_hand(fy)).square().mean(dim=(1, 2))
    torch.testing.assert_close(distances.double(), expected, rtol=1e-4, atol=0)
    torch.testing.assert_close(style_distance(y.flip(0), x.flip(0), style_loss), distances.flip(0))  # per image
