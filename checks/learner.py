"""The verbs a learner uses in a chapter notebook (and, through ``workbook``, in a terminal).

* ``check(Name)``: grade your code against the reference (the checker, re-exported here).
* ``hint(Name)``: the next hint for an exercise; each call goes one step further (3 or more per
  exercise, from a nudge to near-pseudocode). ``hint(Name, 2)`` shows hint 2 again.
* ``solution(Name)``: the reference source, highlighted.
* ``mine_or_reference("Name")``: your object when it passes its check, else the reference (figures
  use it so they never crash on an unfinished stub).
* ``earlier_parts([...], use_my_work)``: the parts from earlier chapters a chapter builds on.

Hints and solutions viewed are recorded in the progress file (``checks.progress``).
"""

from __future__ import annotations

import functools
import html
import io
import sys
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

from checks import progress
from checks.chapters import CHAPTERS, EXERCISE_TO_CHAPTER

try:
    from checks.core import check
except ImportError:  # the checker is not installed in this copy: say so instead of crashing

    def check(obj: Any, exercise: str | None = None, **_: Any) -> str:  # type: ignore[misc]
        return "The checker (checks.core) is not available in this installation of the workbook."


__all__ = ["check", "hint", "solution", "mine_or_reference", "earlier_parts", "reference"]

STANDARD_PRELUDE = (
    "import math\nimport torch\nimport torch.nn as nn\nimport torch.nn.functional as F\n"
)


def exercise_name(obj_or_name: Any) -> str:
    """``hint(softmax)`` and ``hint("softmax")`` both mean the exercise ``softmax``."""
    name = obj_or_name if isinstance(obj_or_name, str) else getattr(obj_or_name, "__name__", None)
    if name is None and hasattr(obj_or_name, "__class__"):
        name = type(obj_or_name).__name__
    if name not in EXERCISE_TO_CHAPTER:
        known = ", ".join(EXERCISE_TO_CHAPTER)
        raise ValueError(f"There is no exercise called {name!r}. The exercises are: {known}.")
    return name


def _in_notebook() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and type(shell).__name__ != "TerminalInteractiveShell"


def _markdown_to_html(text: str) -> str:
    try:
        import mistune  # comes with nbconvert

        return mistune.html(text)
    except Exception:  # noqa: BLE001 - plain text is a fine fallback
        return f"<pre>{html.escape(text)}</pre>"


class Shown:
    """Something shown to the learner: rich in a notebook, plain in a terminal."""

    def __init__(self, title: str, text: str, html_body: str) -> None:
        self.title, self.text, self.html_body = title, text, html_body

    def __str__(self) -> str:
        return f"{self.title}\n\n{self.text}"

    __repr__ = __str__

    def _repr_html_(self) -> str:
        return (
            '<div style="border-left: 4px solid #0969da; padding: 0.3em 1em; margin: 0.3em 0">'
            f"<p><b>{html.escape(self.title)}</b></p>{self.html_body}</div>"
        )


def _show(shown: Shown) -> Shown | None:
    """In a notebook: display now (so it shows even when it is not the cell's last line) and return
    None; elsewhere (terminal, ``workbook hint``): return it, to be printed."""
    if _in_notebook():
        from IPython.display import display

        display(shown)
        return None
    return shown


# --------------------------------------------------------------------------------------------------
# Hints and solutions
# --------------------------------------------------------------------------------------------------
def hints_for(name: str) -> list[str]:
    """All hints of an exercise, in order (from its chapter source)."""
    from checks.notebooks import load_source

    return load_source(EXERCISE_TO_CHAPTER[name]).hints[name]


def hint(obj_or_name: Any, number: int | None = None) -> Shown | None:
    """The next hint for an exercise (or hint ``number``, counting from 1). Recorded in your progress."""
    name = exercise_name(obj_or_name)
    hints = hints_for(name)
    if number is None:
        number = min(progress.load().get(name)["hints"] + 1, len(hints))
    elif not 1 <= number <= len(hints):
        raise ValueError(f"{name} has hints 1 to {len(hints)}, not {number}.")
    progress.record_hint(name, number)
    text = hints[number - 1]
    if number == len(hints):
        more = f"That was the last hint. Still stuck? `solution({name})` shows the reference."
    else:
        more = f"Run `hint({name})` again for the next one ({len(hints) - number} more)."
    title = f"Hint {number} of {len(hints)} for {name}"
    return _show(Shown(title, f"{text}\n\n{more}", _markdown_to_html(text) + _markdown_to_html(more)))


def solution(obj_or_name: Any) -> Shown | None:
    """The reference source of an exercise, highlighted. Recorded in your progress."""
    from checks.notebooks import reference_source

    name = exercise_name(obj_or_name)
    code = reference_source(name)
    progress.record_solution(name)
    title = f"Reference solution for {name}"
    try:
        from pygments import highlight
        from pygments.formatters import HtmlFormatter, TerminalFormatter
        from pygments.lexers import PythonLexer

        body = highlight(code, PythonLexer(), HtmlFormatter(noclasses=True, nobackground=True))
        plain = highlight(code, PythonLexer(), TerminalFormatter()) if _terminal_colours() else code
    except ImportError:
        body, plain = f"<pre>{html.escape(code)}</pre>", code
    return _show(Shown(title, plain, body))


