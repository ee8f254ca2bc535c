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
    in a copy of that folder. Left out: files over 16 MB, anything past 256 MB in all, and run and
    tool folders (``runs/``, ``checkpoints/``, ``.git``, ``.ipynb_checkpoints``...). Symbolic links
    to files are copied as the files they point to (a write through a link would reach the
    original); links to folders are left out.
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
            source = Path(root, name)
            try:
                size = source.stat().st_size  # follows a link to its file
                if not source.is_file() or size > SCRATCH_FILE_LIMIT or size > budget:
                    continue
                shutil.copyfile(source, dest / rel / name)
                budget -= size
            except OSError:
                continue  # unreadable or vanished: the cell that needs it will say so
    return dest
