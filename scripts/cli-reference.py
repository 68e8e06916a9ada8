#!/usr/bin/env python3
"""README.md's command-line reference, generated from mbuspico's argument parser.

Writes one subsection per command (``mbuspico``, ``mbuspico decode``, ...) with
its description, its usage line and a table of its options (name, value:
metavar or choices, default, help) between the markers
``<!-- cli-reference: begin -->`` and ``<!-- cli-reference: end -->`` of
README.md.

    .venv/bin/python scripts/cli-reference.py           # check: exit 1 if README.md differs
    .venv/bin/python scripts/cli-reference.py --write   # rewrite the section in README.md

The check prints the generated section and, on standard error, its diff.

The output depends on nothing but the parser: ``MBUSPICO_*`` environment
variables (the defaults of ``--key``, ``--profile``, ...) are cleared while it
is built, and usage lines are wrapped at a fixed width, not the terminal's.
tests/test_readme.py fails when README.md and the parser disagree.
"""

from __future__ import annotations

import argparse
import difflib
import os
import sys
from pathlib import Path
from unittest import mock

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
BEGIN = "<!-- cli-reference: begin -->"
END = "<!-- cli-reference: end -->"
WIDTH = 100
"""Columns of the usage lines (argparse would take the terminal's)."""

FIX = ".venv/bin/python scripts/cli-reference.py --write"


def build_parser() -> argparse.ArgumentParser:
    """``mbuspico.cli._build_parser()``, built without the ``MBUSPICO_*`` environment."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MBUSPICO_")}
    with mock.patch.dict(os.environ, clean, clear=True):
        from mbuspico.cli import _build_parser

        return _build_parser()


def _commands(
    parser: argparse.ArgumentParser,
) -> list[tuple[argparse.ArgumentParser, list[tuple[str, str]]]]:
    """The parser and every sub-command parser, depth first.

    Each comes with its own sub-commands' names and help.
    """
    found: list[tuple[argparse.ArgumentParser, list[tuple[str, str]]]] = []
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    helps = {c.dest: c.help or "" for s in subs for c in s._choices_actions}
    found.append((parser, [(name, helps.get(name, "")) for s in subs for name in s.choices]))
    for s in subs:
        for child in s.choices.values():
            found.extend(_commands(child))
    return found


def _formatter(parser: argparse.ArgumentParser) -> argparse.HelpFormatter:
    return argparse.HelpFormatter(prog=parser.prog, width=WIDTH)


def _usage(parser: argparse.ArgumentParser) -> str:
    fmt = _formatter(parser)
    fmt.add_usage(parser.usage, parser._actions, parser._mutually_exclusive_groups, prefix="")
    return fmt.format_help().strip("\n")


def _cell(text: str) -> str:
    """Text for a Markdown table cell: one line, ``|`` escaped."""
    return " ".join(text.split()).replace("|", "\\|")


def _code(text: str) -> str:
    return f"`{text}`"


def _default(action: argparse.Action) -> str:
    default = action.default
    if default is None or default is argparse.SUPPRESS or default == []:
        return ""
    if action.nargs == 0 and not isinstance(action, argparse.BooleanOptionalAction):
        return ""  # store_true/store_false/count: the flag's absence is the default
    if isinstance(default, bool):
        return _code("--" + ("" if default else "no-") + action.dest.replace("_", "-"))
    return _code(str(default))


def _value(fmt: argparse.HelpFormatter, action: argparse.Action) -> str:
    if action.nargs == 0:
        return ""
    if action.choices is not None and action.metavar is None:
        return " ".join(_code(str(c)) for c in action.choices)
    text = fmt._format_args(action, action.dest.upper() if action.option_strings else action.dest)
    if not action.option_strings and text == (action.metavar or action.dest):
        return ""  # a plain positional: its name says it
    if action.choices is not None:
        text += " (" + ", ".join(str(c) for c in action.choices) + ")"
    return _code(text)


def _options(parser: argparse.ArgumentParser) -> list[str]:
    fmt = _formatter(parser)
    rows = []
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
            continue
        if action.help is argparse.SUPPRESS:
            continue
        if action.option_strings:
            name = ", ".join(_code(s) for s in action.option_strings)
        else:
            name = _code(str(action.metavar or action.dest))
        if action.required and action.option_strings:
            name += " (required)"
        what = fmt._expand_help(action) if action.help else ""
        rows.append(
            f"| {name} | {_cell(_value(fmt, action))} | {_cell(_default(action))} | {_cell(what)} |"
        )
    if not rows:
        return []
    return ["| option | value | default | what |", "|---|---|---|---|", *rows, ""]


def _anchor(prog: str) -> str:
    """GitHub's anchor of the heading ``### `prog` ``."""
    return prog.lower().replace(" ", "-")


def section(parser: argparse.ArgumentParser | None = None) -> str:
    """The generated text between the markers (without the markers)."""
    parser = parser if parser is not None else build_parser()
    lines = [
        "<!-- Generated by scripts/cli-reference.py from mbuspico.cli's parser: edit the "
        f"parser, then run `{FIX}`. -->",
        "",
    ]
    for command, children in _commands(parser):
        lines += [f"### `{command.prog}`", ""]
        if command.description:
            lines += [" ".join(command.description.split()), ""]
        lines += ["```text", _usage(command), "```", ""]
        if children:
            lines += ["| command | what |", "|---|---|"]
            lines += [
                f"| [`{name}`](#{_anchor(f'{command.prog} {name}')}) | {_cell(what)} |"
                for name, what in children
            ]
            lines.append("")
        lines += _options(command)
    return "\n".join(lines).rstrip("\n") + "\n"


def readme_section(text: str) -> str:
    """The text between the markers of README.md's ``text``."""
    start = text.index(BEGIN) + len(BEGIN)
    end = text.index(END, start)
    return text[start:end].strip("\n") + "\n"


def replace_section(text: str, generated: str) -> str:
    """README.md's ``text`` with ``generated`` between the markers."""
    start = text.index(BEGIN) + len(BEGIN)
    end = text.index(END, start)
    return text[:start] + "\n" + generated + text[end:]


def main(argv: list[str] | None = None) -> int:
    """Check (default) or ``--write`` README.md's command-line reference."""
    cli = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    cli.add_argument("--write", action="store_true", help="rewrite the section in README.md")
    args = cli.parse_args(argv)
    text = README.read_text(encoding="utf-8")
    if BEGIN not in text or END not in text:
        print(f"{README}: no {BEGIN} ... {END} markers", file=sys.stderr)
        return 2
    generated = section()
    if args.write:
        new = replace_section(text, generated)
        if new != text:
            README.write_text(new, encoding="utf-8")
            print(f"{README.name}: command-line reference rewritten", file=sys.stderr)
        return 0
    current = readme_section(text)
    if current == generated:
        return 0
    sys.stdout.write(generated)
    diff = difflib.unified_diff(
        current.splitlines(keepends=True),
        generated.splitlines(keepends=True),
        "README.md (cli-reference section)",
        "generated from the parser",
    )
    sys.stderr.writelines(diff)
    print(f"README.md's command-line reference differs from the parser: run {FIX}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
