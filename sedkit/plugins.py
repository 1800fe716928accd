"""Loading plugins one by one, and the typed facade through which the engine calls hooks.

Environment variables:

* ``SEDKIT_DISABLE_PLUGINS=a,b``: do not load the entry points named ``a`` and ``b``.
* ``SEDKIT_BUILTINS_ONLY=1``: load only the plugins shipped with sedkit itself.
* ``SEDKIT_TRACE_HOOKS=1``: log every hook call to stderr.
"""

from __future__ import annotations

import inspect
import logging
import os
import sys
import traceback
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import Any

import pluggy

from sedkit import hookspecs
from sedkit.errors import UserError
from sedkit.registry import KINDS, PluginSource, RegistrationClash, Registry

log = logging.getLogger("sedkit")

ENTRY_POINT_GROUP = "sedkit"
BUILTIN_DISTRIBUTION = "sedkit"


@dataclass
class PluginInfo:
    """One entry point of group ``sedkit``: loaded, failed or skipped."""

    name: str
    target: str
    distribution: str
    version: str
    status: str = "loaded"  # loaded | failed | disabled | skipped
    error: str = ""
    hooks: list[str] = field(default_factory=list)
    components: dict[str, list[str]] = field(default_factory=dict)

    @property
    def source(self) -> PluginSource:
        return PluginSource(self.name, self.distribution, self.version)

    def describe_failure(self) -> str:
        return (
            f"plugin {self.name!r} ({self.target}) from {self.distribution} {self.version} "
            f"failed to load: {self.error}"
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "target": self.target,
            "distribution": self.distribution,
            "version": self.version,
            "status": self.status,
            "error": self.error,
            "hooks": self.hooks,
            "components": self.components,
        }


def _env_list(name: str) -> set[str]:
    return {part.strip() for part in os.environ.get(name, "").split(",") if part.strip()}


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


