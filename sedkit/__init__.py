"""sedkit: a plugin-based sound event detection framework."""

import pluggy

__version__ = "0.1.0"

#: Decorator for plugin hook implementations: ``@sedkit.hookimpl``.
hookimpl = pluggy.HookimplMarker("sedkit")

__all__ = ["__version__", "hookimpl"]
