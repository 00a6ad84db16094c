"""msca-fast: masked spatial-channel attention (ECCV 2020) as fast fused kernels.

The drop-in op lives in :mod:`msca_fast.ops`::

    from msca_fast.ops import msca, aggregate, distribute, attention_maps, MSCA
"""

import torch  # noqa: F401  (loads torch's libraries, which msca_fast._C links against)

__version__ = "0.1.0"
