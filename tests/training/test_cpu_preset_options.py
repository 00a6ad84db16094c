"""The options the CPU presets add to the paper's method: RGB pretraining targets, the L1 pixel
loss, replicate padding and the attention logit scale reaching every MSCA."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from msca_fast.models.pretrain_head import AttentionPretrainHead
from msca_fast.training.losses_step import Batch, generator_losses

from model_helpers import generator_inputs, tiny_config, tiny_generator


def test_rgb_pretraining_targets_append_the_area_resized_image():
    g = tiny_generator()
    c1, x2, c2 = generator_inputs(size=(32, 32), exemplar_size=(32, 32))
    head = AttentionPretrainHead(g.config, rgb=True)
    predictions = head(g.align(c1, x2, c2))
    vgg = g.image_pyramid.vgg_features(x2)
    targets = head.targets(vgg, x2)
    assert [p.shape for p in predictions] == [t.shape for t in targets]
    for i, (t, f) in enumerate(zip(targets, vgg)):
        assert t.shape[1] == f.shape[1] + 3
        torch.testing.assert_close(t[:, -3:], F.avg_pool2d(x2, 2**i) if i else x2)
    assert AttentionPretrainHead(g.config).targets(vgg, x2) is vgg


class ConstantD(nn.Module):
    """A discriminator stand-in: one scale, one layer, the mean of its input."""

    def forward(self, x, c, x_ex, c_ex):
        return [[x.mean(dim=1, keepdim=True)]]


def test_l1_pixel_loss_is_added_only_when_weighted():
    real, fake = torch.zeros(2, 3, 16, 16), torch.full((2, 3, 16, 16), 0.5)
    labels = torch.zeros(2, 4, 16, 16)
    batch = Batch(labels, real, labels, real, labels, real)
    vgg = lambda a, b: (a - b).abs().mean()  # noqa: E731
    plain = generator_losses(ConstantD(), vgg, batch, fake, fake, lambda_feat=1.0)
    assert not any(k.startswith("l1_") for k in plain)
    with_l1 = generator_losses(ConstantD(), vgg, batch, fake, fake, lambda_feat=1.0, lambda_l1=4.0)
    assert with_l1["l1_patch"].item() == with_l1["l1_global"].item() == 2.0


def test_replicate_padding_reaches_every_generator_conv_and_logit_scale_every_msca():
    g = tiny_generator(padding_mode="replicate", attention_logit_scale=5.0)
    convs = [m for m in g.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)]
    vgg_convs = {id(m) for m in g.image_pyramid.vgg.modules()}
    mine = [m for m in convs if id(m) not in vgg_convs]
    assert mine and all(m.padding_mode == "replicate" for m in mine)
    assert all(a.msca.logit_scale == 5.0 for a in g.aligners)
    assert tiny_config().padding_mode == "zeros" and tiny_generator().aligners[0].msca.logit_scale == 1.0
