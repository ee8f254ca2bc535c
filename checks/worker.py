"""A worker process that the caller can always stop: the one way learner code is run out of reach.

``Worker(target, payload).start()`` runs ``target(payload)`` in a new process and hands its
JSON-ready return value back through a pipe (or a file). The caller decides when it has run too long
and kills it; nothing the target does can prevent that, because the watchdog is the caller, in
another process, not a signal the learner's code could catch.

* **Fork** (Linux): the worker is a copy of the caller, so ``target`` and ``payload`` can be any
  Python objects (the learner's class, for ``check``), and starting costs milliseconds.
* **Spawn** (elsewhere, or ``spawn=True``): a fresh ``python -m checks.worker``; ``target`` must be
  named ``"module:function"`` and ``payload`` must be JSON.

Either way the worker leads its own process group, so whatever it starts (a subprocess, a
``multiprocessing`` pool) is killed with it at the end, and the outcome says what was left running:
threads still alive when the target returned, and processes of the group still alive after it. A
memory limit (``memory_bytes`` beyond what the worker holds when it starts) is set where the OS
allows it (``RLIMIT_AS`` on Linux).
"""

from __future__ import annotations

import importlib
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_MEMORY = 4 * 1024**3  # bytes a worker may allocate beyond what it holds when it starts


@dataclass
class Outcome:
    """How a worker ended. ``status``: "done" (``value`` is the target's return value), "error" (the
    target raised: ``error`` is the traceback), "timeout" (killed by the caller), "crashed" (the
    process ended without a result: ``exitcode``)."""

    status: str
    value: Any = None
    error: str | None = None
    exitcode: int | None = None
    seconds: float = 0.0
    left_running: list[str] = field(default_factory=list)

    def left_running_note(self) -> str:
        """One sentence for the learner, or "" when nothing was left running."""
        if not self.left_running:
            return ""
        return (
            "Your code left " + ", ".join(self.left_running) + " running; it was stopped when grading "
            "ended. Join your threads and wait for your processes (or do without them)."
        )


def can_fork() -> bool:
    """Forking is available and cheap here (Linux). Threads of the caller (a Jupyter kernel has
    several) do not survive in the worker, which never touches their resources.
    ``WORKBOOK_NO_FORK=1`` takes the path of systems without fork (a fresh interpreter per worker)."""
    return sys.platform.startswith("linux") and hasattr(os, "fork") and not os.environ.get("WORKBOOK_NO_FORK")


def _memory_limit(extra: int | None) -> None:
    """Cap this process's address space at its current size plus ``extra`` bytes (Linux only)."""
    if not extra or not sys.platform.startswith("linux"):
        return
    try:
        import resource

        pages = int(Path("/proc/self/statm").read_text().split()[0])
        limit = pages * os.sysconf("SC_PAGE_SIZE") + int(extra)
        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        if hard != resource.RLIM_INFINITY:
            limit = min(limit, hard)
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    except (ImportError, OSError, ValueError):
        pass  # not enforceable here: the time limit still holds


def _cpu_limit(seconds: float) -> None:
    """Stop this process after ``seconds`` of CPU time (``RLIMIT_CPU``: SIGXCPU, then SIGKILL)."""
    try:
        import resource

        soft = max(1, int(seconds))
        resource.setrlimit(resource.RLIMIT_CPU, (soft, soft + 5))
    except (ImportError, OSError, ValueError):
        pass  # not enforceable here: the caller's wall-clock limit still holds


def _left_threads() -> list[str]:
    return [f"a thread ({t.name})" for t in threading.enumerate() if t is not threading.main_thread() and t.is_alive()]


def _resolve(target: str) -> Callable[[Any], Any]:
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def _child_main(target: Callable[[Any], Any], payload: Any, memory: int | None, cpu: float | None = None) -> dict:
    """Run the target in this (worker) process; the message to send back."""
    _memory_limit(memory)
    if cpu:
        _cpu_limit(cpu)
    try:
        value = target(payload)
        return {"status": "done", "value": value, "threads": _left_threads()}
    except BaseException:  # noqa: BLE001 - whatever the target did, the caller hears about it
        return {"status": "error", "error": traceback.format_exc(limit=-8), "threads": _left_threads()}


