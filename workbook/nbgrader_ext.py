"""Two nbgrader preprocessors the course needs (configured in the course's ``nbgrader_config.py``).

* :class:`HideHiddenTests` (feedback): nbgrader's default feedback shows each test cell as graded,
  hidden tests included, and every traceback quotes the failing line of it. This one removes the
  hidden region from every graded cell and replaces each traceback in it by its last line
  (``AssertionError: <the checker's messages>``), so the student sees the score and the checker's
  report, never the test code.
* :class:`CheckSubmissionMetadata` (autograde, first step): a submission whose nbgrader metadata was
  stripped would make nbgrader fail with a ``KeyError`` deep inside ``add_missing_cells`` (or grade it
  zero without a word). This one stops that notebook with a message that says what happened and how
  to repair it (``workbook course DIR --repair``).
"""

from __future__ import annotations

from typing import Any

from nbconvert.exporters.exporter import ResourcesDict
from nbformat.notebooknode import NotebookNode
from nbgrader import utils
from nbgrader.preprocessors import NbGraderPreprocessor
from traitlets import Unicode


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
