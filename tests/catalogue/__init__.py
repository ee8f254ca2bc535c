"""A catalogue of learner implementations the checker has never seen.

``buggy.py`` holds implementations with one classic mistake each, registered with the diagnosis id
(see ``checks/diagnoses.py``) the checker should name; ``correct.py`` (decorator ``@good``) holds correct
implementations written differently from the reference in ``solutions/``, which the checker must accept.

Composite exercises reuse the reference sub-modules from ``solutions`` for every part that is not the
bug, as a learner's notebook would reuse the parts graded in earlier chapters.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Entry:
    """One learner implementation: which exercise it answers, and what is wrong with it (if anything)."""

    exercise: str  # exercise name from CONTRACT.md (or "softmax", the chapter-00 warm-up)
    obj: Any  # the class or function, exactly as a learner would define it
    diagnosis: str | None  # expected diagnosis id; None for a correct implementation
    description: str  # one line: the mistake (or the different way of being right)

    @property
    def id(self) -> str:
        return f"{self.exercise}-{self.obj.__name__}"


BUGGY: list[Entry] = []
CORRECT: list[Entry] = []


def bug(exercise: str, diagnosis: str, description: str) -> Callable[[Any], Any]:
    """Register a buggy implementation of ``exercise`` whose mistake the checker should call ``diagnosis``."""

    def register(obj: Any) -> Any:
        BUGGY.append(Entry(exercise, obj, diagnosis, description))
        return obj

    return register


def good(exercise: str, description: str) -> Callable[[Any], Any]:
    """Register a correct implementation of ``exercise`` written differently from the reference."""

    def register(obj: Any) -> Any:
        CORRECT.append(Entry(exercise, obj, None, description))
        return obj

    return register


def load() -> tuple[list[Entry], list[Entry]]:
    """Import every catalogue module and return ``(BUGGY, CORRECT)``."""
    import importlib

    for module in ("buggy", "buggy_more", "correct"):  # importing a module registers its entries
        importlib.import_module(f"{__name__}.{module}")

    return BUGGY, CORRECT