class Plugins:
    """The plugin manager, the component registries and the hook facade.

    Build it with :meth:`load`. Nothing outside this module calls ``pm.hook.*``: the engine
    calls the typed methods below (:meth:`run_start`, :meth:`epoch_end`, ...).
    """

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        self.pm.add_hookspecs(hookspecs)
        self.registries = {kind: Registry(kind) for kind in KINDS}
        self.plugins: list[PluginInfo] = []
        self.trace_hooks = _env_flag("SEDKIT_TRACE_HOOKS")
        if self.trace_hooks:
            self.pm.add_hookcall_monitoring(self._trace_call, lambda *_args: None)

    # ---------------------------------------------------------------- loading
    @classmethod
    def load(
        cls,
        *,
        builtins_only: bool | None = None,
        disabled: set[str] | None = None,
        extra: list[tuple[str, object]] | None = None,
    ) -> Plugins:
        """Load every entry point of group ``sedkit`` (and ``extra`` (name, plugin) pairs).

        A plugin that fails to import or to register is recorded with its entry-point name,
        target, distribution, version and error, and skipped.
        """
        self = cls()
        builtins_only = (
            _env_flag("SEDKIT_BUILTINS_ONLY") if builtins_only is None else builtins_only
        )
        disabled = _env_list("SEDKIT_DISABLE_PLUGINS") if disabled is None else disabled
        seen: set[tuple[str, str]] = set()
        for ep in sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
            dist = ep.dist.name if ep.dist is not None else "unknown"
            version = ep.dist.version if ep.dist is not None else "unknown"
            if (ep.name, ep.value) in seen:  # the same distribution found twice on sys.path
                continue
            seen.add((ep.name, ep.value))
            info = PluginInfo(ep.name, ep.value, dist, version)
            self.plugins.append(info)
            if ep.name in disabled:
                info.status = "disabled"
                continue
            if builtins_only and dist != BUILTIN_DISTRIBUTION:
                info.status = "skipped"
                continue
            try:
                obj = ep.load()
            except Exception as exc:  # any import-time error of a third-party plugin
                self._fail(info, exc)
                continue
            self._register(info, obj)
        unknown = sorted(set(disabled) - {p.name for p in self.plugins})
        if unknown:  # a misspelt name would otherwise leave the plugin loaded without a word
            log.warning(
                "SEDKIT_DISABLE_PLUGINS: no installed plugin named %s (installed: %s)",
                ", ".join(unknown),
                ", ".join(p.name for p in self.plugins),
            )
        for name, obj in extra or []:
            info = PluginInfo(name, getattr(obj, "__name__", repr(obj)), "local", "-")
            self.plugins.append(info)
            self._register(info, obj)
        self._collect_components()
        return self

    def _fail(self, info: PluginInfo, exc: BaseException | str) -> None:
        info.status = "failed"
        if isinstance(exc, BaseException):
            info.error = f"{type(exc).__name__}: {exc}"
            log.debug("".join(traceback.format_exception(exc)))
        else:
            info.error = exc
        log.warning("%s (skipped)", info.describe_failure())

    def _register(self, info: PluginInfo, obj: object) -> None:
        try:
            self.pm.register(obj, name=info.name)
        except Exception as exc:  # pluggy validation: bad signature, name taken
            self._fail(info, exc)
            return
        unknown = [
            hc.name for hc in self.pm.get_hookcallers(obj) or [] if hc.spec is None
        ] + _undecorated_hook_functions(obj)
        if unknown:
            self.pm.unregister(obj)
            self._fail(
                info,
                "hook implementation(s) matching no sedkit hook: "
                + ", ".join(sorted(set(unknown)))
                + " (check the spelling and the @sedkit.hookimpl decorator)",
            )
            return
        info.hooks = sorted(hc.name for hc in self.pm.get_hookcallers(obj) or [])

    def _collect_components(self) -> None:
        """Call each plugin's registry hooks, one plugin at a time, so clashes name both."""
        by_name = {p.name: p for p in self.plugins if p.status == "loaded"}
        for kind, (hook_name, _base) in KINDS.items():
            caller = getattr(self.pm.hook, hook_name)
            for impl in caller.get_hookimpls():
                info = by_name.get(impl.plugin_name)
                if info is None or info.status != "loaded":
                    continue
                pending: list[tuple[str, type]] = []
                # One plugin at a time, not through pm.hook: a plugin that fails to register is
                # skipped without losing the others', and a clash names both plugins.
                self._trace(hook_name, impl.plugin_name)
                try:
                    impl.function(register=lambda name, c, _p=pending: _p.append((name, c)))
                except Exception as exc:
                    self._fail(info, exc)
                    continue
                registry = self.registries[kind]
                for name, component in pending:
                    try:
                        registry.add(name, component, info.source)
                    except (TypeError, RegistrationClash) as exc:
                        self._fail(info, str(exc))
                        if isinstance(exc, RegistrationClash):
                            registry.clashes[name] = str(exc)
                        continue
                    info.components.setdefault(kind, []).append(name)

    # ---------------------------------------------------------------- lookup
    def failures(self) -> list[PluginInfo]:
        return [p for p in self.plugins if p.status == "failed"]

    def component(self, kind: str, name: str, *, key: str = "") -> type:
        """The class registered as ``name`` for ``kind``; a UserError that names a failed
        plugin when one could have provided it."""
        registry = self.registries[kind]
        if name in registry.clashes:
            raise UserError(f"{key}: {registry.clashes[name]}")
        if name in registry.entries:
            return registry.entries[name].cls
        failed = self.failures()
        related = [p for p in failed if p.name == name] or failed
        if related:
            notes = "; ".join(p.describe_failure() for p in related)
            raise UserError(f"{key}: unknown {kind} {name!r}: {notes}")
        disabled = [p.name for p in self.plugins if p.status in ("disabled", "skipped")]
        try:
            registry.get(name, key=key)  # raises with a suggestion
        except UserError as exc:
            if disabled:  # the plugin that provides it may be one not loaded on purpose
                raise UserError(
                    f"{exc}; not loaded: {', '.join(disabled)} (SEDKIT_DISABLE_PLUGINS, "
                    "SEDKIT_BUILTINS_ONLY)"
                ) from None
            raise
        raise AssertionError("unreachable")

    def names(self, kind: str) -> list[str]:
        return self.registries[kind].names()

    # ---------------------------------------------------------------- lifecycle facade
    def _call(self, hook_name: str, **kwargs: Any) -> list[Any]:
        """Call a hook through pluggy (its order, wrappers and monitoring): the results that
        are not None, last registered plugin first. An exception becomes a
        :class:`PluginHookError` naming the plugin it came from."""
        caller = getattr(self.pm.hook, hook_name)
        try:
            return caller(**kwargs)
        except Exception as exc:
            plugin = _raising_plugin(exc, caller.get_hookimpls())
            raise PluginHookError(
                f"plugin {plugin} failed in {hook_name}: {type(exc).__name__}: {exc}"
            ) from exc

    def _trace(self, hook_name: str, plugin_name: str) -> None:
        """With ``SEDKIT_TRACE_HOOKS=1``: one stderr line per hook implementation called."""
        if self.trace_hooks:
            sys.stderr.write(f"[sedkit hooks] {hook_name} -> {plugin_name}\n")

    def _trace_call(self, hook_name: str, impls: list[pluggy.HookImpl], _kwargs: Any) -> None:
        # pluggy calls the implementations last registered first (wrappers around them).
        for impl in reversed(impls):
            self._trace(hook_name, impl.plugin_name)

    def run_start(self, *, run_dir: Path, recipe: dict[str, Any], device: str) -> None:
        self._call("sedkit_run_start", run_dir=run_dir, recipe=recipe, device=device)

    def epoch_end(self, *, run_dir: Path, epoch: int, metrics: dict[str, Any]) -> None:
        self._call("sedkit_epoch_end", run_dir=run_dir, epoch=epoch, metrics=metrics)

    def checkpoint_saved(self, *, run_dir: Path, path: Path, kind: str, epoch: int) -> None:
        self._call("sedkit_checkpoint_saved", run_dir=run_dir, path=path, kind=kind, epoch=epoch)

    def run_end(self, *, run_dir: Path, metrics: dict[str, Any], status: str) -> None:
        self._call("sedkit_run_end", run_dir=run_dir, metrics=metrics, status=status)

    def report_figures(
        self, *, run_dir: Path, epochs: list[dict[str, Any]], validation: dict[str, Any],
        out_dir: Path,
    ) -> list[tuple[Path, str]]:  # fmt: skip
        """Every plugin's figures of a run (``sedkit_report_figures``), in plugin load order."""
        results = self._call(
            "sedkit_report_figures",
            run_dir=run_dir, epochs=epochs, validation=validation, out_dir=out_dir,
        )  # fmt: skip
        return [figure for result in reversed(results) for figure in result]

    # ---------------------------------------------------------------- listing
    def as_dict(self) -> list[dict[str, Any]]:
        return [p.as_dict() for p in self.plugins]


