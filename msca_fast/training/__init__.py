"""Self-supervised training of the example-guided generator (paper section 3.4): ``python train.py``."""