def _terminal_colours() -> bool:
    return not _in_notebook() and sys.stdout.isatty()


# --------------------------------------------------------------------------------------------------
# The reference, the learner's own work, and the choice between them
# --------------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=None)
def reference(name: str) -> Any:
    """The reference object of an exercise (``solutions.NAME``, or the chapter source's
    ``@@ solution`` block for an exercise ``solutions`` does not hold)."""
    import solutions

    if hasattr(solutions, name):
        return getattr(solutions, name)
    from checks.notebooks import reference_source

    namespace: dict[str, Any] = {}
    exec(STANDARD_PRELUDE + reference_source(name), namespace)  # noqa: S102 - our own reference code
    return namespace[name]


def _quiet_check(obj: Any, name: str) -> str:
    """The state of ``check(obj)`` ("passed" / "failed" / "not attempted"), printing nothing."""
    with redirect_stdout(io.StringIO()), redirect_stderr(io.StringIO()):
        result = check(obj, name)
    return getattr(result, "state", "failed")


def mine_or_reference(name: str, namespace: dict | None = None) -> Any:
    """Your ``name`` when it passes its check, else the reference; says which one it picked.

    ``namespace`` defaults to the caller's globals (the notebook).
    """
    if namespace is None:
        namespace = sys._getframe(1).f_globals
    mine = namespace.get(name)
    if mine is not None:
        try:
            state = _quiet_check(mine, name)
        except Exception:  # noqa: BLE001 - never crash a figure because of the checker
            state = "failed"
        if state == "passed":
            print(f"(using your {name}: it passes its check)")
            return mine
        print(f"(using the reference {name}: yours is {state} so far)")
    return reference(name)


def _chapter_dirs(chapters_dir: str | Path | None) -> list[Path]:
    if chapters_dir is not None:
        return [Path(chapters_dir)]
    cwd = Path.cwd()
    return [cwd, cwd / "chapters", cwd.parent]


def exercise_cells(notebook_path: Path) -> list[str]:
    """The code of the exercise cells of a notebook (cell metadata role "exercise")."""
    import nbformat

    nb = nbformat.read(notebook_path, as_version=4)
    return [
        cell.source
        for cell in nb.cells
        if cell.cell_type == "code" and cell.metadata.get("workbook", {}).get("role") == "exercise"
    ]


CELL_TIME_LIMIT = 30  # seconds for one earlier exercise cell (a definition cell runs in milliseconds)


def _time_limit(seconds: float):
    """The checker's time limit (SIGALRM in the main thread), or no limit when it is unavailable."""
    try:
        from checks.core import time_limit
    except ImportError:
        from contextlib import nullcontext

        return nullcontext()
    return time_limit(seconds)


def earlier_parts(names: list[str], use_my_work: bool = False, chapters_dir: str | Path | None = None) -> dict[str, Any]:
    """The parts from earlier chapters, by name.

    With ``use_my_work=False`` each is the reference. With ``use_my_work=True`` the exercise cells of
    your earlier chapter notebooks (``NN_stem.ipynb`` in ``chapters_dir``, by default this folder)
    are run, in chapter order, in one namespace, so your later parts use your earlier ones; each name
    you wrote is used when it passes its check, otherwise the reference is, and you are told why.
    """
    parts = {name: reference(name) for name in names}
    if not use_my_work:
        print("Using the reference for: " + ", ".join(names) + ". (Set use_my_work = True to use yours.)")
        return parts
    needed = {EXERCISE_TO_CHAPTER[n] for n in names}
    last = max(i for i, ch in enumerate(CHAPTERS) if ch.stem in needed)
    namespace: dict[str, Any] = {"__name__": "__workbook_earlier__"}
    states: dict[str, str] = {}
    exec(STANDARD_PRELUDE, namespace)  # noqa: S102
    for ch in CHAPTERS[: last + 1]:
        path = next((d / f"{ch.stem}.ipynb" for d in _chapter_dirs(chapters_dir) if (d / f"{ch.stem}.ipynb").exists()), None)
        if path is None:
            if ch.stem in needed:
                print(f"- chapter {ch.stem}: notebook not found in {', '.join(map(str, _chapter_dirs(chapters_dir)))}")
            continue
        for code in exercise_cells(path):
            try:
                with redirect_stdout(io.StringIO()), redirect_stderr(io.StringIO()), _time_limit(CELL_TIME_LIMIT):
                    exec(compile(code, f"{path.name}", "exec"), namespace)  # noqa: S102 - the learner's own code
            except BaseException as error:  # noqa: BLE001 - a broken earlier cell must not break this chapter
                if isinstance(error, KeyboardInterrupt):
                    raise
                what = f"ran longer than {CELL_TIME_LIMIT} s" if type(error).__name__ == "TimeLimit" else (
                    f"raised {type(error).__name__}: {error}")
                print(f"- {path.name}: an exercise cell {what}")
        for name in ch.exercises:  # later chapters' code sees the reference for parts not yet passing
            if name in namespace:
                states[name] = _quiet_check(namespace[name], name)
                if states[name] != "passed":
                    namespace[name] = reference(name)
    for name in names:
        if states.get(name) == "passed":
            parts[name] = namespace[name]
            print(f"- {name}: yours (it passes its check)")
        else:
            print(f"- {name}: the reference (yours is missing or does not pass its check yet)")
    return parts
