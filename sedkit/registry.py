"""Named component registries filled by the plugins' ``sedkit_register_*`` hooks."""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass, field

from sedkit import components
from sedkit.errors import UserError

#: Recipe section / registry kind -> (hook name, required base class)
KINDS: dict[str, tuple[str, type]] = {
    "data": ("sedkit_register_datasets", components.DataModule),
    "model": ("sedkit_register_models", components.Model),
    "pseudo_labeler": ("sedkit_register_pseudo_labelers", components.PseudoLabeler),
    "domain_adapter": ("sedkit_register_domain_adapters", components.DomainAdapter),
    "callback": ("sedkit_register_callbacks", components.Callback),
    "command": ("sedkit_register_commands", components.Command),
}


@dataclass(frozen=True)
class PluginSource:
    """Where a registration came from: the plugin (entry-point) name and its distribution."""

    plugin: str
    distribution: str
    version: str

    def __str__(self) -> str:
        return f"plugin {self.plugin!r} from {self.distribution} {self.version}"


@dataclass
class Entry:
    name: str
    cls: type
    source: PluginSource


@dataclass
class Registry:
    """Components of one kind, by name. A name registered twice is an error naming both."""

    kind: str
    entries: dict[str, Entry] = field(default_factory=dict)
    clashes: dict[str, str] = field(default_factory=dict)  # name -> message naming both sources

    def add(self, name: str, cls: type, source: PluginSource) -> None:
        base = KINDS[self.kind][1]
        if not isinstance(name, str) or not name.isidentifier():
            raise TypeError(f"{self.kind} name must be an identifier-like string, got {name!r}")
        if not (isinstance(cls, type) and issubclass(cls, base)):
            raise TypeError(f"{self.kind} {name!r} must be a subclass of {base.__qualname__}")
        if self.kind != "command" and not dataclasses.is_dataclass(getattr(cls, "Params", None)):
            raise TypeError(f"{self.kind} {name!r}: {cls.__qualname__}.Params must be a dataclass")
        if name in self.entries:
            first = self.entries[name].source
            raise RegistrationClash(
                f"{self.kind} {name!r} is registered twice: by {first} and by {source}"
            )
        self.entries[name] = Entry(name, cls, source)

    def get(self, name: str, *, key: str = "") -> Entry:
        """The entry for ``name``; a UserError with a suggestion when unknown."""
        if name in self.entries:
            return self.entries[name]
        where = f"{key}: " if key else ""
        raise UserError(f"{where}unknown {self.kind} {name!r}{suggest(name, self.entries)}")

    def names(self) -> list[str]:
        return sorted(self.entries)


class RegistrationClash(Exception):
    """Two plugins registered the same name for one kind of component."""


def suggest(word: str, choices: object) -> str:
    """``'; did you mean X?'`` for the closest choice, or ``''``."""
    names = [str(c) for c in choices]  # type: ignore[attr-defined]
    close = difflib.get_close_matches(str(word), names, n=1, cutoff=0.6)
    if close:
        return f"; did you mean {close[0]}?"
    if names and len(names) <= 12:
        return f" (known: {', '.join(sorted(names))})"
    return ""
