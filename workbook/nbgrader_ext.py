"""The nbgrader preprocessors the course needs (configured in the course's ``nbgrader_config.py``).

Only nbgrader itself loads this module (nbgrader is the ``teach`` extra: ``pip install
"transformer-workbook[teach]"``), so it imports nbgrader at the top; nothing a learner runs imports it.

* :class:`HideHiddenTests` (feedback): nbgrader's default feedback shows each test cell as graded,
  hidden tests included, and every traceback quotes the failing line of it. This one removes the
  hidden region from every graded cell and replaces each traceback in it by its last line
  (``AssertionError: <the checker's messages>``), so the student sees the score and the checker's
  report, never the test code.
* :class:`CheckSubmissionMetadata` (autograde, first step): a submission whose nbgrader metadata was
  stripped would make nbgrader fail with a ``KeyError`` deep inside ``add_missing_cells`` (or grade it
  zero without a word). This one stops that notebook with a message that says what happened and how
  to repair it (``workbook course DIR --repair``).
* :class:`JudgedExecute` (autograde): nbgrader's ``Execute`` in the sandboxed course kernel (over
  IPC, without the hidden tests), then the judge, whose verdicts alone decide the grade and are kept
  where the teacher report reads them (``workbook.course.verdicts_path``).
"""

from __future__ import annotations

import json
from typing import Any

from nbconvert.exporters.exporter import ResourcesDict
from nbformat.notebooknode import NotebookNode
from nbgrader import utils
from nbgrader.preprocessors import Execute, NbGraderPreprocessor
from traitlets import Unicode

from workbook.chapters import chapter as chapter_of
from workbook.course import REPORT_KEY


def remove_hidden_region(source: str, begin: str = "BEGIN HIDDEN TESTS", end: str = "END HIDDEN TESTS") -> str:
    """``source`` without the lines from ``begin`` to ``end`` (both included)."""
    kept, hidden = [], False
    for line in source.split("\n"):
        if begin in line:
            hidden = True
        elif end in line:
            hidden = False
        elif not hidden:
            kept.append(line)
    return "\n".join(kept)


class HideHiddenTests(NbGraderPreprocessor):
    """Feedback without hidden tests: graded cells lose their hidden region and their tracebacks."""

    begin_test_delimeter = Unicode("BEGIN HIDDEN TESTS").tag(config=True)
    end_test_delimeter = Unicode("END HIDDEN TESTS").tag(config=True)

    def preprocess_cell(
        self, cell: NotebookNode, resources: ResourcesDict, cell_index: int
    ) -> tuple[NotebookNode, ResourcesDict]:
        if self.begin_test_delimeter in cell.source:
            cell.source = remove_hidden_region(cell.source, self.begin_test_delimeter, self.end_test_delimeter)
        if cell.cell_type == "code" and (utils.is_grade(cell) or utils.is_locked(cell)):
            for output in cell.get("outputs", []):
                if output.get("output_type") == "error":
                    # The traceback quotes the hidden line that raised; keep only "Name: message".
                    evalue = output.get("evalue", "")
                    output["traceback"] = [
                        f"{output.get('ename', 'Error')}: {evalue}" if evalue else output.get("ename", "Error")
                    ]
        return cell, resources


class SubmissionMetadataError(Exception):
    """A submitted notebook lost the nbgrader metadata its grading depends on."""


