"""Hinge GAN, feature matching, VGG perceptual and Gram-matrix style losses: values, gradients, checks."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch.testing import assert_close

from msca_fast.losses import (
    StyleLoss,
    VGGLoss,
    feature_matching_loss,
    gram_matrix,
    hinge_d_loss,
    hinge_g_loss,
)
from msca_fast.models.vgg import PERCEPTUAL_LAYERS, PERCEPTUAL_WEIGHTS, VGG19

pytestmark = pytest.mark.filterwarnings("ignore:vgg_weights='random'")

# A VGG tapping one layer more than the perceptual ones, first: the losses must pick theirs out.
SHARED_LAYERS = ("relu1_2", *PERCEPTUAL_LAYERS)


@pytest.fixture(scope="module")
def vgg() -> VGG19:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        torch.manual_seed(0)
        return VGG19(SHARED_LAYERS, weights="random")


def images(batch=2, size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(batch, 3, size, size, generator=g) * 2 - 1


def d_outputs(*predictions, features=((2, 4, 5, 5),)):
    """One discriminator output list per prediction: random intermediate features, then the prediction."""
    return [
        [torch.randn(*shape) for shape in features] + [torch.as_tensor(p, dtype=torch.float32)] for p in predictions
    ]


# --- hinge GAN ----------------------------------------------------------------------------


def test_hinge_d_loss_matches_hand_computation():
    real = d_outputs([[0.5, 2.0], [-1.0, 0.0]], [[3.0]])
    fake = d_outputs([[-2.0, 0.5], [0.0, -0.5]], [[1.0]])
    # D0: real relu(1 - r) = 0.5, 0, 2, 1 -> 0.875; fake relu(1 + f) = 0, 1.5, 1, 0.5 -> 0.75
    # D1: real relu(1 - 3) = 0; fake relu(1 + 1) = 2
    expected = ((0.875 + 0.75) + (0.0 + 2.0)) / 2
    assert_close(hinge_d_loss(real, fake), torch.tensor(expected))


def test_hinge_d_loss_is_zero_past_the_margins():
    real = d_outputs(torch.full((2, 1, 3, 3), 1.5))
    fake = d_outputs(torch.full((2, 1, 3, 3), -1.0))
    assert hinge_d_loss(real, fake).item() == 0.0


def test_hinge_g_loss_matches_hand_computation():
    fake = d_outputs([[-2.0, 0.5], [0.0, -0.5]], [[1.0]])
    expected = (0.5 + -1.0) / 2  # -mean: D0 0.5, D1 -1
    assert_close(hinge_g_loss(fake), torch.tensor(expected))


def test_hinge_losses_use_only_the_prediction():
    real, fake = d_outputs([[0.3]]), d_outputs([[-0.2]])
    d_loss, g_loss = hinge_d_loss(real, fake), hinge_g_loss(fake)
    real[0][0].add_(100.0)
    fake[0][0].add_(100.0)
    assert hinge_d_loss(real, fake) == d_loss and hinge_g_loss(fake) == g_loss


def test_hinge_d_loss_gradient_signs():
    real_pred = torch.zeros(1, 1, 2, 2, requires_grad=True)
    fake_pred = torch.zeros(1, 1, 2, 2, requires_grad=True)
    hinge_d_loss([[real_pred]], [[fake_pred]]).backward()
    assert torch.all(real_pred.grad < 0) and torch.all(fake_pred.grad > 0)  # push real up, fake down


def test_hinge_errors_name_the_argument():
    good = d_outputs([[0.0]], [[0.0]])
    message = "real_outputs and fake_outputs: expected outputs of the same discriminators, got 2 and 1"
    with pytest.raises(ValueError, match=message):
        hinge_d_loss(good, good[:1])
    message = r"real_outputs\[1\]\[-1\] and fake_outputs\[1\]\[-1\]: .* got \(1, 1\) and \(1, 2\)"
    with pytest.raises(ValueError, match=message):
        hinge_d_loss(good, d_outputs([[0.0]], [[0.0, 1.0]]))
    with pytest.raises(TypeError, match="fake_outputs: expected one list of layer outputs"):
        hinge_g_loss(torch.zeros(2, 1, 4, 4))
    with pytest.raises(TypeError, match="fake_outputs: expected one list"):
        hinge_g_loss([])
    with pytest.raises(TypeError, match=r"real_outputs\[0\]: expected one list"):
        hinge_d_loss([torch.zeros(1)], good)
    with pytest.raises(TypeError, match=r"fake_outputs\[1\]\[0\]: expected a tensor, got float"):
        hinge_g_loss([[torch.zeros(1)], [0.5]])


# --- feature matching ---------------------------------------------------------------------


def test_feature_matching_is_zero_for_identical_features():
    outputs = d_outputs([[0.0]], [[1.0]], features=((2, 4, 5, 5), (2, 8, 3, 3)))
    copy = [[t.clone() for t in features] for features in outputs]
    assert feature_matching_loss(outputs, copy).item() == 0.0


def test_feature_matching_matches_manual_sum_and_ignores_predictions():
    real = d_outputs([[0.0]], [[1.0]], features=((2, 4, 5, 5), (2, 8, 3, 3)))
    fake = d_outputs([[5.0]], [[-7.0]], features=((2, 4, 5, 5), (2, 8, 3, 3)))
    expected = sum((f - r).abs().mean() for rd, fd in zip(real, fake) for r, f in zip(rd[:-1], fd[:-1]))
    got = feature_matching_loss(real, fake, weight=3.0)
    assert got > 0
    assert_close(got, expected * 3.0 / 2)
    assert_close(feature_matching_loss(real, fake), expected * 10.0 / 2)  # SPADE's default weight


def test_feature_matching_gradient_reaches_fake_not_real():
    real = [[torch.randn(2, 4, 5, 5, requires_grad=True), torch.zeros(2, 1, 4, 4, requires_grad=True)]]
    fake = [[torch.randn(2, 4, 5, 5, requires_grad=True), torch.zeros(2, 1, 4, 4, requires_grad=True)]]
    feature_matching_loss(real, fake).backward()
    assert real[0][0].grad is None and real[0][1].grad is None
    assert fake[0][0].grad is not None and fake[0][0].grad.abs().sum() > 0
    assert fake[0][1].grad is None  # the prediction takes no part


def test_feature_matching_without_intermediate_features_is_zero():
    assert feature_matching_loss(d_outputs([[1.0]], features=()), d_outputs([[2.0]], features=())).item() == 0.0


def test_feature_matching_errors_name_the_argument():
    real = d_outputs([[0.0]], features=((2, 4, 5, 5),))
    message = (
        r"real_outputs\[0\]\[0\] and fake_outputs\[0\]\[0\]: expected the same shape, "
        r"got \(2, 4, 5, 5\) and \(2, 4, 6, 6\)"
    )
    with pytest.raises(ValueError, match=message):
        feature_matching_loss(real, d_outputs([[0.0]], features=((2, 4, 6, 6),)))
    message = r"real_outputs\[0\] and fake_outputs\[0\]: expected as many layer outputs, got 2 and 3"
    with pytest.raises(ValueError, match=message):
        feature_matching_loss(real, d_outputs([[0.0]], features=((2, 4, 5, 5), (2, 4, 5, 5))))
    with pytest.raises(ValueError, match="got 1 and 2 lists"):
        feature_matching_loss(real, real + real)


# --- VGG perceptual loss ------------------------------------------------------------------


def test_vgg_loss_is_zero_for_identical_images(vgg):
    x = images()
    assert VGGLoss(vgg)(x, x.clone()).item() == 0.0


def test_vgg_loss_matches_weighted_layer_sum(vgg):
    loss = VGGLoss(vgg, weight=2.5)
    fake, real = images(seed=1), images(seed=2)
    fake_features, real_features = vgg(fake), vgg(real)
    positions = [SHARED_LAYERS.index(name) for name in PERCEPTUAL_LAYERS]
    expected = 2.5 * sum(
        w * (fake_features[p] - real_features[p]).abs().mean() for w, p in zip(PERCEPTUAL_WEIGHTS, positions)
    )
    assert_close(loss(fake, real), expected)
    # relu1_2, which this VGG also taps, must not enter the sum: with it the value would differ.
    assert not torch.allclose(expected, expected + (fake_features[0] - real_features[0]).abs().mean())


def test_vgg_loss_weights_deep_layers_more(vgg):
    assert VGGLoss(vgg).layer_weights == PERCEPTUAL_WEIGHTS == (1 / 32, 1 / 16, 1 / 8, 1 / 4, 1.0)
    assert VGGLoss(vgg).weight == 10.0


def test_vgg_loss_gradient_reaches_fake_not_real(vgg):
    fake = images(seed=1).requires_grad_(True)
    real = images(seed=2).requires_grad_(True)
    VGGLoss(vgg)(fake, real).backward()
    assert fake.grad is not None and fake.grad.abs().sum() > 0
    assert real.grad is None
    assert all(p.grad is None for p in vgg.parameters())  # frozen


def test_vgg_loss_builds_its_own_vgg():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        loss = VGGLoss(weights="random")
    assert loss.vgg.layers == PERCEPTUAL_LAYERS
    x = images(size=16)
    assert loss(x, x).item() == 0.0


def test_vgg_loss_errors(vgg):
    message = r"vgg: its layers \['relu1_1'\] lack \['relu2_1', 'relu3_1', 'relu4_1', 'relu5_1'\]"
    with pytest.raises(ValueError, match=message):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            VGGLoss(VGG19(("relu1_1",), weights="random"))
    with pytest.raises(TypeError, match="vgg: expected a msca_fast.models.vgg.VGG19 or None, got Linear"):
        VGGLoss(torch.nn.Linear(2, 2))
    loss = VGGLoss(vgg)
    message = r"fake and real: expected the same shape, got \(2, 3, 32, 32\) and \(2, 3, 16, 16\)"
    with pytest.raises(ValueError, match=message):
        loss(images(), images(size=16))
    message = r"real: expected an RGB image batch \(B, 3, H, W\) in \[-1, 1\], got shape \(2, 1, 32, 32\)"
    with pytest.raises(ValueError, match=message):
        loss(images(), torch.zeros(2, 1, 32, 32))
    with pytest.raises(TypeError, match=r"fake: expected a tensor of shape \(B, 3, H, W\), got NoneType"):
        loss(None, images())


# --- Gram matrices and the style loss -----------------------------------------------------


def test_gram_matrix_matches_einsum():
    features = torch.randn(2, 4, 3, 5, dtype=torch.float64)
    expected = torch.einsum("bchw,bdhw->bcd", features, features) / (4 * 3 * 5)
    got = gram_matrix(features)
    assert got.shape == (2, 4, 4)
    assert_close(got, expected)
    assert_close(got, got.transpose(1, 2))


def test_gram_matrix_of_half_precision_is_float32():
    features = torch.randn(1, 3, 8, 8)
    got = gram_matrix(features.bfloat16())
    assert got.dtype == torch.float32
    assert_close(got, gram_matrix(features), rtol=2e-2, atol=2e-2)


def test_gram_matrix_errors():
    with pytest.raises(ValueError, match=r"features: expected a 4-D tensor \(B, C, H, W\), got shape \(4, 3, 5\)"):
        gram_matrix(torch.randn(4, 3, 5))
    with pytest.raises(TypeError, match="features: expected a tensor"):
        gram_matrix([[1.0]])


def test_style_loss_is_zero_for_identical_and_symmetric(vgg):
    style = StyleLoss(vgg)
    x, y = images(seed=1), images(seed=2)
    same = style(x, x.clone())
    assert same.shape == (2,) and torch.all(same == 0)
    forward, backward = style(x, y), style(y, x)
    assert forward.shape == (2,) and torch.all(forward > 0)
    assert_close(forward, backward, rtol=1e-4, atol=0)  # the values are ~1e-9: relative only


def test_style_loss_matches_its_definition_per_image(vgg):
    layers = ("relu1_2", "relu3_1")
    style = StyleLoss(vgg, layers=layers)
    x, y = images(seed=1), images(seed=2)
    x_features, y_features = vgg(x), vgg(y)
    expected = torch.zeros(2)
    for name in layers:
        p = SHARED_LAYERS.index(name)
        for b in range(2):
            fx, fy = x_features[p][b], y_features[p][b]
            c, h, w = fx.shape
            gx = fx.reshape(c, -1) @ fx.reshape(c, -1).T / (c * h * w)
            gy = fy.reshape(c, -1) @ fy.reshape(c, -1).T / (c * h * w)
            expected[b] += ((gx - gy) ** 2).sum() / c**2
    assert_close(style(x, y), expected, rtol=1e-4, atol=0)  # the values are ~1e-9: relative only
    # Per image: each entry depends on its own pair only.
    assert_close(style(x[1:], y[1:]), expected[1:], rtol=1e-4, atol=0)


def test_style_loss_errors(vgg):
    with pytest.raises(ValueError, match="layers: expected at least one VGG-19 layer name"):
        StyleLoss(vgg, layers=())
    with pytest.raises(ValueError, match=r"vgg: its layers .* lack \['relu4_4'\]"):
        StyleLoss(vgg, layers=("relu1_2", "relu4_4"))
    message = r"x and y: expected the same shape, got \(2, 3, 32, 32\) and \(1, 3, 32, 32\)"
    with pytest.raises(ValueError, match=message):
        StyleLoss(vgg)(images(), images(batch=1))
