"""``workbook build`` (alias ``generate``): the developers' command that regenerates the notebooks.

It writes ``chapters/<stem>.ipynb`` from ``workbook/content/<stem>.md`` and the pictures in ``assets/``
from ``workbook/diagrams.py`` (``--check``: only report drift; ``--solved``: also build and execute
the solved copies). It is a developer command: ``workbook --help`` leaves it out, ``--help-all`` lists it.

A chapter notebook is the learner's work as soon as they type in it, so ``build`` overwrites only a
notebook it wrote itself: one whose text is what it generates now, what an earlier ``build`` wrote
into that folder (their hashes are kept in ``<folder>/.workbook/build-manifest.json``) or what the
repository's last commit holds. Any other notebook (edited) is left alone and named, and the command
exits 1; with ``--force`` it is replaced and first copied to ``<folder>/backups/<stem>-<date>.ipynb``,
as ``workbook reset`` does.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
from pathlib import Path

from workbook.commands.progress import keep_backup
from workbook.names import chapter

DEVELOPER = True  # hidden from `workbook --help`; `workbook --help-all` lists it
MANIFEST = Path(".workbook") / "build-manifest.json"


def register(subparsers: argparse._SubParsersAction) -> None:
    for name in ("build", "generate"):
        build = subparsers.add_parser(
            name,
            help="(developers) regenerate the chapter notebooks from their sources"
            + (" (alias of build)" if name == "generate" else ""),
            description="Regenerates chapters/<stem>.ipynb from workbook/content/<stem>.md and the "
            "reference in solutions/, and the pictures in assets/ (beside the output folder) from "
            "workbook/diagrams.py. With --solved, also builds and executes chapters/solved/. A notebook "
            "that differs from what build wrote (you edited it) is not overwritten unless --force, "
            "which first keeps it as backups/<stem>-<date>.ipynb in that folder.",
        )
        build.add_argument(
            "chapters", nargs="*", metavar="CHAPTER", help="only these chapters (default: all with a source)"
        )
        build.add_argument(
            "--check",
            action="store_true",
            help="write nothing; exit 1 when a notebook or a picture in assets/ differs from its source",
        )
        build.add_argument("--solved", action="store_true", help="also build and execute the solved copies (slow)")
        build.add_argument(
            "--force",
            action="store_true",
            help="also replace the notebooks with edits build did not write "
            "(each first kept as backups/<stem>-<date>.ipynb)",
        )
        build.add_argument(
            "--out",
            type=Path,
            default=None,
            help="output folder (default: the repository's chapters/); the pictures go to its sibling assets/",
        )
        build.set_defaults(func=run_build)


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _read_manifest(folder: Path) -> dict[str, list[str]]:
    try:
        data = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {k: list(v) for k, v in data.items() if isinstance(v, list)} if isinstance(data, dict) else {}


def _write_manifest(folder: Path, manifest: dict[str, list[str]]) -> None:
    from workbook.files import atomic_write

    try:
        (folder / MANIFEST).parent.mkdir(parents=True, exist_ok=True)
        atomic_write(folder / MANIFEST, json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    except OSError as error:  # the notebooks are written; only the next build's memory of them is lost
        print(f"note: could not write {folder / MANIFEST}: {error}", file=sys.stderr)


def _committed_text(path: Path) -> str | None:
    """The text of ``path`` in its git repository's last commit, or None (no git, not tracked)."""
    try:
        top = subprocess.run(
            ["git", "-C", str(path.parent), "rev-parse", "--show-toplevel"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        if top.returncode != 0:
            return None
        relative = path.resolve().relative_to(Path(top.stdout.strip()).resolve())
        shown = subprocess.run(
            ["git", "-C", top.stdout.strip(), "show", f"HEAD:{relative.as_posix()}"],
            capture_output=True,
            timeout=10,
        )
    except (OSError, ValueError, subprocess.SubprocessError):
        return None
    return shown.stdout.decode("utf-8", "replace") if shown.returncode == 0 else None


def write_notebooks(out: Path, stems: list[str] | None, force: bool) -> tuple[list[Path], list[Path], list[Path]]:
    """Write the learner notebooks into ``out``: (written, backups made, left alone because edited)."""
    from workbook.files import atomic_write
    from workbook.notebooks import _selected, learner_notebook_text

    out.mkdir(parents=True, exist_ok=True)
    manifest = _read_manifest(out)
    written, backups, refused = [], [], []
    for info in _selected(stems):
        target = out / f"{info.stem}.ipynb"
        text = learner_notebook_text(info.stem)
        known = manifest.setdefault(info.stem, [])
        if target.exists():
            current = target.read_text(encoding="utf-8", errors="replace")
            if current == text:
                if _digest(text) not in known:
                    known.append(_digest(text))
                continue
            ours = _digest(current) in known or current == _committed_text(target)
            if not ours:
                if not force:
                    refused.append(target)
                    continue
                backups.append(keep_backup(target))
        atomic_write(target, text)
        written.append(target)
        if _digest(text) not in known:
            known.append(_digest(text))
        del known[:-20]  # the last builds are enough to recognise our own files
    _write_manifest(out, manifest)
    return written, backups, refused


def run_build(args: argparse.Namespace) -> int:
    from workbook import diagrams, notebooks

    out = Path(args.out or notebooks.CHAPTERS_DIR)
    try:
        stems = [chapter(c).stem for c in args.chapters] or None
        assets = out.parent / "assets"  # the pictures (workbook/diagrams.py) live beside chapters/
        if args.check:
            drift = notebooks.drifted(out, stems) + notebooks.stale_solved(out / "solved", stems)
            drift += diagrams.drifted_assets(assets)
            for line in drift:
                print(f"out of date: {line}")
            if drift:
                print("Run `workbook build` to regenerate them.", file=sys.stderr)
                return 1
            print("All chapter notebooks and pictures match their sources.")
            return 0
        pictures = diagrams.write_assets(assets)
        if pictures:
            print(f"{len(pictures)} picture(s) written" + "".join(f"\n  {p}" for p in pictures))
        written, backups, refused = write_notebooks(out, stems, args.force)
        print(f"{len(written)} learner notebook(s) written" + "".join(f"\n  {p}" for p in written))
        for path in backups:
            print(f"The edited notebook was kept as {path}")
        if backups:
            print("(Progress is kept: `workbook status` shows each exercise's last check, until it is checked again.)")
        if args.solved:
            solved = notebooks.write_solved_notebooks(out / "solved", stems)
            print(f"{len(solved)} solved notebook(s) executed and written" + "".join(f"\n  {p}" for p in solved))
    except (KeyError, FileNotFoundError, notebooks.SourceError) as error:
        print(error.args[0] if error.args else error, file=sys.stderr)
        return 2
    if refused:
        numbers = " ".join(p.stem[:2] for p in refused)
        print(
            f"Not overwritten: {len(refused)} notebook(s) with edits that `workbook build` did not write "
            "(your work?):" + "".join(f"\n  {p}" for p in refused) + "\nTo replace them anyway, keeping each "
            f"as backups/<stem>-<date>.ipynb: `workbook build --force {numbers}` "
            "(or `workbook reset NN` for one chapter).",
            file=sys.stderr,
        )
        return 1
    return 0
