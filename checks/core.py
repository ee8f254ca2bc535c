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
import linecache
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
    """A test failed: ``message`` is for a beginner; ``diagnoses`` are ids from checks.diagnoses."""

    def __init__(self, message: str, diagnoses: list[str] | tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.diagnoses = [d for d in diagnoses if d]


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

    __test__ = False  # not a pytest test class

    @property
    def passed(self) -> bool:
        return self.state == "passed"

    def __bool__(self) -> bool:
        return self.passed

    def to_dict(self) -> dict:
        return {
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
        )

    # ---------------------------------------------------------------- plain text (terminal)
    def __str__(self) -> str:
        head = {"passed": "PASSED", "failed": "FAILED", "not attempted": "NOT ATTEMPTED"}.get(self.state, "NOT GRADED")
        lines = [f"{self.exercise}: {head} ({self.seconds:.2f} s)"]
        mark = {"passed": "pass", "failed": "FAIL", "skipped": "skip"}
        for row in self.tests:
            lines.append(f"  [{mark[row.status]}] {row.name}")
            if row.status == "failed" and row.message:
                lines.extend("         " + part for part in row.message.splitlines())
        if self.state in ("not attempted", "not graded") and (not self.tests or self.state == "not graded"):
            lines.extend("  " + part for f in self.failures for part in f.splitlines())
        elif self.failures and self.state == "failed" and not any(r.status == "failed" for r in self.tests):
            lines.extend("  " + part for f in self.failures for part in f.splitlines())
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
        colour = {"passed": "#1a7f37", "failed": "#cf222e", "not attempted": "#9a6700"}.get(self.state, "#9a6700")
        head = {"passed": "✔ passed", "failed": "✘ failed", "not attempted": "… not attempted"}.get(
            self.state, "? not graded"
        )
        esc = html.escape
        parts = [
            '<div class="workbook-check" style="font-family:sans-serif;font-size:13px">',
            f'<div style="font-weight:bold;color:{colour}">{esc(self.exercise)}: {head} '
            f'<span style="color:#777;font-weight:normal">({self.seconds:.2f} s)</span></div>',
        ]
        if self.tests:
            parts.append('<table style="border-collapse:collapse;margin-top:4px">')
            style = {
                "passed": ("#dafbe1", "#1a7f37", "✔"),
                "failed": ("#ffebe9", "#cf222e", "✘"),
                "skipped": ("#f6f8fa", "#777", "–"),
            }
            for row in self.tests:
                bg, fg, icon = style[row.status]
                msg = esc(row.message).replace("\n", "<br>") if row.status == "failed" else ""
                parts.append(
                    f'<tr style="background:{bg}"><td style="color:{fg};padding:2px 6px">{icon}</td>'
                    f'<td style="padding:2px 6px;white-space:nowrap">{esc(row.name)}</td>'
                    f'<td style="padding:2px 6px;text-align:left">{msg}</td></tr>'
                )
            parts.append("</table>")
        if self.failures and not any(r.status == "failed" for r in self.tests):
            parts.extend(f'<div style="margin-top:4px">{esc(f)}</div>'.replace("\n", "<br>") for f in self.failures)
        parts.extend(f'<div style="margin-top:4px">Note: {esc(note)}</div>' for note in self.notes)
        if self.output:
            parts.append(
                '<details><summary>What your code printed</summary><pre style="font-size:12px">'
                f"{esc(self.output)}</pre></details>"
            )
        parts.append("</div>")
        return "".join(parts)


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
        """A fresh instance of the learner's class (its constructor's errors become failures)."""
        shown = ", ".join([repr(a) for a in args] + [f"{k}={v!r}" for k, v in kwargs.items()])
        return learner_call(self.obj, *args, what=f"{self.exercise}({shown})", **kwargs)


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
def _row_name(layer: str, fn: TestFn) -> str:
    return f"{layer}: {fn.__name__.replace('_', ' ')}"


def _compose(fail: Fail) -> str:
    from .diagnoses import explain

    text = fail.message
    for diag in fail.diagnoses:
        explanation = explain(diag)
        if explanation:
            text += "\n" + explanation
    return text


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
            result.failures.append(message)
            for diag in fail.diagnoses:
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
