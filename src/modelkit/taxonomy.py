"""The moderation taxonomy: which categories a model scores, as data."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Iterable, Iterator, Literal

from .config import ConfigError, from_dict, read_yaml

Action = Literal["remove", "review"]
_ID_PATTERN = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass(frozen=True)
class Category:
    """One policy category. ``id`` is the stable machine name used in labels and outputs."""

    id: str
    name_en: str
    name_zh: str = ""
    description: str = ""
    severity: int = 2
    action: Action = "review"
    enabled: bool = True

    def __post_init__(self) -> None:
        if not _ID_PATTERN.match(self.id):
            raise ValueError(f"id {self.id!r} must be lower_snake_case (letters, digits, _)")
        if self.severity not in (1, 2, 3):
            raise ValueError(f"category {self.id!r}: severity must be 1, 2 or 3, got {self.severity}")


@dataclass(frozen=True)
class _TaxonomyFile:
    categories: list[Category]
    name: str = "custom"
    version: int = 1


@dataclass(frozen=True)
class Taxonomy:
    """An ordered set of categories. Model outputs follow this order, one sigmoid score each.

    >>> tax = Taxonomy.load("default").subset(["abuse", "pornography"])
    >>> tax.ids
    ['abuse', 'pornography']
    """

    categories: tuple[Category, ...]
    name: str = "custom"
    version: int = 1
    _index: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.categories:
            raise ConfigError(f"taxonomy {self.name!r}: it has no categories")
        index: dict[str, int] = {}
        for position, category in enumerate(self.categories):
            if category.id in index:
                raise ConfigError(f"taxonomy {self.name!r}: duplicate category id {category.id!r}")
            index[category.id] = position
        object.__setattr__(self, "_index", index)

    # -- construction -------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: Any, where: str = "taxonomy") -> Taxonomy:
        parsed = from_dict(_TaxonomyFile, data, where=where)
        return cls(tuple(parsed.categories), name=parsed.name, version=parsed.version)

    @classmethod
    def load(cls, source: str | Path = "default") -> Taxonomy:
        """Load a taxonomy from a YAML file, or the built-in one by the name ``"default"``."""
        if str(source) == "default":
            text = resources.files("modelkit.resources").joinpath("default_taxonomy.yaml")
            with resources.as_file(text) as path:
                return cls.from_dict(read_yaml(path), where=f"{path}: ")
        return cls.from_dict(read_yaml(source), where=f"{source}: ")

    @classmethod
    def from_ids(cls, ids: Iterable[str], name: str = "custom") -> Taxonomy:
        """A minimal taxonomy from bare ids (names default to the id)."""
        return cls(tuple(Category(id=i, name_en=i.replace("_", " ")) for i in ids), name=name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "categories": [dataclasses.asdict(c) for c in self.categories],
        }

    # -- views --------------------------------------------------------------------------
    def subset(self, ids: Iterable[str]) -> Taxonomy:
        """A taxonomy with only ``ids``, in the given order (disabled extras may be named)."""
        ids = list(ids)
        unknown = [i for i in ids if i not in self._index]
        if unknown:
            raise ConfigError(
                f"taxonomy {self.name!r}: unknown categor{'y' if len(unknown) == 1 else 'ies'} "
                f"{', '.join(map(repr, unknown))}; known: {', '.join(self.ids)}"
            )
        return Taxonomy(tuple(self[i] for i in ids), name=self.name, version=self.version)

    def enabled(self) -> Taxonomy:
        """The categories switched on by default (drops ``enabled: false`` extras)."""
        return self.subset(c.id for c in self.categories if c.enabled)

    @property
    def ids(self) -> list[str]:
        return [c.id for c in self.categories]

    def index(self, category_id: str) -> int:
        try:
            return self._index[category_id]
        except KeyError:
            raise KeyError(f"unknown category {category_id!r}; known: {', '.join(self.ids)}") from None

    def __contains__(self, category_id: object) -> bool:
        return category_id in self._index

    def __getitem__(self, category_id: str) -> Category:
        return self.categories[self.index(category_id)]

    def __iter__(self) -> Iterator[Category]:
        return iter(self.categories)

    def __len__(self) -> int:
        return len(self.categories)
