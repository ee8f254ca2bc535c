"""The ``workbook`` command: one entry point, one subcommand per job.

Each subcommand lives in its own module under ``workbook.commands`` and adds itself with
``register(subparsers)``.
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
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="workbook",
        description="The Transformer workbook: build 'Attention Is All You Need' yourself, "
        "one paper section at a time. Run `workbook COMMAND --help` for each command.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
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