class CheckSubmissionMetadata(NbGraderPreprocessor):
    """Stop, with a clear message, on a submission nbgrader could not grade for lack of metadata."""

    def preprocess(self, nb: NotebookNode, resources: ResourcesDict) -> tuple[NotebookNode, ResourcesDict]:
        from nbgrader.api import Gradebook

        info: dict[str, Any] = resources["nbgrader"]
        with Gradebook(info["db_url"]) as gradebook:
            source = gradebook.find_notebook(info["notebook"], info["assignment"])
            order = [cell.name for cell in source.source_cells]
            graded = {cell.name for cell in source.grade_cells}
            solutions = {cell.name for cell in source.solution_cells}
        present = {cell.metadata.get("nbgrader", {}).get("grade_id") for cell in nb.cells}
        present.discard(None)
        self._mark_duplicates(nb, resources)
        wanted = [name for name in order if name in graded | solutions]
        lost = [name for name in wanted if name not in present]
        # nbgrader re-adds a missing test cell after the cell before it; with both gone it crashes,
        # and with no metadata at all it would grade every exercise zero without saying why.
        stuck = [
            name
            for name in lost
            if name in graded and order.index(name) > 0 and order[order.index(name) - 1] not in present
        ]
        if wanted and (not present & set(wanted) or stuck):
            where = f"{info['assignment']}/{info['notebook']}.ipynb of student {info.get('student', '?')}"
            message = (
                f"{where} has lost the nbgrader metadata of its exercise and test cells "
                f"({', '.join(lost)}): it was probably copied into a new notebook or saved by an editor "
                "that drops cell metadata, so nbgrader cannot find what to grade. Run "
                "`workbook course . --repair` in the course folder (it restores the metadata by cell id "
                "from source/, keeping a .bak copy of the submission), then autograde again."
            )
            self.log.error(message)  # one plain line above nbgrader's traceback
            raise SubmissionMetadataError(message)
        return nb, resources

    def _mark_duplicates(self, nb: NotebookNode, resources: ResourcesDict) -> None:
        """Cells that share a grade id (a test cell copied by the student): nbgrader keeps the last and
        unmarks the others. Say so in autograde's output, and mark the cells, so that the judge's
        verdict (and the teacher report) says it too."""
        seen: dict[str, int] = {}
        for cell in nb.cells:
            grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
            if grade_id:
                seen[grade_id] = seen.get(grade_id, 0) + 1
        for grade_id, count in seen.items():
            if count < 2:
                continue
            self.log.error(
                "[workbook] %s: %d cells share the grade id '%s' (a copied test or exercise cell); nbgrader "
                "grades the last of them.",
                _where(resources),
                count,
                grade_id,
            )
            sharing = [cell for cell in nb.cells if cell.metadata.get("nbgrader", {}).get("grade_id") == grade_id]
            for cell in sharing[:-1]:  # nbgrader's own DeduplicateIds would leave an empty dict, on which
                del cell.metadata["nbgrader"]  # its OverwriteCells crashes: that submission was never graded
            sharing[-1].metadata.setdefault("workbook", {})["duplicate_grade_id"] = count


