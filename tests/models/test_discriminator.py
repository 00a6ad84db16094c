"""The PatchGAN and the multi-scale discriminator D(x, c, x_ex, c_ex): structure, sizes, norms, gradients, checks."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize
from torch.testing import assert_close

from msca_fast.models.config import ModelConfig
from msca_fast.models.discriminator import MultiscaleDiscriminator, NLayerDiscriminator

NUM_CLASSES = 5
NDF = 8


def config(**changes) -> ModelConfig:
    return ModelConfig(num_classes=NUM_CLASSES, ndf=NDF).replace(**changes)


def one_hot_map(batch: int, height: int, width: int) -> torch.Tensor:
    ids = torch.randint(0, NUM_CLASSES, (batch, height, width))
    return F.one_hot(ids, NUM_CLASSES).permute(0, 3, 1, 2).float()


def inputs(batch=2, size=(32, 32), exemplar_size=None):
    """x, c, x_ex, c_ex with the exemplar at exemplar_size (default: the target's)."""
    exemplar_size = exemplar_size or size
    x = torch.rand(batch, 3, *size) * 2 - 1
    x_ex = torch.rand(batch, 3, *exemplar_size) * 2 - 1
    return x, one_hot_map(batch, *size), x_ex, one_hot_map(batch, *exemplar_size)


def expected_sizes(side: int, n_layers: int) -> list[int]:
    """Each 4x4 pad-2 conv maps s -> s // 2 + 1 (stride 2) or s + 1 (stride 1)."""
    sizes = []
    for layer in range(n_layers + 1):
        strided = layer < n_layers - 1 or (n_layers == 1 and layer == 0)
        side = side // 2 + 1 if strided else side + 1
        sizes.append(side)
    return sizes


def convs(d: NLayerDiscriminator) -> list[nn.Conv2d]:
    return [block[0] for block in d.blocks]


# --- NLayerDiscriminator ------------------------------------------------------------------


@pytest.mark.parametrize("n_layers", [1, 2, 4])
@pytest.mark.parametrize("size", [(32, 32), (24, 40)])
def test_patchgan_returns_every_layer_with_expected_channels_and_sizes(n_layers, size):
    d = NLayerDiscriminator(7, ndf=NDF, n_layers=n_layers)
    outputs = d(torch.randn(2, 7, *size))
    assert len(outputs) == n_layers + 1
    channels = [NDF * 2**layer for layer in range(n_layers)] + [1]
    assert [o.shape[1] for o in outputs] == channels
    heights, widths = expected_sizes(size[0], n_layers), expected_sizes(size[1], n_layers)
    assert [tuple(o.shape[2:]) for o in outputs] == list(zip(heights, widths))
    assert all(o.shape[0] == 2 for o in outputs)


def test_patchgan_strides_and_kernels():
    d = NLayerDiscriminator(3, ndf=NDF, n_layers=4)
    assert [conv.stride for conv in convs(d)] == [(2, 2), (2, 2), (2, 2), (1, 1), (1, 1)]
    assert all(conv.kernel_size == (4, 4) and conv.padding == (2, 2) for conv in convs(d))
    slopes = [block[-1].negative_slope for block in list(d.blocks)[:-1]]
    assert slopes == [0.2] * 4
    assert not isinstance(d.blocks[-1][-1], nn.LeakyReLU)  # the prediction is a raw logit


def test_patchgan_channels_are_capped_at_512():
    d = NLayerDiscriminator(3, ndf=256, n_layers=4)
    assert [conv.out_channels for conv in convs(d)] == [256, 512, 512, 512, 1]


@pytest.mark.parametrize(
    "norm, spectral, norm_type",
    [
        ("spectralinstance", True, nn.InstanceNorm2d),
        ("spectralbatch", True, nn.BatchNorm2d),
        ("instance", False, nn.InstanceNorm2d),
        ("none", False, None),
    ],
)
def test_norm_choice_builds_the_middle_layers(norm, spectral, norm_type):
    d = NLayerDiscriminator(3, ndf=NDF, n_layers=4, norm=norm)
    first, *middle, last = list(d.blocks)
    for block in (first, last):  # never normalised, as in SPADE
        assert not parametrize.is_parametrized(block[0])
        assert block[0].bias is not None
        assert len(block) == (2 if block is first else 1)
    for block in middle:
        conv = block[0]
        assert parametrize.is_parametrized(conv, "weight") == spectral
        if norm_type is None:
            assert len(block) == 2 and conv.bias is not None
        else:
            assert isinstance(block[1], norm_type)
            assert conv.bias is None  # a bias before mean subtraction is dead weight
    if norm_type is nn.InstanceNorm2d:
        assert all(not block[1].affine for block in middle)


def test_spectral_norm_bounds_the_weight_whatever_its_scale():
    d = NLayerDiscriminator(3, ndf=NDF, n_layers=4).eval()
    for conv in convs(d)[1:-1]:
        sigma = torch.linalg.matrix_norm(conv.weight.flatten(1), ord=2)
        assert_close(sigma, torch.tensor(1.0), rtol=0.1, atol=0)
        with torch.no_grad():
            conv.parametrizations.weight.original.mul_(7.0)
        sigma_scaled = torch.linalg.matrix_norm(conv.weight.flatten(1), ord=2)
        assert_close(sigma_scaled, sigma, rtol=1e-4, atol=1e-6)


def test_patchgan_rejects_bad_arguments():
    with pytest.raises(ValueError, match="norm: expected one of"):
        NLayerDiscriminator(3, norm="batch")
    with pytest.raises(ValueError, match="n_layers: expected a positive int, got 0"):
        NLayerDiscriminator(3, n_layers=0)
    with pytest.raises(ValueError, match="in_channels: expected a positive int"):
        NLayerDiscriminator(0)
    with pytest.raises(ValueError, match="ndf: expected a positive int"):
        NLayerDiscriminator(3, ndf=2.5)
    d = NLayerDiscriminator(7, ndf=NDF)
    with pytest.raises(ValueError, match=r"x: expected shape \(B, 7, H, W\), got \(2, 6, 16, 16\)"):
        d(torch.randn(2, 6, 16, 16))
    with pytest.raises(ValueError, match=r"x: expected shape \(B, 7, H, W\), got \(7, 16, 16\)"):
        d(torch.randn(7, 16, 16))
    with pytest.raises(TypeError, match="x: expected a tensor"):
        d([1.0])


# --- MultiscaleDiscriminator --------------------------------------------------------------


def test_multiscale_structure_follows_the_config():
    cfg = config(num_discriminators=3, discriminator_layers=3, discriminator_norm="spectralbatch")
    d = MultiscaleDiscriminator(cfg)
    assert len(d.discriminators) == 3
    assert d.in_channels == 6 + 2 * NUM_CLASSES
    for patchgan in d.discriminators:
        assert isinstance(patchgan, NLayerDiscriminator)
        assert len(patchgan.blocks) == 4
        assert convs(patchgan)[0].in_channels == 6 + 2 * NUM_CLASSES
        assert patchgan.norm == "spectralbatch"
    assert d.discriminators[0] is not d.discriminators[1]


@pytest.mark.parametrize("num_d, n_layers", [(2, 4), (3, 2)])
def test_multiscale_outputs_one_feature_list_per_scale(num_d, n_layers):
    d = MultiscaleDiscriminator(config(num_discriminators=num_d, discriminator_layers=n_layers))
    outputs = d(*inputs(size=(32, 48)))
    assert len(outputs) == num_d
    height, width = 32, 48
    for features in outputs:
        assert len(features) == n_layers + 1
        heights, widths = expected_sizes(height, n_layers), expected_sizes(width, n_layers)
        assert [tuple(f.shape[2:]) for f in features] == list(zip(heights, widths))
        assert [f.shape[1] for f in features] == [NDF * 2**layer for layer in range(n_layers)] + [1]
        height, width = -(-height // 2), -(-width // 2)  # avg_pool2d(3, 2, 1): ceil(s / 2)


def test_scales_see_the_average_pooled_concatenation():
    d = MultiscaleDiscriminator(config(num_discriminators=3)).eval()  # eval: spectral norm stops iterating
    x, c, x_ex, c_ex = inputs(size=(32, 32))
    outputs = d(x, c, x_ex, c_ex)
    h = torch.cat([x, c, x_ex, c_ex], dim=1)
    for index, patchgan in enumerate(d.discriminators):
        for expected, got in zip(patchgan(h), outputs[index]):
            assert_close(got, expected)
        h = F.avg_pool2d(h, 3, stride=2, padding=1, count_include_pad=False)


def test_exemplar_of_another_size_is_resized_to_the_target():
    d = MultiscaleDiscriminator(config()).eval()
    x, c, x_ex, c_ex = inputs(size=(32, 32), exemplar_size=(20, 44))
    h = d.conditioned_input(x, c, x_ex, c_ex)
    assert h.shape == (2, 6 + 2 * NUM_CLASSES, 32, 32)
    assert_close(h[:, :3], x)
    assert_close(h[:, 3 : 3 + NUM_CLASSES], c)
    assert_close(h[:, 3 + NUM_CLASSES : 6 + NUM_CLASSES], F.interpolate(x_ex, size=(32, 32), mode="bilinear"))
    resized_labels = h[:, 6 + NUM_CLASSES :]
    assert_close(resized_labels, F.interpolate(c_ex, size=(32, 32), mode="nearest"))
    assert torch.all(resized_labels.sum(dim=1) == 1)  # still one-hot

    resized = F.interpolate(x_ex, size=(32, 32), mode="bilinear", align_corners=False)
    same = d(x, c, resized, F.interpolate(c_ex, size=(32, 32), mode="nearest"))
    for got_d, expected_d in zip(d(x, c, x_ex, c_ex), same):
        for got, expected in zip(got_d, expected_d):
            assert_close(got, expected)


def test_exemplar_of_the_target_size_is_used_as_is():
    d = MultiscaleDiscriminator(config())
    x, c, x_ex, c_ex = inputs(size=(16, 24))
    assert torch.equal(d.conditioned_input(x, c, x_ex, c_ex), torch.cat([x, c, x_ex, c_ex], dim=1))


def test_prediction_depends_on_every_condition():
    d = MultiscaleDiscriminator(config()).eval()
    args = list(inputs(size=(32, 32)))
    base = d(*args)[0][-1]
    for index in range(4):
        changed = list(args)
        changed[index] = changed[index].flip(-1)
        assert not torch.allclose(d(*changed)[0][-1], base), f"argument {index} is ignored"


@pytest.mark.parametrize("norm", ["spectralinstance", "spectralbatch", "instance", "none"])
def test_gradients_reach_every_parameter_and_the_image(norm):
    d = MultiscaleDiscriminator(config(discriminator_norm=norm))
    x, c, x_ex, c_ex = inputs(size=(32, 32))
    x.requires_grad_(True)
    loss = sum(features[-1].mean() for features in d(x, c, x_ex, c_ex))
    loss.backward()
    for name, parameter in d.named_parameters():
        assert parameter.grad is not None, name
        assert parameter.grad.abs().sum() > 0, name
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_state_dict_round_trip_gives_the_same_predictions():
    d = MultiscaleDiscriminator(config()).eval()
    assert any("parametrizations" in key for key in d.state_dict())
    rebuilt = MultiscaleDiscriminator(config())
    rebuilt.load_state_dict(d.state_dict())
    rebuilt.eval()
    args = inputs(size=(32, 32))
    for got_d, expected_d in zip(rebuilt(*args), d(*args)):
        assert_close(got_d[-1], expected_d[-1])


def test_multiscale_rejects_a_non_config():
    with pytest.raises(TypeError, match="config: expected a ModelConfig, got dict"):
        MultiscaleDiscriminator(config().to_dict())


def _replace(args, name, value):
    names = ("x", "c", "x_ex", "c_ex")
    return [value if n == name else a for n, a in zip(names, args)]


BAD_INPUTS = {
    "x has 4 channels": (
        "x", lambda: torch.randn(2, 4, 32, 32), ValueError,
        r"x: expected an RGB image batch \(B, 3, H, W\) in \[-1, 1\], got shape \(2, 4, 32, 32\)",
    ),
    "x is 3-D": ("x", lambda: torch.randn(3, 32, 32), ValueError, r"x: expected an RGB image .* \(3, 32, 32\)"),
    "x is a list": ("x", lambda: [[0.0]], TypeError, "x: expected a tensor of shape"),
    "c has 4 classes": (
        "c", lambda: one_hot_map(2, 32, 32)[:, :4], ValueError,
        r"c: expected a one-hot label map \(B, 5, H, W\) .* got shape \(2, 4, 32, 32\)",
    ),
    "c is smaller than x": (
        "c", lambda: one_hot_map(2, 16, 32), ValueError,
        r"c: expected the spatial size of x \(32, 32\), got shape \(2, 5, 16, 32\)",
    ),
    "c has another batch": (
        "c", lambda: one_hot_map(1, 32, 32), ValueError,
        r"c: expected batch size 2 \(as x\), got shape \(1, 5, 32, 32\)",
    ),
    "c holds integers": (
        "c", lambda: torch.zeros(2, 5, 32, 32, dtype=torch.long), TypeError,
        "c: expected a floating-point tensor .* got torch.int64; .*one_hot",
    ),
    "x_ex has 1 channel": (
        "x_ex", lambda: torch.randn(2, 1, 24, 24), ValueError,
        r"x_ex: expected an RGB image batch .* got shape \(2, 1, 24, 24\)",
    ),
    "x_ex and c_ex batches differ": (
        "x_ex", lambda: torch.randn(3, 3, 24, 24), ValueError, r"c_ex: expected batch size 3 \(as x_ex\)",
    ),
    "c_ex is narrower than x_ex": (
        "c_ex", lambda: one_hot_map(2, 24, 20), ValueError,
        r"c_ex: expected the spatial size of x_ex \(24, 24\), got shape \(2, 5, 24, 20\)",
    ),
    "c_ex has 6 classes": (
        "c_ex", lambda: torch.zeros(2, 6, 24, 24), ValueError, r"c_ex: expected a one-hot label map \(B, 5, H, W\)",
    ),
}


@pytest.mark.parametrize("name, make, error, message", list(BAD_INPUTS.values()), ids=list(BAD_INPUTS))
def test_multiscale_input_errors_name_the_argument(name, make, error, message):
    d = MultiscaleDiscriminator(config())
    args = _replace(inputs(size=(32, 32), exemplar_size=(24, 24)), name, make())
    with pytest.raises(error, match=message):
        d(*args)


def test_exemplar_batch_must_match_the_target():
    d = MultiscaleDiscriminator(config())
    x, c, _, _ = inputs(batch=2)
    _, _, x_ex, c_ex = inputs(batch=3, size=(24, 24))
    with pytest.raises(ValueError, match=r"x_ex: expected batch size 2 \(as x\), got shape \(3, 3, 24, 24\)"):
        d(x, c, x_ex, c_ex)
