"""The one runner for the learner's notebook code: ``workbook check``, ``use_my_work`` and chapter 12.

Two halves:

* :func:`read_chapter` (in the calling process, no learner code runs): reads a notebook's JSON
  (never writes it) and picks the code cells to run;
* :func:`run_chapters`: runs each chapter's cells in a worker process of its own
  (``checks.worker``), grades every exercise of the chapter there with ``checks.check``, and brings
  back a report per cell and per exercise (and, when asked, the learner's passing parts).

Which cells run. Code cells tagged (``cell.metadata["workbook"]["role"]``) ``setup`` or ``exercise``,
untagged cells (the learner's own), and of the chapter's ``other`` cells (demos, figures, training
runs: the slow part) only their definitions (functions, classes, imports, names bound to literals),
because an exercise may call a helper the chapter defines, as chapter 11's ``_next_token_logits``;
``all_cells=True`` runs them whole. Skipped: ``check`` and ``hint`` cells, and cells whose code is
only calls of ``check(`` / ``hint(`` / ``solution(``. Shell and magic lines (``!pip ...``,
``%matplotlib ...``) are blanked; a cell that starts with a cell magic other than ``%%time`` /
``%%capture`` is skipped. Cells run in a fresh ``__main__`` namespace and go on after a cell raises
(each error is reported with the cell number and the learner's own line).

Where they run. Never in the learner's folder: the worker's working directory is a scratch copy of
the notebook's folder (small files only, see :func:`scratch_copy`), deleted afterwards, so a cell
that deletes or rewrites files in its folder changes nothing of the learner's. The worker leads its
own process group and is killed with everything it started when its chapter is done; the report says
when the learner's code left a thread or a process running. Inside a worker, ``earlier_parts`` always
gives the reference (``IN_RUNNER``): a chapter is graded on its own.

Time limits: a cell may run ``timeout`` seconds, then it is interrupted by a signal and the next cell
runs (the cells of one notebook get ``2 * timeout`` in all; later cells are then skipped); each
exercise is graded under the checker's own limit, in a worker of its own; and the chapter's worker
still alive after ``2 * timeout + check_time * exercises + grace`` seconds is killed from outside
(the watchdog is this process: learner code that ignores or swallows signals cannot stop it) and its
chapter reported as timed out. At most two chapters run at a time, the later, heavier ones first.
"""

from __future__ import annotations

import ast
import base64
import importlib
import json
import linecache
import os
import re
import signal
import sys
import tempfile
import threading
import time
import traceback
import types
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from checks.sandbox import scratch_copy
from checks.worker import DEFAULT_MEMORY, Outcome, Worker, can_fork
from workbook.chapters import CHAPTERS, Chapter

RUN_ROLES = ("setup", "exercise")  # tagged roles that run; untagged cells run too
SKIP_ROLES = ("check", "hint")
BODY_MAGICS = ("%%time", "%%capture")  # cell magics whose body is plain Python
CALL_ONLY = re.compile(r"^(check|hint|solution)\s*\(.*\)\s*;?\s*(#.*)?$")  # at column 0 only
CALLS_HELPER = re.compile(r"\b(check|hint|solution)\s*\(")
DEFINES = re.compile(r"^\s*(def|class)\s+([A-Za-z_]\w*)", re.MULTILINE)
OUTPUT_LIMIT = 64 * 1024 * 1024  # bytes of prints a chapter may write before writes fail
TAIL = 2000  # characters of captured output kept in the results
CHAPTER_ORDER = {ch.stem: i for i, ch in enumerate(CHAPTERS)}  # later chapters grade bigger models
PRELOAD = [
    "torch",
    "matplotlib",
    "matplotlib.pyplot",
    "checks.grade",
    "checks.specs",
    "solutions",
    "cloudpickle",
    "workbook.learner",
]
IN_RUNNER = "WORKBOOK_IN_RUNNER"  # set inside a worker: earlier_parts() gives the reference there
# The scratch copy of a notebook's folder: files a cell may read (data, a helper module), not runs.


# --------------------------------------------------------------------------------------------------
# Reading a notebook (no learner code runs here)
# --------------------------------------------------------------------------------------------------
@dataclass
class Cell:
    """One code cell to run: its position in the notebook (1-based, all cells counted) and code."""

    index: int
    role: str  # setup / exercise / untagged
    exercise: str | None  # the exercise it defines, from metadata or from a def/class line
    source: str


