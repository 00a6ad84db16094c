"""The repository's root folder, for tests that run its scripts or read its sources from any
folder of tests/."""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
