"""The course's Jupyter kernel, in a sandbox: ``python -I -c ... workbook.sandbox_kernel -f CONNECTION_FILE``.

``nbgrader autograde`` runs each submission in a kernel; the course that ``workbook course`` writes
names this one (``workbook-sandbox``, a kernelspec inside the course folder). This launcher starts
isolated (``-I``: a ``workbook/`` folder shipped beside a notebook is never imported in its place)
and runs the IPython kernel inside bubblewrap (``checks.sandbox.confined_command``), the same
boundary as the judge's worker:

* it sees only the system's programs and libraries and this Python's packages: not the teacher's
  home (other kernels' connection files, ``~/.jupyter``, ``~/.ipython``), not the course folder (the
  gradebook, the config, the other submissions, the source notebooks), not other submissions
  anywhere on disk, not the reference (the ``workbook`` and ``solutions`` a notebook imports are
  stand-ins holding only the earlier chapters' parts, handed in by value);
* it works in a private copy of the submission's folder (symbolic links left out), with its own
  empty ``/tmp``, its own process-ID namespace (whatever the submission starts dies with the
  kernel), no capabilities and a few variables of the teacher's environment;
* it has no network: its client (``workbook.nbgrader_ext.JudgedExecute``) talks to it over Unix
  sockets in a private folder (Jupyter's IPC transport). A course config that still uses TCP keeps
  the host's network, and the launcher says so.

Without bubblewrap it says once which protection is missing and starts the plain kernel.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

KERNEL_NAME = "workbook-sandbox"
COURSE_ENV = "WORKBOOK_COURSE_DIR"  # set by the course's nbgrader_config.py
PRIVATE_ENV = "WORKBOOK_KERNEL_DIR"  # set by JudgedExecute: this kernel's sockets and parts
PARTS_FILE = "parts.pkl"  # in that folder: the earlier chapters' reference parts, pickled by value

# The kernel's first code, inside the sandbox: the stand-in `workbook` and `solutions`, then IPython.
BOOT = '''\
"""The course kernel's first code, inside its sandbox (written by workbook.sandbox_kernel)."""
import os
import pickle
import sys
import types


class _Hidden(types.ModuleType):
    """`solutions` or `workbook` while grading: only the earlier chapters' parts."""

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        raise ImportError(
            f"{self.__name__}.{name} is not available while your work is graded: the reference of the "
            "exercises being graded is out of reach (write your own)."
        )


class _Refuse:
    """`import solutions.copy_task`, `import checks`: not here, said plainly."""

    def find_spec(self, name, path=None, target=None):
        top = name.split(".")[0]
        if top == "checks" or (top in ("solutions", "workbook") and "." in name):
            raise ImportError(
                f"{name} is not available in this graded run: the course's kernel has neither the "
                "reference nor the grader (the judge grades your exercises outside the notebook)."
            )
        return None


def _install():
    sys.meta_path.insert(0, _Refuse())
    path = os.environ.pop("WORKBOOK_KERNEL_PARTS", "")
    parts = {}
    if path and os.path.isfile(path):
        with open(path, "rb") as file:
            parts = pickle.load(file)  # written by the grader before this kernel started
    solutions, workbook = _Hidden("solutions"), _Hidden("workbook")
    for module in (solutions, workbook):
        module.__path__ = []
        sys.modules[module.__name__] = module
    for name, part in parts.items():
        setattr(solutions, name, part)
    solutions.__all__ = list(parts)

    def _name(obj):
        return getattr(obj, "__name__", obj)

    def check(obj=None, *args, **kwargs):
        print(
            f"check({_name(obj)}): in this graded run the verdict comes from the judge, outside the "
            "notebook; it is shown with the test cell."
        )

    def hint(obj=None, *args, **kwargs):
        print("hint() and solution() are off while your work is graded.")

    def reference(name):
        return getattr(solutions, _name(name))

    def mine_or_reference(name, namespace=None):
        namespace = sys._getframe(1).f_globals if namespace is None else namespace
        if namespace.get(name) is not None:
            print(f"(using your {name})")
            return namespace[name]
        return reference(name)

    def earlier_parts(names=None, use_my_work=False, chapters_dir=None):
        return {n: reference(n) for n in (list(names) if names is not None else list(parts))}

    def use_my_work(*args, **kwargs):
        return None

    for name, value in dict(
        check=check,
        hint=hint,
        solution=hint,
        reference=reference,
        mine_or_reference=mine_or_reference,
        earlier_parts=earlier_parts,
        use_my_work=use_my_work,
    ).items():
        setattr(workbook, name, value)
    workbook.__all__ = ["check", "hint", "solution", "mine_or_reference", "earlier_parts", "reference"]


_install()
del _install

from ipykernel import kernelapp  # noqa: E402

kernelapp.launch_new_instance()
'''


def _connection_file(argv: list[str]) -> tuple[Path | None, list[str]]:
    """The ``-f FILE`` of the kernel's arguments, and the other arguments."""
    rest, found, i = [], None, 0
    while i < len(argv):
        if argv[i] == "-f" and i + 1 < len(argv):
            found, i = Path(argv[i + 1]), i + 2
        elif argv[i].startswith("--f="):
            found, i = Path(argv[i][4:]), i + 1
        else:
            rest.append(argv[i])
            i += 1
    return found, rest


def main(argv: list[str]) -> int:
    from checks import sandbox

    missing = sandbox.available()
    if missing is not None:
        print(f"[workbook] {sandbox.missing_protection()}", file=sys.stderr)
        os.execv(sys.executable, [sys.executable, "-I", "-m", "ipykernel_launcher", *argv])
    connection, rest = _connection_file(argv)
    scratch = Path(tempfile.mkdtemp(prefix="workbook-kernel-"))
    try:
        work = sandbox.scratch_copy(Path.cwd(), scratch / "work")
        private = Path(os.environ.get(PRIVATE_ENV) or scratch / "private")
        private.mkdir(parents=True, exist_ok=True)
        info = json.loads(connection.read_text()) if connection is not None and connection.exists() else {}
        network = info.get("transport") != "ipc"
        if network:
            print(
                "[workbook] the kernel's client talks TCP: the sandbox keeps the host's network "
                "(run autograde with the course's nbgrader_config.py, whose JudgedExecute uses IPC)",
                file=sys.stderr,
            )
        inside = private / "connection.json"
        if connection is not None:
            inside.write_text(json.dumps(info))
        boot = scratch / "boot"
        boot.mkdir()
        (boot / "workbook_kernel_boot.py").write_text(BOOT, encoding="utf-8")
        hidden = [*sandbox.reference_places(), *([Path(os.environ[COURSE_ENV])] if os.environ.get(COURSE_ENV) else [])]
        kernel = [sys.executable, "-I", str(boot / "workbook_kernel_boot.py"), "-f", str(inside), *rest]
        command = sandbox.confined_command(kernel, work, hidden, shown=[boot], shared=[private], network=network)
        env = sandbox.confined_environment(work, WORKBOOK_KERNEL_PARTS=str(private / PARTS_FILE))
        child = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL)
        signal.signal(signal.SIGTERM, lambda *_: child.kill())
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # interrupts travel as messages (kernel.json)
        return child.wait()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
