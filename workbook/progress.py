"""The learner's progress: a small JSON file that survives restarts.

Where: ``$WORKBOOK_HOME/progress.json``, by default ``~/.transformer-workbook/progress.json``.
What: for each exercise, the last check's state ("passed" / "failed" / "not attempted"), the
furthest hint seen (= hints used), and whether the solution was viewed::

    {"version": 1, "exercises": {"softmax": {"state": "passed", "hints": 1, "solution": false,
                                             "updated": "2026-11-22T08:00:00+00:00"}}}

It is written atomically (a temporary file, then ``os.replace``), so a crash never leaves half a file,
and every change is read, made and written under a lock (``progress.json.lock``), so two processes
recording at once (``workbook check``, a notebook kernel, a terminal) lose nothing.
A file that cannot be read is never silently lost: it is moved aside as
``progress.json.broken-<timestamp>`` and a fresh one is started, and the caller is told.

Beside it, ``$WORKBOOK_HOME/parts/<exercise>.json`` keeps the source of each part whose check passed
in a notebook (``workbook.saved_parts``), so that a notebook that cannot see the others (Colab)
still finds your earlier work. Point ``WORKBOOK_HOME`` at a Google Drive folder to keep both there.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from workbook.files import atomic_write, locked

VERSION = 1
STATES = ("passed", "failed", "not attempted")


def workbook_home() -> Path:
    """``$WORKBOOK_HOME`` or ``~/.transformer-workbook``."""
    return Path(os.environ.get("WORKBOOK_HOME") or Path.home() / ".transformer-workbook")


def progress_path() -> Path:
    return workbook_home() / "progress.json"


def parts_dir() -> Path:
    """Where the source of each passing part is kept (``workbook.saved_parts``): ``$WORKBOOK_HOME/parts``."""
    return workbook_home() / "parts"


@dataclass
class Progress:
    exercises: dict[str, dict] = field(default_factory=dict)
    recovered_from: Path | None = None  # where a broken file was moved, when this load found one

    def entry(self, exercise: str) -> dict:
        return self.exercises.setdefault(exercise, {"state": "not attempted", "hints": 0, "solution": False})

    def get(self, exercise: str) -> dict:
        """The exercise's record (a fresh default when it has none); does not add it."""
        return {"state": "not attempted", "hints": 0, "solution": False, **self.exercises.get(exercise, {})}


def load(report: bool = True) -> Progress:
    """Read the progress file. A missing file is an empty progress; a broken one is moved aside
    (``progress.json.broken-<timestamp>``) and reported on stderr when ``report``."""
    path = progress_path()
    if not path.exists():
        return Progress()
    try:
        raw = path.read_bytes()
    except OSError as error:  # unreadable (permissions): carry on without it, touch nothing
        if report:
            print(f"(Could not read your progress file {path}: {error})", file=sys.stderr)
        return Progress()
    try:
        data = json.loads(raw.decode("utf-8"))
        if not isinstance(data, dict) or not isinstance(data.get("exercises"), dict):
            raise ValueError("not a workbook progress file")
        for name, entry in data["exercises"].items():
            if (
                not isinstance(entry, dict)
                or entry.get("state", "not attempted") not in STATES
                or not isinstance(entry.get("hints", 0), int)
                or not isinstance(entry.get("solution", False), bool)
            ):
                raise ValueError(f"the record of {name!r} is not valid")
        return Progress(exercises=data["exercises"])
    except ValueError as error:  # not JSON, or not ours (UnicodeDecodeError is a ValueError too)
        stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S-%f")
        broken = path.with_name(f"{path.name}.broken-{stamp}")
        os.replace(path, broken)
        if report:
            print(
                f"Your progress file {path} could not be read ({error}). It was moved to {broken} "
                "and a fresh progress file was started.",
                file=sys.stderr,
            )
        return Progress(recovered_from=broken)


def save(progress: Progress) -> Path:
    """Write the progress atomically; returns the file's path (callers changing it hold ``locked``)."""
    text = json.dumps({"version": VERSION, "exercises": progress.exercises}, indent=2, sort_keys=True)
    return atomic_write(progress_path(), text + "\n")


def _update(exercise: str, **changes) -> dict:
    """Read, change and write one exercise's record under the progress file's lock."""
    entry: dict = {}
    try:
        with locked(progress_path()):
            progress = load()
            entry = progress.entry(exercise)
            for key, value in changes.items():
                entry[key] = value(entry.get(key)) if callable(value) else value
            entry["updated"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
            save(progress)
    except OSError as error:  # a read-only home must not break a notebook: said, not hidden
        print(f"(Could not save your progress to {progress_path()}: {error})", file=sys.stderr)
    return entry


def record_check(exercise: str, state: str) -> None:
    """Called by the checker after grading: remember the exercise's latest state."""
    if state not in STATES:
        raise ValueError(f"state must be one of {STATES}, got {state!r}")
    _update(exercise, state=state)


def record_hint(exercise: str, number: int) -> int:
    """Note that hint ``number`` (1, 2, ...) of ``exercise`` was shown. ``hints`` is the furthest hint
    seen so far, which is also how many hints were used; returns it."""
    return _update(exercise, hints=lambda n: max(n or 0, number)).get("hints", number)


def record_solution(exercise: str) -> None:
    """Remember that the solution of ``exercise`` was viewed."""
    _update(exercise, solution=True)
