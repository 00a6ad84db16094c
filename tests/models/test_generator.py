"""The generator: shapes, gradients, ablations, backends, rebuild from a checkpoint, bad inputs."""

from __future__ import annotations

import pytest
import torch

from msca_fast import _extension
from msca_fast.models.alignment import MSCAAlignment
from msca_fast.models.config import ALIGNMENTS
from msca_fast.models.generator import Generator

from model_helpers import NUM_CLASSES, generator_inputs, label_map, tiny_config, tiny_generator


@pytest.mark.parametrize("size", [(64, 64), (128, 128), (256, 256)])
def test_output_shape_and_range(size):
    g = tiny_generator()
    c1, x2, c2 = generator_inputs(batch=1, size=size, exemplar_size=(64, 96))
    y = g(c1, x2, c2)
    assert y.shape == (1, 3, *size)
    assert torch.isfinite(y).all() and y.abs().max() <= 1


def test_odd_sizes_and_exemplar_larger_than_target():
    g = tiny_generator()
    c1, x2, c2 = generator_inputs(batch=2, size=(40, 72), exemplar_size=(100, 52))
    assert g(c1, x2, c2).shape == (2, 3, 40, 72)


def test_aligned_features_have_each_scale_size():
    config = tiny_config()
    g = tiny_generator()
    c1, x2, c2 = generator_inputs(size=(64, 96))
    aligned = g.align(c1, x2, c2)
    for i, (fx, fc) in enumerate(zip(aligned.image, aligned.labels)):
        assert fx.shape == (2, config.image_feature_channels[i], 64 >> i, 96 >> i)
        assert fc.shape == (2, config.label_feature_channels[i], 64 >> i, 96 >> i)


@pytest.mark.parametrize("alignment", ALIGNMENTS)
def test_gradients_reach_every_trainable_parameter_and_not_the_vgg(alignment):
    # 16 label channels give the gate MLP 8 hidden units: with the tiny config's 2, both can be
    # dead ReLUs at initialisation.
    g = tiny_generator(alignment=alignment, label_feature_channels=(16,) * 5)
    c1, x2, c2 = generator_inputs()
    g(c1, x2, c2).square().mean().backward()
    for name, p in g.named_parameters():
        if name.startswith("image_pyramid.vgg."):
            assert not p.requires_grad and p.grad is None, name
            continue
        assert p.grad is not None, f"{name} got no gradient"
        if name.endswith("phi.bias"):
            # A per-region constant added to the spatial logits cancels in the softmax: zero up to
            # rounding (exactly zero from the fused kernels, ~1e-12 from the reference's autograd).
            weight_grad = dict(g.named_parameters())[name.replace("bias", "weight")].grad
            assert p.grad.abs().max() <= 1e-3 * weight_grad.abs().max(), name
        else:
            assert torch.count_nonzero(p.grad) > 0, f"{name} has an all-zero gradient"


def test_vgg_stays_frozen_in_training_mode():
    g = tiny_generator()
    g.train()
    assert not g.image_pyramid.vgg.training
    assert not any(p.requires_grad for p in g.image_pyramid.vgg.parameters())


@pytest.mark.parametrize("alignment", ALIGNMENTS)
def test_each_variant_uses_the_exemplar(alignment):
    g = tiny_generator(alignment=alignment).eval()
    c1, x2, c2 = generator_inputs()
    with torch.no_grad():
        y = g(c1, x2, c2)
        y_other = g(c1, -x2, c2)
    assert not torch.allclose(y, y_other), "the output ignores the exemplar image"


def test_variants_build_the_intended_aligner():
    assert isinstance(tiny_generator(alignment="msca").aligners[0], MSCAAlignment)
    assert tiny_generator(alignment="msca").aligners[0].msca.masking
    assert not tiny_generator(alignment="no_masking").aligners[0].msca.masking
    assert not any(isinstance(a, MSCAAlignment) for a in tiny_generator(alignment="gap").aligners)


