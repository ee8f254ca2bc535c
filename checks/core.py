"""The checker's engine: what a test raises, the result, calling learner code safely, the ladder.

``checks.grade.check(obj)`` finds the exercise's spec (``checks.specs``) and hands it to
:func:`run_spec`, which runs the spec's tests layer by layer, cheapest first::

    interface -> shapes -> numbers -> properties -> hygiene -> (your own parts)

It stops at the first layer with a failure, so the first message is about the real cause. Every
call into learner code goes through :func:`learner_call`, which turns whatever the learner's code
does (raise, ``sys.exit``, run out of memory, print a lot) into a beginner's message that points at
the learner's own line. This module imports no spec: the specs import it.
"""

from __future__ import annotations

import contextlib
import functools
import html
import inspect
import io
import itertools
import linecache
import math
import os
import re
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import torch

DEFAULT_TIME_LIMIT = 10.0  # seconds for one exercise's whole ladder
LAYERS = ("interface", "shapes", "numbers", "properties", "hygiene")
OWN_PARTS = "with your own parts"
_OUTPUT_LIMIT = 2000  # characters of the learner's printed output kept in the result

_CHECKS_DIR = os.path.dirname(os.path.abspath(__file__))
_TORCH_DIR = os.path.dirname(os.path.abspath(torch.__file__))
_STDLIB_DIR = os.path.dirname(os.path.abspath(contextlib.__file__))
# The reference: the checker swaps it in for the learner's other exercises, so an error raised inside
# it is reported at the learner's line that called it.
_SOLUTIONS_DIR = os.path.join(os.path.dirname(_CHECKS_DIR), "solutions")


# --------------------------------------------------------------------------------------------------
# What a test raises
# --------------------------------------------------------------------------------------------------
class Fail(Exception):
    """A test failed: ``message`` is for a beginner; ``diagnoses`` are ids from checks.diagnoses;
    ``picture`` (from :func:`picture`), the learner's values beside the expected ones, drawn in the
    notebook's table only."""

    def __init__(
        self,
        message: str,
        diagnoses: list[str] | tuple[str, ...] = (),
        picture: dict | None = None,
        also: list[Fail] | tuple[Fail, ...] = (),
    ) -> None:
        super().__init__(message)
        self.message = message
        self.diagnoses = [d for d in diagnoses if d]
        self.picture = picture
        # further problems the same test found, less fundamental than this one (see :func:`several`)
        self.also = list(also)

    def all_diagnoses(self) -> list[str]:
        """This failure's diagnosis ids, then those of its further problems (each id once)."""
        ids: list[str] = []
        for fail in (self, *self.also):
            ids.extend(d for d in fail.diagnoses if d not in ids)
        return ids


def several(problems: list[Fail]) -> Fail | None:
    """One failure for several problems a test found, the most fundamental first: the first one, with
    the others as its ``also``. None when there are none. The message then says there is more than one."""
    problems = [p for p in problems if p is not None]
    if not problems:
        return None
    first = problems[0]
    return Fail(first.message, first.diagnoses, first.picture, [*first.also, *problems[1:]])


PICTURE_LIMIT = 48  # rows and columns at most in a picture


def _matrix(values: torch.Tensor, pick: tuple[int, ...]) -> list[list[float | None]]:
    table = values[pick] if pick else values
    table = table[:PICTURE_LIMIT, :PICTURE_LIMIT]
    return [[round(v, 5) if math.isfinite(v) else None for v in row] for row in table.tolist()]


def picture(
    title: str, yours: Any, expected: Any, rows: str = "", columns: str = "", mask: bool = False
) -> dict | None:
    """What a :class:`Fail` can carry so the notebook draws the learner's values beside the expected
    ones (two small heatmaps on one colour scale): a plain dict (JSON), or None when the two do not
    have the same shape. Size-1 axes are dropped; of what stays beyond two axes, the 2-D slice with
    the largest difference is shown (its index said in the title). ``mask``: boolean values."""
    if not isinstance(yours, torch.Tensor) or not isinstance(expected, torch.Tensor):
        return None
    if yours.shape != expected.shape or yours.numel() == 0:
        return None
    a, e = yours.detach().double().cpu(), expected.detach().double().cpu()
    kept = [i for i, size in enumerate(a.shape) if size != 1]  # the axes drawn or picked from
    a, e = a.squeeze(), e.squeeze()
    if a.dim() < 2:
        a, e = a.reshape(1, -1), e.reshape(1, -1)
    pick: tuple[int, ...] = ()
    if a.dim() > 2:
        gap = (a - e).abs().nan_to_num(nan=float("inf")).flatten(0, -3).amax(dim=(-1, -2))
        pick = tuple(int(i) for i in torch.unravel_index(gap.argmax(), a.shape[:-2]))
        where = dict(zip(kept, pick))  # back to the tensor's own axes: "[1, 0, :, :]"
        index = [str(where[i]) if i in where else ":" if i in kept else "0" for i in range(yours.dim())]
        title += " [" + ", ".join(index) + "]"
    return {
        "title": title,
        "yours": _matrix(a, pick),
        "expected": _matrix(e, pick),
        "rows": rows,
        "columns": columns,
        "mask": bool(mask),
    }


