"""Train the example-guided generator: ``python train.py --help``.

With no arguments it trains a small model on the embedded synthetic scenes in about ten
minutes on a 2-core CPU (preset "cpu-demo"); ``torchrun --nproc_per_node N train.py ...``
trains on N processes. The command is :mod:`msca_fast.train` (also ``python -m msca_fast.train``).
"""

import sys

from msca_fast.train import main

if __name__ == "__main__":
    sys.exit(main())
