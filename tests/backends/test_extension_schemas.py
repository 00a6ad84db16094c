"""The compiled operator library registers the op schemas. (That it loaded at all is required
under CI by tests/conftest.py; a user without a compiler gets these tests skipped.)"""

import pytest
import torch

from msca_fast import _extension

pytestmark = pytest.mark.skipif(not _extension.extension_loaded(), reason=f"msca_fast._C: {_extension.load_error}")


def test_op_schemas_are_registered():
    forward = torch.ops.msca_fast.msca_forward.default._schema
    backward = torch.ops.msca_fast.msca_backward.default._schema
    assert [a.name for a in forward.arguments] == ["fx2", "fc2", "fc1", "phi", "psi", "psi_bias", "gate"]
    assert len(forward.returns) == 3
    assert len(backward.returns) == 7
