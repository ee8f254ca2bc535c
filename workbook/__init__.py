"""The Transformer workbook: the app around the grader (``checks``) and the reference (``solutions``).

What a chapter notebook imports, in one line::

    from workbook import check, hint, mine_or_reference, solution

* ``check(Name)``, ``hint(Name)``, ``solution(Name)``: the three verbs (``workbook.learner``);
* ``earlier_parts(...)`` and ``assemble(...)``: your earlier work or the reference (``workbook.assembly``);
* the ``workbook`` command (``workbook.cli``), the chapter map (``workbook.chapters``), progress
  (``workbook.progress``), the one runner for notebook code (``workbook.runner``), the notebook
  generator (``workbook.notebooks``) and the nbgrader course (``workbook.course``).

Imports point one way: ``workbook`` -> ``checks`` -> ``solutions``.
"""

from workbook.learner import assemble, check, earlier_parts, hint, mine_or_reference, reference, solution

__all__ = ["check", "hint", "solution", "mine_or_reference", "earlier_parts", "assemble", "reference"]
