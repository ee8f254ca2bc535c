"""The chapter sources (one Markdown file per chapter, format in FORMAT.md).

A package only so that the ``.md`` files are installed with ``checks`` (package data) and the
``workbook`` command can regenerate a pristine notebook or show a hint anywhere.
"""

from pathlib import Path

CONTENT_DIR = Path(__file__).resolve().parent