@pytest.mark.skipif(not _extension.extension_loaded(), reason=f"{_extension.load_error}")
def test_reference_and_cpu_backends_agree():
    g = tiny_generator(num_regions=(8, 16, 16, 16, 16)).eval()
    c1, x2, c2 = generator_inputs(size=(64, 64), exemplar_size=(64, 80))
    with torch.no_grad():
        g.set_msca_backend("reference")
        y_ref = g(c1, x2, c2)
        g.set_msca_backend("cpu")
        y_cpu = g(c1, x2, c2)
    assert (y_cpu - y_ref).norm() / y_ref.norm() < 1e-5


def test_set_msca_backend_rejects_unknown_names():
    with pytest.raises(ValueError, match="backend: unknown backend .nope.; expected one of \"auto\""):
        tiny_generator().set_msca_backend("nope")


def test_rebuild_from_saved_config_and_state_dict_is_exact(tmp_path):
    g = tiny_generator()
    c1, x2, c2 = generator_inputs()
    g(c1, x2, c2)  # one training-mode step moves BatchNorm statistics and spectral-norm vectors
    g.eval()
    path = tmp_path / "g.pt"
    torch.save({"config": g.config.to_dict(), "state_dict": g.state_dict()}, path)
    saved = torch.load(path, weights_only=True)
    rebuilt = Generator.rebuild(saved["config"], saved["state_dict"]).eval()
    with torch.no_grad():
        assert torch.equal(rebuilt(c1, x2, c2), g(c1, x2, c2))


def test_autocast_bfloat16_runs():
    g = tiny_generator()
    c1, x2, c2 = generator_inputs()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = g(c1, x2, c2)
    assert y.shape == (2, 3, 64, 64) and torch.isfinite(y.float()).all()


@pytest.mark.parametrize(
    "change, match",
    [
        (
            lambda c1, x2, c2: (c1[:, :3], x2, c2),
            r"c1: expected a one-hot label map \(B, 5, H, W\) .* got shape \(2, 3, 64, 64\)",
        ),
        (
            lambda c1, x2, c2: (c1, x2, c2[:, :4]),
            r"c2: expected a one-hot label map \(B, 5, H, W\) .* got shape \(2, 4, 48, 80\)",
        ),
        (
            lambda c1, x2, c2: (c1, x2[:, :1], c2),
            r"x2: expected an RGB image batch \(B, 3, H, W\) in \[-1, 1\], got shape \(2, 1, 48, 80\)",
        ),
        (lambda c1, x2, c2: (c1, x2[:1], c2), r"x2: expected batch size 2"),
        (lambda c1, x2, c2: (c1, x2, c2[:1]), r"c2: expected batch size 2"),
        (
            lambda c1, x2, c2: (c1, x2, c2[..., :40]),
            r"c2: expected the spatial size of x2 \(48, 80\), got shape \(2, 5, 48, 40\)",
        ),
        (lambda c1, x2, c2: (c1[..., :8, :8], x2, c2), r"c1: expected height and width of at least 16"),
        (lambda c1, x2, c2: (c1.argmax(1), x2, c2), r"c1: .*msca_fast.models.labels.one_hot"),
        (lambda c1, x2, c2: (c1, x2.numpy(), c2), r"x2: expected a tensor of shape \(B, 3, H, W\), got ndarray"),
    ],
)
def test_bad_inputs_name_the_argument(change, match):
    g = tiny_generator()
    with pytest.raises((ValueError, TypeError), match=match):
        g(*change(*generator_inputs()))


def test_label_map_helper_is_one_hot():
    c = label_map(2, 32, 48)
    assert c.shape == (2, NUM_CLASSES, 32, 48)
    assert torch.equal(c.sum(1), torch.ones(2, 32, 48))


def test_generator_rejects_a_config_dict():
    with pytest.raises(TypeError, match="config: expected a ModelConfig"):
        Generator(tiny_config().to_dict())
