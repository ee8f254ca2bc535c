"""``check(obj)``: grade a learner's class or function against the reference, out of its reach.

The ladder (``checks.core.run_spec``) runs in a worker process (``checks.worker``): a fork of the
caller where the OS has one, so the learner's object is there as it is, and nothing the grading
does to it (isolation swaps, ``.double()``, a forward that patches a global) touches the caller's
copy. The caller is the watchdog: the worker gets the time limit as a signal (so a slow exercise is
stopped with a message naming the line it was running) and is killed ``HARD_GRACE`` seconds later
whatever the learner's code does with that signal (a loop around ``except BaseException``). Where
there is no fork (macOS, Windows) the ladder runs in the calling process under the signal alone.

Nothing the learner's code does makes ``check`` raise, except a real Ctrl-C from the user. A
failure of the grader itself is reported as the grader's, with its traceback.
"""

from __future__ import annotations

import contextlib
import functools
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from typing import Any

import torch

from .copies import reference_copied
from .core import (
    CheckResult,
    TimeLimit,
    _CappedBuffer,
    _interrupted,
    _shorten,
    describe_learner_exception,
    describe_location,
    learner_frame,
    real_interrupts_marked,
    run_spec,
    time_limit,
)
from .references import REFERENCES
from .worker import Worker, can_fork

DEFAULT_TIME_LIMIT = 10.0  # seconds for one exercise's whole ladder
HARD_GRACE = 3.0  # seconds after the time limit at which the worker is killed, whatever it does


def _resolve(obj: Any, exercise: str | None) -> tuple[str, Any, CheckResult | None]:
    """Find the exercise name and the object; a result right away when there is nothing to grade."""
    if isinstance(obj, str):
        name = exercise or obj
        namespace = vars(sys.modules["__main__"])
        if obj not in namespace:
            return (
                name,
                None,
                CheckResult(
                    name,
                    "not attempted",
                    failures=[
                        f"`{obj}` is not defined yet: write it (or run the cell that defines it), then check again."
                    ],
                ),
            )
        obj = namespace[obj]
    if isinstance(obj, torch.nn.Module):
        obj = type(obj)  # grade the class, never the learner's own instance
    name = exercise or getattr(obj, "__name__", None) or ""
    if obj is None:
        return (
            name or "?",
            None,
            CheckResult(name or "?", "not attempted", failures=[f"`{name}` is None: write it, then check again."]),
        )
    return name, obj, None


@contextlib.contextmanager
def _torch_settings_kept() -> Iterator[None]:
    """Grade with one intra-op thread (tiny tensors: many times faster than a contended pool), and
    give back the thread count and default dtype as they were, whatever the learner's code set."""
    threads, dtype = torch.get_num_threads(), torch.get_default_dtype()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        torch.set_default_dtype(dtype)


def _timed_out(name: str, limit: float, where: str = "") -> CheckResult:
    return CheckResult(
        name,
        "failed",
        failures=[
            f"{name} timed out: it took longer than {limit:g} s to check, so it was stopped. Look for a loop "
            "that never ends (a `while` whose condition never becomes False, or one that catches every "
            "exception and tries again) or work that grows far too fast with the input size."
            + (f"\n  It was running {where}" if where else "")
        ],
        diagnoses=["too_slow"],
    )


def _grade(name: str, obj: Any, limit: float) -> CheckResult:
    """Run the exercise's ladder here, under the time-limit signal."""
    from .specs import SPECS

    spec = SPECS.get(name)
    if spec is None:
        known = ", ".join(SPECS)
        return CheckResult(
            name or "?",
            "failed",
            failures=[f"There is no exercise called {name!r}. Pass exercise='...' with one of: {known}."],
        )
    copied = reference_copied(obj, spec.reference)
    buffer = _CappedBuffer()
    try:
        with contextlib.ExitStack() as stack:
            stack.enter_context(contextlib.redirect_stdout(buffer))
            stack.enter_context(contextlib.redirect_stderr(buffer))
            stack.enter_context(torch.random.fork_rng(devices=[]))
            stack.enter_context(torch.enable_grad())
            stack.enter_context(_torch_settings_kept())
            stack.enter_context(time_limit(limit))
            result = run_spec(spec, obj, REFERENCES)
    except TimeLimit as stop:
        result = _timed_out(name, limit, describe_location(learner_frame(stop)))
    result.output = buffer.getvalue()
    if copied:
        result.flags.append(f"reference copied: {copied}")
    return result


