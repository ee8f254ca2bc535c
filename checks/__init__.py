"""The workbook's grader and command line.

``check(obj)`` grades a learner's class or function against the reference in ``solutions`` with
hidden tests, and says what is wrong and where to look (``checks.core``, ``checks.specs``,
``checks.diagnoses``); ``checks.cli`` is the ``workbook`` command.

    >>> from checks import check
    >>> check(MultiHeadAttention)          # or check("MultiHeadAttention") in a notebook
"""

from .core import CheckResult, check

__all__ = ["check", "CheckResult"]
