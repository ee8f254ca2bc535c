"""A sandbox for a spawned worker: bubblewrap (``bwrap``) where it can be had.

Inside, the worker sees the system read-only (``--ro-bind / /``), writes only in its own folder,
has no network (a private network namespace with nothing but loopback), its own process-ID
namespace (when the worker ends, everything it started ends with it, even a process that left its
process group with ``setsid``), no capabilities, and does not see the folders it is asked to hide
(an empty, read-only ``tmpfs`` over each: the learner's notebook folder, a course folder). Where Python or
the workbook's own packages live under a hidden folder, they are shown again, read-only.

Where there is no bubblewrap (macOS, Windows, a Linux without it or without user namespaces),
:func:`available` says why, and the worker runs as a plain separate process: the caller says once
which protection is missing (:func:`missing_protection`).
"""

from __future__ import annotations

import functools
import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

INSTALL_HINT = "install bubblewrap (Debian/Ubuntu: apt-get install bubblewrap)"


@functools.lru_cache(maxsize=1)
def available() -> str | None:
    """None when bubblewrap works here, else the reason it does not (one sentence)."""
    if not sys.platform.startswith("linux"):
        return f"no sandbox on {sys.platform} (bubblewrap is Linux only)"
    path = shutil.which("bwrap")
    if path is None:
        return f"bubblewrap is not installed ({INSTALL_HINT})"
    try:
        probe = subprocess.run(
            [path, "--ro-bind", "/", "/", "--unshare-all", "--die-with-parent", "true"],
            capture_output=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"bubblewrap could not start ({error})"
    if probe.returncode != 0:
        why = probe.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or ["no message"]
        return f"bubblewrap cannot make a sandbox here (user namespaces off?): {why[0]}"
    return None


def missing_protection() -> str:
    """What a run without the sandbox lacks, for the one message the caller shows."""
    return (
        f"Note: {available()}. The learner's code runs in a separate process, in a scratch folder, "
        "but not in a sandbox: it can read and write the user's files by absolute path and use the network."
    )


def _needed_paths() -> list[Path]:
    """What the worker must still see: Python itself and the folders its imports come from."""
    roots = {Path(sys.prefix), Path(sys.base_prefix), Path(sys.executable).resolve().parent}
    here = Path.cwd().resolve()  # `python -m` puts the working directory on sys.path: not a need
    roots.update(Path(p) for p in sys.path if p and Path(p).is_dir() and Path(p).resolve() != here)
    for name in ("checks", "workbook", "solutions"):
        module = sys.modules.get(name)
        if module is not None and getattr(module, "__file__", None):
            roots.add(Path(module.__file__).resolve().parents[1])
    return sorted({p.resolve() for p in roots})


def bwrap_command(
    command: list[str],
    writable: Path,
    hidden: Iterable[Path] = (),
    network: bool = False,
    needed: Iterable[Path] | None = None,
) -> list[str]:
    """``command`` wrapped in bubblewrap: read-only system, ``writable`` the one folder it may
    change (and its working directory), ``hidden`` folders replaced by empty ones. ``network``:
    keep the host's network (a Jupyter kernel talks to its client over TCP on loopback). ``needed``:
    what to show again, read-only, under a hidden folder (by default Python and the workbook's
    packages)."""
    writable = Path(writable).resolve()
    args = [shutil.which("bwrap") or "bwrap", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"]
    hidden = sorted({Path(h).resolve() for h in hidden})
    for folder in hidden:
        args += ["--tmpfs", str(folder)]
    for path in _needed_paths() if needed is None else sorted({Path(p).resolve() for p in needed}):
        if any(path == h or h in path.parents for h in hidden):
            args += ["--ro-bind", str(path), str(path)]
    for folder in hidden:
        args += ["--remount-ro", str(folder)]
    args += ["--bind", str(writable), str(writable), "--chdir", str(writable)]
    args += ["--setenv", "TMPDIR", str(writable), "--setenv", "HOME", str(writable)]
    unshare = ["--unshare-all", "--share-net"] if network else ["--unshare-all"]
    args += [*unshare, "--die-with-parent", "--new-session", "--cap-drop", "ALL", "--"]
    return args + command


# What a confined process sees of the system: programs, libraries and the few files of /etc they
# read (the dynamic loader's cache, users and groups by number, fonts, certificates, the time zone).
SYSTEM_PATHS = (
    "/usr",
    "/bin",
    "/sbin",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/alternatives",
    "/etc/passwd",
    "/etc/group",
    "/etc/nsswitch.conf",
    "/etc/fonts",
    "/etc/ssl/certs",
    "/etc/localtime",
    "/etc/mime.types",
    "/sys/devices/system/cpu",
)
# The variables a confined process keeps of the grader's environment (everything else, the
# teacher's tokens and paths included, stays outside).
KEPT_VARIABLES = ("PATH", "LANG", "LANGUAGE", "LC_ALL", "LC_CTYPE", "TZ", "TERM", "PYTHONHASHSEED", "PYTHONUTF8")
KEPT_PREFIXES = ("OMP_", "MKL_", "OPENBLAS_", "KMP_")


def python_paths(hidden: Iterable[Path] = ()) -> list[Path]:
    """Where this Python and its installed packages live (its prefixes and every ``*-packages``
    folder on ``sys.path``), less anything under ``hidden``. A source checkout on ``sys.path`` (an
    editable install's folder, ``PYTHONPATH``) is not shown: it holds the reference."""
    hidden = [Path(h).resolve() for h in hidden]
    roots = {Path(sys.prefix), Path(sys.base_prefix), Path(sys.executable).resolve().parent}
    roots.update(Path(p) for p in sys.path if p and p.endswith("-packages") and Path(p).is_dir())
    found = sorted({p.resolve() for p in roots if p.exists()})
    outermost = [p for p in found if not any(q in p.parents for q in found)]
    return [p for p in outermost if not any(p == h or h in p.parents for h in hidden)]


def confined_command(
    command: list[str],
    writable: Path,
    hidden: Iterable[Path] = (),
    shown: Iterable[Path] = (),
    shared: Iterable[Path] = (),
    network: bool = False,
) -> list[str]:
    """``command`` in bubblewrap, seeing only what it needs: the system's programs and libraries
    (``SYSTEM_PATHS``), this Python and its packages (less ``hidden``, the reference), ``shown``
    read-only, ``shared`` and ``writable`` read-write (``writable`` is its working directory, its
    home and its temporary folder); an empty private ``/tmp``, its own ``/proc`` (its own processes
    only) and ``/dev``. Nothing else of the disk is there: not the user's home, not other kernels'
    connection files, not a course folder, not other submissions wherever they are. ``network``:
    keep the host's network (only for a kernel whose client talks TCP); by default it has none, not
    even the host's loopback, and only the abstract sockets of its own network namespace."""
    writable = Path(writable).resolve()
    hidden = sorted({Path(h).resolve() for h in hidden})
    args = [shutil.which("bwrap") or "bwrap"]  # the root is an empty tmpfs, read-only at the end
    for place in SYSTEM_PATHS:
        if os.path.islink(place):
            args += ["--symlink", os.readlink(place), place]
        elif os.path.exists(place):
            args += ["--ro-bind", place, place]
    args += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]
    for path in [*python_paths(hidden), *(Path(p).resolve() for p in shown)]:
        args += ["--ro-bind", str(path), str(path)]
    for folder in hidden:  # a hidden folder inside a shown one (a package installed in site-packages)
        if any(folder != p and p in folder.parents for p in python_paths()):
            args += ["--tmpfs", str(folder), "--remount-ro", str(folder)]
    for path in shared:
        args += ["--bind", str(Path(path).resolve()), str(Path(path).resolve())]
    args += ["--bind", str(writable), str(writable), "--chdir", str(writable)]
    args += ["--remount-ro", "/"]
    unshare = ["--unshare-all", "--share-net"] if network else ["--unshare-all"]
    args += [*unshare, "--die-with-parent", "--new-session", "--cap-drop", "ALL", "--"]
    return args + command


def confined_environment(home: Path, **extra: str) -> dict[str, str]:
    """The environment of a confined process: a few variables of this one (``KEPT_VARIABLES``),
    ``HOME`` and ``TMPDIR`` in its own folder, and ``extra``."""
    env = {k: v for k, v in os.environ.items() if k in KEPT_VARIABLES or k.startswith(KEPT_PREFIXES)}
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    env.update(HOME=str(home), TMPDIR=str(home), MPLCONFIGDIR=str(home), PYTHONDONTWRITEBYTECODE="1")
    env.update(extra)
    return env


def reference_places() -> list[Path]:
    """Where the reference can be read on this machine: the installed ``solutions`` and ``workbook``
    (whose chapter sources hold the solutions); for a source checkout, the whole checkout. Located,
    not imported (a launcher needs no torch for this)."""
    import importlib.util

    places = []
    for name in ("solutions", "workbook"):
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.origin:
            places.append(Path(spec.origin).resolve().parent)
    roots = {p.parent for p in places}
    for root in roots:
        if (root / "pyproject.toml").exists() and (root / "checks").is_dir():
            return [root]
    return places


def isolated_python(module: str, root: str | Path | None = None) -> list[str]:
    """``python -m module``, isolated (``-I``): neither the working directory nor ``PYTHONPATH`` nor
    the user's site-packages comes before the installed packages, so a ``workbook/`` or ``checks/``
    folder beside a submission is never imported in place of ours. ``root``: the one folder put
    first on ``sys.path`` (where this process found the module)."""
    boot = "import runpy, sys; sys.path[:] = [p for p in sys.path if p not in ('', '.')]; "
    if root is not None:
        boot += f"sys.path.insert(0, {str(root)!r}); "
    boot += f"runpy.run_module({module!r}, run_name='__main__', alter_sys=True)"
    return [sys.executable, "-I", "-c", boot]


def environment() -> dict[str, str]:
    """The environment a sandboxed worker starts with: this one, less what could reach outside."""
    drop = ("SSH_AUTH_SOCK", "DBUS_SESSION_BUS_ADDRESS", "DISPLAY", "WAYLAND_DISPLAY", "JPY_SESSION_NAME")
    return {k: v for k, v in os.environ.items() if k not in drop}


# What a worker gets of the folder it is started for: a scratch copy of its small files.
SCRATCH_FILE_LIMIT = 16 * 1024 * 1024
SCRATCH_TOTAL_LIMIT = 256 * 1024 * 1024
SCRATCH_SKIP = {
    ".git",
    ".ipynb_checkpoints",
    "__pycache__",
    "runs",
    "checkpoints",
    ".venv",
    "venv",
    "node_modules",
    ".workbook",
}


def scratch_copy(folder: Path, dest: Path) -> Path:
    """Copy ``folder``'s small files into ``dest`` (made here) and return ``dest``.

    A cell may read a file beside its notebook (a data file, a helper module), so the worker starts
    in a copy of that folder. Left out: files over 16 MB, anything past 256 MB in all, run and tool
    folders (``runs/``, ``checkpoints/``, ``.git``, ``.ipynb_checkpoints``...), and every symbolic
    link, to a file or a folder: a link placed in a submission would otherwise bring into the copy
    what it points to (a gradebook, a classmate's notebook, the course's configuration). Files are
    opened without following a link, so one swapped in while copying is refused too.
    """
    if not folder.is_dir():
        raise FileNotFoundError(f"the notebook's folder {folder} is gone")
    dest.mkdir(parents=True, exist_ok=True)
    budget = SCRATCH_TOTAL_LIMIT
    for root, dirs, files in os.walk(folder, followlinks=False):
        rel = Path(root).relative_to(folder)
        dirs[:] = [d for d in dirs if d not in SCRATCH_SKIP and not Path(root, d).is_symlink() and len(rel.parts) < 4]
        (dest / rel).mkdir(parents=True, exist_ok=True)
        for name in files:
            try:
                budget -= _copy_plain_file(Path(root, name), dest / rel / name, budget)
            except OSError:
                continue  # unreadable, vanished or a link: the cell that needs it will say so
    return dest


def _copy_plain_file(source: Path, target: Path, budget: int) -> int:
    """Copy ``source`` if it is a regular file (never through a link) of at most the limits; its size."""
    fd = os.open(source, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size > min(SCRATCH_FILE_LIMIT, budget):
            return 0
        with os.fdopen(os.dup(fd), "rb") as src, open(target, "wb") as out:
            shutil.copyfileobj(src, out)
        return info.st_size
    finally:
        os.close(fd)
