"""Registries of named units (models, metrics, datasets) and the two ways plugins come in.

Both ways are public, and mgbench's own units use the first exactly as an outside package does:

* an entry point in the unit's group (``mgbench.models``, ``mgbench.metrics``,
  ``mgbench.datasets``) of an installed distribution, loaded on first use;
* a decorator (``register_model`` …) in a module the user imports, e.g. with
  ``mgbench run --plugin my_package.my_units``.

Entry points are always loaded before anything else registers, so a plugin that takes a name a
package already owns fails at once, naming both, whatever the import order. Unlike timm's
registry a taken name is an error, never a silent override. Every mistake a plugin can make
(an import that raises, a syntax error, a name clash, a unit of the wrong kind) is a
:class:`~mgbench.errors.UsageError` naming the plugin and the fix: the CLI prints it in one line.

This module imports nothing heavy (no torch).
"""

from __future__ import annotations

import fnmatch
import importlib
import traceback
from collections.abc import Callable, Iterable
from importlib.metadata import entry_points
from typing import Generic, TypeVar

from mgbench.errors import UsageError, unknown_name

T = TypeVar("T")


def origin(obj: object) -> str:
    """``module:qualname`` of a class or function, for messages."""
    return f"{getattr(obj, '__module__', '?')}:{getattr(obj, '__qualname__', type(obj).__name__)}"


def _where(err: BaseException) -> str:
    """The innermost ``file:line`` of an exception: where to look in the plugin."""
    frames = traceback.extract_tb(err.__traceback__)
    if isinstance(err, SyntaxError) and err.filename:
        return f"{err.filename}:{err.lineno}"
    return f"{frames[-1].filename}:{frames[-1].lineno}" if frames else ""


class Registry(Generic[T]):
    """Name → unit, filled from an entry-point group and from decorators.

    ``check(name, unit)`` raises :class:`UsageError` when ``unit`` is not of the right kind;
    ``reserved`` names cannot be registered (e.g. the calibration rows' ``real-data``).
    """

    def __init__(self, kind: str, group: str, check: Callable[[str, T], None],
                 reserved: Iterable[str] = ()) -> None:
        self.kind = kind
        self.group = group
        self.check = check
        self.reserved = frozenset(reserved)
        self._units: dict[str, T] = {}
        self._state = "new"  # new → loading → loaded

    def add(self, name: str, unit: T) -> None:
        """Register ``unit`` under ``name``; the same unit again is fine (a module imported twice)."""
        self.load_entry_points()
        if name in self.reserved:
            raise UsageError(f"{self.kind} name {name!r} is reserved ({origin(unit)} cannot take it)",
                             f"register it under another name; reserved: {', '.join(sorted(self.reserved))}")
        self.check(name, unit)
        taken = self._units.get(name)
        if taken is not None and taken is not unit:
            raise UsageError(f"{self.kind} name {name!r} is taken by {origin(taken)}; "
                             f"{origin(unit)} cannot be registered under it",
                             "register the plugin's unit under another name")
        self._units[name] = unit

    def get(self, name: str) -> T:
        self.load_entry_points()
        if name not in self._units:
            raise unknown_name(self.kind, name, list(self._units))
        return self._units[name]

    def names(self, pattern: str = "*") -> list[str]:
        """Registered names matching a shell-style wildcard, sorted."""
        self.load_entry_points()
        return sorted(n for n in self._units if fnmatch.fnmatch(n, pattern))

    def __contains__(self, name: str) -> bool:
        self.load_entry_points()
        return name in self._units

    def load_entry_points(self) -> None:
        """Load the group's entry points once (a unit that registers itself while loading is fine)."""
        if self._state != "new":
            return
        self._state = "loading"
        try:
            for ep in sorted(entry_points(group=self.group), key=lambda e: e.name):
                dist = getattr(ep.dist, "name", None) or "an installed package"
                try:
                    unit = ep.load()
                except Exception as err:  # noqa: BLE001 - any failure of a plugin's import is its own
                    raise UsageError(
                        f"{self.kind} entry point {ep.name!r} = {ep.value!r} of {dist} failed to load: "
                        f"{type(err).__name__}: {err} ({_where(err)})",
                        f"fix or uninstall {dist}; add --debug for the traceback") from err
                try:
                    self.add(ep.name, unit)
                except UsageError as err:
                    raise UsageError(f"entry point {ep.name!r} of {dist}: {err.problem}", err.fix) from None
        except BaseException:
            self._state = "new"  # a later call tries again (and fails again, with the same message)
            raise
        self._state = "loaded"


def import_plugins(modules: Iterable[str], registries: Iterable[Registry]) -> None:
    """Import modules that register units (``--plugin``), after every entry point is loaded.

    A module that cannot be found, has a syntax error or raises on import is a :class:`UsageError`
    naming it and where it failed.
    """
    for registry in registries:
        registry.load_entry_points()
    for module in modules:
        try:
            importlib.import_module(module)
        except UsageError as err:
            raise UsageError(f"plugin module {module!r}: {err.problem}", err.fix) from None
        except ModuleNotFoundError as err:
            if err.name and module.startswith(err.name):
                raise UsageError(f"plugin module {module!r} cannot be imported: {err}",
                                 "give an importable module path, and make sure its folder is on PYTHONPATH"
                                 ) from None
            raise UsageError(f"plugin module {module!r} failed to import: {err} ({_where(err)})",
                             "install what the plugin needs") from err
        except SystemExit as err:  # sys.exit() at import would end mgbench with no message
            raise UsageError(f"plugin module {module!r} called sys.exit({err.code!r}) while importing",
                             "a plugin module must not exit at import; move that code under "
                             "`if __name__ == \"__main__\":`") from None
        except Exception as err:  # noqa: BLE001 - SyntaxError, a raise at import time, ...
            raise UsageError(f"plugin module {module!r} failed to import: {type(err).__name__}: {err} "
                             f"({_where(err)})", "fix the plugin; add --debug for the traceback") from err
