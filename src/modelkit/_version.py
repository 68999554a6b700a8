"""The package version, in a module that imports nothing (``modelkit --help`` and the report read it)."""

__version__ = "0.2.0"
