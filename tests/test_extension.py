"""The compiled operator library: it loads and registers the op schemas."""

import torch

from msca_fast import _extension


def test_extension_is_built_and_loaded():
    assert _extension.extension_loaded(), _extension.load_error


def test_op_schemas_are_registered():
    forward = torch.ops.msca_fast.msca_forward.default._schema
    backward = torch.ops.msca_fast.msca_backward.default._schema
    assert [a.name for a in forward.arguments] == ["fx2", "fc2", "fc1", "phi", "psi", "psi_bias", "gate"]
    assert len(forward.returns) == 3
    assert len(backward.returns) == 7

