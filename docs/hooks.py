"""MkDocs hooks: pages made from the code, so they cannot drift from it.

* ``index.md`` is the repository's README (its ``docs/`` links pointed at these pages);
* the notebooks of ``notebooks/`` become pages (mkdocs-jupyter renders their stored outputs);
* ``<!-- cli-reference -->`` in cli.md is replaced by every command's ``--help``, from the parser.
"""

from __future__ import annotations

import re
from pathlib import Path

from mkdocs.plugins import event_priority
from mkdocs.structure.files import File

REPO = Path(__file__).resolve().parents[1]
CLI_MARKER = "<!-- cli-reference -->"


@event_priority(100)  # before mkdocs-jupyter's on_files, which turns the notebooks into pages
def on_files(files, config):
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    files.append(File.generated(config, "index.md", content=re.sub(r"\]\(docs/", "](", readme)))
    for notebook in sorted((REPO / "notebooks").glob("*.ipynb")):
        files.append(File(f"notebooks/{notebook.name}", src_dir=str(REPO), dest_dir=config["site_dir"],
                          use_directory_urls=config["use_directory_urls"]))
    return files


def cli_reference() -> str:
    import argparse

    from modelkit.cli import build_parser

    sections: list[str] = []

    def describe(parser: argparse.ArgumentParser, name: str, level: int) -> None:
        sections.extend([f"{'#' * level} {name}\n", "```text\n" + parser.format_help().rstrip() + "\n```\n"])
        for action in parser._actions:  # commands with commands of their own (review export) nest
            if isinstance(action, argparse._SubParsersAction):
                for command, child in action.choices.items():
                    describe(child, f"{name} {command}", min(level + 1, 4))

    describe(build_parser(), "modelkit", 2)
    return "\n".join(sections)


def on_page_markdown(markdown, page, config, files):
    if CLI_MARKER in markdown:
        return markdown.replace(CLI_MARKER, cli_reference())
    return markdown
