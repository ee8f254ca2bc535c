"""The verbs a learner uses in a chapter notebook (and, through ``workbook``, in a terminal).

* ``check(Name)``: grade your code against the reference (``checks.check``), and remember the verdict
  in your progress.
* ``hint(Name)``: the next hint for an exercise; each call goes one step further (3 or more per
  exercise, from a nudge to near-pseudocode). ``hint(Name, 2)`` shows hint 2 again.
* ``solution(Name)``: the reference source, highlighted.
* ``mine_or_reference("Name")``: your object when it passes its check, else the reference (figures
  use it so they never crash on an unfinished stub).
* ``earlier_parts([...], use_my_work)``: the parts from earlier chapters a chapter builds on.
* ``assemble(use_my_work)``: every part of the model, yours where it passes (chapter 12).

Hints and solutions viewed are recorded in the progress file (``workbook.progress``).
"""

from __future__ import annotations

import functools
import html
import io
import os
import sys
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

from workbook import progress
from workbook.chapters import EXERCISE_TO_CHAPTER
from workbook.runner import IN_RUNNER

__all__ = ["check", "hint", "solution", "mine_or_reference", "earlier_parts", "assemble", "reference"]

STANDARD_PRELUDE = "import math\nimport torch\nimport torch.nn as nn\nimport torch.nn.functional as F\n"


def check(obj: Any, exercise: str | None = None, *, time_limit: float | None = None) -> Any:
    """Grade ``obj`` (a class, function, instance, or its name in this notebook) against the reference
    with the hidden tests (``checks.check``); the verdict is remembered in your progress file, and
    when it passes, the source of its notebook cell is kept beside it (``workbook.saved_parts``).

    ``exercise`` defaults to ``obj.__name__``; ``time_limit`` (seconds) defaults to 10.
    """
    from checks import check as grade

    result = grade(obj, exercise, time_limit=time_limit)
    if result.exercise in EXERCISE_TO_CHAPTER and os.environ.get(IN_RUNNER) is None:
        progress.record_check(result.exercise, result.state)  # an unwritable file is said, not raised
        if result.passed:  # its source, for notebooks that cannot see this one (Colab): workbook.saved_parts
            from workbook import saved_parts

            saved_parts.save(result.exercise, obj)  # only a part defined in a notebook cell; never raises
    _LAST[result.exercise] = (obj, result)
    return result


_LAST: dict[str, tuple[Any, Any]] = {}  # exercise -> (the object just checked, its result)


def last_result(name: str, obj: Any) -> Any:
    """The result of the last ``check`` of exactly ``obj`` as ``name`` in this process, or None
    (a course's hidden test, right below the visible ``check(NAME)``, shows it again without
    grading twice)."""
    found = _LAST.get(name)
    return found[1] if found is not None and found[0] is obj else None


def exercise_name(obj_or_name: Any) -> str:
    """``hint(softmax)`` and ``hint("softmax")`` both mean the exercise ``softmax``, and so does
    ``hint("Softmax")`` (case is ignored where only one name fits)."""
    name = obj_or_name if isinstance(obj_or_name, str) else getattr(obj_or_name, "__name__", None)
    if name is None and hasattr(obj_or_name, "__class__"):
        name = type(obj_or_name).__name__
    from workbook.names import exercise

    return exercise(name)  # "layernorm" is LayerNorm; a misspelt name gets "did you mean"


def _in_notebook() -> bool:
    from IPython import get_ipython

    shell = get_ipython()
    return shell is not None and type(shell).__name__ != "TerminalInteractiveShell"


def _markdown_to_html(text: str) -> str:
    """Markdown as HTML that stays readable in light and dark themes (``checks.display.markdown``)."""
    from checks.display import markdown

    return markdown(text)


