"""The learner's own parts, chosen one by one: yours where it passes its check, the reference elsewhere.

"Yours if it passes, else the reference" is decided here, once, for every path that uses the
learner's earlier work: ``earlier_parts(..., use_my_work=True)`` in a chapter, chapter 12's
``assemble()``, ``workbook train --parts learner`` and ``workbook translate``. The learner's
notebooks are run by the one runner (``workbook.runner``: a worker per chapter, in a scratch folder,
each exercise graded there); the parts that pass come back by value and are rewired so that each
part builds and calls the chosen version of every other (``solutions.pipeline.parts.rewire``).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from checks.core import learner_globals
from solutions.pipeline.parts import PARTS, Assembly, assemble_parts, reference_assembly, reference_namespace
from workbook.chapters import CHAPTERS, EXERCISE_TO_CHAPTER
from workbook.runner import read_chapter, run_chapters, unpickle_part


def _why(entry: dict, report: dict) -> str:
    state = entry.get("state")
    if state == "passed":
        return "passed its check" if entry.get("part") else "passed, but could not be brought back (unpicklable)"
    if state == "error":
        return f"{Path(report['path']).name}: {report['message']}"
    if state == "not attempted":
        return "not attempted yet"
    failures = entry.get("failures") or []
    return "failed its check" + (f": {' '.join(str(failures[0]).split())[:70]}" if failures else "")


def find_notebook(stem: str, folders: Iterable[Path]) -> Path | None:
    """The first ``<stem>.ipynb`` in ``folders``."""
    return next((Path(d) / f"{stem}.ipynb" for d in folders if (Path(d) / f"{stem}.ipynb").exists()), None)


def learner_parts(
    names: Iterable[str], folders: Iterable[Path], timeout: float = 30.0
) -> dict[str, tuple[object | None, str]]:
    """Run the chapters that teach ``names`` (found in ``folders``) and grade them: for each name,
    (your object when it passes its check, else None; why)."""
    names, folders = list(names), [Path(f) for f in folders]
    stems = [ch.stem for ch in CHAPTERS if any(EXERCISE_TO_CHAPTER.get(n) == ch.stem for n in names)]
    found: dict[str, tuple[object | None, str]] = {}
    jobs = []
    for stem in stems:
        path = find_notebook(stem, folders)
        if path is None:
            where = ", ".join(str(f) for f in folders)
            found.update(
                {n: (None, f"{stem}.ipynb not found in {where}") for n in names if EXERCISE_TO_CHAPTER[n] == stem}
            )
            continue
        jobs.append(read_chapter(next(ch for ch in CHAPTERS if ch.stem == stem), path))
    for report in run_chapters(jobs, timeout=timeout, parts=True):
        for entry in report["exercises"]:
            if entry["exercise"] not in names:
                continue
            part = unpickle_part(entry["part"]) if entry.get("state") == "passed" and entry.get("part") else None
            found[entry["exercise"]] = (part, _why(entry, report))
    return found


def choose(
    names: Iterable[str], folders: Iterable[Path] | None, attention: str = "manual", timeout: float = 30.0
) -> Assembly:
    """Every part of ``PARTS``: among ``names``, yours when it passes its check (``folders`` None:
    none of yours); the reference for everything else. Every namespace is rewired to the choice."""
    reference = reference_namespace()
    chosen = {name: reference[name] for name in PARTS}
    sources = {name: ("reference", "as asked") for name in PARTS}
    namespaces = [reference]
    if folders is not None:
        for name, (part, why) in learner_parts(names, folders, timeout).items():
            sources[name] = ("yours" if part is not None else "reference", why)
            if part is not None:
                chosen[name] = part
                namespace = learner_globals(part)
                if namespace is not None:
                    namespaces.append(namespace)
    return assemble_parts(chosen, sources, namespaces, attention)


def assemble(
    use_learner: bool = True, chapters_dir: str | Path | None = "chapters", attention: str = "manual"
) -> Assembly:
    """Choose every part for chapter 12 and ``workbook train``: the learner's when it exists in
    ``chapters_dir`` and passes its check, else the reference.

    ``attention="fused"`` swaps in PyTorch's fused attention kernel (for speed comparisons).
    """
    if not use_learner:
        return reference_assembly(attention)
    folder = Path(chapters_dir) if chapters_dir is not None else Path("chapters")
    if not folder.is_dir():
        return reference_assembly(attention, why=f"no chapters folder at {folder}")
    return choose(PARTS, [folder], attention)


def build_model(
    src_vocab_size: int,
    tgt_vocab_size: int,
    use_learner: bool = True,
    chapters_dir: str | Path | None = "chapters",
    attention: str = "manual",
    verbose: bool = True,
    **model_kwargs,
):
    """The Transformer built from the learner's parts where they pass their checks (see ``assemble``);
    prints the table of which part came from whom when ``verbose``."""
    assembly = assemble(use_learner, chapters_dir, attention)
    if verbose:
        print(assembly.table())
    return assembly.model(src_vocab_size, tgt_vocab_size, **model_kwargs)