class Skip(Exception):
    """A test does not apply (its message says why)."""


class StubReached(Exception):
    """The learner's code raised NotImplementedError: the exercise is not attempted yet."""

    def __init__(self, where: str) -> None:
        super().__init__(where)
        self.where = where


class TimeLimit(BaseException):
    """The exercise's time limit ran out (a BaseException so ``except Exception`` cannot swallow it)."""


class NotJudged(Skip):
    """A test the judge cannot run across the process boundary (``checks.judge``): skipped there."""


NOT_JUDGED = "not judged across processes"  # how a test row skipped by the judge begins


class RemoteError(Exception):
    """The student's code raised in the judge's worker: ``info`` is what the worker described
    (``type``, ``message``, ``frame`` = [file, line, function, code] or None, ``exit``, ``memory``)."""

    def __init__(self, info: dict) -> None:
        info = info if isinstance(info, dict) else {}
        self.kind = str(info.get("type", "Exception"))[:80]
        self.text = str(info.get("message", ""))[:1000]
        frame = info.get("frame")
        self.frame = (
            traceback.FrameSummary(str(frame[0]), int(frame[1] or 0), str(frame[2]), line=str(frame[3]))
            if isinstance(frame, list) and len(frame) == 4 and isinstance(frame[1], (int, type(None)))
            else None
        )
        self.exit = bool(info.get("exit"))
        self.memory = bool(info.get("memory"))
        super().__init__(f"{self.kind}: {self.text}")

    def describe(self, what: str) -> str:
        if self.exit:
            head = f"{what} called sys.exit() (or exit()/quit()), which would stop the whole program."
        elif self.memory:
            head = f"{what} ran out of memory ({self.kind}). Check the shapes you create."
        else:
            head = f"{what} raised {self.kind}: {_shorten(self.text)}"
        where = describe_location(self.frame)
        return head + (f"\n  at {where}" if where else "")


# --------------------------------------------------------------------------------------------------
# The result
# --------------------------------------------------------------------------------------------------
class TestRow(NamedTuple):
    """One row of the result table."""

    name: str
    status: str  # "passed" | "failed" | "skipped"
    message: str = ""


