"""Why a metric cannot be computed: its optional package is missing (a missing pretrained
network raises :class:`msca_fast.errors.WeightsUnavailable`)."""

from __future__ import annotations

import importlib
from types import ModuleType

from msca_fast.errors import UserError


class MetricUnavailable(UserError):
    """A metric cannot be computed on this machine; the message says how to make it available.

    Its first line is a one-line reason (what an evaluation table prints as "n/a (reason)").
    """


class MetricPackageMissing(MetricUnavailable, ImportError):
    """A metric's optional package (the ``eval`` extra) is not installed."""


def import_optional(module: str, pip_name: str, metric: str) -> ModuleType:
    """Import ``module``, or raise :class:`MetricPackageMissing` telling how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise MetricPackageMissing(
            f"{metric} needs the {pip_name!r} package, which is not installed ({error}).\n"
            f"Install the evaluation extra: pip install 'msca-fast[eval]' (or pip install -r requirements.txt)."
        ) from error