@dataclass
class ChapterJob:
    """What a grading process needs: the chapter, its notebook and the cells to run."""

    stem: str
    path: str
    exercises: list[str]
    cells: list[Cell] = field(default_factory=list)
    skipped: int = 0  # code cells not run (check/hint/other/magic)
    error: str | None = None  # why the notebook could not be read (then nothing runs)


def clean_source(source: str) -> str | None:
    """The Python to run for one cell, or None when nothing is left to run.

    Shell (``!``) and magic (``%``) lines and top-level lines that only call check/hint/solution are
    blanked (an indented one becomes ``pass``), so line numbers in error messages still match the cell.
    """
    lines = source.splitlines()
    if lines and lines[0].lstrip().startswith("%%"):
        if lines[0].split()[0] not in BODY_MAGICS:
            return None  # %%bash, %%writefile...: not Python
        lines[0] = ""
    starts = statement_starts("\n".join(lines))
    kept = []
    for number, line in enumerate(lines, start=1):
        stripped = line.lstrip()
        if starts is not None and number not in starts:
            pass  # inside a bracket, a string or a continued line: ordinary Python (`% x`, a `!r` in a text)
        elif stripped.startswith(("!", "%")):
            indent = line[: len(line) - len(stripped)]
            line = f"{indent}pass" if indent else ""
        elif CALL_ONLY.match(line):
            line = ""
        kept.append(line)
    code = "\n".join(kept)
    if not code.strip() or all(not s.strip() or s.strip() == "pass" or s.lstrip().startswith("#") for s in kept):
        return None
    return code


def statement_starts(source: str) -> set[int] | None:
    """The numbers (1-based) of the lines where a new statement begins, or None when the cell cannot
    be read as tokens. A line that continues an open bracket, a string or a backslash-continued line is
    not one: `% (a, b)` there is Python's string formatting, not an IPython magic."""
    import io
    import tokenize

    starts: set[int] = set()
    depth, at_start = 0, True
    try:
        for token in tokenize.generate_tokens(io.StringIO(source).readline):
            if token.type in (tokenize.NEWLINE, tokenize.NL):
                at_start = at_start or depth == 0
                continue
            if token.type in (tokenize.INDENT, tokenize.DEDENT, tokenize.COMMENT, tokenize.ENDMARKER):
                continue
            if at_start and depth == 0:
                starts.add(token.start[0])
            at_start = False
            if token.type == tokenize.OP and token.string in "([{":
                depth += 1
            elif token.type == tokenize.OP and token.string in ")]}":
                depth = max(depth - 1, 0)
    except (tokenize.TokenError, SyntaxError):
        return None
    return starts


def _is_definition(node: ast.stmt) -> bool:
    """``def``, ``class``, ``import``, a docstring, or a name bound to a literal (``PAD = 0``)."""
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Import, ast.ImportFrom)):
        return True
    if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
        return True
    if isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        if not all(isinstance(t, ast.Name) for t in targets):
            return False  # `mask[..., 0] = True` changes a value the demo made: not a definition
        try:
            ast.literal_eval(node.value)
            return True
        except ValueError:
            return False
    return False


def definitions_only(code: str) -> str | None:
    """The definitions of a cell, everything else blanked (line numbers kept); None when it has none.

    Used for the chapter's own ``other`` cells: an exercise may call a helper they define (chapter
    11's ``_next_token_logits``), while their demos, figures and training runs are the slow part.
    """
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return None
    lines = code.splitlines()
    keep = [False] * len(lines)
    for node in tree.body:
        if _is_definition(node) and not isinstance(node, ast.Expr):
            first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
            for n in range(first - 1, node.end_lineno or node.lineno):
                keep[n] = True
    if not any(keep):
        return None
    return "\n".join(line if kept else "" for line, kept in zip(lines, keep))


def load_notebook(path: Path) -> dict:
    """The notebook at ``path`` as a dict with a ``cells`` list (the file is only read).

    A version-4 notebook (every notebook this workbook makes) is parsed with ``json``: importing
    ``nbformat`` costs 1-4 s here (its JSON-schema validator loads a grammar at import), a quarter of
    the whole grading budget. Anything else (an older format) goes through ``nbformat.reads``, which
    converts it to version 4 or says why it cannot.
    """
    text = path.read_text(encoding="utf-8")
    data = json.loads(text)  # invalid JSON raises here, with the line and column
    if isinstance(data, dict) and data.get("nbformat") == 4 and isinstance(data.get("cells"), list):
        return data
    import nbformat

    return nbformat.reads(text, as_version=4)


