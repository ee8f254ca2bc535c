"""Grade chapter notebooks without Jupyter: the engine behind ``workbook check``.

Two halves:

* :func:`read_chapter` (in the calling process, no learner code runs): reads a notebook's JSON
  (never writes it) and picks the code cells to run;
* :func:`grade_chapters`: runs each chapter's cells in its own FRESH process, then calls
  ``checks.check`` there for every exercise of the chapter, and brings the results back as JSON
  through a result file (the learner's prints go to a capture file, never into the results).

Which cells run. Code cells tagged (``cell.metadata["workbook"]["role"]``) ``setup`` or ``exercise``,
untagged cells (the learner's own), and of the chapter's ``other`` cells (demos, figures, training
runs: the slow part) only their definitions (functions, classes, imports, constants), because an
exercise may call a helper the chapter defines, as chapter 11's ``_next_token_logits``;
``all_cells=True`` runs them whole. Skipped: ``check`` and ``hint`` cells, and cells whose code is
only calls of ``check(`` / ``hint(`` / ``solution(``. Shell and magic lines (``!pip ...``, ``%matplotlib ...``) are blanked; a cell that starts with
a cell magic other than ``%%time`` / ``%%capture`` is skipped. Cells run in the notebook's folder
(as a Jupyter kernel would), in a fresh ``__main__`` namespace, and go on after a cell raises (each
error is reported with the cell number and the learner's own line).

Isolation and speed. A process that imports torch costs 1-2 s, so on Linux the chapters' processes
are forked from the calling process once it has imported torch, matplotlib and the checker (no
learner code ever runs in it): a fork costs milliseconds. Where forking is not safe (macOS, Windows,
or a caller with other threads running) each chapter gets a fresh ``python -m
checks.notebook_runner`` instead: slower, just as isolated. Either way each chapter has its own
process: its namespace, ``sys.exit``, a crash or a hang cannot touch another chapter. At most two
chapters run at a time (the later, heavier chapters first). Time limits: a cell may run ``timeout`` seconds, then it is interrupted and the
next cell runs (the cells of one notebook get ``2 * timeout`` in all; later cells are then skipped);
the exercises are graded all the same, each under the checker's own time limit; a process that
outlives all of that is killed and its chapter reported as timed out.
"""

from __future__ import annotations

import ast
import importlib
import json
import linecache
import multiprocessing
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import types
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from checks.chapters import CHAPTERS, Chapter

RUN_ROLES = ("setup", "exercise")  # tagged roles that run; untagged cells run too
SKIP_ROLES = ("check", "hint")
BODY_MAGICS = ("%%time", "%%capture")  # cell magics whose body is plain Python
CALL_ONLY = re.compile(r"^(check|hint|solution)\s*\(.*\)\s*;?\s*(#.*)?$")  # at column 0 only
CALLS_HELPER = re.compile(r"\b(check|hint|solution)\s*\(")
DEFINES = re.compile(r"^\s*(def|class)\s+([A-Za-z_]\w*)", re.MULTILINE)
OUTPUT_LIMIT = 64 * 1024 * 1024  # bytes of prints a chapter may write before writes fail
TAIL = 2000  # characters of captured output kept in the results
CHAPTER_ORDER = {ch.stem: i for i, ch in enumerate(CHAPTERS)}  # later chapters grade bigger models
PRELOAD = ["torch", "matplotlib", "matplotlib.pyplot", "checks", "checks.core", "checks.specs",
           "checks.learner", "solutions", "checks.notebook_runner"]


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
    kept = []
    for line in lines:
        stripped = line.lstrip()
        if stripped.startswith(("!", "%")):
            indent = line[: len(line) - len(stripped)]
            line = f"{indent}pass" if indent else ""
        elif CALL_ONLY.match(line):
            line = ""
        kept.append(line)
    code = "\n".join(kept)
    if not code.strip() or all(not l.strip() or l.strip() == "pass" or l.lstrip().startswith("#") for l in kept):
        return None
    return code


def _is_definition(node: ast.stmt) -> bool:
    """``def``, ``class``, ``import``, a docstring, or a name bound to a literal (``PAD = 0``)."""
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Import, ast.ImportFrom)):
        return True
    if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
        return True
    if isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
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
        job.error = (f"cannot read {path.name}: it is not a valid notebook ({type(error).__name__}: "
                     f"{first[:200]}). Restore it from a backup, or get a fresh copy with "
                     f"`workbook reset {chapter.stem[:2]}` (your other chapters are unaffected).")
        return job
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
        if (role in SKIP_ROLES or code is None
                or (role not in RUN_ROLES and CALLS_HELPER.search(code) and not DEFINES.search(code))):
            job.skipped += 1
            continue
        exercise = meta.get("exercise") if role == "exercise" else None
        if exercise not in chapter.exercises:
            defined = [m.group(2) for m in DEFINES.finditer(code) if m.group(2) in chapter.exercises]
            exercise = defined[0] if defined else None
        job.cells.append(Cell(index, role or "untagged", exercise, code))
    return job


