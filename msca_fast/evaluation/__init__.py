"""The paper's evaluation tasks (section 4): duplicating, mirroring, retrieving, and on the
synthetic scenes an exact-ground-truth style transfer; their report. CLI: ``python -m msca_fast.evaluate``."""
