"""The workbook's grader and command line.

``check(obj)`` grades a learner's class or function against the reference in ``solutions`` with
hidden tests, and says what is wrong and where to look (``checks.core``, ``checks.specs``,
``checks.diagnoses``); ``checks.cli`` is the ``workbook`` command.

    >>> from checks import check
    >>> check(MultiHeadAttention)          # or check("MultiHeadAttention") in a notebook
"""

__all__ = ["check", "CheckResult"]


def __getattr__(name: str):
    """``check`` and ``CheckResult`` load torch and the specs only when first used, so that commands
    and nbgrader hooks that never grade (``workbook status``, the metadata guard) start quickly."""
    if name in __all__:
        from . import core

        return getattr(core, name)
    raise AttributeError(f"module 'checks' has no attribute {name!r}")