class Shown:
    """Something shown to the learner: rich in a notebook, plain in a terminal."""

    def __init__(self, title: str, text: str, html_body: str) -> None:
        self.title, self.text, self.html_body = title, text, html_body

    def __str__(self) -> str:
        return f"{self.title}\n\n{self.text}"

    __repr__ = __str__

    def _repr_html_(self) -> str:
        """No text colour or background of its own: the notebook's, in any theme (``checks.display``)."""
        return (
            '<div class="workbook-shown" style="border-left: 4px solid rgba(9, 105, 218, 0.7); padding: 0.3em 1em; '
            'margin: 0.3em 0; text-align: left">'
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
    from workbook.notebooks import load_source

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
    from workbook.notebooks import reference_source

    name = exercise_name(obj_or_name)
    if os.environ.get("WORKBOOK_SOLUTIONS") == "off":
        return _show(
            Shown(
                f"No solution for {name} in this course",
                "Your teacher released this chapter with solution() turned off. hint() still "
                "works: each call shows the next hint.",
                "Your teacher released this chapter with <code>solution()</code> turned off. "
                "<code>hint()</code> still works: each call shows the next hint.",
            )
        )
    code = reference_source(name)
    progress.record_solution(name)
    title = f"Reference solution for {name}"
    from pygments import highlight
    from pygments.formatters import TerminalFormatter
    from pygments.lexers import PythonLexer

    from checks.display import highlight_python

    body = highlight_python(code)  # colours that keep their contrast in light and dark themes
    plain = highlight(code, PythonLexer(), TerminalFormatter()) if _terminal_colours() else code
    return _show(Shown(title, plain, body))


def _terminal_colours() -> bool:
    return not _in_notebook() and sys.stdout.isatty()


# --------------------------------------------------------------------------------------------------
# The reference, the learner's own work, and the choice between them
# --------------------------------------------------------------------------------------------------
@functools.cache
def reference(name: str) -> Any:
    """The reference object of an exercise (``solutions.NAME``, or the chapter source's
    ``@@ solution`` block for an exercise ``solutions`` does not hold)."""
    import solutions

    if hasattr(solutions, name):
        return getattr(solutions, name)
    from workbook.notebooks import reference_source

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
        state = _quiet_check(mine, name)  # check() never raises because of the learner's code
        if state == "passed":
            print(f"(using your {name}: it passes its check)")
            return mine
        print(f"(using the reference {name}: yours is {state} so far)")
    return reference(name)


CELL_TIME_LIMIT = 30  # seconds one cell of an earlier chapter may run (a definition cell takes milliseconds)


def _chapter_dirs(chapters_dir: str | Path | None) -> list[Path]:
    if chapters_dir is not None:
        return [Path(chapters_dir)]
    cwd = Path.cwd()
    return [cwd, cwd / "chapters", cwd.parent]


def earlier_parts(
    names: list[str], use_my_work: bool = False, chapters_dir: str | Path | None = None
) -> dict[str, Any]:
    """The parts from earlier chapters, by name.

    With ``use_my_work=False`` each is the reference. With ``use_my_work=True`` your earlier chapter
    notebooks (``NN_stem.ipynb`` in ``chapters_dir``, by default this folder) are run and graded by
    the workbook's runner (each in a worker of its own, in a scratch folder: your files are safe);
    each name you wrote is used when it passes its check, otherwise the reference is, and you are
    told why. A chapter whose notebook is not there (Colab) gives the part kept in your workbook home
    when its check passed (``workbook.saved_parts``), run and graded again the same way. Your parts
    use each other: your ``EncoderLayer`` builds your ``MultiHeadAttention``
    when both are chosen. Inside the runner itself (``workbook check``) this is always the reference.
    """
    from workbook.assembly import choose

    if use_my_work and os.environ.get(IN_RUNNER):
        for name in names:
            print(f"- {name}: the reference (workbook check grades this chapter on its own)")
        return {name: reference(name) for name in names}
    if not use_my_work:
        for name in names:  # one line per part, like the use_my_work = True branch below
            print(f"- {name}: the reference (use_my_work = False; set use_my_work = True to use yours)")
        return {name: reference(name) for name in names}
    assembly = choose(names, _chapter_dirs(chapters_dir), timeout=CELL_TIME_LIMIT)
    parts = {}
    for name in names:
        who, why = assembly.sources[name]
        if who == "yours":
            parts[name] = assembly.parts[name]
            kept = f"; {why[why.index('kept in') :].rstrip(')')}" if "kept in your workbook home" in why else ""
            print(f"- {name}: yours (it passes its check{kept})")
        else:
            parts[name] = reference(name)
            print(f"- {name}: the reference (yours: {why})")
    return parts


def assemble(use_my_work: bool = True, chapters_dir: str | Path | None = "chapters", attention: str = "manual"):
    """Every part of the model for chapter 12: yours where it passes its check, else the reference
    (``workbook.assembly.assemble``)."""
    from workbook.assembly import assemble as choose_all

    return choose_all(use_my_work, chapters_dir, attention)
