"""The workbook's grader: hidden tests that grade a learner's part against the reference.

``check(obj)`` (``checks.grade``) grades a class or function with its exercise's ladder
(``checks.specs``, run by ``checks.core``) and says what is wrong and where to look
(``checks.diagnoses``), in a worker process the learner's code cannot stop (``checks.worker``).
The grader imports only the reference (``solutions``); the app (``workbook``) imports the grader.

    >>> from checks import check
    >>> check(MultiHeadAttention)
"""

__all__ = ["check", "CheckResult"]


def __getattr__(name: str):
    """``check`` and ``CheckResult`` load torch and the specs only when first used, so that commands
    and nbgrader hooks that never grade (``workbook status``, the metadata guard) start quickly."""
    if name == "check":
        from .grade import check

        return check
    if name == "CheckResult":
        from .core import CheckResult

        return CheckResult
    raise AttributeError(f"module 'checks' has no attribute {name!r}")