# --------------------------------------------------------------------------------------------------
# Inside a chapter's process
# --------------------------------------------------------------------------------------------------
class CellTimeout(BaseException):
    """Raised inside a cell that ran past the chapter's time budget (BaseException: a learner's
    ``except Exception`` cannot swallow it)."""


def _describe_error(error: BaseException, filename: str) -> str:
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
        raise CellTimeout(f"was still running after {allotted:g} s and was stopped (an endless loop? a long "
                          "training run? `workbook check --timeout SECONDS` allows more)")

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
            errors[cell["index"]] = _describe_error(error, filename)
        for helper in ("hint", "solution"):
            if helper in namespace:
                namespace[helper] = _quiet
    return errors


def _first_line(cell: dict) -> str:
    line = next((s for s in cell["source"].splitlines() if s.strip() and not s.lstrip().startswith("#")), "")
    return line.strip()[:60]


def run_chapter(job: dict, result_path: str, capture_path: str) -> None:
    """Grade one chapter in THIS process (a fresh one) and write the results as JSON to ``result_path``.

    A failure of the grader itself (not of the learner's code, which is caught cell by cell) is
    written there too, so that it is not blamed on the notebook.
    """
    os.environ["MPLBACKEND"] = "Agg"  # figures never open a window while grading
    if "matplotlib" in sys.modules:
        sys.modules["matplotlib"].use("Agg")
    _redirect_output(capture_path)
    try:
        result = _grade_here(job)
    except BaseException:  # noqa: BLE001 - reported as the grader's own failure
        result = {"internal_error": traceback.format_exc(limit=-3)}
    tmp = result_path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(result, f, default=str)
    os.replace(tmp, result_path)


def _grade_here(job: dict) -> dict:
    """Run the cells, then check every exercise; the results as a JSON-ready dict."""
    start = time.perf_counter()
    module = types.ModuleType("__main__")  # cells run as a notebook's would: in __main__
    module.__dict__["__builtins__"] = __builtins__
    module.__dict__["display"] = _display  # a builtin in Jupyter; learners call it
    sys.modules["__main__"] = module
    namespace = module.__dict__
    os.chdir(Path(job["path"]).resolve().parent)  # a kernel starts in its notebook's folder
    try:
        import torch

        torch.set_num_threads(1)  # chapters run side by side on a small machine
    except ImportError:
        pass
    cell_errors = _run_cells(job, namespace, job["timeout"])

    from checks import check

    by_index = {cell["index"]: cell for cell in job["cells"]}
    exercises = []
    for name in job["exercises"]:
        own_errors = [i for i, cell in by_index.items() if cell["exercise"] == name and i in cell_errors]
        if name not in namespace and own_errors:
            i = own_errors[0]
            entry = {"exercise": name, "state": "failed", "passed": False, "diagnoses": [], "tests": [],
                     "failures": [f"`{name}` is not defined because its cell (cell {i}: "
                                  f"{_first_line(by_index[i])}) failed: {cell_errors[i]}"]}
        elif name not in namespace:
            entry = check(name).to_dict()  # "not attempted": not defined
            entry["failures"] = [f"`{name}` is not defined: no cell of this notebook defines it "
                                 "(was its exercise cell deleted?). Write it, then check again."]
        else:
            result = check(namespace[name], exercise=name)
            entry = result.to_dict()
            entry["text"] = str(result)
            if own_errors:
                entry["failures"] = list(entry.get("failures", [])) + [
                    f"note: its cell (cell {own_errors[0]}) raised {cell_errors[own_errors[0]]}"]
        entry.setdefault("failures", [])
        exercises.append(entry)
    sys.stdout.flush()
    sys.stderr.flush()
    result = {
        "cell_errors": [{"cell": i, "first_line": _first_line(by_index[i]), "error": e}
                        for i, e in sorted(cell_errors.items())],
        "exercises": exercises,
        "seconds": round(time.perf_counter() - start, 3),
    }
    return result


# --------------------------------------------------------------------------------------------------
# The calling side: one process per chapter, a few at a time
# --------------------------------------------------------------------------------------------------
def _can_fork() -> bool:
    """Forking this process is safe and cheap: Linux, and no other thread that could hold a lock."""
    return (sys.platform.startswith("linux") and "fork" in multiprocessing.get_all_start_methods()
            and threading.active_count() == 1)


class _Subprocess:
    """A chapter's process started from scratch (``python -m checks.notebook_runner``): the fallback
    where forking is not safe. Same interface as ``multiprocessing.Process`` for what we use."""

    def __init__(self, payload: dict, result_path: str, capture_path: str) -> None:
        job_path = result_path + ".job.json"
        Path(job_path).write_text(json.dumps(payload), encoding="utf-8")
        self._args = [sys.executable, "-m", "checks.notebook_runner", job_path, result_path, capture_path]
        self._popen: subprocess.Popen | None = None

    def start(self) -> None:
        self._popen = subprocess.Popen(self._args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL)

    def is_alive(self) -> bool:
        return self._popen is not None and self._popen.poll() is None

    def kill(self) -> None:
        if self._popen is not None:
            self._popen.kill()

    def join(self) -> None:
        if self._popen is not None:
            self._popen.wait()

    @property
    def exitcode(self) -> int | None:
        return None if self._popen is None else self._popen.returncode


