"""Compatibility shims for third-party packages that lag behind sedkit's pinned dependencies.

Each shim is applied at the one place that imports the lagging package, so the rest of the code
never has to know about it.
"""

from __future__ import annotations

from types import ModuleType

import numpy


def import_scaper() -> ModuleType:
    """Import and return ``scaper`` with the numpy alias it needs.

    scaper 1.6.5 (the newest release) still uses ``numpy.Inf``, which numpy 2 removed; sedkit pins
    numpy 2 (see ../shared/ENVIRONMENT.md). Restoring the alias before the import is enough for
    scaper's generation paths (checked with pitch shift, time stretch and reverb under numpy 2.3).
    """
    if "Inf" not in vars(numpy):
        # numpy 2 answers `numpy.Inf` through a module __getattr__ that raises; a real attribute
        # takes precedence over it.
        numpy.Inf = numpy.inf
    import scaper

    return scaper