# --------------------------------------------------------------------------------------------------
# Autograde: the kernel runs the notebook, the judge decides
# --------------------------------------------------------------------------------------------------
class JudgedExecute(Execute):
    """nbgrader's ``Execute``, then the judge (``checks.judge``): the grade of every test cell.

    The notebook runs in the course's kernel as before (the student's feedback: outputs, figures,
    the checker's table). Then the judge, a part of this nbgrader process that never runs the
    student's code, runs the exercise cells in a sandboxed worker of its own, with the reference of
    the exercises out of the worker's sight, and grades each exercise with the checker's ladder
    against its own reference. Each test cell then carries the judge's verdict: an error output
    when the judge fails it (so nbgrader scores it 0), none when the judge passes it (so nbgrader
    gives the points). Whatever the student's code did in the kernel (patching the checker, torch,
    IPython, the files beside the notebook) cannot change a grade.

    A kernel that dies, a notebook the judge cannot run to the end: autograde's output names the
    submission and the reason, and the test cells say it (the teacher report lists it as not graded).
    """

    def preprocess(self, nb: NotebookNode, resources: ResourcesDict) -> tuple[NotebookNode, ResourcesDict]:
        import os
        import shutil
        import tempfile

        from workbook.sandbox_kernel import PARTS_FILE, PRIVATE_ENV

        self._drop_linked_files(resources)
        judge = self._start_judge(nb, resources)  # the cells as nbgrader restored them, before they run
        stopped = None
        # The kernel's private folder: its Unix sockets (no network) and the earlier chapters' parts.
        private = tempfile.mkdtemp(prefix="workbook-kernel-")
        if judge is not None:
            from checks.judge import pickled_parts
            from workbook.judged import earlier_exercises

            with open(os.path.join(private, PARTS_FILE), "wb") as file:
                file.write(pickled_parts(earlier_exercises(chapter_of(judge["stem"]))))
        # The kernel never receives the hidden tests (the judge grades): no hook of the student's can
        # copy their text into the feedback.
        hidden = [(cell, cell.source) for cell in nb.cells if self._hides(cell)]
        for cell, source in hidden:
            cell.source = remove_hidden_region(source, "BEGIN HIDDEN TESTS", "END HIDDEN TESTS")
        before = os.environ.get(PRIVATE_ENV)
        os.environ[PRIVATE_ENV] = private
        try:
            nb, resources = super().preprocess(nb, resources)
        except Exception as error:  # noqa: BLE001 - a dead kernel (os._exit, a crash): the judge goes on
            stopped = f"{type(error).__name__}: {_first_line(str(error))}"
            self.log.error(
                "[workbook] %s: the notebook's kernel stopped before the end (%s); the judge grades the "
                "exercises all the same.",
                _where(resources),
                stopped,
            )
        finally:
            if before is None:
                os.environ.pop(PRIVATE_ENV, None)
            else:
                os.environ[PRIVATE_ENV] = before
            shutil.rmtree(private, ignore_errors=True)
            for cell, source in hidden:
                cell.source = source
        if judge is not None:
            self._judge(nb, resources, stopped, judge)
        return nb, resources

    def _drop_linked_files(self, resources: ResourcesDict) -> None:
        """nbgrader copies a submission's files into ``autograded/`` following symbolic links (its
        ``shutil.copy``): a link to the gradebook, a classmate's notebook or the course config would
        arrive there as a copy of what it points to. Every file that was a link in ``submitted/`` is
        removed from the autograded copy before the kernel or the judge sees the folder."""
        import os
        from pathlib import Path

        from workbook.sandbox_kernel import COURSE_ENV

        info = resources.get("nbgrader", {})
        here = resources.get("metadata", {}).get("path")
        course = os.environ.get(COURSE_ENV)
        if not (here and course and info.get("student") and info.get("assignment")):
            return
        submitted = Path(course) / "submitted" / info["student"] / info["assignment"]
        for root, dirs, files in os.walk(submitted, followlinks=False):
            for name in [*files, *dirs]:
                link = Path(root, name)
                if not link.is_symlink():
                    continue
                copied = Path(here) / link.relative_to(submitted)
                if copied.is_file() or copied.is_symlink():
                    copied.unlink()
                self.log.warning(
                    "[workbook] %s: %s is a symbolic link: it is not graded (left out of the autograded copy)",
                    _where(resources),
                    link.relative_to(submitted),
                )

    @staticmethod
    def _hides(cell: NotebookNode) -> bool:
        """A test cell with hidden tests (a student's own cell that merely mentions them is left as written)."""
        graded = cell.get("cell_type") == "code" and utils.is_grade(cell)
        return graded and "BEGIN HIDDEN TESTS" in cell.get("source", "")

    def create_kernel_manager(self) -> Any:
        """nbclient's kernel manager, talking to the kernel over Unix sockets in the kernel's private
        folder (Jupyter's IPC transport): the sandboxed kernel then needs no network at all."""
        import os

        from checks import sandbox
        from workbook.sandbox_kernel import PRIVATE_ENV

        km = super().create_kernel_manager()
        private = os.environ.get(PRIVATE_ENV)
        if private and sandbox.available() is None:
            km.transport = "ipc"
            km.ip = os.path.join(private, "kernel")
        return km

    def _start_judge(self, nb: NotebookNode, resources: ResourcesDict) -> dict | None:
        """What the judge needs (the notebook's cells as nbgrader restored them), taken before the
        kernel runs; None when the notebook has no test cell of the workbook's. The judge then runs
        here, after the kernel: a fork of this process (which has threads) could deadlock."""
        import os
        from pathlib import Path

        from checks import sandbox
        from workbook.chapters import EXERCISE_TO_CHAPTER, chapter
        from workbook.sandbox_kernel import COURSE_ENV

        names = [n for c in nb.cells for n in [_exercise_of(c)] if n is not None and n in EXERCISE_TO_CHAPTER]
        if not names:
            return None
        info = chapter(EXERCISE_TO_CHAPTER[names[0]])
        folder = Path(resources.get("metadata", {}).get("path") or ".")
        if sandbox.available() is not None and not _SAID["missing"]:
            _SAID["missing"] = True  # once per autograde
            self.log.warning("[workbook] %s", sandbox.missing_protection())
        payload = {
            "path": str(folder / f"{resources.get('nbgrader', {}).get('notebook', info.stem)}.ipynb"),
            "stem": info.stem,
            "hidden": [os.environ[COURSE_ENV]] if os.environ.get(COURSE_ENV) else [],
            "cell_time": float(self.timeout or 30),
            "notebook": json.loads(json.dumps(nb)),
        }
        return payload

    def _judge(self, nb: NotebookNode, resources: ResourcesDict, stopped: str | None, judge: dict) -> None:
        from checks.copies import source_copied
        from checks.core import CheckResult
        from checks.judge import Judgement
        from checks.references import REFERENCES
        from workbook.chapters import EXERCISE_TO_CHAPTER
        from workbook.course import grade_cell_id

        tests = {
            name: cell
            for cell in nb.cells
            for name in [_exercise_of(cell)]
            if name is not None and name in EXERCISE_TO_CHAPTER
        }
        try:
            value = _judge_payload(judge)
            judgement = Judgement(
                {n: CheckResult.from_dict(r) for n, r in value["results"].items()},
                value["problem"],
                value["sandboxed"],
                value["cell_errors"],
            )
        except Exception as error:  # noqa: BLE001 - the judge's own failure: every test cell says it
            why = f"the judge itself failed ({type(error).__name__}: {_first_line(str(error))}); please report it"
            judgement = Judgement({n: CheckResult(n, "failed", failures=[why]) for n in tests}, why, False)
        if judgement.problem:
            self.log.error("[workbook] %s: not graded to the end: %s", _where(resources), judgement.problem)
        code = "\n".join(  # what the student wrote: the exercise cells and any cell they added
            c.source for c in nb.cells if c.cell_type == "code" and not utils.is_grade(c) and not utils.is_locked(c)
        )
        duplicated = {
            _grade_id_of_duplicate(c): c.metadata["workbook"]["duplicate_grade_id"]
            for c in nb.cells
            if isinstance(c.metadata.get("workbook"), dict) and c.metadata["workbook"].get("duplicate_grade_id")
        }
        record: dict[str, dict] = {}
        for name, cell in tests.items():
            if grade_cell_id(name) != cell.metadata.get("nbgrader", {}).get("grade_id"):
                continue
            result = judgement.results.get(name)
            if result is None:
                continue
            flags = list(result.flags)
            if name in REFERENCES:
                copied = source_copied(code, name, REFERENCES[name])
                if copied:
                    flags.append(f"reference copied: {copied}")
            state = result.state
            why = ""
            if judgement.problem and not result.tests:
                state, why = "not graded", judgement.problem
            elif stopped and not cell.get("outputs"):
                why = f"the notebook's kernel stopped before this cell ({stopped})"
            if grade_cell_id(name) in duplicated:
                why = (why + "; " if why else "") + (
                    f"the submission had {duplicated[grade_cell_id(name)]} cells with the grade id "
                    f"{grade_cell_id(name)} (a copied test cell): graded from the last"
                )
            verdict = {
                "exercise": name,
                "state": state,
                "diagnoses": list(result.diagnoses),
                "flags": flags,
                "judge": True,
            }
            if "too_slow" in result.diagnoses:
                why = (why + "; " if why else "") + "it timed out while judged (a loop that never ends?)"
            if why:
                verdict["why"] = why
                self.log.error("[workbook] %s: %s: %s", _where(resources), name, why)
            _apply(cell, result, verdict)
            record[grade_cell_id(name)] = {**verdict, "failures": [f for f in result.failures if f][:3]}
        write_verdicts(resources, record)