def _start(payload: dict, result_path: str, capture_path: str) -> Any:
    """Start one chapter's process: a fork of this one when that is safe, else a fresh interpreter."""
    if _can_fork():
        process = multiprocessing.get_context("fork").Process(
            target=run_chapter, args=(payload, result_path, capture_path), daemon=True)
    else:
        process = _Subprocess(payload, result_path, capture_path)
    process.start()
    return process


def _preload() -> None:
    """Import torch, matplotlib and the checker once here, so that forked chapters need not.

    The backend is not set here but in each chapter's own process (``run_chapter``): this process may
    be a notebook or a test session whose later figures and kernels must keep their backend."""
    if not _can_fork():
        return
    for name in PRELOAD:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - a chapter process will report it when it matters
            pass


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
        "chapter": job.stem, "path": job.path, "status": status, "message": message,
        "cell_errors": [], "cells_run": len(job.cells), "cells_skipped": job.skipped, "seconds": 0.0,
        "output_tail": "",
        "exercises": [{"exercise": name, "state": "error", "passed": False, "diagnoses": [], "tests": [],
                       "failures": [message]} for name in job.exercises],
    }


def grade_chapters(jobs: list[ChapterJob], timeout: float = 30.0, workers: int | None = None,
                   check_time: float = 15.0, grace: float = 10.0) -> list[dict]:
    """Grade every readable chapter in its own process; one result dict per job, in order.

    ``timeout``: seconds one cell may run (a notebook's cells get twice that in all). A chapter's
    process still alive ``2 * timeout + check_time * exercises + grace`` seconds after it started is
    killed (a hang that the per-cell alarm cannot stop: a learner who blocks signals, C code...).
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
    with tempfile.TemporaryDirectory(prefix="workbook-check-") as tmp:
        running: dict[int, tuple[Any, float, float]] = {}  # job index -> (process, start, limit)
        previous_term = _terminate_on_sigterm()
        queue = sorted(pending, key=lambda i: -CHAPTER_ORDER.get(jobs[i].stem, 0))  # heavy ones first
        try:
            while queue or running:
                while queue and len(running) < workers:
                    i = queue.pop(0)
                    job = jobs[i]
                    payload = asdict(job)
                    payload["timeout"] = timeout
                    process = _start(payload, f"{tmp}/{i}.json", f"{tmp}/{i}.out")
                    running[i] = (process, time.monotonic(), 2 * timeout + check_time * len(job.exercises) + grace)
                time.sleep(0.02)
                for i, (process, started, limit) in list(running.items()):
                    elapsed = time.monotonic() - started
                    if process.is_alive() and elapsed < limit:
                        continue
                    if process.is_alive():
                        process.kill()
                    process.join()
                    del running[i]
                    results[i] = _collect(jobs[i], Path(tmp), i, process.exitcode, elapsed, limit)
        finally:  # Ctrl-C, `kill`, or any error here: leave no chapter process behind
            for process, _, _ in running.values():
                if process.is_alive():
                    process.kill()
                process.join()
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


def _collect(job: ChapterJob, tmp: Path, i: int, exitcode: int | None, elapsed: float, limit: float) -> dict:
    result_file = tmp / f"{i}.json"
    tail = _tail(tmp / f"{i}.out")
    if result_file.exists():
        data = json.loads(result_file.read_text(encoding="utf-8"))
        if "internal_error" in data:
            last = data["internal_error"].strip().splitlines()[-1]
            failure = _chapter_failure(job, "crashed", "workbook check itself failed while grading this chapter "
                                       f"(not your notebook's fault; please report it): {last}")
            failure.update(output_tail=tail, internal_error=data["internal_error"])
            return failure
        data.update(chapter=job.stem, path=job.path, status="graded", message="", output_tail=tail,
                    cells_run=len(job.cells), cells_skipped=job.skipped)
        if data["cell_errors"]:
            data["message"] = "; ".join(f"cell {e['cell']} {e['error']}" for e in data["cell_errors"])
        return data
    if exitcode is None or elapsed >= limit:
        status, message = "timeout", (f"grading {Path(job.path).name} took longer than {limit:.0f} s and was "
                                      "stopped (an endless loop?)")
    else:
        status = "crashed"
        how = f"signal {-exitcode}" if exitcode < 0 else f"exit status {exitcode}"
        message = (f"the notebook's code ended its process ({how}) before it could be graded "
                   "(os._exit? a crash in a C extension? out of memory?)")
    data = _chapter_failure(job, status, message)
    data["seconds"] = round(elapsed, 3)
    data["output_tail"] = tail
    return data


def _main(argv: list[str]) -> int:
    """``python -m checks.notebook_runner JOB.json RESULT.json CAPTURE``: grade one chapter."""
    job_path, result_path, capture_path = argv
    run_chapter(json.loads(Path(job_path).read_text(encoding="utf-8")), result_path, capture_path)
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
