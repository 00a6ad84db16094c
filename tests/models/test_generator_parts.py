"""The generator's parts: config, VGG loading, label maps, label pyramid, ablation aligners, pretraining head."""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F
import torchvision

from msca_fast.errors import WeightsUnavailable
from msca_fast.models import vgg as vgg_module
from msca_fast.models.alignment import ClassMeanAlignment, GAPAlignment
from msca_fast.models.config import ModelConfig
from msca_fast.models.features import LabelPyramid
from msca_fast.models.labels import one_hot
from msca_fast.models.pretrain_head import AttentionPretrainHead
from msca_fast.models.vgg import VGG19, VGG19_SOURCE, load_vgg19_features

from model_helpers import NUM_CLASSES, generator_inputs, label_map, tiny_config, tiny_generator

# --- config ---------------------------------------------------------------------------------


def test_config_round_trips_through_a_weights_only_checkpoint(tmp_path):
    config = tiny_config(alignment="no_masking", num_regions=(1, 2, 3, 4, 5))
    torch.save({"config": config.to_dict()}, tmp_path / "c.pt")
    loaded = torch.load(tmp_path / "c.pt", weights_only=True)["config"]
    assert ModelConfig.from_dict(loaded) == config


@pytest.mark.parametrize(
    "changes, match",
    [
        ({"alignment": "attention"}, r"alignment: expected one of \['msca', 'gap', 'no_attention', 'no_masking'\]"),
        ({"num_regions": (8, 16)}, r"num_regions: expected 5 positive ints"),
        ({"image_feature_channels": (8, 8, 0, 8, 8)}, r"image_feature_channels: expected a positive int, got 0"),
        ({"num_classes": 0}, r"num_classes: expected a positive int"),
        ({"param_free_norm": "layer"}, r"param_free_norm: expected one of"),
        ({"label_slope": 1.5}, r"label_slope: expected a number in \[0, 1\)"),
    ],
)
def test_config_rejects_bad_values(changes, match):
    with pytest.raises(ValueError, match=match):
        tiny_config(**changes)


def test_config_from_dict_names_unknown_fields():
    values = tiny_config().to_dict() | {"ngf_typo": 3}
    with pytest.raises(ValueError, match=r"unknown ModelConfig fields \['ngf_typo'\]"):
        ModelConfig.from_dict(values)


# --- VGG ------------------------------------------------------------------------------------


def _random_vgg_state(full_model: bool) -> dict[str, torch.Tensor]:
    features = vgg_module.vgg19_feature_layers()
    state = features.state_dict()
    return {f"features.{k}": v for k, v in state.items()} if full_model else state


def test_vgg_layers_match_torchvision_keys_and_shapes():
    ours = vgg_module.vgg19_feature_layers().state_dict()
    theirs = torchvision.models.vgg19().features.state_dict()
    assert list(ours) == list(theirs)
    assert all(ours[k].shape == theirs[k].shape for k in ours)


@pytest.mark.parametrize("full_model", [True, False])
def test_vgg_loads_a_state_dict_file(tmp_path, full_model):
    state = _random_vgg_state(full_model)
    torch.save(state, tmp_path / "vgg.pth")
    features = load_vgg19_features(str(tmp_path / "vgg.pth"), last_layer="relu2_2")
    prefix = "features." if full_model else ""
    assert len(features) == 9
    assert torch.equal(features[7].weight, state[f"{prefix}7.weight"])


def test_vgg_imagenet_prefers_the_environment_then_the_hub_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    cached = VGG19_SOURCE.cache_path()
    cached.parent.mkdir(parents=True)
    cache_state, env_state = _random_vgg_state(True), _random_vgg_state(False)
    torch.save(cache_state, cached)
    torch.save(env_state, tmp_path / "env.pth")
    assert torch.equal(load_vgg19_features("imagenet", "relu1_1")[0].weight, cache_state["features.0.weight"])
    monkeypatch.setenv(VGG19_SOURCE.env_var, str(tmp_path / "env.pth"))
    assert torch.equal(load_vgg19_features("imagenet", "relu1_1")[0].weight, env_state["0.weight"])


def test_vgg_imagenet_without_cache_or_network_says_how_to_provide_weights(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.delenv(VGG19_SOURCE.env_var, raising=False)

    def offline(*args, **kwargs):
        raise OSError("network unreachable")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(WeightsUnavailable) as error:
        load_vgg19_features("imagenet")
    message = str(error.value)
    assert "network unreachable" in message
    assert str(VGG19_SOURCE.cache_path()) in message
    assert "--vgg-weights" in message and "vgg_weights='random'" in message


def test_vgg_missing_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"vgg_weights: no such file '.*nothing.pth'"):
        load_vgg19_features(str(tmp_path / "nothing.pth"))