@dataclass
class CheckResult:
    """What ``check`` returns. ``state`` is "passed", "failed" or "not attempted"."""

    exercise: str
    state: str
    failures: list[str] = field(default_factory=list)
    diagnoses: list[str] = field(default_factory=list)
    tests: list[TestRow] = field(default_factory=list)
    seconds: float = 0.0
    output: str = ""  # what the learner's code printed while being checked (truncated)
    notes: list[str] = field(default_factory=list)  # said beside the verdict (a thread left running...)
    flags: list[str] = field(default_factory=list)  # for a teacher, not shown to the learner ("reference copied")
    # row name -> picture (see ``picture``): drawn in the notebook only, never in the text, the judge or nbgrader
    pictures: dict[str, dict] = field(default_factory=dict)

    __test__ = False  # not a pytest test class

    @property
    def passed(self) -> bool:
        return self.state == "passed"

    def __bool__(self) -> bool:
        return self.passed

    def to_dict(self, pictures: bool = False) -> dict:
        """The result as JSON data; ``pictures`` only when asked (from the grading worker back to
        ``check``): the judge, nbgrader and ``workbook check --json`` never get them."""
        data = {
            "exercise": self.exercise,
            "state": self.state,
            "passed": self.passed,
            "failures": list(self.failures),
            "diagnoses": list(self.diagnoses),
            "tests": [row._asdict() for row in self.tests],
            "seconds": round(self.seconds, 4),
            "output": self.output,
            "notes": list(self.notes),
            "flags": list(self.flags),
        }
        if pictures and self.pictures:
            data["pictures"] = dict(self.pictures)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> CheckResult:
        """The result ``to_dict`` described (as it comes back from a grading process)."""
        return cls(
            data["exercise"],
            data["state"],
            list(data.get("failures", [])),
            list(data.get("diagnoses", [])),
            [TestRow(**row) for row in data.get("tests", [])],
            float(data.get("seconds", 0.0)),
            data.get("output", ""),
            list(data.get("notes", [])),
            list(data.get("flags", [])),
            dict(data.get("pictures", {})),
        )

    # ---------------------------------------------------------------- what each row says
    def _row_lines(self) -> list[list[tuple[str, str]]]:
        """For each row, the lines it shows as (kind, text): "text"; "cause", a diagnosis paragraph
        ("Likely cause: ...") shown the first time; "same", one already shown on an earlier row (then
        the text names that row); "skip", why a skipped row did not run."""
        causes = {line for d in self.diagnoses if (line := _explanation(d))}
        first_row: dict[str, str] = {}
        shown = []
        for row in self.tests:
            lines: list[tuple[str, str]] = []
            if row.status == "failed":
                for line in row.message.splitlines():
                    if line in causes or line.startswith(CAUSE_PREFIX):
                        if line in first_row:
                            same = ("same", f'{CAUSE_PREFIX}the same as for "{first_row[line]}" above.')
                            if not lines or lines[-1] != same:  # several causes of one row: said once
                                lines.append(same)
                            continue
                        first_row[line] = row.name
                        lines.append(("cause", line))
                    else:
                        lines.append(("text", line))
            elif row.status == "skipped" and row.message:
                lines.extend(("skip", line) for line in row.message.splitlines())
            shown.append(lines)
        return shown

    def _verdict_messages(self, html: bool = False) -> list[str]:
        """The failures said beside the table: when no row holds them (not attempted, not graded)."""
        if html:
            return [] if any(r.status == "failed" for r in self.tests) else list(self.failures)
        if self.state in ("not attempted", "not graded") and (not self.tests or self.state == "not graded"):
            return list(self.failures)
        if self.failures and self.state == "failed" and not any(r.status == "failed" for r in self.tests):
            return list(self.failures)
        return []

    # ---------------------------------------------------------------- plain text (terminal)
    def __str__(self) -> str:
        head = {"passed": "PASSED", "failed": "FAILED", "not attempted": "NOT ATTEMPTED"}.get(self.state, "NOT GRADED")
        lines = [f"{self.exercise}: {head} ({self.seconds:.2f} s)"]
        mark = {"passed": "pass", "failed": "FAIL", "skipped": "skip"}
        for row, shown in zip(self.tests, self._row_lines()):
            if row.status == "skipped" and shown:  # why, beside the name: "(an earlier layer failed)"
                lines.append(f"  [skip] {row.name} ({shown[0][1]})")
                lines.extend("         " + text for _, text in shown[1:])
                continue
            lines.append(f"  [{mark[row.status]}] {row.name}")
            lines.extend("         " + text for _, text in shown)
        lines.extend("  " + part for f in self._verdict_messages() for part in f.splitlines())
        if self.state == "passed":
            lines.append("  All checks passed. Well done!")
        lines.extend("  Note: " + note for note in self.notes)
        if self.output:
            lines.append("  Your code printed (while being checked):")
            lines.extend("    " + part for part in self.output.splitlines()[:20])
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"<CheckResult {self.exercise}: {self.state}, {len(self.failures)} failure(s)>"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        """IPython in a terminal shows the plain-text table (a notebook uses ``_repr_html_``)."""
        printer.text(str(self))

    # ---------------------------------------------------------------- HTML (notebook)
    def _repr_html_(self) -> str:
        """The table for a notebook, readable in light and dark themes (see ``checks.display``): text
        keeps the notebook's own colour, rows get translucent tints, icons and links accent colours
        mixed from the text colour. Cells say ``text-align: left`` (JupyterLab right-aligns them)."""
        from . import display

        hue = {"passed": display.GREEN, "failed": display.RED, "not attempted": display.AMBER}.get(
            self.state, display.AMBER
        )
        head = {"passed": "✔ passed", "failed": "✘ failed", "not attempted": "… not attempted"}.get(
            self.state, "? not graded"
        )
        esc = html.escape
        parts = [
            '<div class="workbook-check" style="font-family:sans-serif;font-size:13px;text-align:left">',
            f'<div><span style="font-weight:bold;color:{display.accent(hue)}">{esc(self.exercise)}: {head}</span> '
            f'<span style="color:{display.MUTED}">({self.seconds:.2f} s)</span></div>',
        ]
        if self.tests:
            parts.append('<table style="border-collapse:collapse;margin:4px 0 0 0;text-align:left">')
            style = {
                "passed": (display.GREEN, "✔", "passed"),
                "failed": (display.RED, "✘", "failed"),
                "skipped": (display.GREY, "–", "skipped"),
            }
            cell = "padding:2px 6px;text-align:left;vertical-align:top"
            for row, shown in zip(self.tests, self._row_lines()):
                row_hue, icon, label = style[row.status]
                tint = display.tint(row_hue, 0.1 if row.status == "skipped" else 0.14)
                said = "".join(_line_html(kind, text) for kind, text in shown)
                if row.status == "failed" and row.name in self.pictures:
                    said += display.picture_html(self.pictures[row.name])
                parts.append(
                    f'<tr class="workbook-{row.status}" style="background-color:{tint}">'
                    f'<td style="{cell};color:{display.accent(row_hue)}" title="{label}">{icon}</td>'
                    f'<td style="{cell};white-space:nowrap">{display.inline(row.name)}</td>'
                    f'<td style="{cell};white-space:pre-wrap">{said}</td></tr>'
                )
            parts.append("</table>")
        parts.extend(
            f'<div style="margin-top:4px;white-space:pre-wrap">{display.inline(f)}</div>'
            for f in self._verdict_messages(html=True)
        )
        parts.extend(f'<div style="margin-top:4px">Note: {display.inline(note)}</div>' for note in self.notes)
        if self.output:
            parts.append(
                '<details><summary>What your code printed</summary><pre style="font-size:12px;text-align:left">'
                f"{esc(self.output)}</pre></details>"
            )
        parts.append("</div>")
        return "".join(parts)


