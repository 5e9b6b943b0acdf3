"""MkDocs hook: ``<!-- cli-reference -->`` in a page becomes the ``--help`` of every ``cl-domains`` command, rendered
from the typer app itself (so the reference cannot drift from the code)."""

from __future__ import annotations

import os

MARKER = "<!-- cli-reference -->"


def _help(args: list[str]) -> str:
    from typer.testing import CliRunner

    from cl_domains.cli import app

    result = CliRunner().invoke(app, [*args, "--help"], prog_name="cl-domains", env={"COLUMNS": "76", "NO_COLOR": "1"})
    if result.exit_code != 0:
        raise RuntimeError(f"cl-domains {' '.join(args)} --help failed: {result.output}")
    return "\n".join(line.rstrip() for line in result.output.strip("\n").splitlines())


def _commands() -> list[list[str]]:
    import typer

    from cl_domains.cli import app

    root = typer.main.get_command(app)
    found: list[list[str]] = [[]]
    for name, cmd in root.commands.items():  # type: ignore[attr-defined]
        found.append([name])
        for sub in getattr(cmd, "commands", {}):
            found.append([name, sub])
    return found


def render() -> str:
    """The reference: one section per command, its help in a code block."""
    parts = []
    for args in _commands():
        title = " ".join(["cl-domains", *args])
        parts.append(f"## `{title}`\n\n```text\n{_help(args)}\n```\n")
    return "\n".join(parts)


def on_page_markdown(markdown: str, **kwargs) -> str:
    if MARKER not in markdown:
        return markdown
    os.environ.setdefault("TERM", "dumb")
    return markdown.replace(MARKER, render())


def on_files(files, config, **kwargs):
    """Serve the result plots of ``benchmarks/results/`` under ``results-files/`` (one source for the figures)."""
    from pathlib import Path

    from mkdocs.structure.files import File

    root = Path(config["config_file_path"]).parent / "benchmarks" / "results"
    for png in sorted(root.glob("*.png")):
        f = File(f"{png.name}", str(root), config["site_dir"], config["use_directory_urls"])
        f.src_uri = f"results-files/{png.name}"
        f.abs_src_path = str(png)
        f.dest_uri = f"results-files/{png.name}"
        f.abs_dest_path = str(Path(config["site_dir"]) / "results-files" / png.name)
        f.url = f"results-files/{png.name}"
        files.append(f)
    return files
