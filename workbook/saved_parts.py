"""Your passing parts, kept in the workbook home, for the notebooks that cannot see your other notebooks.

On Colab each notebook runs on its own: chapter 12 and ``use_my_work = True`` cannot run your
earlier chapter notebooks, because they are not in its folder. So when ``check(Name)`` passes in a
notebook, the SOURCE of the part is kept in the workbook home (``$WORKBOOK_HOME/parts/<Name>.json``,
see ``workbook.progress``; point ``WORKBOOK_HOME`` at a mounted Google Drive folder and every notebook
finds it), and :mod:`workbook.assembly` uses it for a chapter whose notebook it cannot find.

What is kept: the notebook cell that defined the part, whole (as the runner runs an exercise cell),
and, from the cells run before it, the statements that bind the other names it uses (a helper
function or class, an ``import``, a constant), found from the cell a function or class was compiled
in and else from IPython's input history. Names that the chapter's own setup cells define (the
imports, the earlier parts) are not kept: the chapter's setup cells run first, from the chapter
source of the installed workbook. A record is text (JSON), never a pickle.

How it is used: exactly like a chapter notebook (:func:`job`): the chapter's setup cells and the
record's cells run in a worker of the runner (``workbook.runner``: a time limit per cell, a scratch
folder, a watchdog), and the part is graded there again by the checker. Only a part that passes is
used; anything else (a record that fails, one that cannot be read) gives the reference, and says why.

Never while grading: ``workbook check``'s and ``use_my_work``'s workers (``IN_RUNNER``) keep nothing;
the course's kernel and the judge point ``WORKBOOK_HOME`` at a scratch folder.
"""

from __future__ import annotations

import ast
import builtins
import functools
import inspect
import json
import linecache
import symtable
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from workbook.chapters import CHAPTERS, EXERCISE_TO_CHAPTER
from workbook.files import atomic_write, locked
from workbook.progress import parts_dir
from workbook.runner import ChapterJob, choose_cells, clean_source

VERSION = 1
MAX_HELPERS = 200  # statements from other cells one part may bring along


def part_path(name: str) -> Path:
    return parts_dir() / f"{name}.json"


# --------------------------------------------------------------------------------------------------
# Finding the source of a part (in the learner's own notebook kernel, after its check passed)
# --------------------------------------------------------------------------------------------------
def _functions(obj: Any) -> list[Any]:
    """The plain functions that make up ``obj``: itself, or a class's own methods (through decorators)."""
    if inspect.isfunction(obj):
        return [inspect.unwrap(obj)]
    if not inspect.isclass(obj):
        return []
    found = []
    for value in vars(obj).values():
        if isinstance(value, (staticmethod, classmethod)):
            value = value.__func__
        if isinstance(value, property):
            found += [f for f in (value.fget, value.fset, value.fdel) if inspect.isfunction(f)]
        elif inspect.isfunction(value):
            found.append(value)
    own = f"{obj.__qualname__}."
    return [inspect.unwrap(f) for f in found if getattr(f, "__qualname__", "").startswith(own)] or [
        inspect.unwrap(f) for f in found
    ]


def _defining_file(obj: Any) -> str | None:
    """The (cell) file name the code of ``obj`` was compiled from."""
    for fn in _functions(obj):
        code = getattr(fn, "__code__", None)
        if code is not None:
            return code.co_filename
    return None


def _shell() -> Any:
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    return get_ipython()


def _history(shell: Any) -> list[str]:
    """IPython's raw input history (index = execution count; empty outside IPython)."""
    hist = getattr(getattr(shell, "history_manager", None), "input_hist_raw", None)
    return list(hist) if isinstance(hist, list) else []


def _cell_source(filename: str, shell: Any, history: list[str]) -> tuple[int | None, str] | None:
    """(execution count, source) of the notebook cell compiled as ``filename``; None when it is not
    a cell (a module file on disk, a string with no source kept)."""
    entry = linecache.cache.get(filename)
    if not entry or len(entry) != 4 or entry[1] is not None:  # IPython keeps cells with mtime None
        return None
    ran = "".join(entry[2])
    number = getattr(getattr(shell, "compile", None), "_filename_map", {}).get(filename)
    if isinstance(number, int) and 0 < number < len(history):
        raw = history[number]
        try:  # the raw cell (magics as written: the runner blanks them) when it is that very cell
            same = "".join(line + "\n" for line in shell.transform_cell(raw).splitlines()) == ran
        except Exception:  # noqa: BLE001 - IPython internals vary: fall back to the code that ran
            same = False
        if same:
            return number, raw
    return (number if isinstance(number, int) else None), ran