CAUSE_PREFIX = "Likely cause: "  # how checks.diagnoses.explain begins a diagnosis paragraph


def _explanation(diagnosis: str) -> str:
    from .diagnoses import explain

    return explain(diagnosis)


def _line_html(kind: str, text: str) -> str:
    """One line of a row's message as HTML (inside a ``white-space: pre-wrap`` cell)."""
    from . import display

    if kind == "cause" and text.startswith(CAUSE_PREFIX):
        cause = display.inline(text[len(CAUSE_PREFIX) :])
        return f'<div style="margin-top:2px"><b>{CAUSE_PREFIX.strip()}</b> {cause}</div>'
    if kind in ("same", "skip"):
        return f'<div style="color:{display.MUTED}">{display.inline(text)}</div>'
    return f"<div>{display.inline(text)}</div>"


# --------------------------------------------------------------------------------------------------
# Calling learner code safely
# --------------------------------------------------------------------------------------------------
_interrupted = threading.Event()  # set by our SIGINT handler: a real Ctrl-C from the user


def _is_checker_file(filename: str) -> bool:
    path = os.path.abspath(filename)
    return (
        path.startswith(_CHECKS_DIR)
        or path.startswith(_SOLUTIONS_DIR)
        or path.startswith(_TORCH_DIR)
        or path.startswith(_STDLIB_DIR)
        or "site-packages" in path
        or "dist-packages" in path
        or filename.startswith("<frozen")
    )


def learner_frame(exc: BaseException) -> traceback.FrameSummary | None:
    """The innermost traceback frame that belongs to the learner (not the checker, torch, Python)."""
    frames = traceback.extract_tb(exc.__traceback__)
    for frame in reversed(frames):
        if not _is_checker_file(frame.filename):
            return frame
    return None


def describe_location(frame: traceback.FrameSummary | None) -> str:
    """'line 12 of your notebook cell, in forward:\n    x = ...' (or a file name outside a notebook)."""
    if frame is None:
        return ""
    name = frame.filename
    if re.search(r"ipykernel_\d+|<ipython-input-|^<cell \d+>$", name):
        where = f"line {frame.lineno} of your notebook cell"
    else:
        where = f'File "{name}", line {frame.lineno}'
    code = (frame.line or linecache.getline(frame.filename, frame.lineno or 0)).strip()
    text = f"{where}, in {frame.name}"
    return text + (f":\n    {code}" if code else "")


def _shorten(text: str, limit: int = 400) -> str:
    text = str(text)
    return text if len(text) <= limit else text[:limit] + " ..."


def _is_out_of_memory(exc: BaseException) -> bool:
    if isinstance(exc, MemoryError):
        return True
    msg = str(exc).lower()
    return isinstance(exc, RuntimeError) and (
        "out of memory" in msg or "not enough memory" in msg or "can't allocate memory" in msg
    )


