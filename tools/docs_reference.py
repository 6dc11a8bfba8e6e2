"""MkDocs hook: the reference pages that are generated, so they cannot drift from the code.

``reference/cli.md`` is written from the argparse parsers that ``python main.py`` runs, and
``reference/methods.md`` from the explainer registry: each plugin's own title, description,
citation, caveats and parameter schema, the same source as Help ▸ What am I looking at? and
``python main.py methods``. Both pages exist only in the built site; ``mkdocs.yml`` names this
file under ``hooks``.

``benchmarks.md`` marks where each benchmark's recorded output goes (``<!-- bench: NAME -->``);
the hook includes ``bench/results/NAME.txt`` there when ``make bench`` has written it, so the
page shows every recorded output and never names a file that is not there.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    # mkdocs runs from the repository root, but loads hooks by file path.
    sys.path.insert(0, str(ROOT))

#: The generated pages, by their path under docs/.
CLI_PAGE = "reference/cli.md"
METHODS_PAGE = "reference/methods.md"
BENCH_PAGE = "benchmarks.md"
BENCH_MARK = re.compile(r"^<!-- bench: (bench_\w+) -->$", re.M)


def _cell(text: object) -> str:
    """Text that is safe inside one Markdown table cell."""
    return str(text if text is not None else "").replace("|", "\\|").replace("\n", " ").strip()


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, tuple[argparse.ArgumentParser, str]]:
    """A parser's sub-commands with their one-line help, in the order they were added."""
    out = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help for choice in action._choices_actions}
            for name, sub in action.choices.items():
                out[name] = (sub, helps.get(name) or "")
    return out


def _options_table(parser: argparse.ArgumentParser) -> list[str]:
    rows = []
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
            continue
        name = ", ".join(f"`{s}`" for s in action.option_strings) or f"`{action.dest.upper()}`"
        default = action.default
        shown = "" if default in (None, False, argparse.SUPPRESS) or action.option_strings == [] \
            else f"`{default}`"
        choices = ", ".join(f"`{c}`" for c in action.choices) if action.choices else ""
        help_text = (action.help or "").replace("%(default)s", str(default))
        rows.append(f"| {name} | {_cell(help_text)} | {shown} | {choices} |")
    if not rows:
        return []
    return ["| Argument | Meaning | Default | Choices |", "|---|---|---|---|", *rows, ""]


def command_anchor(path: list[str]) -> str:
    """The anchor of a command's section, e.g. ``cmd-pacs-query`` for ``pacs query``."""
    return "cmd-" + "-".join(path)


def _command_section(path: list[str], parser: argparse.ArgumentParser, summary: str,
                     depth: int) -> list[str]:
    title = " ".join(path)
    lines = [f"{'#' * depth} `{title}` {{#{command_anchor(path)}}}", ""]
    if summary:
        lines += [summary[0].upper() + summary[1:] + ".", ""]
    if parser.description:
        lines += [parser.description, ""]
    usage = parser.format_usage().removeprefix("usage: ").strip()
    lines += ["```text", usage, "```", ""]
    lines += _options_table(parser)
    if parser.epilog:
        lines += ["```text", parser.epilog.strip(), "```", ""]
    for name, (sub, help_text) in _subcommands(parser).items():
        lines += _command_section([*path, name], sub, help_text, min(depth + 1, 4))
    return lines


def cli_markdown() -> str:
    """The command-line reference as Markdown: every sub-command, its usage and options.

    Returns
    -------
    str
        One section per sub-command (nested ones under their parent), anchored
        ``#cmd-<name>`` (see :func:`command_anchor`).
    """
    from engine.cli import build_parser

    parser = build_parser()
    lines = [
        "# Command line",
        "",
        "Generated from the parsers that `python main.py` runs; `python main.py COMMAND --help`",
        "prints the same text. A command that fails on bad input prints one line naming the",
        "file and the fix, and exits with code 2.",
        "",
    ]
    for name, (sub, help_text) in _subcommands(parser).items():
        lines += _command_section([name], sub, help_text, 2)
    return "\n".join(lines) + "\n"


def method_anchor(name: str) -> str:
    """The anchor of an explainer's section, e.g. ``method-gradcam``."""
    return f"method-{name}"


def methods_markdown() -> str:
    """The explainer reference as Markdown, from the registry's own descriptions and citations.

    Returns
    -------
    str
        One section per registered explainer, anchored ``#method-<name>``.
    """
    from engine.cli.methods import describe_methods
    from engine.explain.registry import registry

    lines = [
        "# Methods",
        "",
        "Generated from the explainer registry: the words are each plugin's own, as in",
        "Help ▸ What am I looking at? and `python main.py methods`. Give parameters with",
        "`explain --param NAME=VALUE`.",
        "",
        "| Method | Title | Reads from the model |",
        "|---|---|---|",
    ]
    methods = describe_methods()
    for m in methods:
        lines.append(f"| [`{m['name']}`](#{method_anchor(m['name'])}) | {_cell(m['title'])} | "
                     f"{_cell(', '.join(m['needs']))} |")
    lines.append("")
    reg = registry()
    for m in methods:
        lines += [f"## `{m['name']}`: {m['title']} {{#{method_anchor(m['name'])}}}", ""]
        lines += [m["description"] or "No description given by the plugin.", ""]
        caveats = getattr(reg.get(m["name"]), "caveats", "")
        if caveats:
            lines += [f"**Caveats.** {caveats}", ""]
        lines += [f"**Citation.** {m['citation'] or '-'}", ""]
        lines += [f"**Reads:** {', '.join(m['needs'])}. **Origin:** {m['origin']}.", ""]
        if m["params"]:
            lines += ["| Parameter | Type | Default | Allowed | Meaning |", "|---|---|---|---|---|"]
            for p in m["params"]:
                allowed = p.get("choices") or p.get("range") or ""
                lines.append(f"| `{p['name']}` | {p.get('type', '')} | `{p.get('default')}` | "
                             f"{_cell(allowed)} | {_cell(p.get('help', ''))} |")
            lines.append("")
    return "\n".join(lines) + "\n"


def on_files(files, config):
    """MkDocs hook: add the generated reference pages to the site's files."""
    from mkdocs.structure.files import File

    for src, make in ((CLI_PAGE, cli_markdown), (METHODS_PAGE, methods_markdown)):
        existing = files.get_file_from_path(src)
        if existing is not None:
            files.remove(existing)
        files.append(File.generated(config, src, content=make()))
    return files


def bench_outputs(markdown: str, results: Path = ROOT / "bench" / "results") -> str:
    """Replace each ``<!-- bench: NAME -->`` by NAME's recorded output, or say it has none."""

    def output(match: re.Match) -> str:
        name = match.group(1)
        if (results / f"{name}.txt").is_file():
            return f'```text\n--8<-- "bench/results/{name}.txt"\n```'
        return (f"No full run of this benchmark is recorded in this checkout; the command above "
                f"writes `bench/results/{name}.txt`.")

    return BENCH_MARK.sub(output, markdown)


def on_page_markdown(markdown, page, config, files):
    """MkDocs hook: the benchmarks page gets the outputs that are recorded."""
    return bench_outputs(markdown) if page.file.src_uri == BENCH_PAGE else markdown