def _parse(source: str) -> ast.Module | None:
    code = clean_source(source)
    if code is None:
        return None
    try:
        return ast.parse(code)
    except SyntaxError:
        return None


def _binds(node: ast.stmt) -> set[str]:
    """The names a top-level statement binds (def, class, import, assignment)."""
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return {node.name}
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        return {(a.asname or a.name).split(".")[0] for a in node.names if a.name != "*"}
    if isinstance(node, (ast.Assign, ast.AnnAssign)):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        return {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
    return set()


def _segment(lines: list[str], node: ast.stmt) -> str:
    first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
    return "\n".join(lines[first - 1 : node.end_lineno or node.lineno])


def global_names(code: str) -> set[str]:
    """The global names ``code`` reads (in any of its functions and classes, or at its top level)."""
    try:
        table = symtable.symtable(code, "<part>", "exec")
    except SyntaxError:
        return set()
    names: set[str] = set()
    todo = [table]
    while todo:
        scope = todo.pop()
        names |= {s.get_name() for s in scope.get_symbols() if s.is_referenced() and s.is_global()}
        todo += scope.get_children()
    return names


@functools.cache
def chapter_cells(stem: str) -> tuple[tuple[dict, ...], frozenset[str]]:
    """The chapter's code cells as the learner notebook has them (from the installed chapter source,
    exercise stubs included), and the names its setup cells define (the imports, the earlier parts:
    a part need not bring those along; what a demo cell defines, a part brings in its own version)."""
    from workbook.notebooks import build_cells, load_source

    cells, provided = [], set()
    for spec in build_cells(load_source(stem), "learner"):
        if spec.cell_type != "code":
            continue
        cells.append(
            {
                "cell_type": "code",
                "metadata": {"workbook": {"role": spec.role, "exercise": spec.exercise}},
                "source": spec.source,
            }
        )
        tree = _parse(spec.source) if spec.role == "setup" else None
        for node in tree.body if tree else []:
            provided |= _binds(node)
    return tuple(cells), frozenset(provided)


def part_cells(obj: Any, name: str) -> list[dict] | None:
    """The cells that define ``obj`` as the exercise ``name`` in this notebook: the statements of
    earlier cells it needs, then its own cell. None when ``obj`` was not defined in a notebook cell."""
    if isinstance(obj, str):
        obj = vars(sys.modules["__main__"]).get(obj)
    if not (inspect.isclass(obj) or inspect.isfunction(obj)):
        obj = type(obj)  # an instance: its class
    filename = _defining_file(obj)
    functions = _functions(obj)
    if filename is None or not functions:
        return None
    namespace = functions[0].__globals__
    shell = _shell()
    history = _history(shell)
    own = _cell_source(filename, shell, history)
    if own is None:
        return None
    own_number, own_source = own
    own_tree = _parse(own_source)
    if own_tree is None:
        return None
    _, provided = chapter_cells(EXERCISE_TO_CHAPTER[name])
    seen = set(provided) | set(dir(builtins)) | {name}
    for node in own_tree.body:
        seen |= _binds(node)
    parsed: dict[int, tuple[list[str], ast.Module] | None] = {}  # history cells, parsed once

    def parsed_cell(number: int | None, source: str) -> tuple[list[str], ast.Module] | None:
        key = number if number is not None else -1 - len(parsed)
        if key not in parsed:
            tree = _parse(source)
            parsed[key] = (clean_source(source).splitlines(), tree) if tree else None
        return parsed[key]

    def statement(n: str) -> tuple[tuple[float, int], str] | None:
        """((cell number, line), source) of the last statement that bound ``n`` before now."""
        value = namespace.get(n)
        mine = getattr(value, "__module__", None) == namespace.get("__name__")
        if mine and (inspect.isclass(value) or inspect.isfunction(value)):
            where = _defining_file(value)
            found = _cell_source(where, shell, history) if where and where != filename else None
            if found is not None:
                cell = parsed_cell(found[0], found[1])
                if cell is not None:
                    for node in reversed(cell[1].body):
                        if n in _binds(node) and not isinstance(node, (ast.Assign, ast.AnnAssign)):
                            return (found[0] or 0, node.lineno), _segment(cell[0], node)
        for number in range(len(history) - 1, 0, -1):
            if number == own_number:
                continue
            cell = parsed_cell(number, history[number])
            if cell is None:
                continue
            for node in reversed(cell[1].body):
                if n in _binds(node):
                    return (number, node.lineno), _segment(cell[0], node)
        return None

    helpers: dict[tuple[float, int], str] = {}
    todo = sorted(global_names(clean_source(own_source) or ""), reverse=True)
    while todo and len(helpers) < MAX_HELPERS:
        n = todo.pop()
        if n in seen or n not in namespace:
            continue
        seen.add(n)
        found = statement(n)
        if found is None or found[0] in helpers:
            continue
        helpers[found[0]] = found[1]
        todo += sorted(global_names(found[1]), reverse=True)
    cells = [_cell(source, None, None) for _, source in sorted(helpers.items())]
    return cells + [_cell(own_source, "exercise", name)]


def _cell(source: str, role: str | None, exercise: str | None) -> dict:
    return {"role": role, "exercise": exercise, "source": source}


# --------------------------------------------------------------------------------------------------
# Keeping and reading records
# --------------------------------------------------------------------------------------------------
def save(name: str, obj: Any) -> Path | None:
    """Keep the source of ``name`` (which just passed its check) in the workbook home.

    Returns the record's path; None when there is nothing to keep (``obj`` was not defined in a
    notebook cell) or it could not be written (said on stderr; a notebook never breaks over it).
    A file in the way that is not a readable record is moved aside (``.broken-<time>``), not lost."""
    if name not in EXERCISE_TO_CHAPTER:
        return None
    try:
        cells = part_cells(obj, name)
    except Exception:  # noqa: BLE001 - a learner's object may break introspection: keep nothing then
        return None
    if not cells:
        return None
    now = datetime.now(timezone.utc)
    record = {
        "version": VERSION,
        "exercise": name,
        "chapter": EXERCISE_TO_CHAPTER[name],
        "saved": now.isoformat(timespec="seconds"),
        "cells": cells,
    }
    path = part_path(name)
    try:
        with locked(path.parent):  # one lock for all parts: $WORKBOOK_HOME/parts.lock
            kept = load(name) if path.exists() else None
            if isinstance(kept, Saved) and kept.record["cells"] == cells:
                return path  # the same part again (each figure's mine_or_reference checks it): no write
            if isinstance(kept, Unreadable):
                path.replace(path.with_name(f"{path.name}.broken-{now.strftime('%Y%m%d-%H%M%S-%f')}"))
            atomic_write(path, json.dumps(record, indent=1) + "\n")
    except OSError as error:
        print(f"(Could not keep your {name} in {path}: {error})", file=sys.stderr)
        return None
    return path


@dataclass
class Saved:
    """A readable record of a passing part."""

    name: str
    path: Path
    record: dict

    @property
    def when(self) -> str:
        return str(self.record.get("saved", ""))[:16].replace("T", " ")


@dataclass
class Unreadable:
    """No usable record: missing, or a file that is not one (left where it is)."""

    name: str
    path: Path
    why: str


def load(name: str) -> Saved | Unreadable:
    """The record of ``name`` in the workbook home (only read, never changed)."""
    path = part_path(name)
    if not path.exists():
        return Unreadable(name, path, "none kept in your workbook home")
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(record, dict) or record.get("version") != VERSION or record.get("exercise") != name:
            raise ValueError("not a record of this workbook")
        cells = record.get("cells")
        if (
            not isinstance(cells, list)
            or not cells
            or not all(isinstance(c, dict) and isinstance(c.get("source"), str) for c in cells)
        ):
            raise ValueError("it holds no cells")
    except (OSError, ValueError) as error:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        chapter = EXERCISE_TO_CHAPTER.get(name, "??")[:2]
        return Unreadable(
            name,
            path,
            f"the {name} kept in your workbook home cannot be read ({type(error).__name__}: "
            f"{str(error)[:80]}); it is left as it is in {path}; run check({name}) in chapter {chapter} "
            "to keep it again",
        )
    return Saved(name, path, record)


def any_saved(names: list[str] | tuple[str, ...]) -> bool:
    return any(part_path(n).exists() for n in names)


def job(saved: Saved) -> ChapterJob:
    """The runner's job for a kept part: the chapter notebook's cells (from the chapter source) with
    the record's cells in place of the exercise's stub cell and no other exercise's stub."""
    chapter = next(ch for ch in CHAPTERS if ch.stem == EXERCISE_TO_CHAPTER[saved.name])
    cells, _ = chapter_cells(chapter.stem)
    mine = [
        {
            "cell_type": "code",
            "metadata": {"workbook": {"role": c.get("role"), "exercise": c.get("exercise")}},
            "source": c["source"],
        }
        for c in saved.record["cells"]
    ]
    notebook_cells: list[dict] = []
    placed = False
    for cell in cells:
        meta = cell["metadata"]["workbook"]
        if meta["role"] == "exercise":
            if meta["exercise"] == saved.name and not placed:
                notebook_cells += mine
                placed = True
            continue
        notebook_cells.append(cell)
    if not placed:
        notebook_cells += mine
    return choose_cells(ChapterJob(chapter.stem, str(saved.path), [saved.name]), chapter, {"cells": notebook_cells})
