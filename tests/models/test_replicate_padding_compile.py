"""The generator's replicate-padded convs train under torch.compile (the workaround in
:class:`msca_fast.models.spade.EdgeReplicatingConv2d`); without it this compiled backward stops
in ``aten.replication_pad2d_backward`` (torch 2.14, inductor's channels-last convolutions)."""

from __future__ import annotations

import copy

import pytest
import torch

from msca_fast.models.spade import SPADEResBlock, conv3x3


@pytest.mark.parametrize("padding_mode", ["zeros", "replicate"])
def test_a_spade_block_compiles_and_matches_eager_forward_and_backward(padding_mode):
    torch.manual_seed(0)
    block = SPADEResBlock(8, 16, condition_channels=4, hidden=8, norm="instance", padding_mode=padding_mode)
    x = torch.randn(2, 8, 16, 16)
    condition = torch.randn(2, 4, 16, 16)

    def gradients(compile: bool) -> list[torch.Tensor]:
        module = copy.deepcopy(block)  # each run starts from the same spectral-norm vectors
        inputs = x.clone().requires_grad_(True)
        (torch.compile(module) if compile else module)(inputs, condition).square().mean().backward()
        return [inputs.grad] + [p.grad for p in module.parameters()]

    eager, compiled = gradients(compile=False), gradients(compile=True)
    for e, c in zip(eager, compiled):
        torch.testing.assert_close(c, e, rtol=1e-4, atol=1e-5)


def test_replicate_padding_pads_with_the_edge_pixels_in_eager_and_compiled_runs():
    torch.manual_seed(0)
    conv = conv3x3(1, 1, "replicate")
    x = torch.randn(1, 1, 5, 7)
    reference = torch.nn.functional.conv2d(
        torch.nn.functional.pad(x, (1, 1, 1, 1), mode="replicate"), conv.weight, conv.bias
    )
    torch.testing.assert_close(conv(x), reference, rtol=0, atol=0)
    torch.testing.assert_close(torch.compile(conv)(x), reference, rtol=1e-5, atol=1e-6)