def describe_learner_exception(exc: BaseException, what: str) -> str:
    """A beginner's message for an exception raised by learner code while doing ``what``."""
    where = describe_location(learner_frame(exc))
    if isinstance(exc, SystemExit):
        head = f"{what} called sys.exit() (or exit()/quit()), which would stop the whole program."
    elif _is_out_of_memory(exc):
        head = (
            f"{what} ran out of memory ({type(exc).__name__}). Something builds a tensor far "
            "bigger than needed: check the shapes you create (for example a [max_len, max_len] "
            "table per batch, or a loop that keeps growing a list)."
        )
    elif isinstance(exc, KeyboardInterrupt):
        head = f"{what} raised KeyboardInterrupt."
    else:
        head = f"{what} raised {type(exc).__name__}: {_shorten(exc)}"
    return head + (f"\n  at {where}" if where else "")


def learner_call(fn: Callable, *args: Any, what: str, **kwargs: Any) -> Any:
    """Call learner code; turn anything it does wrong into :class:`Fail` (or StubReached/TimeLimit)."""
    try:
        return fn(*args, **kwargs)
    except (Fail, Skip, StubReached, TimeLimit):
        raise
    except KeyboardInterrupt:
        if _interrupted.is_set():
            raise
        raise Fail(describe_learner_exception(KeyboardInterrupt(), what)) from None
    except NotImplementedError as exc:
        frame = learner_frame(exc)
        raise StubReached(describe_location(frame)) from None
    except RemoteError as exc:  # raised in the judge's worker (checks.judge)
        if exc.kind == "NotImplementedError":
            raise StubReached(describe_location(exc.frame)) from None
        raise Fail(exc.describe(what)) from None
    except BaseException as exc:  # noqa: BLE001 - learner code may raise anything, even SystemExit
        raise Fail(describe_learner_exception(exc, what)) from None


# --------------------------------------------------------------------------------------------------
# Time limit, Ctrl-C, captured output
# --------------------------------------------------------------------------------------------------
_critical = threading.local()


@contextlib.contextmanager
def critical_section() -> Iterator[None]:
    """While inside, the time limit waits (used when restoring the learner's globals)."""
    _critical.depth = getattr(_critical, "depth", 0) + 1
    try:
        yield
    finally:
        _critical.depth -= 1


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raise TimeLimit in the main thread after ``seconds`` (again every 0.2 s if swallowed).

    Uses SIGALRM + setitimer; restores any timer that was already running (pytest-timeout, ...).
    Outside the main thread (or on Windows) it does nothing: ``check`` then waits on a worker thread.
    """
    usable = threading.current_thread() is threading.main_thread() and hasattr(signal, "setitimer")
    if not usable or seconds is None or seconds <= 0:
        yield
        return

    def on_alarm(signum: int, frame: Any) -> None:
        if getattr(_critical, "depth", 0) > 0:
            return  # the repeating timer fires again shortly
        raise TimeLimit()

    old_handler = signal.signal(signal.SIGALRM, on_alarm)
    old_delay, old_interval = signal.getitimer(signal.ITIMER_REAL)
    start = time.monotonic()
    signal.setitimer(signal.ITIMER_REAL, seconds, 0.2)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old_handler)
        if old_delay > 0:
            remaining = max(old_delay - (time.monotonic() - start), 0.001)
            signal.setitimer(signal.ITIMER_REAL, remaining, old_interval)


@contextlib.contextmanager
def real_interrupts_marked() -> Iterator[None]:
    """Mark a real Ctrl-C (SIGINT) so it is told apart from learner code raising KeyboardInterrupt."""
    _interrupted.clear()
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.getsignal(signal.SIGINT)

    def on_sigint(signum: int, frame: Any) -> None:
        _interrupted.set()
        raise KeyboardInterrupt()

    try:
        signal.signal(signal.SIGINT, on_sigint)
    except (ValueError, OSError):
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)


class _CappedBuffer(io.TextIOBase):
    """A text stream that keeps the first ``limit`` characters and counts the rest."""

    def __init__(self, limit: int = _OUTPUT_LIMIT) -> None:
        self.limit = limit
        self.parts: list[str] = []
        self.kept = 0
        self.dropped = 0

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        text = str(text)
        room = self.limit - self.kept
        if room > 0:
            self.parts.append(text[:room])
            self.kept += min(room, len(text))
        self.dropped += max(len(text) - max(room, 0), 0)
        return len(text)

    def getvalue(self) -> str:
        text = "".join(self.parts)
        if self.dropped:
            text += f"\n... ({self.dropped} more characters not shown)"
        return text


# --------------------------------------------------------------------------------------------------
# Specs and the context a test gets
# --------------------------------------------------------------------------------------------------
TestFn = Callable[["Ctx"], None]


@dataclass
class Spec:
    """The hidden tests of one exercise, by layer. Register tests with ``@spec.test("numbers")``."""

    exercise: str
    reference: Any
    kind: str = "class"  # "class" or "function"
    layers: dict[str, list[TestFn]] = field(default_factory=lambda: {name: [] for name in LAYERS})
    own_parts: TestFn | None = None  # the final test, run without isolation

    def test(self, layer: str) -> Callable[[TestFn], TestFn]:
        if layer not in LAYERS:
            raise ValueError(f"unknown layer {layer!r}")

        def register(fn: TestFn) -> TestFn:
            self.layers[layer].append(fn)
            return fn

        return register

    def own_parts_test(self, fn: TestFn) -> TestFn:
        self.own_parts = fn
        return fn


class Ctx:
    """What a test function receives: the learner's object, the reference, and a cache."""

    def __init__(self, spec: Spec, obj: Any) -> None:
        self.spec = spec
        self.exercise = spec.exercise
        self.obj = obj
        self.reference = spec.reference
        self.cache: dict[str, Any] = {}
        self.isolated = True

    def new(self, *args: Any, **kwargs: Any) -> Any:
        """A fresh instance of the learner's class (its constructor's errors become failures).

        When the contract's 2-3 positional arguments fail but another order of them builds the class,
        the failure says so (``constructor_argument_order``)."""
        shown = ", ".join([repr(a) for a in args] + [f"{k}={v!r}" for k, v in kwargs.items()])
        try:
            return learner_call(self.obj, *args, what=f"{self.exercise}({shown})", **kwargs)
        except Fail as fail:
            order = self._working_order(args, kwargs)
            if order is None:
                raise
            raise Fail(fail.message + "\n" + order, [*fail.diagnoses, "constructor_argument_order"]) from None

    def _working_order(self, args: tuple, kwargs: dict) -> str | None:
        """A sentence when another order of the positional ``args`` builds the learner's class."""
        if not 2 <= len(args) <= 3:
            return None
        names = _positional_names(self.reference, len(args))
        if names is None:
            return None
        for order in itertools.permutations(range(len(args))):
            tried = tuple(args[i] for i in order)
            if order == tuple(range(len(args))) or tried == args:
                continue
            try:
                with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                    self.obj(*tried, **kwargs)
            except (StubReached, TimeLimit):
                raise
            except KeyboardInterrupt:
                if _interrupted.is_set():
                    raise
                continue
            except BaseException:  # noqa: BLE001 - learner code may raise anything
                continue
            yours = ", ".join(names[i] for i in order)
            return (
                f"With the same values in the order ({yours}) your constructor works: it seems to take its "
                f"arguments in another order than the contract's {self.exercise}({', '.join(names)}). "
                "Keep the contract's order (the checker, and the code that uses your class, pass them that way)."
            )
        return None


