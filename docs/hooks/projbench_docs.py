"""MkDocs hooks of the projbench documentation (listed under ``hooks:`` in mkdocs.yml).

* The command-line reference is generated from the ``projbench`` click group
  (:func:`cli_reference`): the marker ``<!-- cli-reference -->`` in cli.md becomes one section
  per command, with the commands that plugins add (``study``, ``intrinsic-dim`` and those of
  installed third-party plugins) — what ``projbench --help`` lists, each with its help text,
  usage line and the options table that ``--help`` prints.
* Docstrings are written with Sphinx roles (``:class:`Foo```); in the pages that render them
  (mkdocstrings) the role name is dropped and ``~a.b.Name`` shortened to ``Name``, leaving the
  code span.
* Pages that describe something the code enumerates are checked against the code: every hook
  of ``projbench.hookspecs`` has its section in plugins.md (rendered with its signature), every
  study preset is in the preset table of studies.md, and every column of every registered suite
  is explained in file-formats.md. A mismatch is a warning, which ``mkdocs build --strict``
  turns into a failure.
"""

from __future__ import annotations

import inspect
import logging
import re
from importlib import resources

log = logging.getLogger("mkdocs.plugins.projbench_docs")


CLI_MARKER = "<!-- cli-reference -->"


def _escape(text: str) -> str:
    """Plain help text as Markdown: no HTML, emphasis or table breaks by accident."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace("*", "\\*").replace("|", "\\|")


def _help_markdown(text: str) -> list[str]:
    """Click help text as Markdown. A paragraph marked ``\\b`` (click prints it as written) whose
    lines are indented — examples, a list of commands — is a text block; every other paragraph
    is prose."""
    out: list[str] = []
    for paragraph in inspect.cleandoc(text).split("\n\n"):
        lines = paragraph.splitlines()
        if lines and lines[0].strip() == "\b":
            lines = lines[1:]
            if any(line[:1].isspace() for line in lines[1:]):
                out += ["```text", *lines, "```", ""]
                continue
        if any(line.strip() for line in lines):
            out += [_escape(" ".join(line.strip() for line in lines)), ""]
    return out


def _command_markdown(command, ctx, path: list[str], level: int) -> list[str]:
    import click

    name = " ".join(path)
    anchor = "-".join(path).replace(":", "-")
    out = [f"{'#' * level} `{name}` {{ #{anchor} }}", ""]
    out += _help_markdown(command.help or command.short_help or "")
    usage = " ".join([name, *command.collect_usage_pieces(ctx)])
    out += ["```text", usage, "```", ""]
    rows = [param.get_help_record(ctx) for param in command.get_params(ctx)
            if isinstance(param, click.Option) and not param.hidden]
    rows = [row for row in rows if row is not None]
    if rows:
        out += ["| option | description |", "|---|---|"]
        out += [f"| `{opts}` | {_escape(' '.join(text.split()))} |" for opts, text in rows]
        out.append("")
    if isinstance(command, click.Group):
        for sub_name in command.list_commands(ctx):
            sub = command.get_command(ctx, sub_name)
            if sub is None or sub.hidden:
                continue
            sub_ctx = click.Context(sub, info_name=sub_name, parent=ctx)
            # the commands of ``projbench`` are siblings of it in the table of contents
            sub_level = level if len(path) == 1 else min(level + 1, 6)
            out += _command_markdown(sub, sub_ctx, [*path, sub_name], sub_level)
    return out


def cli_reference() -> str:
    """Markdown for ``projbench`` and every command it lists, plugins' commands included."""
    import click

    from projbench.cli import cli

    ctx = click.Context(cli, info_name="projbench", **cli.context_settings)
    # ProjbenchGroup adds every plugin's commands the first time it lists its commands.
    return "\n".join(_command_markdown(cli, ctx, ["projbench"], 3))


def _hook_names() -> list[str]:
    from projbench import hookspecs

    return [name for name, obj in inspect.getmembers(hookspecs, inspect.isfunction)
            if name.startswith("projbench_")]


def _preset_names() -> list[str]:
    folder = resources.files("projbench.study") / "presets"
    return sorted(p.name[:-len(".toml")] for p in folder.iterdir() if p.name.endswith(".toml"))


def _suite_columns() -> list[tuple[str, str]]:
    from projbench.manager import get_registry

    return [(name, header) for name, suite in get_registry("suites").items()
            for header, _key in suite.table_columns]


def _check_plugins_page(markdown: str) -> None:
    documented = set(re.findall(r"^::: projbench\.hookspecs\.(projbench_\w+)$", markdown, flags=re.M))
    hooks = set(_hook_names())
    for name in sorted(hooks - documented):
        log.warning("plugins.md: hook %s of projbench/hookspecs.py has no '::: projbench.hookspecs.%s' "
                    "section", name, name)
    for name in sorted(documented - hooks):
        log.warning("plugins.md documents hook %s, which projbench/hookspecs.py does not define", name)


def _check_studies_page(markdown: str) -> None:
    start = markdown.find("| preset |")
    table = markdown[start:markdown.find("\n\n", start)] if start >= 0 else ""
    first_cells = [line.split("|")[1] for line in table.splitlines() if line.startswith("| `")]
    listed = set(re.findall(r"`([\w-]+)`", "\n".join(first_cells)))
    presets = set(_preset_names())
    for name in sorted(presets - listed):
        log.warning("studies.md: preset %r (projbench/study/presets) is missing from the preset table", name)
    for name in sorted(listed - presets):
        log.warning("studies.md lists preset %r, which projbench/study/presets does not have", name)


def _check_formats_page(markdown: str) -> None:
    start = markdown.find("| suite | column | meaning |")
    if start < 0:
        log.warning("file-formats.md: the table of report columns ('| suite | column | meaning |') is gone")
        return
    table = markdown[start:markdown.find("\n\n", start)]
    for suite, header in _suite_columns():
        if header.replace("|", "\\|") not in table:
            log.warning("file-formats.md does not explain column %r of suite %r", header, suite)


def _insert_cli_reference(markdown: str) -> str:
    if CLI_MARKER not in markdown:
        log.warning("cli.md: the marker %s for the generated command reference is gone", CLI_MARKER)
        return markdown
    return markdown.replace(CLI_MARKER, cli_reference())


_CHECKS = {
    "plugins.md": _check_plugins_page,
    "studies.md": _check_studies_page,
    "file-formats.md": _check_formats_page,
}


_ROLE = re.compile(r":(?:class|func|meth|mod|data|attr|exc|obj):<code>(?:~(?:[\w.]+\.)?)?")


def _drop_roles(html: str) -> str:
    """``:class:<code>~a.b.Name</code>`` -> ``<code>Name</code>``; a name without ``~`` stays whole."""
    return _ROLE.sub("<code>", html)


def on_page_content(html, page, config, files, **kwargs):
    return _drop_roles(html)


def on_page_markdown(markdown, page, config, files, **kwargs):
    if page.file.src_uri == "cli.md":
        return _insert_cli_reference(markdown)
    check = _CHECKS.get(page.file.src_uri)
    if check is not None:
        check(markdown)
    return markdown
