"""The recipes that ship with modelkit: ``text/cold`` names ``configs/text/cold.yaml``.

A wheel carries configs/ as the package folder ``modelkit/configs`` (setup.py copies it at build
time); a clone (an editable install) reads the repository's configs/ directly. Recipes keep their
folders, so one that names another beside it (an ensemble's members, an OCR model's text recipe)
finds it either way.
"""

from __future__ import annotations

from pathlib import Path

_SOURCE_CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def recipes_folder() -> Path | None:
    """Where the shipped recipes are: inside the installed package, or the clone's configs/."""
    packaged = Path(__file__).resolve().parent / "configs"
    if packaged.is_dir():
        return packaged
    return _SOURCE_CONFIGS if _SOURCE_CONFIGS.is_dir() else None


def list_recipes() -> dict[str, str]:
    """Recipe name (``text/cold``) -> its first comment line, for every shipped recipe."""
    folder = recipes_folder()
    if folder is None:
        return {}
    found = {}
    for path in sorted(folder.rglob("*.yaml")):
        name = path.relative_to(folder).with_suffix("").as_posix()
        first = next((line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()), "")
        found[name] = first.lstrip("# ").strip() if first.startswith("#") else ""
    return found


def find_recipe(name: str) -> Path | None:
    """The file of a shipped recipe named ``name`` (``text/cold`` or ``text/cold.yaml``), or None."""
    folder = recipes_folder()
    if folder is None or not name or name.startswith(("/", ".")) or "\\" in name:
        return None
    stem = name[:-5] if name.endswith(".yaml") else name
    if stem not in list_recipes():  # only names that are listed: nothing outside the folder
        return None
    return folder / f"{stem}.yaml"
