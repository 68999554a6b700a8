#!/usr/bin/env python
"""Run the notebooks and store their outputs, which the documentation site renders as pages.

Run after ``make demo`` (the notebooks read runs/demo): each notebook is executed from
notebooks/ and written back with its outputs, progress bars (stderr) left out.

    python scripts/execute_notebooks.py [NAME ...]      # default: every notebook
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import nbformat
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
# What each notebook reads, pointed at make demo's outputs.
ENVIRONMENT = {"evaluation": {"MODELKIT_REPORT": "../runs/demo/text/eval"}}


def execute(name: str) -> int:
    path = NOTEBOOKS / f"{name}.ipynb"
    notebook = nbformat.read(path, as_version=4)
    os.environ.update(ENVIRONMENT.get(name, {}))
    NotebookClient(notebook, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
    for cell in notebook.cells:
        if cell.cell_type == "code":
            cell.outputs = [output for output in cell.outputs if output.get("name") != "stderr"]
    nbformat.write(notebook, path)
    return sum(len(cell.get("outputs", [])) for cell in notebook.cells)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="notebook names (default: all)")
    names = parser.parse_args().names or sorted(path.stem for path in NOTEBOOKS.glob("*.ipynb"))
    if not (NOTEBOOKS.parent / "runs" / "demo" / "text" / "model").is_dir():
        raise SystemExit("execute_notebooks: run make demo first (the notebooks read runs/demo)")
    for name in names:
        print(f"{name}: {execute(name)} outputs stored")


if __name__ == "__main__":
    main()