def _positional_names(reference: Any, count: int) -> list[str] | None:
    """The names of the first ``count`` positional parameters of the reference's constructor."""
    try:
        params = list(inspect.signature(reference).parameters.values())
    except (TypeError, ValueError):
        return None
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    names = [p.name for p in params if p.kind in kinds]
    return names[:count] if len(names) >= count else None


# --------------------------------------------------------------------------------------------------
# Isolation: grade against reference parts by swapping the learner's other exercises in its globals
# --------------------------------------------------------------------------------------------------
def learner_globals(obj: Any) -> dict | None:
    """The module namespace the learner's object looks names up in (a notebook's ``__main__``)."""
    funcs = []
    if inspect.isclass(obj):
        for value in vars(obj).values():
            if inspect.isfunction(value):
                funcs.append(value)
    elif inspect.isfunction(obj):
        funcs.append(obj)
    for fn in funcs:
        return inspect.unwrap(fn).__globals__  # through @torch.no_grad() and other wrappers
    module = sys.modules.get(getattr(obj, "__module__", "") or "")
    return vars(module) if module is not None else None


def learner_parts(obj: Any, exercise: str, references: dict[str, Any]) -> dict[str, Any]:
    """The learner's own versions of the other exercises that ``obj`` can see: {name: object}.

    Only objects the learner defined in that namespace count (not imports such as ``F.softmax``).
    """
    namespace = learner_globals(obj)
    if not namespace:
        return {}
    module_name = namespace.get("__name__")
    parts = {}
    for name, ref in references.items():
        if name == exercise or name not in namespace:
            continue
        value = namespace[name]
        if value is ref or getattr(value, "__module__", None) != module_name:
            continue
        parts[name] = value
    return parts