def read_chapter(chapter: Chapter, path: Path, all_cells: bool = False) -> ChapterJob:
    """Read ``path`` (never written) and choose the cells that define the chapter's exercises."""
    job = ChapterJob(chapter.stem, str(path), list(chapter.exercises))
    if not path.exists():
        job.error = f"notebook not found: {path}"
        return job
    try:
        notebook = load_notebook(path)
    except OSError as error:  # permissions, a folder named like a notebook...
        job.error = f"cannot read {path.name}: {type(error).__name__}: {error.strerror or error}"
        return job
    except Exception as error:  # noqa: BLE001 - any unreadable file is reported, never raised
        first = str(error).strip().splitlines()[0] if str(error).strip() else ""
        job.error = (
            f"cannot read {path.name}: it is not a valid notebook ({type(error).__name__}: "
            f"{first[:200]}). Restore it from a backup, or get a fresh copy with "
            f"`workbook reset {chapter.stem[:2]}` (your other chapters are unaffected)."
        )
        return job
    return choose_cells(job, chapter, notebook, all_cells)


def choose_cells(job: ChapterJob, chapter: Chapter, notebook: dict, all_cells: bool = False) -> ChapterJob:
    """Fill ``job.cells`` with the code cells of ``notebook`` that define the chapter's exercises."""
    for index, cell in enumerate(notebook["cells"], start=1):
        if not isinstance(cell, dict) or cell.get("cell_type") != "code":
            continue
        meta = cell.get("metadata", {}).get("workbook") or {}
        role = meta.get("role") if isinstance(meta, dict) else None
        source = cell.get("source", "")
        source = "".join(source) if isinstance(source, list) else str(source)
        code = clean_source(source)
        if role == "other" and not all_cells and code is not None:
            code = definitions_only(code)
        if (
            role in SKIP_ROLES
            or code is None
            or (role not in RUN_ROLES and CALLS_HELPER.search(code) and not DEFINES.search(code))
        ):
            job.skipped += 1
            continue
        exercise = meta.get("exercise") if role == "exercise" else None
        if exercise not in chapter.exercises:
            defined = [m.group(2) for m in DEFINES.finditer(code) if m.group(2) in chapter.exercises]
            exercise = defined[0] if defined else None
        job.cells.append(Cell(index, role or "untagged", exercise, code))
    return job


# --------------------------------------------------------------------------------------------------
# Inside a chapter's worker
# --------------------------------------------------------------------------------------------------
class CellTimeout(BaseException):
    """Raised inside a cell that ran past the chapter's time budget (BaseException: a learner's
    ``except Exception`` cannot swallow it)."""


def describe_error(error: BaseException, filename: str) -> str:
    """``SyntaxError: invalid syntax (line 3: def f(x y):)`` with the learner's own line."""
    name = type(error).__name__
    if isinstance(error, SystemExit):
        return f"called sys.exit({error.code!r}) (the rest of the notebook still ran)"
    if isinstance(error, CellTimeout):
        return str(error)
    if isinstance(error, SyntaxError):
        text = (error.text or "").strip()
        return f"{name}: {error.msg} (line {error.lineno}: {text})" if text else f"{name}: {error.msg}"
    message = f"{name}: {str(error)[:300]}"
    frames = [f for f in traceback.extract_tb(error.__traceback__) if f.filename == filename]
    if frames:
        frame = frames[-1]
        message += f" (line {frame.lineno}: {(frame.line or '').strip()})"
    return message


def _quiet(*args: Any, **kwargs: Any) -> None:
    """Stands in for hint() / solution() while grading: nothing shown, no progress recorded."""


def _display(*objects: Any, **kwargs: Any) -> None:
    """IPython's ``display`` builtin, as a terminal has it: prints each object's repr."""
    for obj in objects:
        print(repr(obj))