class PluginHookError(RuntimeError):
    """A plugin's lifecycle hook raised; the message names the plugin."""


def _raising_plugin(exc: BaseException, impls: list[pluggy.HookImpl]) -> str:
    """The plugin whose hook implementation raised ``exc``, quoted: the innermost frame of its
    traceback that runs one of ``impls`` (several names when plugins share one function)."""
    codes: dict[object, list[str]] = {}
    for impl in impls:
        codes.setdefault(impl.function.__code__, []).append(repr(impl.plugin_name))
    found = ["'unknown'"]
    tb = exc.__traceback__
    while tb is not None:
        found = codes.get(tb.tb_frame.f_code, found)
        tb = tb.tb_next
    return " or ".join(found)


def _undecorated_hook_functions(obj: object) -> list[str]:
    """Functions named ``sedkit_*`` defined in a plugin module without ``@sedkit.hookimpl``."""
    if not isinstance(obj, ModuleType):
        return []
    found = []
    for name, value in vars(obj).items():
        if (
            name.startswith("sedkit_")
            and inspect.isfunction(value)
            and value.__module__ == obj.__name__
            and not hasattr(value, "sedkit_impl")
        ):
            found.append(f"{name} (not decorated)")
    return found


_loaded: Plugins | None = None


def get_plugins() -> Plugins:
    """The process-wide plugin set, loaded on first use."""
    global _loaded
    if _loaded is None:
        _loaded = Plugins.load()
    return _loaded


def reset_plugins() -> None:
    """Forget the loaded plugins (tests; after installing a plugin package)."""
    global _loaded
    _loaded = None