def _tolerant_call(signature: inspect.Signature, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
    """Drop the arguments ``signature`` has no place for (extra positionals, unknown keywords)."""
    params = list(signature.parameters.values())
    if any(p.kind is p.VAR_POSITIONAL for p in params):
        return args, kwargs
    positional = sum(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in params)
    if not any(p.kind is p.VAR_KEYWORD for p in params):
        kwargs = {k: v for k, v in kwargs.items() if k in signature.parameters}
    return args[:positional], kwargs


@functools.cache
def tolerant(reference: Any) -> Any:
    """The reference, willing to be called the way a learner's own version is called.

    The contract lets a learner give their parts extra optional arguments (``dropout=p``, ``eps=...``)
    and call them so from their other parts. While one exercise is graded against reference
    sub-parts, those calls reach the reference, which does not know the extra arguments: it drops them
    (the learner's own part is graded with them, by its own check and the "own parts" test).
    """
    if inspect.isclass(reference):
        init_sig = inspect.signature(reference.__init__)
        forward = getattr(reference, "forward", None)
        forward_sig = inspect.signature(forward) if callable(forward) else None

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            a, k = _tolerant_call(init_sig, (self, *args), kwargs)
            reference.__init__(*a, **k)

        namespace: dict[str, Any] = {
            "__init__": __init__,
            "__module__": reference.__module__,
            "__qualname__": reference.__qualname__,
            "__doc__": reference.__doc__,
            "reference_of": reference,
        }
        if forward_sig is not None:

            def forward(self, *args: Any, **kwargs: Any) -> Any:
                a, k = _tolerant_call(forward_sig, (self, *args), kwargs)
                return reference.forward(*a, **k)

            namespace["forward"] = forward
        return type(reference.__name__, (reference,), namespace)
    if callable(reference):
        signature = inspect.signature(reference)

        @functools.wraps(reference)
        def call(*args: Any, **kwargs: Any) -> Any:
            a, k = _tolerant_call(signature, args, kwargs)
            return reference(*a, **k)

        call.reference_of = reference  # type: ignore[attr-defined]
        return call
    return reference


def reference_of(obj: Any) -> Any:
    """The reference behind a :func:`tolerant` stand-in (``obj`` itself otherwise)."""
    return vars(obj).get("reference_of", obj) if hasattr(obj, "__dict__") else obj


@contextlib.contextmanager
def swapped_globals(namespace: dict | None, replacements: dict[str, Any]) -> Iterator[None]:
    """Temporarily bind ``replacements`` in ``namespace``; always restores the learner's objects."""
    if not namespace or not replacements:
        yield
        return
    saved = {name: namespace[name] for name in replacements if name in namespace}
    with critical_section():
        namespace.update(replacements)
    try:
        yield
    finally:
        with critical_section():
            namespace.update(saved)


# --------------------------------------------------------------------------------------------------
# The runner
# --------------------------------------------------------------------------------------------------
# Names in the tests' names that are code, kept whole and in backticks (`d_model`, not "d model")
_IDENTIFIERS = sorted(
    (
        name.split("_")
        for name in (
            "d_model", "d_ff", "d_k", "num_heads", "num_layers", "max_seq_length", "max_len", "pad_idx",
            "ignore_index", "beam_size", "length_penalty", "warmup_steps", "step_num", "start_idx", "end_idx",
            "attention_weights", "get_lr", "state_dict", "param_groups", "src_mask", "tgt_mask",
            "encoder_output", "vocab_size", "share_embeddings", "pe", "x", "src", "tgt", "seq", "eps", "dim",
        )
    ),
    key=len,
    reverse=True,
)  # fmt: skip


def _row_name(layer: str, fn: TestFn) -> str:
    """The row's name: "properties: refuses heads that do not divide `d_model`" for the test
    ``refuses_heads_that_do_not_divide_d_model`` of the layer "properties"."""
    words, shown, i = fn.__name__.split("_"), [], 0
    while i < len(words):
        for ident in _IDENTIFIERS:
            if words[i : i + len(ident)] == ident:
                shown.append(f"`{'_'.join(ident)}`")
                i += len(ident)
                break
        else:
            shown.append(words[i])
            i += 1
    return f"{layer}: {' '.join(w for w in shown if w)}"


MORE_THAN_ONE = "There is more than one problem here; the most fundamental comes first:"


def _compose(fail: Fail) -> str:
    """The row's message: the test's message and the explanation of each diagnosis. Several problems
    (a failure with ``also``, or one message matching several known mistakes at once) are said to be
    several, the most fundamental first (the order the spec gives them)."""
    from .diagnoses import explain

    problems = [fail, *fail.also]
    shown: list[str] = []
    blocks = []
    for problem in problems:
        explanations = [e for d in problem.diagnoses if (e := explain(d)) and e not in shown]
        shown.extend(explanations)
        blocks.append((problem.message, explanations))
    if len(problems) == 1:
        return "\n".join([MORE_THAN_ONE] * (len(shown) > 1) + [fail.message, *shown])
    lines = [MORE_THAN_ONE]
    for number, (message, explanations) in enumerate(blocks, 1):
        lines.append(f"{number}. {message}")
        lines.extend(explanations)
    return "\n".join(lines)


def run_spec(spec: Spec, obj: Any, references: dict[str, Any], judged: bool = False) -> CheckResult:
    """Run one spec's ladder on the learner's object (isolated from its other exercises).

    ``judged``: ``obj`` is a handle on an object in the judge's worker (``checks.judge``), which
    does the isolation itself; a test that cannot run on a handle is skipped, never failed.
    """
    ctx = Ctx(spec, obj)
    result = CheckResult(spec.exercise, "passed")
    parts = {} if judged else learner_parts(obj, spec.exercise, references)
    ctx.cache["parts"] = parts
    namespace = None if judged else learner_globals(obj)
    stopped = False

    def run_one(name: str, fn: TestFn) -> bool:
        torch.manual_seed(20170612)  # every test sees the same inputs on every run (the RNG is restored after)
        try:
            fn(ctx)
        except NotJudged as skip:
            result.tests.append(TestRow(name, "skipped", f"{NOT_JUDGED}: {skip}"))
            return True
        except Skip as skip:
            result.tests.append(TestRow(name, "skipped", str(skip)))
            return True
        except Fail as fail:
            message = _compose(fail)
            result.tests.append(TestRow(name, "failed", message))
            if fail.picture and not judged:
                result.pictures[name] = fail.picture
            result.failures.append(message)
            for diag in fail.all_diagnoses():
                if diag not in result.diagnoses:
                    result.diagnoses.append(diag)
            return False
        except Exception as error:
            if not judged or isinstance(error, StubReached):
                raise
            message = f"{NOT_JUDGED}: {type(error).__name__}: {_shorten(error, 200)}"
            result.tests.append(TestRow(name, "skipped", message))
            return True
        result.tests.append(TestRow(name, "passed", ""))
        return True

    try:
        with swapped_globals(namespace, {n: tolerant(references[n]) for n in parts}):
            for layer in LAYERS:
                tests = spec.layers[layer]
                if stopped:
                    result.tests.extend(
                        TestRow(_row_name(layer, fn), "skipped", "an earlier layer failed") for fn in tests
                    )
                    continue
                ok = [run_one(_row_name(layer, fn), fn) for fn in tests]
                stopped = not all(ok)
        if spec.own_parts is not None and parts:
            if stopped:
                result.tests.append(TestRow(OWN_PARTS, "skipped", "an earlier layer failed"))
            else:
                ctx.isolated = False
                run_one(OWN_PARTS, spec.own_parts)
        if inspect.isclass(obj) and any(r.status == "failed" and r.name.startswith("interface:") for r in result.tests):
            _probe_stub_methods(obj)  # an empty __init__ with a stub forward is not attempted either
    except StubReached as stub:
        result.state = "not attempted"
        where = f"\n  (at {stub.where})" if stub.where else ""
        result.failures = [
            f"{spec.exercise} is not written yet: it still raises NotImplementedError. Replace the "
            f"`raise NotImplementedError(...)` line(s) with your code, then run the check again.{where}"
        ]
        result.diagnoses = []
        result.tests = []
        return result
    if result.failures:
        result.state = "failed"
    return result


def _probe_stub_methods(cls: type) -> None:
    """Raise StubReached when one of the class's own main methods starts with NotImplementedError.

    Each of ``forward``, ``step``, ``get_lr`` that the class defines is called on a bare instance with
    None for every required argument: a stub raises NotImplementedError at once; real code fails on
    the Nones (ignored).
    """
    for name in ("forward", "step", "get_lr"):
        method = vars(cls).get(name)
        if not inspect.isfunction(method):
            continue
        try:
            params = list(inspect.signature(method).parameters.values())[1:]
        except (TypeError, ValueError):
            continue
        required = [
            p for p in params if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
        try:
            bare = object.__new__(cls)
            method(bare, *[None] * len(required))
        except NotImplementedError as exc:
            raise StubReached(describe_location(learner_frame(exc))) from None
        except (TimeLimit, KeyboardInterrupt):
            raise
        except BaseException:  # noqa: BLE001 - real code choking on the Nones: not a stub
            continue