def _redirect_output(capture_path: str) -> None:
    """Send the process's stdout and stderr (C level included) to ``capture_path``, capped in size."""
    sys.stdout.flush()
    sys.stderr.flush()
    fd = os.open(capture_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    # In a Jupyter kernel sys.stdout is not fd 1 but ipykernel's stream, which a forked child still
    # sends to the notebook: the earlier chapters' own prints ("Using the reference for: ...") showed
    # up under the learner's cell. Python-level prints go to the capture file too.
    sys.stdout = open(1, "w", encoding="utf-8", errors="replace", closefd=False, buffering=1)
    sys.stderr = open(2, "w", encoding="utf-8", errors="replace", closefd=False, buffering=1)
    try:
        import resource

        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # past the cap a print fails, it does not kill us
        resource.setrlimit(resource.RLIMIT_FSIZE, (OUTPUT_LIMIT, OUTPUT_LIMIT))
    except (ImportError, AttributeError, ValueError, OSError):
        pass  # not on this platform: output is not capped


def _run_cells(job: dict, namespace: dict, limit: float) -> dict[int, str]:
    """Run the cells in ``namespace`` like "Run all" would, but going on after an error.

    Returns ``{cell index: error description}`` for the cells that raised.
    """
    errors: dict[int, str] = {}
    deadline = time.monotonic() + 2 * limit
    can_alarm = hasattr(signal, "setitimer")

    allotted = limit  # seconds the running cell was given

    def on_alarm(signum: int, frame: Any) -> None:
        raise CellTimeout(
            f"was still running after {allotted:g} s and was stopped (an endless loop? a long "
            "training run? `workbook check --timeout SECONDS` allows more)"
        )

    if can_alarm:
        signal.signal(signal.SIGALRM, on_alarm)
    for cell in job["cells"]:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            errors[cell["index"]] = f"was not run: earlier cells used up the notebook's {2 * limit:g} s"
            continue
        filename = f"<{Path(job['path']).name}, cell {cell['index']}>"
        source = cell["source"] + "\n"
        linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
        try:
            code = compile(source, filename, "exec")
            allotted = round(min(limit, remaining), 1)
            if can_alarm:  # fires again every 0.5 s in case the cell swallows it (a bare `except:`)
                signal.setitimer(signal.ITIMER_REAL, min(limit, remaining), 0.5)
            try:
                exec(code, namespace)  # noqa: S102 - the learner's own notebook, in its own process
            finally:
                if can_alarm:
                    signal.setitimer(signal.ITIMER_REAL, 0)
        except BaseException as error:  # noqa: BLE001 - sys.exit, KeyboardInterrupt... are reported
            if can_alarm:
                signal.setitimer(signal.ITIMER_REAL, 0)
            errors[cell["index"]] = describe_error(error, filename)
        for helper in ("hint", "solution"):
            if helper in namespace:
                namespace[helper] = _quiet
    return errors


def cell_first_line(cell: dict) -> str:
    line = next((s for s in cell["source"].splitlines() if s.strip() and not s.lstrip().startswith("#")), "")
    return line.strip()[:60]


def run_chapter(job: dict) -> dict:
    """Run one chapter's cells and grade its exercises in THIS process (a worker); the report.

    ``job`` is :class:`ChapterJob` as a dict plus ``timeout``, ``capture`` (where prints go),
    ``scratch`` (the folder to work in) and ``parts`` (bring back the learner's passing parts).
    """
    os.environ["MPLBACKEND"] = "Agg"  # figures never open a window while grading
    os.environ[IN_RUNNER] = "1"
    if "matplotlib" in sys.modules:
        sys.modules["matplotlib"].use("Agg")
    _redirect_output(job["capture"])
    os.chdir(job["scratch"])  # a copy of the notebook's folder, made by the caller
    start = time.perf_counter()
    module = types.ModuleType("__main__")  # cells run as a notebook's would: in __main__
    module.__dict__["__builtins__"] = __builtins__
    module.__dict__["display"] = _display  # a builtin in Jupyter; learners call it
    sys.modules["__main__"] = module
    namespace = module.__dict__
    import torch

    torch.set_num_threads(1)  # chapters run side by side on a small machine
    cell_errors = _run_cells(job, namespace, job["timeout"])

    from checks import check

    by_index = {cell["index"]: cell for cell in job["cells"]}
    exercises = []
    for name in job["exercises"]:
        own_errors = [i for i, cell in by_index.items() if cell["exercise"] == name and i in cell_errors]
        if name not in namespace and own_errors:
            i = own_errors[0]
            entry = {
                "exercise": name,
                "state": "failed",
                "passed": False,
                "diagnoses": [],
                "tests": [],
                "failures": [
                    f"`{name}` is not defined because its cell (cell {i}: "
                    f"{cell_first_line(by_index[i])}) failed: {cell_errors[i]}"
                ],
            }
        elif name not in namespace:
            entry = check(name).to_dict()  # "not attempted": not defined
            entry["failures"] = [
                f"`{name}` is not defined: no cell of this notebook defines it "
                "(was its exercise cell deleted?). Write it, then check again."
            ]
        elif job.get("judged"):  # the verdict comes from the judge (workbook.judged), not from here
            entry = {"exercise": name, "state": "pending", "passed": False, "diagnoses": [], "tests": []}
        else:
            result = check(namespace[name], exercise=name)
            entry = result.to_dict()
            entry["text"] = str(result)
            if own_errors:
                entry["failures"] = list(entry.get("failures", [])) + [
                    f"note: its cell (cell {own_errors[0]}) raised {cell_errors[own_errors[0]]}"
                ]
            if job.get("parts") and result.passed:
                entry["part"] = _pickled(namespace[name])
        entry.setdefault("failures", [])
        exercises.append(entry)
    sys.stdout.flush()
    sys.stderr.flush()
    return {
        "cell_errors": [
            {"cell": i, "first_line": cell_first_line(by_index[i]), "error": e} for i, e in sorted(cell_errors.items())
        ],
        "exercises": exercises,
        "seconds": round(time.perf_counter() - start, 3),
    }


def _pickled(obj: Any) -> str | None:
    """The learner's object, by value (``cloudpickle``: a class defined in a notebook has no module
    to import it from), as base64 text; None when it cannot be pickled."""
    import cloudpickle

    try:
        return base64.b64encode(cloudpickle.dumps(obj)).decode("ascii")
    except Exception:  # noqa: BLE001 - an unpicklable part is reported as not brought back
        return None


def unpickle_part(text: str) -> Any:
    """A part brought back by :func:`run_chapter` (the learner's own code, run in their own process)."""
    import pickle

    return pickle.loads(base64.b64decode(text))  # noqa: S301 - the learner's own parts, for the learner


# --------------------------------------------------------------------------------------------------
# The calling side: one worker per chapter, a few at a time
# --------------------------------------------------------------------------------------------------
def _preload() -> None:
    """Import torch, matplotlib and the checker once here, so that forked chapters need not.

    The backend is not set here but in each chapter's own process (``run_chapter``): this process may
    be a notebook or a test session whose later figures and kernels must keep their backend."""
    if not can_fork():
        return
    for name in PRELOAD:
        importlib.import_module(name)
    from checks.grade import prepare

    prepare()


def _tail(path: Path) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 4 * TAIL))
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return text[-TAIL:]


