"""The course's Jupyter kernel, in a sandbox: ``python -m workbook.sandbox_kernel -f CONNECTION_FILE``.

``nbgrader autograde`` runs each submission in a kernel; the course that ``workbook course`` writes
names this one (``workbook-sandbox``, a kernelspec inside the course folder). It starts the usual
IPython kernel inside bubblewrap (``checks.sandbox``): the system read-only, the course folder out
of sight (the gradebook, the config, the other submissions, the source notebooks with their
solutions), a private writable copy of the submission's folder as its working directory, its own
process-ID namespace (whatever the submission starts dies with the kernel), no capabilities. So
nothing a student wrote can change the course, the gradebook, a classmate's grades or the
configuration that later nbgrader commands run as the teacher, and no student process outlives
grading. The kernel keeps the host's loopback network: its client (nbgrader) talks to it over TCP.

Without bubblewrap it says once which protection is missing and starts the plain kernel.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

KERNEL_NAME = "workbook-sandbox"
COURSE_ENV = "WORKBOOK_COURSE_DIR"  # set by the course's nbgrader_config.py


def main(argv: list[str]) -> int:
    from checks import sandbox

    kernel = [sys.executable, "-m", "ipykernel_launcher", *argv]
    missing = sandbox.available()
    if missing is not None:
        print(f"[workbook] {sandbox.missing_protection()}", file=sys.stderr)
        os.execv(sys.executable, kernel)
    scratch = Path(tempfile.mkdtemp(prefix="workbook-kernel-"))
    try:
        work = sandbox.scratch_copy(Path.cwd(), scratch / "work")
        hidden = [Path(os.environ[COURSE_ENV])] if os.environ.get(COURSE_ENV) else []
        command = sandbox.bwrap_command(kernel, work, hidden, network=True)
        env = {**sandbox.environment(), "MPLCONFIGDIR": str(work), "WORKBOOK_HOME": str(work)}
        # In its own PID namespace the kernel's parent is pid 1: it must not take that for a parent
        # that died (ipykernel watches JPY_PARENT_PID); --die-with-parent ends it with this process.
        env.pop("JPY_PARENT_PID", None)
        child = subprocess.Popen(command, env=env)
        signal.signal(signal.SIGTERM, lambda *_: child.kill())
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # interrupts travel as messages (kernel.json)
        return child.wait()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