def _grade_payload(payload: tuple[str, Any, float]) -> dict:
    """In the worker: grade and describe the result as a dict (the grader's own failure included)."""
    name, obj, limit = payload
    try:
        return _grade(name, obj, limit).to_dict(pictures=True)  # the notebook draws them
    except BaseException as exc:  # noqa: BLE001 - told apart from the learner's failures below
        return {"grader_error": f"{type(exc).__name__}: {_shorten(exc)}", "traceback": traceback.format_exc()}


def _grader_failed(name: str, what: str, trace: str = "") -> CheckResult:
    text = f"The checker itself ran into a problem while grading this (not your fault; please report it): {what}"
    return CheckResult(name, "failed", failures=[text + (f"\n{trace}" if trace else "")])


@functools.cache
def prepare() -> None:
    """Load, once, in the process that forks the workers, what grading loads lazily: the specs, and
    what torch imports on its first optimizer (``torch._dynamo``, 1-2 s). A worker inherits it; one
    that had to load it would pay again at every check, since nothing it loads comes back."""
    from . import specs  # noqa: F401

    torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)


def _grade_in_worker(name: str, obj: Any, limit: float) -> CheckResult:
    """Grade in a forked worker; kill it ``HARD_GRACE`` s after the limit if it is still running."""
    prepare()
    outcome = Worker(_grade_payload, (name, obj, limit), spawn=False).start().wait(limit + HARD_GRACE)
    if outcome.status == "timeout":
        result = _timed_out(name, limit)
    elif outcome.status == "done" and isinstance(outcome.value, dict) and "grader_error" in outcome.value:
        result = _grader_failed(name, outcome.value["grader_error"], outcome.value.get("traceback", ""))
    elif outcome.status == "done":
        result = CheckResult.from_dict(outcome.value)
    elif outcome.status == "error":
        result = _grader_failed(name, (outcome.error or "").strip().splitlines()[-1], outcome.error or "")
    else:
        how = f"exit status {outcome.exitcode}" if (outcome.exitcode or 0) >= 0 else f"signal {-outcome.exitcode}"
        result = CheckResult(
            name,
            "failed",
            failures=[
                f"Checking {name} ended its process ({how}) before a verdict: your code called os._exit, "
                "crashed inside a C extension, or ran out of memory (the check may use a few GB at most)."
            ],
        )
    note = outcome.left_running_note()
    if note:
        result.notes.append(note)
    return result


def check(obj: Any, exercise: str | None = None, *, time_limit: float | None = None) -> CheckResult:
    """Grade ``obj`` (a class, function, instance, or the name of one in ``__main__``) against the
    reference. Never raises because of learner code; never changes the learner's object.

    ``exercise`` defaults to ``obj.__name__``; ``time_limit`` (seconds) defaults to 10.
    """
    start = time.perf_counter()
    limit = DEFAULT_TIME_LIMIT if time_limit is None else float(time_limit)
    name = exercise or "?"
    try:
        with real_interrupts_marked():
            name, obj, early = _resolve(obj, exercise)
            if early is not None:
                result = early
            elif can_fork():
                result = _grade_in_worker(name, obj, limit)
            elif threading.current_thread() is threading.main_thread():
                result = _grade(name, obj, limit)
            else:
                result = _grade_in_thread(name, obj, limit)
    except KeyboardInterrupt:
        if _interrupted.is_set():
            raise
        result = CheckResult(name, "failed", failures=["Your code raised KeyboardInterrupt."])
    except BaseException as exc:  # noqa: BLE001 - a checker bug must not crash the notebook
        result = _grader_failed(name, f"{type(exc).__name__}: {_shorten(exc)}", traceback.format_exc())
    result.seconds = time.perf_counter() - start
    return result


def _grade_in_thread(name: str, obj: Any, limit: float) -> CheckResult:
    """No fork and not the main thread (no SIGALRM): grade in a daemon thread and stop waiting."""
    box: dict[str, CheckResult] = {}

    def work() -> None:
        try:
            box["result"] = _grade(name, obj, limit)
        except BaseException as exc:  # noqa: BLE001
            box["result"] = CheckResult(name, "failed", failures=[describe_learner_exception(exc, name)])

    worker = threading.Thread(target=work, name=f"check-{name}", daemon=True)
    worker.start()
    worker.join(limit)
    if worker.is_alive():
        return _timed_out(name, limit)
    return box["result"]