def _chapter_failure(job: ChapterJob, status: str, message: str) -> dict:
    return {
        "chapter": job.stem,
        "path": job.path,
        "status": status,
        "message": message,
        "cell_errors": [],
        "cells_run": len(job.cells),
        "cells_skipped": job.skipped,
        "seconds": 0.0,
        "output_tail": "",
        "left_running": [],
        "exercises": [
            {"exercise": name, "state": "error", "passed": False, "diagnoses": [], "tests": [], "failures": [message]}
            for name in job.exercises
        ],
    }


def run_chapters(
    jobs: list[ChapterJob],
    timeout: float = 30.0,
    workers: int | None = None,
    check_time: float = 15.0,
    grace: float = 10.0,
    parts: bool = False,
    memory_bytes: int | None = DEFAULT_MEMORY,
    sandbox: bool = False,
    judged: bool = False,
) -> list[dict]:
    """Run and grade every readable chapter in its own worker; one report per job, in order.

    ``timeout``: seconds one cell may run (a notebook's cells get twice that in all). A chapter's
    worker still alive ``2 * timeout + check_time * exercises + grace`` seconds after it started is
    killed with its process group. ``parts``: bring back each passing exercise's object
    (``entry["part"]``, see :func:`unpickle_part`). ``memory_bytes``: what a worker may allocate.
    ``sandbox``: each worker in bubblewrap (``checks.sandbox``: a fresh interpreter that sees the
    system read-only, not the notebook's folder, no network, and nothing it starts outlives it);
    the caller checks ``checks.sandbox.available()`` first. ``judged``: run the cells but leave the
    verdicts to the judge (``workbook.judged.judge_reports``), which replaces every exercise entry.
    """
    results: list[dict | None] = [None] * len(jobs)
    pending = []
    for i, job in enumerate(jobs):
        if job.error is not None:
            status = "missing" if job.error.startswith("notebook not found") else "unreadable"
            results[i] = _chapter_failure(job, status, job.error)
        else:
            pending.append(i)
    if not pending:
        return results  # type: ignore[return-value]

    workers = workers or max(1, min(2, os.cpu_count() or 1))
    _preload()
    with tempfile.TemporaryDirectory(prefix="workbook-run-") as tmp:
        running: dict[int, tuple[Worker, float]] = {}  # job index -> (worker, limit)
        previous_term = _terminate_on_sigterm()
        queue = sorted(pending, key=lambda i: -CHAPTER_ORDER.get(jobs[i].stem, 0))  # heavy ones first
        try:
            while queue or running:
                while queue and len(running) < workers:
                    i = queue.pop(0)
                    folder = Path(tmp, str(i))  # the chapter's own: its job, result, prints, scratch copy
                    folder.mkdir()
                    payload = {
                        **asdict(jobs[i]),
                        "judged": judged,
                        "timeout": timeout,
                        "parts": parts,
                        "capture": str(folder / "capture.out"),
                        "scratch": str(folder / "scratch"),
                    }
                    notebook_folder = Path(jobs[i].path).resolve().parent
                    try:
                        scratch_copy(notebook_folder, Path(payload["scratch"]))
                    except OSError:
                        results[i] = _grader_failure(jobs[i], traceback.format_exc())
                        continue
                    worker = Worker(
                        "workbook.runner:run_chapter",
                        payload,
                        memory_bytes=memory_bytes,
                        sandbox=sandbox,
                        workdir=folder if sandbox else None,
                        hidden=[notebook_folder] if sandbox else [],
                    ).start()
                    running[i] = (worker, 2 * timeout + check_time * len(jobs[i].exercises) + grace)
                time.sleep(0.02)
                for i, (worker, limit) in list(running.items()):
                    done = worker.poll()
                    if not done and time.monotonic() - worker.started < limit:
                        continue
                    if not done:
                        worker.kill()
                    del running[i]
                    results[i] = _collect(jobs[i], worker.finish(), Path(tmp, str(i), "capture.out"), limit)
        finally:  # Ctrl-C, `kill`, or any error here: leave no chapter process behind
            for worker, _ in running.values():
                worker.kill()
                worker.finish()
            if previous_term is not None:
                signal.signal(signal.SIGTERM, previous_term)
    return results  # type: ignore[return-value]


