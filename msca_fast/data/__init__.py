"""Training data: real data sets on disk (``folders``, ``image_io``), self-supervised pairs (``pairs``).

Import the submodules directly (``from msca_fast.data.folders import CocoStuff``); this file
imports nothing, so each submodule loads only what it needs.
"""
