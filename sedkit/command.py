"""The base class of ``sedkit`` subcommands, in a module that imports nothing heavy.

``sedkit score`` must start without torch (it only reads tables), so the command line defines
its commands against this class; :mod:`sedkit.components` re-exports it for plugins.
"""

from __future__ import annotations

import argparse
from typing import ClassVar


class Command:
    """A ``sedkit`` subcommand contributed by a plugin (``sedkit NAME ...``)."""

    help: ClassVar[str] = ""

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None: ...

    @classmethod
    def run(cls, args: argparse.Namespace) -> int:
        raise NotImplementedError