def _terminate_on_sigterm() -> Any:
    """Turn SIGTERM into SystemExit while grading, so the clean-up above runs; returns the old handler
    (None when signals cannot be set here: not the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def stop(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)

    return signal.signal(signal.SIGTERM, stop)


def _grader_failure(job: ChapterJob, trace: str, tail: str = "") -> dict:
    """The report of a chapter the grader itself failed on (with its traceback), not blamed on the notebook."""
    last = trace.strip().splitlines()[-1:] or [""]
    failure = _chapter_failure(
        job,
        "crashed",
        "workbook check itself failed while grading this chapter (not your notebook's fault; please "
        f"report it): {last[0]}",
    )
    failure.update(output_tail=tail, internal_error=trace)
    return failure


def _collect(job: ChapterJob, outcome: Outcome, capture: Path, limit: float) -> dict:
    """The chapter's report from how its worker ended."""
    tail = _tail(capture)
    if outcome.status == "done" and isinstance(outcome.value, dict):
        data = outcome.value
        data.update(
            chapter=job.stem,
            path=job.path,
            status="graded",
            message="",
            output_tail=tail,
            cells_run=len(job.cells),
            cells_skipped=job.skipped,
            left_running=outcome.left_running,
        )
        problems = [f"cell {e['cell']} {e['error']}" for e in data["cell_errors"]]
        if outcome.left_running:
            problems.append(outcome.left_running_note())
        data["message"] = "; ".join(problems)
        return data
    if outcome.status == "error":
        return _grader_failure(job, outcome.error or "", tail)
    if outcome.status == "timeout":
        status, message = (
            "timeout",
            (f"grading {Path(job.path).name} took longer than {limit:.0f} s and was stopped (an endless loop?)"),
        )
    else:
        status = "crashed"
        code = outcome.exitcode or 0
        how = f"signal {-code}" if code < 0 else f"exit status {code}"
        message = (
            f"the notebook's code ended its process ({how}) before it could be graded "
            "(os._exit? a crash in a C extension? out of memory?)"
        )
    data = _chapter_failure(job, status, message)
    data.update(seconds=round(outcome.seconds, 3), output_tail=tail, left_running=outcome.left_running)
    return data