def test_vgg_random_warns_and_none_is_silent():
    with pytest.warns(UserWarning, match="randomly initialised"):
        load_vgg19_features("random", "relu1_1")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_vgg19_features("none", "relu1_1")


def test_vgg_taps_match_running_the_layers_by_hand():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        net = VGG19(["relu2_1", "relu1_2"], weights="random")
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    h = ((x + 1) / 2 - net.mean) / net.std
    by_hand = []
    for layer in net.features:
        h = layer(h)
        by_hand.append(h)
    relu2_1, relu1_2 = net(x)
    assert torch.equal(relu1_2, by_hand[3]) and torch.equal(relu2_1, by_hand[6])
    assert net.channels == (128, 64)


# --- labels ---------------------------------------------------------------------------------


def test_one_hot_with_ignore_index():
    ids = torch.tensor([[[0, 2], [255, 1]]])
    out = one_hot(ids, 3, ignore_index=255)
    assert out.shape == (1, 3, 2, 2)
    assert out[0, :, 1, 0].sum() == 0
    assert torch.equal(out[0].argmax(0)[0], torch.tensor([0, 2]))


def test_one_hot_names_out_of_range_ids():
    with pytest.raises(ValueError, match=r"label_ids: class ids \[3, 7\] are outside \[0, 3\)"):
        one_hot(torch.tensor([[[0, 3], [7, 1]]]), 3)


def test_label_pyramid_follows_eq_2_3():
    pyramid = LabelPyramid(NUM_CLASSES, (4, 5, 6, 7, 8))
    c = label_map(2, 64, 48)
    out = pyramid(c)
    assert [tuple(f.shape) for f in out] == [(2, 4 + i, 64 >> i, 48 >> i) for i in range(5)]
    coarsest = F.leaky_relu(pyramid.convs[4](F.interpolate(c, size=(4, 3), mode="nearest")), 0.2)
    assert torch.allclose(out[4], coarsest)
    up = F.interpolate(out[4], size=(8, 6), mode="bilinear", align_corners=False)
    next_scale = F.leaky_relu(pyramid.convs[3](torch.cat([up, F.interpolate(c, size=(8, 6))], 1)), 0.2)
    assert torch.allclose(out[3], next_scale)


# --- ablation aligners ----------------------------------------------------------------------


def test_class_mean_alignment_places_each_class_mean():
    # Exemplar: left half class 0 with features 1, right half class 1 with features 3.
    c2 = torch.zeros(1, 3, 4, 4)
    c2[:, 0, :, :2] = 1
    c2[:, 1, :, 2:] = 1
    fx2 = torch.where(c2[:, :1].bool(), 1.0, 3.0).expand(1, 2, 4, 4)
    # Target: top row class 1, bottom row class 2 (absent from the exemplar).
    c1 = torch.zeros(1, 3, 2, 2)
    c1[:, 1, 0] = 1
    c1[:, 2, 1] = 1
    fc1 = torch.zeros(1, 4, 2, 2)
    out = ClassMeanAlignment()(fx2, None, fc1, c2, c1)
    expected = torch.tensor([[3.0, 3.0], [0.0, 0.0]]).expand(1, 2, 2, 2)
    assert torch.allclose(out, expected)


def test_gap_alignment_is_the_exemplar_mean_everywhere():
    fx2 = torch.randn(2, 3, 5, 7)
    out = GAPAlignment()(fx2, None, torch.zeros(2, 4, 3, 2), None, None)
    assert out.shape == (2, 3, 3, 2)
    assert torch.allclose(out, fx2.mean((2, 3))[..., None, None].expand(2, 3, 3, 2))


# --- pretraining head -----------------------------------------------------------------------


def test_pretrain_head_predicts_vgg_features_and_trains_the_attention():
    g = tiny_generator()
    head = AttentionPretrainHead(g.config)
    c1, x2, c2 = generator_inputs()
    x1 = torch.rand(2, 3, 64, 64) * 2 - 1
    predictions = head(g.align(c1, x2, c2))
    targets = g.image_pyramid.vgg_features(x1)
    assert [p.shape for p in predictions] == [t.shape for t in targets]
    loss = head.loss(predictions, targets)
    loss.backward()
    assert loss > 0
    assert g.aligners[2].msca.phi.weight.grad.abs().sum() > 0
    assert all(conv.weight.grad is not None for conv in head.convs)
    assert head.loss(targets, targets) == 0


def test_pretrain_loss_names_mismatched_targets():
    predictions = [torch.zeros(1, 2, 4, 4)]
    with pytest.raises(ValueError, match=r"targets\[0\]: expected shape \(1, 2, 4, 4\)"):
        AttentionPretrainHead.loss(predictions, [torch.zeros(1, 2, 4, 5)])
