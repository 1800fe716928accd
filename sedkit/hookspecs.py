"""The plugin author's manual: every hook a sedkit plugin may implement.

A plugin is a module (or object) with functions decorated by ``sedkit.hookimpl`` whose names
match the hooks below. Publish it through the entry-point group ``sedkit`` of your package::

    [project.entry-points.sedkit]
    my_models = "my_package.models"

sedkit's own built-in plugins (``sedkit_plugins.*``) are registered exactly this way.

Two kinds of hooks:

* **Registry hooks** (``sedkit_register_*``) are called once per plugin when sedkit starts.
  They receive a ``register`` function; call ``register(name, cls)`` for each component the
  plugin provides. Names are unique per kind across all plugins: registering a name twice is an
  error naming both distributions. ``cls`` must subclass the matching base class of
  :mod:`sedkit.components` and declare ``Params`` (a dataclass) for its recipe section.
* **Lifecycle hooks** observe a run: they are called with keyword arguments at fixed points and
  must not change training (use a :class:`~sedkit.components.Callback` for that). Their return
  values are ignored. An exception in a lifecycle hook stops the run with the plugin named.
  They are called through pluggy: the plugin registered last runs first, and a plugin may wrap
  the others with ``@sedkit.hookimpl(wrapper=True)``.

A hook implementation whose name matches no hook below is an error, so a typo cannot silently
disable a plugin. Set ``SEDKIT_TRACE_HOOKS=1`` to log every hook implementation called
(stderr, one line each).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pluggy

PROJECT_NAME = "sedkit"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)

#: ``register(name, cls)``: called by plugins inside registry hooks.
Register = Callable[[str, type], None]


# --------------------------------------------------------------------------------------------
# Registry hooks
# --------------------------------------------------------------------------------------------
@hookspec
def sedkit_register_datasets(register: Register) -> None:
    """Register ``data`` components: subclasses of :class:`sedkit.components.DataModule`.

    Called once at start-up. A recipe selects one with ``data: {name: NAME, params: {...}}``.
    A dataset class that defines ``synthesize`` also becomes a target of ``sedkit synth NAME``.
    """


@hookspec
def sedkit_register_models(register: Register) -> None:
    """Register ``model`` components: subclasses of :class:`sedkit.components.Model`.

    Called once at start-up. A recipe selects one with ``model: {name: NAME, params: {...}}``.
    """


@hookspec
def sedkit_register_pseudo_labelers(register: Register) -> None:
    """Register ``pseudo_labeler`` components: subclasses of
    :class:`sedkit.components.PseudoLabeler`.

    Called once at start-up. A recipe selects one with ``pseudo_labeler: {name: ..., params: ...}``.
    """


@hookspec
def sedkit_register_domain_adapters(register: Register) -> None:
    """Register ``domain_adapter`` components: subclasses of
    :class:`sedkit.components.DomainAdapter`.

    Called once at start-up. A recipe selects one with ``domain_adapter: {name: ..., params: ...}``.
    """


@hookspec
def sedkit_register_callbacks(register: Register) -> None:
    """Register callbacks: subclasses of :class:`sedkit.components.Callback`.

    Called once at start-up. A recipe lists any number under
    ``callbacks: [{name: ..., params: ...}]``.
    """


@hookspec
def sedkit_register_commands(register: Register) -> None:
    """Register ``sedkit`` subcommands: subclasses of :class:`sedkit.components.Command`.

    Called once when the CLI starts. ``register("name", cls)`` adds ``sedkit name``; its
    ``add_arguments(parser)`` declares the options and ``run(args)`` returns the exit code.
    A name that clashes with a built-in command is an error naming both distributions.
    """


# --------------------------------------------------------------------------------------------
# Lifecycle hooks
# --------------------------------------------------------------------------------------------
@hookspec
def sedkit_run_start(run_dir: Path, recipe: dict[str, Any], device: str) -> None:
    """Called once when a run starts (or resumes), after the run directory is set up.

    ``recipe`` is the resolved recipe as plain data (read it, do not change it).
    """


@hookspec
def sedkit_epoch_end(run_dir: Path, epoch: int, metrics: dict[str, Any]) -> None:
    """Called after every epoch with that epoch's metrics (losses, learning rate, validation
    scores when validation ran, pseudo-label and adapter statistics). ``epoch`` counts from 1.
    """


@hookspec
def sedkit_checkpoint_saved(run_dir: Path, path: Path, kind: str, epoch: int) -> None:
    """Called after a checkpoint is safely on disk. ``kind`` is ``"last"`` or ``"best"``."""


@hookspec
def sedkit_run_end(run_dir: Path, metrics: dict[str, Any], status: str) -> None:
    """Called once when a run ends. ``status`` is ``"completed"``, ``"stopped"`` (early stopping)
    or ``"failed"``; ``metrics`` holds the final metrics (empty when the run failed).
    """


# --------------------------------------------------------------------------------------------
# Report hooks
# --------------------------------------------------------------------------------------------
@hookspec
def sedkit_report_figures(
    run_dir: Path, epochs: list[dict[str, Any]], validation: dict[str, Any], out_dir: Path
) -> list[tuple[Path, str]] | None:
    """A method's own figures for a run's report: draw into ``out_dir`` what the run's metrics
    hold for this method and return ``(png_path, caption)`` pairs; return nothing for a run of
    another method. ``epochs`` are the records of ``metrics.jsonl`` (a component's own metrics
    named by its recipe section, ``pseudo_labeler/quality``: docs/architecture.md), ``validation``
    the final validation metrics (empty when the run has none).

    Called by a report writer (the ``reporting`` plugin at the end of every run and by
    ``sedkit report``), so that it draws any method's curves without importing or naming it.
    """
