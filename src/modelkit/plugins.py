"""Registries, and the ``modelkit.plugins`` entry-point group that modality packages plug in through.

The core never imports ``modelkit.text`` (or any other modality): when a :class:`Registry`
lookup misses (a model, processor or modality name it does not know), it imports every
installed plugin once and looks again. modelkit's own modalities are declared in its ``pyproject.toml``; a third-party
package adds itself the same way::

    [project.entry-points."modelkit.plugins"]
    audio = "my_package.audio"      # a module whose import registers processors and models

    [project.entry-points."modelkit.commands"]
    audio = "my_package.audio_cli"  # optional: one that adds CLI commands (register_command)

Code that registers by hand (a notebook, a test) needs no entry point at all.
"""

from __future__ import annotations

import argparse
import importlib
import logging
from importlib.metadata import entry_points
from typing import Callable, Generic, TypeVar

from .config import ConfigError

T = TypeVar("T")
GROUP = "modelkit.plugins"
# Modules that only add CLI commands (modelkit.cli.register_command), kept apart from the plugins
# so that `modelkit --help` imports no model code.
COMMANDS_GROUP = "modelkit.commands"
logger = logging.getLogger(__name__)
_loaded: set[str] = set()


def _load_group(group: str) -> None:
    if group in _loaded:
        return
    _loaded.add(group)
    for entry in entry_points(group=group):
        try:
            importlib.import_module(entry.value)
        except ImportError as err:  # an optional modality whose dependencies are not installed
            logger.warning("modelkit plugin %s (%s) could not be imported: %s", entry.name, entry.value, err)


def load_plugins() -> None:
    """Import every module of the ``modelkit.plugins`` entry points (once per process)."""
    _load_group(GROUP)


# name -> (help, add_arguments(parser), run(args) -> exit code). Here, not in modelkit.cli: under
# `python -m modelkit.cli` that module runs as __main__, a second copy the plugins never see.
_COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]] = {}


def register_command(name: str, help: str, add_arguments: Callable[[argparse.ArgumentParser], None],
                     run: Callable[[argparse.Namespace], int]) -> None:
    """Add ``modelkit NAME`` (for modality packages; the core commands are built in)."""
    _COMMANDS[name] = (help, add_arguments, run)


def registered_commands() -> list[tuple[str, tuple[str, Callable[..., None], Callable[..., int]]]]:
    """The commands of the ``modelkit.commands`` entry points' modules (imported once per process)."""
    _load_group(COMMANDS_GROUP)
    return sorted(_COMMANDS.items())


class Registry(Generic[T]):
    """Names -> registered objects (model classes, processor classes, input checks).

    ``what`` names the entries in messages ("model"), ``setting`` the recipe key that names one
    ("model.name"), so an unknown name is reported as ``model.name: unknown model 'x'; available: ...``.
    """

    def __init__(self, what: str, setting: str) -> None:
        self.what, self.setting = what, setting
        self._entries: dict[str, T] = {}

    def add(self, name: str, entry: T) -> T:
        registered = self._entries.get(name)
        if registered is not None and registered != entry:  # re-registering the same entry is fine
            raise ValueError(f"{self.what} name {name!r} is already registered to {registered!r}")
        self._entries[name] = entry
        return entry

    def decorator(self, name: str, attribute: str):
        """A class decorator that registers the class under ``name`` and stores the name in it."""

        def decorate(cls):
            self.add(name, cls)
            setattr(cls, attribute, name)
            return cls

        return decorate

    def get(self, name: str) -> T:
        if name not in self._entries:
            load_plugins()
        try:
            return self._entries[name]
        except KeyError:
            raise ConfigError(f"{self.setting}: unknown {self.what} {name!r}; available: "
                              f"{', '.join(self.names())}") from None

    def names(self) -> list[str]:
        load_plugins()
        return sorted(self._entries)
