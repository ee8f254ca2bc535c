"""An honest submission gets no "checksum has changed" warning from ``nbgrader autograde``.

nbgrader's ``generate_assignment`` saves each locked test cell in the gradebook (source and checksum)
*before* it removes the cell's ``### BEGIN HIDDEN TESTS`` region for the students' copy (jupyter/nbgrader
issue 1961). At autograde, ``OverwriteCells`` compares the submitted cell, which never had the hidden
region, with that saved checksum: every test cell with hidden tests differs, so every submission,
honest or not, logged "WARNING Attribute 'checksum' for cell test_... has changed!" before the cell was
put back. A warning that fires on everyone tells the teacher nothing.

``RestoreHiddenTests`` runs just before ``OverwriteCells`` (``workbook course`` puts it in the course's
``Autograde.sanitize_preprocessors``): a locked cell whose submitted source is exactly the released one
(the saved source without its hidden region) gets the saved source back, hidden tests included. Its
checksum then matches and ``OverwriteCells`` stays quiet. A test cell the student changed is left as
it is, so ``OverwriteCells`` still warns about that one (and restores it, as before).
"""

from __future__ import annotations

from typing import Any

from nbformat.notebooknode import NotebookNode

try:
    from nbgrader.api import Gradebook, MissingEntry
    from nbgrader.preprocessors import ClearHiddenTests, NbGraderPreprocessor
except ImportError:  # a learner's install: nbgrader is the teacher's extra, and only its config names this
    NbGraderPreprocessor = object  # type: ignore[assignment,misc]

ResourcesDict = dict[str, Any]


def released_source(saved_source: str, clear: Any) -> str:
    """What ``generate_assignment`` hands out for a cell saved with ``saved_source`` (``clear``: an
    nbgrader ``ClearHiddenTests``)."""
    cell = NotebookNode(cell_type="code", source=saved_source, metadata=NotebookNode())
    clear._remove_hidden_test_region(cell)  # nbgrader's own stripping, with the course's delimiters
    return cell.source


class RestoreHiddenTests(NbGraderPreprocessor):  # type: ignore[misc,valid-type]
    """Put the hidden tests back into each locked cell submitted exactly as released (see the module)."""

    def preprocess(self, nb: NotebookNode, resources: ResourcesDict) -> tuple[NotebookNode, ResourcesDict]:
        info = resources["nbgrader"]
        self._notebook, self._assignment = info["notebook"], info["assignment"]
        self._clear = ClearHiddenTests(parent=self.parent, config=self.config)
        with Gradebook(info["db_url"]) as gradebook:
            self._gradebook = gradebook
            try:
                return super().preprocess(nb, resources)
            finally:
                self._gradebook = None

    def preprocess_cell(
        self, cell: NotebookNode, resources: ResourcesDict, cell_index: int
    ) -> tuple[NotebookNode, ResourcesDict]:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if grade_id is None:
            return cell, resources
        try:
            saved = self._gradebook.find_source_cell(grade_id, self._notebook, self._assignment)
        except MissingEntry:
            return cell, resources  # OverwriteCells reports it
        if saved.locked and cell.source != saved.source:
            try:
                released = released_source(saved.source, self._clear)
            except RuntimeError:  # an unbalanced hidden region in the source: leave it to nbgrader
                return cell, resources
            if cell.source == released:
                cell.source = saved.source
        return cell, resources