_SAID = {"missing": False}


def write_verdicts(resources: ResourcesDict, record: dict[str, dict]) -> None:
    """The judge's verdicts of this submission (grade id -> verdict), written atomically."""
    import os

    from workbook.course import verdicts_path
    from workbook.files import atomic_write
    from workbook.sandbox_kernel import COURSE_ENV

    info = resources.get("nbgrader", {})
    course = os.environ.get(COURSE_ENV) or info.get("course_dir") or "."
    path = verdicts_path(course, info.get("assignment", "?"), info.get("student", "?"), info.get("notebook", "?"))
    atomic_write(path, json.dumps(record, indent=1, sort_keys=True))


def _judge_payload(payload: dict) -> dict:
    """Judge the notebook (``workbook.judged``), the result as plain data."""
    from pathlib import Path

    from workbook.chapters import chapter
    from workbook.judged import judge_notebook

    judgement = judge_notebook(
        Path(payload["path"]),
        chapter(payload["stem"]),
        hidden=[Path(h) for h in payload["hidden"]],
        cell_time=payload["cell_time"],
        notebook=payload["notebook"],
    )
    return {
        "results": {n: r.to_dict() for n, r in judgement.results.items()},
        "problem": judgement.problem,
        "sandboxed": judgement.sandboxed,
        "cell_errors": judgement.cell_errors,
    }


