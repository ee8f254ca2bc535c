"""The catalogue as notebook cells for the judge (``checks.judge``): the same code, run in its worker."""

from __future__ import annotations

import re
from pathlib import Path

HERE = Path(__file__).resolve().parent / "catalogue"
STUBS = "def bug(*args, **kwargs):\n    return lambda obj: obj\n\n\ngood = bug\n"


def _tolerant_imports(text: str) -> str:
    """``from solutions import (A, B)`` -> one guarded import per name (a hidden part stays undefined)."""

    def guarded(match: re.Match) -> str:
        names = [n.strip() for n in match.group(1).replace("(", "").replace(")", "").split(",") if n.strip()]
        names = [n.split("#")[0].strip() for n in names]
        return "\n".join(f"try:\n    from solutions import {n}\nexcept ImportError:\n    pass" for n in names if n)

    text = re.sub(r"^from solutions import (\([^)]*\)|[^\n]*)", guarded, text, flags=re.M)
    text = re.sub(r"^from \.\w* import [^\n]*(\([^)]*\))?", "", text, flags=re.M)
    return text.replace("from __future__ import annotations", "")


def catalogue_cells() -> list[tuple[int, str]]:
    """Every catalogue module as one cell each (buggy first: the others import its bases)."""
    cells = [(1, STUBS)]
    for i, name in enumerate(("buggy", "buggy_more", "correct"), start=2):
        cells.append((i, _tolerant_imports((HERE / f"{name}.py").read_text(encoding="utf-8"))))
    return cells
