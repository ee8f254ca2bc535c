"""The ``workbook`` command: one entry point, one subcommand per job.

Each subcommand lives in its own module under ``workbook.commands`` and adds itself with
``register(subparsers)``. A module that sets ``DEVELOPER = True`` (``build`` / ``generate``) is left out
of ``workbook --help``, which a learner reads; ``workbook --help-all`` lists it, and it works the same.
"""

from __future__ import annotations

import argparse
import importlib
import sys

SUBCOMMANDS = [
    "workbook.commands.demo",  # workbook demo
    "workbook.commands.check",  # workbook check
    "workbook.commands.progress",  # workbook status / hint / solution / reset
    "workbook.commands.train",  # workbook train / translate
    "workbook.commands.course",  # workbook course
    "workbook.commands.build",  # workbook build / generate (developers)
]


def build_parser(show_all: bool = False) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="workbook",
        description="The Transformer workbook: build 'Attention Is All You Need' yourself, "
        "one paper section at a time. Run `workbook COMMAND --help` for each command.",
        epilog=None if show_all else "Developers' commands (build, generate): `workbook --help-all`.",
    )
    parser.add_argument("--help-all", action="store_true", help="list every command, the developers' too, and exit")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        module = importlib.import_module(name)
        listed = len(subparsers._choices_actions)
        module.register(subparsers)
        if getattr(module, "DEVELOPER", False) and not show_all:
            del subparsers._choices_actions[listed:]  # still a command, only not in the learner's --help
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.help_all:
        build_parser(show_all=True).print_help()
        return 0
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("\nInterrupted.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