def _group_members(pgid: int) -> list[str]:
    """Processes still alive in process group ``pgid`` (empty when none, or not knowable)."""
    if not hasattr(os, "killpg"):
        return []
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return []
    names = []
    if sys.platform.startswith("linux"):
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            comm, rest = stat[stat.index("(") + 1 : stat.rindex(")")], stat[stat.rindex(")") + 2 :].split()
            if len(rest) > 2 and int(rest[2]) == pgid and rest[0] != "Z":
                names.append(f"a process ({comm}, pid {entry.name})")
    return names or ["a process"]


class Worker:
    """One worker process: ``start()``, then ``poll()`` until done or ``kill()``, then ``finish()``."""

    def __init__(
        self,
        target: Callable[[Any], Any] | str,
        payload: Any,
        *,
        memory_bytes: int | None = DEFAULT_MEMORY,
        cpu_seconds: float | None = None,
        spawn: bool | None = None,
        sandbox: bool = False,
        workdir: Path | None = None,
        hidden: Iterable[Path] = (),
    ) -> None:
        """``sandbox``: spawn the worker inside bubblewrap (``checks.sandbox``), writing only in
        ``workdir`` (where its job and result files go too) and not seeing the ``hidden`` folders.
        ``cpu_seconds``: a CPU-time limit (``RLIMIT_CPU``) beside the caller's wall-clock one."""
        self.target, self.payload, self.memory, self.cpu = target, payload, memory_bytes, cpu_seconds
        self.spawn = sandbox or ((not can_fork()) if spawn is None else spawn)
        self.sandbox, self.workdir, self.hidden = sandbox, workdir, list(hidden)
        if self.spawn and not isinstance(target, str):
            raise ValueError("a spawned worker needs its target named as 'module:function'")
        if sandbox and workdir is None:
            raise ValueError("a sandboxed worker needs a workdir, the one folder it may write")
        self.pid: int | None = None
        self.started = 0.0
        self._chunks: list[bytes] = []
        self._fd: int | None = None
        self._popen: subprocess.Popen | None = None
        self._files: tempfile.TemporaryDirectory | None = None
        self._result: Path | None = None
        self._exitcode: int | None = None
        self._killed = False

    # ------------------------------------------------------------------ starting
    def start(self) -> Worker:
        self.started = time.monotonic()
        if self.spawn:
            if self.workdir is None:
                self._files = tempfile.TemporaryDirectory(prefix="workbook-worker-")
            folder = Path(self.workdir) if self.workdir is not None else Path(self._files.name)
            job, self._result = folder / "job.json", folder / "result.json"
            job.write_text(
                json.dumps({"target": self.target, "payload": self.payload, "memory": self.memory, "cpu": self.cpu}),
                encoding="utf-8",
            )
            command = [sys.executable, "-m", "checks.worker", str(job), str(self._result)]
            env = None
            if self.sandbox:
                from .sandbox import bwrap_command, environment

                command, env = bwrap_command(command, folder, self.hidden), environment()
            extra = {"start_new_session": True} if os.name == "posix" else {}
            self._popen = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                env=env,
                **extra,
            )
            self.pid = self._popen.pid
            return self
        target = _resolve(self.target) if isinstance(self.target, str) else self.target
        read_end, write_end = os.pipe()
        sys.stdout.flush()
        sys.stderr.flush()
        with warnings.catch_warnings():  # Python 3.12 warns about forking a process with threads
            warnings.simplefilter("ignore", DeprecationWarning)
            pid = os.fork()
        if pid == 0:  # ---- the worker
            code = 0
            try:
                os.close(read_end)
                os.setpgid(0, 0)
                signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the caller's to handle
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                reply = _child_main(target, self.payload, self.memory, self.cpu)
                message = json.dumps(reply, default=str).encode()
                view = memoryview(message)
                while view:
                    view = view[os.write(write_end, view) :]
            except BaseException:  # noqa: BLE001
                code = 70
            finally:
                os._exit(code)  # no atexit handlers, no waiting for the learner's threads
        os.close(write_end)
        try:
            os.setpgid(pid, pid)  # also here, so the group exists before the caller may kill it
        except OSError:
            pass  # the worker did it first, or already ended
        self.pid, self._fd = pid, read_end
        os.set_blocking(read_end, False)
        return self

    # ------------------------------------------------------------------ waiting
    def poll(self) -> bool:
        """Read what the worker has sent; True once it has finished (or died).

        Finished means the pipe's end of file or, since a process the learner forked may still hold
        the pipe open, the worker itself having exited (its message is in the pipe by then)."""
        if self._popen is not None:
            return self._popen.poll() is not None
        if self._fd is None:
            return True
        if self._drain():
            return True
        if self._exitcode is None and self.pid is not None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self._exitcode = os.waitstatus_to_exitcode(status)
        if self._exitcode is not None:
            self._drain()
            return True
        return False

    def _drain(self) -> bool:
        """Read everything the pipe holds now; True at its end of file (then it is closed)."""
        while self._fd is not None:
            try:
                chunk = os.read(self._fd, 1 << 16)
            except BlockingIOError:
                return False
            if not chunk:
                os.close(self._fd)
                self._fd = None
                return True
            self._chunks.append(chunk)
        return True

    def wait(self, timeout: float) -> Outcome:
        """Wait up to ``timeout`` seconds, kill the worker if it is still running, and finish."""
        deadline = self.started + timeout
        try:
            while not self.poll():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    self.kill()
                    break
                if self._fd is not None:
                    select.select([self._fd], [], [], min(remaining, 0.5))
                else:
                    time.sleep(min(remaining, 0.02))
        except BaseException:  # Ctrl-C in the caller: the worker goes too
            self.kill()
            self.finish()
            raise
        return self.finish()

    def kill(self) -> None:
        """Kill the worker and its whole process group now."""
        self._killed = True
        if self.pid is None:
            return
        try:
            if hasattr(os, "killpg"):
                os.killpg(self.pid, signal.SIGKILL)
            elif self._popen is not None:
                self._popen.kill()
        except (ProcessLookupError, PermissionError):
            pass

    # ------------------------------------------------------------------ the outcome
    def finish(self) -> Outcome:
        """Reap the worker, kill what it left in its group, and say how it ended."""
        seconds = time.monotonic() - self.started
        raw: bytes | None = None
        if self._popen is not None:
            self._exitcode = self._popen.wait()
            if self._result is not None and self._result.exists():
                raw = self._result.read_bytes()
        else:
            if self._exitcode is None and self.pid is not None:
                _, status = os.waitpid(self.pid, 0)
                self._exitcode = os.waitstatus_to_exitcode(status)
            if self._fd is not None and not self._killed:
                self._drain()
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
            raw = b"".join(self._chunks) or None
        left = _group_members(self.pid) if self.pid is not None else []
        if left and hasattr(os, "killpg"):
            try:
                os.killpg(self.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        if self._files is not None:
            self._files.cleanup()
        if self._killed:
            return Outcome("timeout", exitcode=self._exitcode, seconds=seconds, left_running=left)
        try:
            message = json.loads(raw.decode("utf-8")) if raw else None
        except ValueError:
            message = None
        if not isinstance(message, dict):
            return Outcome("crashed", exitcode=self._exitcode, seconds=seconds, left_running=left)
        threads = [str(t) for t in message.get("threads") or []]
        return Outcome(
            message.get("status", "crashed"),
            value=message.get("value"),
            error=message.get("error"),
            exitcode=self._exitcode,
            seconds=seconds,
            left_running=threads + left,
        )


def _spawned_main(job_path: str, result_path: str) -> int:
    """``python -m checks.worker JOB.json RESULT.json``: a spawned worker."""
    job = json.loads(Path(job_path).read_text(encoding="utf-8"))
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    message = _child_main(_resolve(job["target"]), job["payload"], job.get("memory"), job.get("cpu"))
    tmp = result_path + ".tmp"
    Path(tmp).write_text(json.dumps(message, default=str), encoding="utf-8")
    os.replace(tmp, result_path)
    os._exit(0)


if __name__ == "__main__":
    sys.exit(_spawned_main(*sys.argv[1:3]))