def _grade_id_of_duplicate(cell: NotebookNode) -> str:
    grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
    return grade_id or ""


def _exercise_of(cell: NotebookNode) -> str | None:
    grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id", "")
    if cell.get("cell_type") != "code" or not utils.is_grade(cell) or not str(grade_id).startswith("test_"):
        return None
    return str(grade_id)[len("test_") :]


def _apply(cell: NotebookNode, result: Any, verdict: dict) -> None:
    """The judge's verdict into the test cell: its line of text (with the verdict in the output's
    metadata, for the teacher report) and, when it fails, the error that makes nbgrader score 0.

    Whatever the kernel put in the cell is kept for the student to read, in forms nbgrader does not
    grade: its errors and its stderr become stdout text, its results displays (nbgrader would read a
    number in a result as a partial grade). The judge alone decides the grade."""
    from nbformat.v4 import new_output

    kept = []
    for output in cell.get("outputs", []):
        kind = output.get("output_type")
        if isinstance(output.get("metadata"), dict):  # a verdict the kernel made up is shown, never read
            output["metadata"].pop(REPORT_KEY, None)
        if kind == "error":
            text = f"(in the notebook) {output.get('ename', '')}: {output.get('evalue', '')}\n"
            kept.append(new_output("stream", name="stdout", text=text))
        elif kind == "stream":
            kept.append(new_output("stream", name="stdout", text=output.get("text", "")))
        elif kind == "execute_result":
            kept.append(new_output("display_data", data=output.get("data", {}), metadata=output.get("metadata", {})))
        else:
            kept.append(output)
    label = {"passed": "passed", "failed": "failed", "not attempted": "not attempted"}.get(
        verdict["state"], "not graded"
    )
    line = f"{verdict['exercise']}: {label}, as judged outside the notebook (the grade comes from this verdict)."
    judged = [new_output("display_data", data={"text/plain": line}, metadata={REPORT_KEY: verdict})]
    if verdict["state"] != "passed":
        reasons = [verdict.get("why", "")] + [f for f in result.failures if f]
        message = f"{verdict['exercise']}: {label}." + "".join(f"\n{r}" for r in reasons if r)
        judged.append(
            new_output("error", ename="AssertionError", evalue=message, traceback=[f"AssertionError: {message}"])
        )
    cell.outputs = judged + kept


def _where(resources: ResourcesDict) -> str:
    info = resources.get("nbgrader", {})
    return f"submitted/{info.get('student', '?')}/{info.get('assignment', '?')}"


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "")[:300]
